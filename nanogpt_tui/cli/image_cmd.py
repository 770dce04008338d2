"""`nanogpt-tui image`: build the small test image (no registry needed); the benchmark image is built from image/."""

from __future__ import annotations

import argparse
import sys

from nanogpt_tui.cli.common import config_from, print_json


def register(subparsers: argparse._SubParsersAction) -> None:
    image = subparsers.add_parser(
        "image", help="build the local test image",
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
