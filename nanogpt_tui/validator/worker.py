"""The validator's retiming worker: what runs in the validator's own container (or, on the local backend, as a
separate process). It refuses when the paused agent holds GPU memory, retimes the frozen candidate, prints its
progress as JSON lines and writes the runs to a result file the host reads.

Run as `python3 -m nanogpt_tui.validator.worker --candidate DIR --result FILE ...`. Exit status: 0 retimed (the
runs may still have failed), 4 refused (GPU memory held by the agent), 2 bad arguments.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from nanogpt_tui.fsutil import atomic_write_json
from nanogpt_tui.validator.gpumem import gpu_processes, holders, refusal
from nanogpt_tui.validator.retime import SessionClock, retime

EXIT_REFUSED = 4


def say(kind: str, text: str) -> None:
    print(json.dumps({"worker": kind, "text": text}), flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="nanogpt_tui.validator.worker")
    p.add_argument("--candidate", type=Path, required=True)
    p.add_argument("--result", type=Path, required=True)
    p.add_argument("--logs", type=Path, required=True)
    p.add_argument("--data", type=Path)
    p.add_argument("--runs", type=int, required=True)
    p.add_argument("--val-loss-target", type=float, required=True)
    p.add_argument("--p-value-threshold", type=float, required=True)
    p.add_argument("--timeout", type=float, required=True)
    p.add_argument("--agent-pids", default="", help="comma-separated node PIDs of the paused agent's processes")
    p.add_argument("--control", type=Path, help="the session's control folder: the retiming ends before its deadline")
    args = p.parse_args(argv)
    pids = [int(x) for x in args.agent_pids.split(",") if x.strip().isdigit()]
    processes, why = gpu_processes()
    held = holders(processes, pids)
    if held:
        atomic_write_json(args.result, {"refused": refusal(held), "held": [vars(h) for h in held]})
        say("refused", refusal(held))
        return EXIT_REFUSED
    say("gpu-check", f"{len(pids)} agent process(es) paused, none holds GPU memory"
        + (f" ({why})" if why else f"; {len(processes)} process(es) hold GPU memory on this node"))
    data = args.data if args.data and args.data.is_dir() else None
    work = Path(tempfile.mkdtemp(prefix="retime-"))
    result = retime(args.candidate, runs=args.runs, work_dir=work / "run", logs_dir=args.logs, data_dir=data,
                    val_loss_target=args.val_loss_target, p_value_threshold=args.p_value_threshold,
                    timeout_s=args.timeout, on_progress=lambda line: say("progress", line), report_steps=True,
                    clock=SessionClock(args.control) if args.control else None)
    atomic_write_json(args.result, {"runs": [r.to_dict() for r in result.runs], "requested": result.requested,
                                    "stopped_early": result.stopped_early, "stop_reason": result.stop_reason})
    return 0


if __name__ == "__main__":
    sys.exit(main())
