"""The `nanogpt-tui` command line: one module per command group, each registering its subcommands.

Slow imports (Textual, docker, torch, the LLM SDKs) happen inside the command
functions so that `nanogpt-tui --help` and the headless commands start fast.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import sys
from collections.abc import Sequence

from nanogpt_tui import __version__
from nanogpt_tui.errors import UserError

# Each module defines `register(subparsers)`, adding its commands with
# `set_defaults(func=...)`; a command function takes the parsed namespace and
# returns the process exit status.
COMMAND_MODULES = (
    "nanogpt_tui.cli.records_cmd",
    "nanogpt_tui.cli.score_cmd",
    "nanogpt_tui.cli.data_cmd",
    "nanogpt_tui.cli.config_cmd",
    "nanogpt_tui.cli.submit_cmd",
    "nanogpt_tui.cli.sessions_cmd",
    "nanogpt_tui.cli.hosts_cmd",
    "nanogpt_tui.cli.sandbox_cmd",
    "nanogpt_tui.cli.gpus_cmd",
    "nanogpt_tui.cli.check_rules_cmd",
    "nanogpt_tui.cli.report_cmd",
    "nanogpt_tui.cli.image_cmd",
    "nanogpt_tui.cli.refresh_cmd",
    "nanogpt_tui.cli.agents_cmd",
    "nanogpt_tui.cli.tui_cmd",
    "nanogpt_tui.cli.serve_cmd",
    "nanogpt_tui.cli.validator_cmd",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nanogpt-tui",
        description="The terminal control room for NanoGPT-Bench. With no command, opens the control room.",
    )
    add_global_options(parser)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def add_global_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--version", action="version", version=f"nanogpt-tui {__version__}")
    parser.add_argument(
        "--config",
        metavar="PATH",
        help="configuration file (default: $NANOGPT_TUI_CONFIG, else ./nanogpt-tui.toml, "
        "else ~/.config/nanogpt-tui/nanogpt-tui.toml, else built-in defaults)",
    )
    parser.add_argument(
        "--sessions-dir",
        metavar="DIR",
        help="the sessions folder to use instead of the config's paths.sessions_dir (e.g. the demo's: "
        "`nanogpt-tui --sessions-dir sessions/demo sessions list`)",
    )


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line, parsed. With only global options (the control room, the most common start), the command
    modules are not loaded: building their parsers takes a good part of a second on a busy machine."""
    argv = list(sys.argv[1:] if argv is None else argv)
    globals_only = argparse.ArgumentParser(prog="nanogpt-tui", add_help=False)
    add_global_options(globals_only)
    args, rest = globals_only.parse_known_args(argv)
    return args if not rest else build_parser().parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    func = getattr(args, "func", None)
    if func is None:
        # No command: open the control room (imported here, so the headless commands never load Textual).
        from nanogpt_tui.cli.tui_cmd import cmd_open

        func = cmd_open
    try:
        return int(func(args) or 0)
    except UserError as err:
        print(f"nanogpt-tui: error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): not an error worth a traceback.
        sys.stderr.close()
        return 0
    except OSError as err:
        if err.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
            raise
        where = f" holding {err.filename}" if err.filename else ""
        what = "is read-only" if err.errno == errno.EROFS else "is full"
        print(f"nanogpt-tui: error: the disk{where} {what}; free space (or remount it) and run the command again "
              "(`nanogpt-tui sessions list` shows every session's state).", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("nanogpt-tui: interrupted", file=sys.stderr)
        return 130
