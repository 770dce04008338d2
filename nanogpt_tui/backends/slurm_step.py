"""What the control room runs in a job step of a session's own Slurm job, on its node (host side, not the agent's):
pause or resume the agent, retime a frozen submission apart from it with the job's GPUs, or hand the waiting job its
API keys (read from this step's stdin, passed to the job over a socket only its user can open).

    srun --jobid=J --overlap ... python3 -m nanogpt_tui.backends.slurm_step pause|resume SESSION_DIR
    srun --jobid=J --overlap ... python3 -m nanogpt_tui.backends.slurm_step retime SESSION_DIR REQUEST.json
    srun --jobid=J --overlap ... python3 -m nanogpt_tui.backends.slurm_step hand-over SESSION_DIR  < secrets (JSON)

It finds the session through slurm/node.json (written by the job: the runtime and its handle) and does what the
Docker and local backends do on their own host: `docker pause` / SIGSTOP, and the retiming worker in a container of
its own (no network, its own user) or a separate process, bounded by the session's deadline file. It prints JSON
lines: progress as {"text": ...}; a pause or resume then its answer ({"pids": [...]}, {"ok": true} or
{"error": sentence}); a retiming's result is the worker's result.json in the request's out_dir.
Exit status: 0 done, 1 failed (the sentence says why), 2 bad arguments.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from nanogpt_tui.backends.slurm import ContainerOnNode, node_gpus, read_handover, read_node_record
from nanogpt_tui.errors import UserError

ACTIONS = ("pause", "resume", "retime", "hand-over")
MAX_SECRETS_BYTES = 1 << 20


def answer(obj: dict) -> None:
    print(json.dumps(obj), flush=True)


def runtime_of(record: dict):
    """The node's own backend for the session: its Docker daemon, or its process trees. Both offer pause(handle),
    resume(handle), retime_isolated(handle, ...) and close()."""
    if record["runtime"] == ContainerOnNode.name:
        from nanogpt_tui.backends.docker_backend import DockerBackend

        return DockerBackend(url=record.get("docker_url") or "unix:///var/run/docker.sock",
                             name=record.get("node") or "this node")
    from nanogpt_tui.backends.local import ProcessTrees

    return ProcessTrees()


def retime(runtime, record: dict, session_dir: Path, request_path: Path) -> dict:
    try:
        request = json.loads(request_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise UserError(f"the retiming request {request_path} cannot be read ({err}); submit again.") from None
    gpus, warning = node_gpus(runtime if record["runtime"] == ContainerOnNode.name else None)
    answer({"text": f"retiming in step {os.environ.get('SLURM_STEP_ID', '?')} of job "
                    f"{os.environ.get('SLURM_JOB_ID', '?')} on {os.environ.get('SLURMD_NODENAME', 'this node')}, "
                    f"GPUs {','.join(map(str, gpus)) or 'none'}"})
    if warning:
        answer({"text": warning})
    return runtime.retime_isolated(
        record["handle"], session_dir=session_dir, candidate_dir=Path(request["candidate_dir"]),
        out_dir=Path(request["out_dir"]), runs=int(request["runs"]),
        val_loss_target=float(request["val_loss_target"]), p_value_threshold=float(request["p_value_threshold"]),
        timeout_s=float(request["timeout_s"]), gpu_ids=gpus,
        data_dir=Path(request["data_dir"]) if request.get("data_dir") else None,
        agent_pids=[int(p) for p in request.get("agent_pids") or []],
        on_line=lambda line: answer({"text": line}))


def hand_over(session_dir: Path) -> dict:
    """The secrets on stdin, to the job's socket; the job answers once it has them."""
    import socket

    waiting = read_handover(session_dir)
    if waiting is None:
        return {"ok": True, "waiting": False}  # handed over already (by another host process)
    secrets = sys.stdin.read(MAX_SECRETS_BYTES)
    try:
        json.loads(secrets)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(20)
            conn.connect(waiting["socket"])
            conn.sendall(secrets.encode())
            conn.shutdown(socket.SHUT_WR)
            said = conn.recv(64).decode(errors="replace").strip()
    except (OSError, ValueError) as err:
        raise UserError(f"The job's hand-over socket on this node did not take the keys ({err}); the next look "
                        "tries again.") from None
    if said != "ok":
        raise UserError(f"The session's job refused the keys this process handed over ({said or 'no answer'}); "
                        "start the control room from a shell that has them.")
    return {"ok": True, "waiting": True}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) < 2 or args[0] not in ACTIONS or (args[0] == "retime") != (len(args) == 3):
        print("usage: python3 -m nanogpt_tui.backends.slurm_step pause|resume|hand-over SESSION_DIR | retime "
              "SESSION_DIR REQUEST.json", file=sys.stderr)
        return 2
    action, session_dir = args[0], Path(args[1])
    if action == "hand-over":
        try:
            answer(hand_over(session_dir))
        except UserError as err:
            answer({"error": str(err)})
            return 1
        return 0
    record = read_node_record(session_dir)
    if record is None:
        answer({"error": f"The session in {session_dir} has not started on this node yet (no slurm/node.json); "
                         "submit again."})
        return 1
    runtime = runtime_of(record)
    try:
        if action == "pause":
            answer({"pids": runtime.pause(record["handle"])})
        elif action == "resume":
            runtime.resume(record["handle"])
            answer({"ok": True})
        else:
            retime(runtime, record, session_dir, Path(args[2]))  # its result is in the request's out_dir
    except UserError as err:
        # A retiming's failure reaches the host as its last line of output (it finds no result.json).
        answer({"text" if action == "retime" else "error": str(err)})
        return 1
    finally:
        runtime.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
