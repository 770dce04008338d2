"""`nanogpt-tui gpus sample`: the host-side GPU sampler, for machines where no control room is open."""

from __future__ import annotations

import argparse
import sys
import time

from nanogpt_tui.cli.common import config_from


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("gpus", help="GPU telemetry of the sessions on this machine",
                                   description="GPU telemetry of the sessions on this machine.")
    sub = parser.add_subparsers(dest="gpus_command", metavar="SUBCOMMAND", required=True)
    p = sub.add_parser("sample", help="sample the pinned GPUs of this machine's running sessions",
                       description="Every few seconds, read the utilisation, memory and power of each pinned GPU of "
                                   "the running sessions whose Docker host is this machine (a unix:// host), "
                                   "through NVML (or nvidia-smi), into each session's gpu.jsonl "
                                   "(docs/gpu-telemetry.md). The control room does the same while it is open; "
                                   "only one sampler runs per sessions folder.")
    p.add_argument("--every", type=float, metavar="S", help="seconds between samples (default: "
                                                            "alerts.gpu_sample_every_s)")
    p.add_argument("--once", action="store_true", help="take one sample and exit")
    p.set_defaults(func=cmd_sample)


def cmd_sample(args: argparse.Namespace) -> int:
    from nanogpt_tui.sessions.manager import SessionManager
    from nanogpt_tui.telemetry.sampler import GpuSampler, local_targets

    config = config_from(args)
    manager = SessionManager(config)
    local = {h.name for h in config.hosts if h.url.startswith("unix://")}

    def targets():
        sessions, _ = manager.list()
        return local_targets(sessions, manager.root, local)

    problems: list[str] = []
    sampler = GpuSampler(manager.root, targets, every_s=args.every or config.alerts.gpu_sample_every_s,
                         on_problem=problems.append)
    if not sampler.acquire():
        print(f"Another sampler (a control room or `gpus sample`) already samples {manager.root}; nothing to do.",
              file=sys.stderr)
        return 0
    try:
        while True:
            written = sampler.step()
            for problem in problems:
                print(f"nanogpt-tui: {problem}", file=sys.stderr)
            if problems and sampler.source is None:
                return 1
            problems.clear()
            print(f"{time.strftime('%H:%M:%S')} {written} sample(s) written", file=sys.stderr)
            if args.once:
                return 0
            time.sleep(sampler.every_s)
    finally:
        sampler.release()
