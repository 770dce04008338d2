"""The headless core must not import the UI, Docker or the LLM SDKs (checked in a fresh interpreter)."""

from __future__ import annotations

import json
import subprocess
import sys

CORE_MODULES = [
    "nanogpt_tui",
    "nanogpt_tui.config",
    "nanogpt_tui.records",
    "nanogpt_tui.scoring",
    "nanogpt_tui.shards",
    "nanogpt_tui.fsutil",
    "nanogpt_tui.validator",
    "nanogpt_tui.validator.rules",
    "nanogpt_tui.agents",
    "nanogpt_tui.agents.events",
    "nanogpt_tui.agents.parsers",
    "nanogpt_tui.agents.render",
    "nanogpt_tui.agents.strategy",
    "nanogpt_tui.agents.catalog",
    "nanogpt_tui.agents.control",
    "nanogpt_tui.agents.replay",
    "nanogpt_tui.sessions.layout",
    "nanogpt_tui.sessions.model",
    "nanogpt_tui.sessions.control",
    "nanogpt_tui.sessions.pool",
    "nanogpt_tui.sessions.manager",
    "nanogpt_tui.sessions.runner",
    "nanogpt_tui.backends.base",
    "nanogpt_tui.backends.local",
]
FORBIDDEN = ("textual", "rich", "docker", "anthropic", "openai", "torch", "textual_plotext", "plotext")


def test_core_imports_without_ui_docker_sdks_or_torch():
    code = (
        "import importlib, json, sys\n"
        f"for m in {CORE_MODULES!r}:\n"
        "    importlib.import_module(m)\n"
        "print(json.dumps(sorted(m.split('.')[0] for m in sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    loaded = set(json.loads(out))
    assert not loaded & set(FORBIDDEN), f"the core imported {sorted(loaded & set(FORBIDDEN))}"


def test_cli_help_does_not_import_heavy_libraries():
    code = (
        "import json, sys\n"
        "from nanogpt_tui.cli import build_parser\n"
        "build_parser()\n"
        "print(json.dumps(sorted(m.split('.')[0] for m in sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    loaded = set(json.loads(out))
    assert not loaded & set(FORBIDDEN), f"building the CLI imported {sorted(loaded & set(FORBIDDEN))}"
