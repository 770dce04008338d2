"""Prompting strategies: a folder of prompt files plus a `strategy.toml` manifest; loading, prompts, hashing.

A strategy folder holds Markdown prompt files and `strategy.toml`:

    schema_version = 1
    name = "default"
    description = "One sentence on what this strategy does differently."
    agents = ["claude", "codex"]                        # agent harnesses it is written for
    first_prompt = ["problem.md", "rules.md", "local_execution.md"]   # joined, in order
    resume_prompt = ["resume.md"]                        # sent on every later invocation

Built-in strategies live in `nanogpt_tui/agents/strategies/<name>/`; a user's own folder is selected by
path (`--strategy ./my-strategy`), or by name when it sits in a folder on `$NANOGPT_TUI_STRATEGIES`
(os.pathsep-separated) or in `~/.config/nanogpt-tui/strategies/`. Built-in names cannot be shadowed.

Prompt files may use placeholders, filled from the container environment when the prompt is composed:
`{{anchor}}`, `{{target}}`, `{{session_hours}}`, `{{deadline}}`, `{{hours_left}}`, `{{gpus}}`,
`{{workspace}}`, `{{submission_dir}}`, `{{data_dir}}`, `{{anchor_dir}}`, `{{val_loss_target}}`,
`{{submit}}`, `{{run_id}}`, `{{agent}}`, `{{strategy}}`. Other `{{...}}` text is left as it is.

The content hash (recorded with every session) is the SHA-256 over every file of the folder in sorted
order of its relative POSIX path, each contributing `path NUL size NUL bytes`; hidden files and
`__pycache__` are skipped. Two folders with the same hash send byte-identical prompts.

From bash (inside a session): `python3 -m nanogpt_tui.agents.strategy prompt first|resume` prints the
composed prompt of `$BENCHMARK_RUNNER_DIR/strategy`; `... hash [DIR]` prints a folder's hash.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
import time
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from nanogpt_tui.contract.deadline import read_deadline_or_none
from nanogpt_tui.contract.env import (
    ENV_AGENT,
    ENV_ANCHOR,
    ENV_ANCHOR_DIR,
    ENV_CONTROL_DIR,
    ENV_GPUS,
    ENV_RUN_ID,
    ENV_RUNNER_DIR,
    ENV_SESSION_HOURS,
    ENV_STRATEGY,
    ENV_SUBMISSION_DIR,
    ENV_SUBMIT_COMMAND,
    ENV_TARGET,
    ENV_WORKSPACE,
)
from nanogpt_tui.contract.layout import CONTAINER_CONTROL, CONTAINER_RUNNER, CONTAINER_WORKSPACE
from nanogpt_tui.errors import UserError

MANIFEST = "strategy.toml"
SCHEMA_VERSION = 1
BUILTIN_DIR = Path(__file__).resolve().parent / "strategies"
STRATEGIES_ENV = "NANOGPT_TUI_STRATEGIES"
USER_DIR = Path("~/.config/nanogpt-tui/strategies")
PROMPT_KINDS = ("first", "resume")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_PLACEHOLDER = re.compile(r"\{\{\s*([a-z_]+)\s*\}\}")
_MANIFEST_KEYS = {"schema_version", "name", "description", "agents", "first_prompt", "resume_prompt"}


@dataclass(frozen=True)
class Strategy:
    name: str
    description: str
    agents: tuple[str, ...]
    first_prompt: tuple[str, ...]
    resume_prompt: tuple[str, ...]
    root: Path
    builtin: bool = False

    def supports(self, agent: str) -> bool:
        return agent in self.agents

    def prompt_files(self, kind: str) -> tuple[str, ...]:
        if kind not in PROMPT_KINDS:
            raise ValueError(f"prompt kind must be one of {PROMPT_KINDS}, not {kind!r}")
        return self.first_prompt if kind == "first" else self.resume_prompt

    def compose(self, kind: str, context: Mapping[str, str] | None = None) -> str:
        """The prompt of this kind: its files in order, placeholders filled from `context`."""
        parts = [(self.root / rel).read_text(encoding="utf-8").strip() for rel in self.prompt_files(kind)]
        return fill_placeholders("\n\n".join(parts), context or {}) + "\n"

    @property
    def content_hash(self) -> str:
        """SHA-256 of the folder's files as they are now (see `content_hash`)."""
        return content_hash(self.root)

    @property
    def path(self) -> Path:
        return self.root

    def describe(self) -> dict[str, object]:
        return {"name": self.name, "description": self.description, "agents": list(self.agents),
                "first_prompt": list(self.first_prompt), "resume_prompt": list(self.resume_prompt),
                "path": str(self.root), "builtin": self.builtin, "sha256": self.content_hash}


def _strategy_files(root: Path) -> list[tuple[str, Path]]:
    files = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if any(part.startswith(".") or part == "__pycache__" for part in rel.parts):
            continue
        if path.is_file():
            files.append((rel.as_posix(), path))
    return sorted(files)


