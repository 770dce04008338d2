"""`nanogpt-tui image`: build the small test image (no registry needed); the benchmark image is built from image/."""

from __future__ import annotations

import argparse
import sys

from nanogpt_tui.cli.common import config_from, print_json


def register(subparsers: argparse._SubParsersAction) -> None:
    image = subparsers.add_parser(
        "image", help="the benchmark image's build plan and the local test image",
        description="Images for sessions. The benchmark image (CUDA, PyTorch, FlashAttention-3, agent CLIs, "
                    "FineWeb) is built with `docker build image/` (see image/README.md); `build-test` makes the "
                    "small CPU test image that the Docker tests and offline demos use, with no registry.")
    image.set_defaults(func=lambda args: (image.print_help(), 0)[1])
    commands = image.add_subparsers(dest="image_command", metavar="SUBCOMMAND")
    p = commands.add_parser(
        "build-test", help="build (or find) the CPU test image: Debian bookworm, this package, torch, submit",
        description="Build the test image in three cached steps (debootstrap + docker import, wheels installed "
                    "offline, this package): each is tagged by a hash of its inputs, so only what changed is "
                    "rebuilt. debootstrap needs root the first time. Prints the image reference.")
    p.add_argument("--host", metavar="NAME", help="Docker host from the config (default: the first one)")
    p.add_argument("--force", action="store_true", help="rebuild every step, ignoring the caches")
    p.add_argument("--json", action="store_true", help="print what was built and how long it took as JSON")
    p.set_defaults(func=cmd_build_test)

    p = commands.add_parser(
        "plan", help="the docker build command for an anchor record's stack",
        description="Print the exact `docker build` command that builds the benchmark image for ANCHOR's stack "
                    "(as its log states it), with what will differ from the record and whether that may differ. "
                    "Run it from the repository root; it sends only the files the image needs, so the classic "
                    "builder works too.")
    p.add_argument("--anchor", required=True, metavar="NAME", help="the anchor record")
    p.add_argument("--exact", action="store_true",
                   help="pin a PyTorch nightly exactly (it may no longer be downloadable) instead of its release")
    p.add_argument("--json", action="store_true", help="print the plan as JSON")
    p.set_defaults(func=cmd_plan)


def print_plan(plan) -> None:
    """The plan as `image plan` and `refresh` show it."""
    print(f"Image for {plan.anchor} (tag {plan.tag}):\n")
    print("  " + plan.command() + "\n")
    differences = plan.mismatches
    if not differences:
        print("The image will match the record's stack in every field.")
    for m in differences:
        verdict = "MUST MATCH: this image would be refused" if m.must_match else "may differ"
        print(f"- {m.sentence()} ({verdict}: {m.why}).")
    for note in plan.notes:
        print(f"- {note}")


def cmd_plan(args: argparse.Namespace) -> int:
    from nanogpt_tui.cli.common import timeline_from
    from nanogpt_tui.errors import UserError
    from nanogpt_tui.stack import plan_image

    record = timeline_from(config_from(args)).get(args.anchor)
    try:
        plan = plan_image(record.name, record.stack, exact=args.exact)
    except ValueError as err:
        raise UserError(f"No image plan for {record.name}: {err}; choose an anchor whose log states its stack "
                        "(`nanogpt-tui records env NAME`).") from None
    if args.json:
        print_json(plan.to_dict())
    else:
        print_plan(plan)
    return 0


def cmd_build_test(args: argparse.Namespace) -> int:
    from nanogpt_tui.backends.docker_backend import DockerBackend
    from nanogpt_tui.backends.testimage import build_test_image
    from nanogpt_tui.errors import UserError

    config = config_from(args)
    hosts = {h.name: h for h in config.hosts}
    if args.host and args.host not in hosts:
        raise UserError(f"There is no Docker host named {args.host!r} in the config (hosts: {', '.join(hosts)}); "
                        "add it under [[hosts]] in nanogpt-tui.toml.")
    host = hosts[args.host] if args.host else config.hosts[0]
    backend = DockerBackend(url=host.url, tls=host.tls, name=host.name)
    backend.ping()
    result = build_test_image(backend, force=args.force,
                              progress=lambda line: print(f"image: {line}", file=sys.stderr, flush=True))
    if args.json:
        print_json({"image": result.ref, "built": result.built, "step_seconds": result.step_seconds,
                    "seconds": result.seconds, "size_bytes": result.size_bytes})
    else:
        what = ("built " + ", ".join(result.built)) if result.built else "up to date"
        print(f"{result.ref}  ({what}; {result.seconds:.1f} s; {result.size_bytes / 1e6:.0f} MB)")
    return 0
