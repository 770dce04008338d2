"""The agents nanogpt-tui can run: each one's harness folder, what it needs, and which strategies suit it.

A harness folder (`nanogpt_tui/agents/harnesses/<name>/`) holds `run.sh` (the entry point). Nothing is ever
installed at session start: the CLIs a harness calls are baked into the session image at their pins
(`nanogpt_tui/agents/pins.py`). A session copies it to `runner/agent/` (mounted read-only at /runner/agent) with
`copy_harness`, which also sets the executable bits a wheel does not keep, and starts it as
`bash /runner/agent/run.sh` in $BENCHMARK_WORKSPACE.

A harness that builds on another one's scripts declares them in `AgentSpec.shared` instead of keeping a
copy: `copy_harness` copies each shared file in next to the harness's own, so the session's
`runner/agent/` is still self-contained (e.g. claude-autoresearch runs harnesses/claude/run.sh as its
`claude.sh`).
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from nanogpt_tui.contract.env import (
    ENV_AGENT_EFFORT,
    ENV_AGENT_MODEL,
    ENV_CLAUDE_PARTIAL,
    ENV_CODEX_PROVIDER,
    ENV_REPLAY_FILE,
    ENV_REPLAY_LOOP,
    ENV_REPLAY_SPEED,
)
from nanogpt_tui.contract.layout import CONTAINER_RUNNER
from nanogpt_tui.errors import UserError

HARNESS_DIR = Path(__file__).resolve().parent / "harnesses"
ENTRY = "run.sh"


@dataclass(frozen=True)
class AgentSpec:
    name: str
    description: str
    harness: str  # folder name under harnesses/
    clis: tuple[str, ...] = ()  # executables the harness calls (inside the session image)
    # Keys: any one of these groups, each a set of variables that must all be set.
    key_options: tuple[tuple[str, ...], ...] = ()
    default_strategy: str | None = "default"
    uses_prompts: bool = True
    config_env: tuple[str, ...] = ()  # optional tunables the harness reads
    # Files shared from other harnesses (or a common folder) under harnesses/: (name in runner/agent, source
    # path relative to harnesses/), copied in by `copy_harness`.
    shared: tuple[tuple[str, str], ...] = ()

    @property
    def harness_dir(self) -> Path:
        return HARNESS_DIR / self.harness

    def shared_files(self) -> dict[str, Path]:
        """Each shared file's name in the copied harness folder and where it comes from."""
        return {name: HARNESS_DIR / source for name, source in self.shared}

    def harness_present(self) -> bool:
        return (self.harness_dir / ENTRY).is_file() and all(p.is_file() for p in self.shared_files().values())

    def entry_command(self, runner_dir: str = CONTAINER_RUNNER) -> list[str]:
        return ["bash", f"{runner_dir}/agent/{ENTRY}"]

    def keys_text(self) -> str:
        return " or ".join(" + ".join(group) for group in self.key_options) or "none"

    def keys_available(self, environ: Mapping[str, str] | None = None) -> bool:
        env = os.environ if environ is None else environ
        return not self.key_options or any(all(env.get(k) for k in group) for group in self.key_options)

    def clis_on_path(self) -> dict[str, bool]:
        return {cli: shutil.which(cli) is not None for cli in self.clis}

    @property
    def real_agent(self) -> bool:
        """Whether it runs a real agent CLI (a model acting through tools), which needs a sandbox."""
        return bool(self.clis)

    def cli_versions(self) -> dict[str, str]:
        """The pinned version of each CLI it calls (the one baked into the images)."""
        from nanogpt_tui.agents.pins import pin_for

        return {cli: pin.version for cli in self.clis if (pin := pin_for(cli)) is not None}

    def in_image(self, image_label: str | None) -> bool:
        """Whether an image whose agent-CLI label is `image_label` carries every CLI at its pin."""
        from nanogpt_tui.agents.pins import pin_for, specs_in_label

        have = specs_in_label(image_label)
        return all((pin := pin_for(cli)) is not None and pin.spec in have for cli in self.clis)


# The resume loop the real-CLI harnesses source (harnesses/common/loop.sh).
LOOP = ("loop.sh", "common/loop.sh")
# Claude Code works with any one of these (nanogpt_tui/agents/credentials.py lists the kinds).
CLAUDE_KEYS = (("ANTHROPIC_API_KEY",), ("ANTHROPIC_AUTH_TOKEN",), ("CLAUDE_CODE_OAUTH_TOKEN",),
               ("CLAUDE_CODE_USE_BEDROCK",), ("CLAUDE_CODE_USE_VERTEX", "ANTHROPIC_VERTEX_PROJECT_ID"))

