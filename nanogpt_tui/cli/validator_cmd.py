"""`nanogpt-tui validator serve SESSION_DIR`: the process answering one session's submit requests, apart from its
agent."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from nanogpt_tui.cli.common import config_from
from nanogpt_tui.errors import UserError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "validator", help="the validator apart from the agent (started with each session)",
        description="The validator answers a session's submit requests: it freezes the submission, checks the "
                    "rules, asks the judge, pauses the agent, retimes the frozen copy apart from it and writes a "
                    "sealed verdict into the session's validator/ folder. nanogpt-tui starts one per session and "
                    "starts it again when it is gone; run it by hand only to debug.")
    sub = p.add_subparsers(dest="validator_command", required=True)
    serve = sub.add_parser("serve", help="serve one session's submit requests until it ends")
    serve.add_argument("session_dir", metavar="SESSION_DIR", type=Path, help="the session's folder")
    serve.set_defaults(func=cmd_serve)


def session_config(config, snapshot: dict):
    """The config the session was created with, for what decides its verdicts (the judge, the validation rules);
    hosts and paths stay this process's."""
    from nanogpt_tui.config import JudgeConfig, ValidationConfig

    def rebuild(cls, current, raw):
        if not isinstance(raw, dict):
            return current
        known = {f.name: raw[f.name] for f in dataclasses.fields(cls) if f.name in raw}
        try:
            return dataclasses.replace(current, **known)
        except TypeError:
            return current

    return dataclasses.replace(config, judge=rebuild(JudgeConfig, config.judge, snapshot.get("judge")),
                               validation=rebuild(ValidationConfig, config.validation, snapshot.get("validation")))


def cmd_serve(args: argparse.Namespace) -> int:
    from nanogpt_tui.sessions.manager import SessionManager
    from nanogpt_tui.sessions.model import load_session
    from nanogpt_tui.sessions.validation import ValidatorService

    session_dir = args.session_dir.resolve()
    if not session_dir.is_dir():
        raise UserError(f"{args.session_dir} is not a session folder; pass sessions/<id>.")
    session = load_session(session_dir)
    config = config_from(args)
    config = dataclasses.replace(config, paths=dataclasses.replace(config.paths, sessions_dir=session_dir.parent))
    config = session_config(config, session.config or {})
    manager = SessionManager(config)
    try:
        service = ValidatorService(manager, session.id, say=lambda line: print(line, flush=True))
        return service.serve()
    finally:
        manager.close()