def content_hash(root: Path) -> str:
    """SHA-256 over every file of a strategy folder (see the module docstring for the exact bytes)."""
    digest = hashlib.sha256()
    for rel, path in _strategy_files(Path(root)):
        data = path.read_bytes()
        digest.update(rel.encode("utf-8") + b"\0" + str(len(data)).encode("ascii") + b"\0")
        digest.update(data)
    return digest.hexdigest()


def fill_placeholders(text: str, context: Mapping[str, str]) -> str:
    return _PLACEHOLDER.sub(lambda m: str(context[m.group(1)]) if m.group(1) in context else m.group(0), text)


def load_strategy(root: str | os.PathLike[str], *, builtin: bool = False) -> Strategy:
    """Read and check a strategy folder; every problem is one `UserError` naming the file and the field.

    A bare name that is not a folder here (`"default"`) is resolved as `resolve_strategy` does.
    """
    if isinstance(root, str) and not Path(root).expanduser().is_dir() and not _looks_like_path(root):
        return resolve_strategy(root)
    root = Path(root).expanduser()
    if not builtin and root.resolve().parent == BUILTIN_DIR.resolve():
        builtin = True
    manifest = root / MANIFEST
    if not root.is_dir():
        raise UserError(f"The strategy folder {root} does not exist; pass a built-in name "
                        f"({', '.join(builtin_names())}) or the path of a folder holding {MANIFEST}.")
    if not manifest.is_file():
        raise UserError(f"{root} has no {MANIFEST}; a strategy folder needs one naming its prompt files "
                        "(copy nanogpt_tui/agents/strategies/default/strategy.toml as a start).")
    try:
        raw = tomllib.loads(manifest.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as err:
        raise UserError(f"{manifest} is not valid TOML ({err}); fix the syntax at that position.") from None
    except UnicodeDecodeError:
        raise UserError(f"{manifest} is not UTF-8 text; save it as UTF-8.") from None

    def bad(key: str, expected: str) -> UserError:
        return UserError(f"In {manifest}, `{key}` is {raw.get(key)!r} but must be {expected}; fix that field.")

    unknown = sorted(set(raw) - _MANIFEST_KEYS)
    if unknown:
        raise UserError(f"In {manifest}, `{unknown[0]}` is not a known field; the fields are "
                        f"{', '.join(sorted(_MANIFEST_KEYS))}.")
    if raw.get("schema_version", SCHEMA_VERSION) != SCHEMA_VERSION:
        raise bad("schema_version", str(SCHEMA_VERSION))
    name = raw.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise bad("name", "a short name of letters, digits, '.', '_' or '-'")
    description = raw.get("description", "")
    if not isinstance(description, str):
        raise bad("description", "a string")
    agents = raw.get("agents")
    if not isinstance(agents, list) or not agents or not all(isinstance(a, str) and a for a in agents):
        raise bad("agents", 'a non-empty list of agent names, e.g. ["claude", "codex"]')
    prompts: dict[str, tuple[str, ...]] = {}
    for key in ("first_prompt", "resume_prompt"):
        value = raw.get(key)
        if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
            raise bad(key, 'a non-empty list of prompt files in this folder, e.g. ["problem.md"]')
        for rel in value:
            path = (root / rel)
            if Path(rel).is_absolute() or ".." in Path(rel).parts:
                raise UserError(f"In {manifest}, `{key}` names {rel!r}, which is outside the strategy folder; "
                                "list files inside it.")
            if not path.is_file():
                raise UserError(f"In {manifest}, `{key}` names {rel!r}, which does not exist in {root}; "
                                "add the file or fix the name.")
            try:
                path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                raise UserError(f"{path} is not UTF-8 text; save it as UTF-8.") from None
        prompts[key] = tuple(value)
    return Strategy(name=name, description=description.strip(), agents=tuple(agents),
                    first_prompt=prompts["first_prompt"], resume_prompt=prompts["resume_prompt"],
                    root=root.resolve(), builtin=builtin)


def builtin_names() -> list[str]:
    return sorted(p.name for p in BUILTIN_DIR.iterdir() if (p / MANIFEST).is_file())


def user_strategy_dirs(environ: Mapping[str, str] | None = None) -> list[Path]:
    environ = os.environ if environ is None else environ
    dirs = [Path(p).expanduser() for p in environ.get(STRATEGIES_ENV, "").split(os.pathsep) if p]
    dirs.append(USER_DIR.expanduser())
    return dirs


def _looks_like_path(spec: str) -> bool:
    return os.sep in spec or "/" in spec or spec.startswith((".", "~"))


def resolve_strategy(spec: str, *, environ: Mapping[str, str] | None = None) -> Strategy:
    """A strategy by built-in name, by name in a user strategies folder, or by path."""
    if not spec or not spec.strip():
        raise UserError("The strategy name is empty; pass a built-in name "
                        f"({', '.join(builtin_names())}) or a folder path.")
    if _looks_like_path(spec) or (Path(spec).is_dir() and (Path(spec) / MANIFEST).is_file()
                                  and spec not in builtin_names()):
        return load_strategy(spec)
    if (BUILTIN_DIR / spec / MANIFEST).is_file():
        return load_strategy(BUILTIN_DIR / spec, builtin=True)
    for folder in user_strategy_dirs(environ):
        if (folder / spec / MANIFEST).is_file():
            return load_strategy(folder / spec)
    raise UserError(f"No strategy named {spec!r}; the built-in ones are {', '.join(builtin_names())}, "
                    f"others are found by path or in ${STRATEGIES_ENV} (see `nanogpt-tui strategies list`).")


def available_strategies(environ: Mapping[str, str] | None = None) -> list[tuple[Strategy | None, Path, str]]:
    """Every strategy found: (strategy or None when its folder is broken, folder, note)."""
    found: list[tuple[Strategy | None, Path, str]] = []
    names = set()
    for name in builtin_names():
        found.append((load_strategy(BUILTIN_DIR / name, builtin=True), BUILTIN_DIR / name, "built-in"))
        names.add(name)
    for folder in user_strategy_dirs(environ):
        if not folder.is_dir():
            continue
        for sub in sorted(folder.iterdir()):
            if not (sub / MANIFEST).is_file():
                continue
            if sub.name in names:
                found.append((None, sub, f"shadowed by the strategy named {sub.name!r}; select it by path"))
                continue
            try:
                found.append((load_strategy(sub), sub, "user"))
                names.add(sub.name)
            except UserError as err:
                found.append((None, sub, str(err)))
    return found


# ------------------------------------------------------------------------------ composing inside a session

def _val_loss_target(anchor_dir: Path) -> str | None:
    try:
        meta = tomllib.loads((anchor_dir / "record.toml").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    value = meta.get("val_loss_target")
    return f"{value:g}" if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def prompt_context(environ: Mapping[str, str] | None = None, now: float | None = None) -> dict[str, str]:
    """Placeholder values from the session's environment and control files."""
    env = os.environ if environ is None else environ
    unknown = "(unknown)"
    workspace = env.get(ENV_WORKSPACE, CONTAINER_WORKSPACE)
    runner = Path(env.get(ENV_RUNNER_DIR, CONTAINER_RUNNER))
    control = Path(env.get(ENV_CONTROL_DIR, CONTAINER_CONTROL))
    anchor_dir = env.get(ENV_ANCHOR_DIR) or str(runner / "anchor")
    deadline = read_deadline_or_none(control)
    gpus = deadline.gpus if deadline is not None and deadline.gpus is not None else env.get(ENV_GPUS, unknown)
    ctx = {
        "anchor": env.get(ENV_ANCHOR, unknown),
        "target": env.get(ENV_TARGET, unknown),
        "session_hours": env.get(ENV_SESSION_HOURS, unknown),
        "workspace": workspace,
        "submission_dir": env.get(ENV_SUBMISSION_DIR, f"{workspace}/submissions"),
        "data_dir": f"{workspace}/data",
        "anchor_dir": anchor_dir,
        "run_id": env.get(ENV_RUN_ID, unknown),
        "agent": env.get(ENV_AGENT, unknown),
        "strategy": env.get(ENV_STRATEGY, unknown),
        "submit": env.get(ENV_SUBMIT_COMMAND, "nanogpt-tui submit"),
        "val_loss_target": _val_loss_target(Path(anchor_dir)) or "3.28",
        "deadline": deadline.iso if deadline is not None else unknown,
        "gpus": str(gpus),
        "hours_left": unknown,
    }
    if deadline is not None:
        left = deadline.seconds_left(time.time() if now is None else now) / 3600.0
        ctx["hours_left"] = f"{max(left, 0.0):.1f}"
    return ctx


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m nanogpt_tui.agents.strategy",
                                     description="Compose a strategy's prompt, or print a strategy's hash.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prompt", help="print the composed first or resume prompt")
    p.add_argument("kind", choices=PROMPT_KINDS)
    p.add_argument("--strategy", metavar="DIR_OR_NAME",
                   help=f"strategy folder or name (default: ${ENV_RUNNER_DIR}/strategy, i.e. {CONTAINER_RUNNER}/strategy)")
    p = sub.add_parser("hash", help="print a strategy folder's content hash")
    p.add_argument("strategy", nargs="?", metavar="DIR_OR_NAME")
    args = parser.parse_args(argv)
    try:
        spec = args.strategy or str(Path(os.environ.get(ENV_RUNNER_DIR, CONTAINER_RUNNER)) / "strategy")
        strategy = resolve_strategy(spec) if not Path(spec).is_dir() else load_strategy(spec)
        if args.command == "prompt":
            sys.stdout.write(strategy.compose(args.kind, prompt_context()))
        else:
            print(strategy.content_hash)
    except UserError as err:
        print(f"nanogpt_tui.agents.strategy: error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
