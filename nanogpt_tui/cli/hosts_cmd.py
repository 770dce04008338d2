"""`nanogpt-tui hosts ...`: the pool of Docker hosts, whether each answers, its GPUs and who holds them."""

from __future__ import annotations

import argparse
import sys

from nanogpt_tui.cli.common import config_from, print_json, print_table


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("hosts", help="the pool of Docker hosts",
                                   description="The Docker hosts of the config ([[hosts]]) as a pool.")
    sub = parser.add_subparsers(dest="hosts_command", metavar="SUBCOMMAND", required=True)
    p = sub.add_parser("list", help="each host: does it answer, its GPUs, which sessions hold them",
                       description="Each Docker host: whether it answers, its GPUs (from the config, or discovered "
                                   "once by a short-lived container running nvidia-smi) and which live sessions "
                                   "hold them.")
    p.add_argument("--json", action="store_true", help="print a JSON list")
    p.add_argument("--discover", action="store_true",
                   help="ask hosts without a `gpus` list for their GPUs again instead of using what was found before")
    p.set_defaults(func=cmd_list)
    p = sub.add_parser("check", help="what a host lacks for sessions to start there",
                       description="Check that each host (or the named ones) has the image and the data volume "
                                   "(and, for remote hosts, sees the sessions folder); print the command that fixes "
                                   "what is missing. Exit status 1 when something is.")
    p.add_argument("names", nargs="*", metavar="NAME", help="host names (default: every host)")
    p.add_argument("--image", help="image tag (default: docker.image)")
    p.set_defaults(func=cmd_check)


POOL = "docker"  # the backend this command group is about


def _manager(args):
    from nanogpt_tui.sessions.manager import SessionManager

    return SessionManager(config_from(args))


def _gpus(view) -> str:
    ids = view.gpus.ids
    if ids is None:
        return "unknown" + (f" ({view.gpus.detail})" if view.gpus.detail else "")
    if not ids:
        return "none" + (f" ({view.gpus.detail})" if view.gpus.detail else "")
    return f"{','.join(map(str, ids))} ({view.gpus.source})"


def cmd_list(args: argparse.Namespace) -> int:
    manager = _manager(args)
    views = manager.backend(POOL).hosts(manager.holdings(POOL), rediscover=args.discover)
    if args.json:
        print_json([v.to_dict() for v in views])
        return 0
    rows = []
    for v in views:
        held = " ".join(f"{gpu}:{sid}" for gpu, sid in sorted(v.held.items()))
        rows.append([v.name, v.url, "yes" if v.answers else "no", _gpus(v),
                     ",".join(map(str, v.free)) if v.gpus.ids else "-", len(v.sessions), held or "-"])
    print_table(["host", "url", "answers", "GPUs", "free", "sessions", "held (gpu:session)"], rows)
    for v in views:
        if not v.answers:
            print(f"warning: {v.name}: {v.problem}", file=sys.stderr)
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    manager = _manager(args)
    pool = manager.backend(POOL)
    names = args.names or [h.name for h in manager.config.hosts]
    failed = False
    for name in names:
        pool.host_config(name)  # an unknown name is a clear error
        problems = pool.preflight(name, args.image)
        if problems:
            failed = True
            for problem in problems:
                print(f"{name}: {problem}")
        else:
            print(f"{name}: ready")
    return 1 if failed else 0
