"""`nanogpt-tui sandbox check`: does each Docker host's sandbox hold (the session network internal, the model
gateway answering, DNS refusing other names, the fence in place, the allowed destinations reachable through the
proxy, the probes blocked)? One line a check; exit status 1 when any fails."""

from __future__ import annotations

import argparse

from nanogpt_tui.cli.common import config_from, print_json
from nanogpt_tui.errors import UserError

# For users' real hosts: a public name, a public address and the cloud metadata address. A sandbox that holds
# sends none of them a packet (the names go to our resolver, the addresses have no route); tests pass their own.
POOL = "docker"  # the backend whose hosts have a sandbox
DEFAULT_PROBES = ("example.com:443", "1.1.1.1:443", "169.254.169.254:80")


def probe_argument(text: str) -> str:
    from nanogpt_tui.config import parse_allow_entry

    if parse_allow_entry(text) is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT (e.g. example.com:443 or 10.0.0.1:80)")
    return text.strip()


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("sandbox", help="the sessions' sandbox on each Docker host",
                                   description="The sandbox that holds sandboxed sessions on the Docker hosts.")
    sub = parser.add_subparsers(dest="sandbox_command", metavar="SUBCOMMAND", required=True)
    p = sub.add_parser("check", help="does the sandbox hold on each host",
                       description="Start a probe container on each Docker host (or the named one) exactly as a "
                                   "sandboxed session's is started, and check from inside it: the session network "
                                   "is internal, the model gateway answers, DNS refuses names other than the model "
                                   "APIs, no route leads out; each [sandbox] allow destination answers through the "
                                   "CONNECT proxy and each probe is blocked. Exit status 0 only when all hold.")
    p.add_argument("--host", action="append", metavar="NAME", help="a Docker host of the config (default: all)")
    p.add_argument("--probe", action="append", type=probe_argument, metavar="HOST:PORT",
                   help="a destination that must be blocked (repeatable; default: "
                        f"{', '.join(DEFAULT_PROBES)})")
    p.add_argument("--image", help="the session image to probe with (default: docker.image)")
    p.add_argument("--json", action="store_true",
                   help='print {"ok", "hosts": [{"host", "ok", "checks", "allowed", "blocked"}], "allowed", "blocked"}')
    p.set_defaults(func=cmd_check)


def check_one(manager, host: str, probes: list[str], image: str | None) -> dict:
    import shutil

    from nanogpt_tui.backends.sandbox_check import check_host

    pool = manager.backend(POOL)
    driver = pool.driver(pool.host_config(host).name)
    spec = manager.probe_spec(host, image)
    try:
        return check_host(driver, spec, allowed=list(spec.egress.allow), probes=probes)
    finally:
        shutil.rmtree(spec.workspace_dir.parent, ignore_errors=True)


def cmd_check(args: argparse.Namespace) -> int:
    from nanogpt_tui.sessions.manager import SessionManager

    config = config_from(args)
    manager = SessionManager(config)
    hosts = args.host or [h.name for h in config.hosts]
    probes = args.probe or list(DEFAULT_PROBES)
    results = []
    for host in hosts:
        try:
            results.append(check_one(manager, host, probes, args.image))
        except UserError as err:
            results.append({"ok": False, "host": host, "error": str(err), "checks": [], "allowed": [],
                            "blocked": []})
    ok = bool(results) and all(r["ok"] for r in results)
    if args.json:
        print_json({"ok": ok, "hosts": results,
                    "allowed": [dict(a, host=r["host"]) for r in results for a in r["allowed"]],
                    "blocked": [dict(b, host=r["host"]) for r in results for b in r["blocked"]]})
        return 0 if ok else 1
    for r in results:
        if r.get("error"):
            print(f"{r['host']}: FAIL  {r['error']}")
            continue
        for c in r["checks"]:
            print(f"{r['host']}: {'ok  ' if c['ok'] else 'FAIL'}  {c['check']:<8} {c['detail']}")
    print("the sandbox holds" + (" on every host" if len(results) > 1 else "") if ok else
          "the sandbox does NOT hold: see the FAIL lines above")
    return 0 if ok else 1