AGENTS: tuple[AgentSpec, ...] = (
    AgentSpec(
        name="claude", description="Claude Code in print mode (stream-json), resumed until the deadline.",
        harness="claude", clis=("claude",), key_options=CLAUDE_KEYS, shared=(LOOP,),
        config_env=(ENV_AGENT_MODEL, ENV_AGENT_EFFORT, ENV_CLAUDE_PARTIAL)),
    AgentSpec(
        name="codex", description="Codex CLI `exec --json`, its thread resumed until the deadline.",
        harness="codex", clis=("codex",), shared=(LOOP,),
        key_options=(("OPENAI_API_KEY",), ("AZURE_OPENAI_API_KEY", "AZURE_OPENAI_ENDPOINT")),
        config_env=(ENV_AGENT_MODEL, ENV_AGENT_EFFORT, ENV_CODEX_PROVIDER,
                    "OPENAI_API_VERSION")),
    AgentSpec(
        name="claude-autoresearch",
        description="Claude Code driven by the Autoresearch-style program: a branch per run, one-file "
                    "experiments logged in results.tsv, never stopping.",
        harness="claude-autoresearch", clis=("claude",), key_options=CLAUDE_KEYS,
        default_strategy="autoresearch", shared=(("claude.sh", "claude/run.sh"), LOOP),
        config_env=(ENV_AGENT_MODEL, ENV_AGENT_EFFORT, ENV_CLAUDE_PARTIAL)),
    AgentSpec(
        name="scripted", description="An offline agent that follows a fixed script (for demos and tests).",
        harness="scripted", clis=(), key_options=(), default_strategy="default"),
    AgentSpec(
        name="replay", description="Replays a recorded Claude Code or Codex stream with its original timing.",
        harness="replay", clis=(), key_options=(), default_strategy=None, uses_prompts=False,
        config_env=(ENV_REPLAY_FILE, ENV_REPLAY_SPEED, ENV_REPLAY_LOOP)),
)


def agent_names() -> list[str]:
    return [a.name for a in AGENTS]


def get_agent(name: str) -> AgentSpec:
    for spec in AGENTS:
        if spec.name == name:
            return spec
    raise UserError(f"No agent named {name!r}; the agents are {', '.join(agent_names())} "
                    "(see `nanogpt-tui agents list`).")


def check_strategy_fits(agent: AgentSpec, strategy_agents: tuple[str, ...], strategy_name: str) -> None:
    """A clear error when a strategy is not written for an agent (prompt-less agents accept any)."""
    if agent.uses_prompts and agent.name not in strategy_agents:
        raise UserError(f"The strategy {strategy_name!r} is written for {', '.join(strategy_agents)}, not "
                        f"{agent.name}; pick another strategy or add {agent.name!r} to its agents list.")


def _copy_tree(src: Path, dest: Path, extra: Mapping[str, Path] | None = None) -> Path:
    """Copy `src` to `dest`, replacing what is there, plus `extra` files (name in `dest` -> source file)."""
    if not src.is_dir():
        raise UserError(f"{src} does not exist; reinstall nanogpt-tui (its package data is incomplete).")
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".*"))
    for name, source in (extra or {}).items():
        shutil.copyfile(source, dest / name)
    for path in dest.rglob("*.sh"):
        # Wheels do not keep executable bits; harnesses are run with bash anyway, this is for people.
        path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return dest


def copy_harness(agent: AgentSpec, dest: Path) -> Path:
    """Copy an agent's harness folder, with the files it shares, to `dest` (e.g. sessions/<id>/runner/agent),
    replacing what is there."""
    if not agent.harness_present():
        raise UserError(f"The {agent.name} agent's harness ({agent.harness_dir}) is missing; "
                        "reinstall nanogpt-tui or pick another agent.")
    shared = agent.shared_files()
    for name in shared:
        if Path(name).name != name or name in {".", ".."}:
            raise ValueError(f"the {agent.name} harness shares {name!r}: a shared file needs a plain file name")
        if (agent.harness_dir / name).exists():
            raise ValueError(f"the {agent.name} harness has its own {name} and shares one too; keep only one")
    return _copy_tree(agent.harness_dir, Path(dest), shared)


def copy_strategy(root: Path, dest: Path) -> Path:
    """Copy a strategy folder to `dest` (e.g. sessions/<id>/runner/strategy), replacing what is there."""
    return _copy_tree(Path(root), Path(dest))
