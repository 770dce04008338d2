"""`nanogpt-tui serve`: the control room in a browser (textual-serve), read-only unless opened with its token."""

from __future__ import annotations

import argparse
import os

from nanogpt_tui.cli.common import config_from
from nanogpt_tui.errors import UserError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "serve", help="serve the control room to a browser (read-only unless opened with the printed token)",
        description="Serve the control room over HTTP through textual-serve, so a team can watch from a laptop "
                    "(e.g. through `ssh -L 8000:127.0.0.1:8000 gpu-box`). Each browser tab runs its own control "
                    "room on the sessions folder of the config in effect. Bound to 127.0.0.1 unless --host says "
                    "otherwise. Read-only by default: no kill, extend or new session; the control link it prints "
                    "(with a fresh random token) enables them.")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--run-app", choices=("read-only", "control"), help=argparse.SUPPRESS)  # one tab's app
    p.set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    config = config_from(args)
    if args.run_app:
        from nanogpt_tui.tui.app import create_app

        create_app(config, read_only=args.run_app != "control").run()
        return 0
    if not 0 < args.port < 65536:
        raise UserError(f"--port {args.port} is not a port number; pass 1-65535 (e.g. 8000).")
    from nanogpt_tui.tui.serve import ControlRoomServer

    # The tabs' control rooms read the same config file and sessions folder as this process (`nanogpt-tui
    # --sessions-dir sessions/demo serve` serves the demo's sessions): pass both on explicitly.
    config_path = str(config.source) if config.source else os.environ.get("NANOGPT_TUI_CONFIG")
    sessions_dir = str(config.paths.sessions_dir) if getattr(args, "sessions_dir", None) else None
    ControlRoomServer(host=args.host, port=args.port, config_path=config_path, sessions_dir=sessions_dir).serve()
    return 0
