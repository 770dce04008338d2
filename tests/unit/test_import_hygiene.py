"""The headless core must not import the UI, Docker or the LLM SDKs (checked in a fresh interpreter)."""

from __future__ import annotations

import json
import subprocess
import sys

CORE_MODULES = [
    "nanogpt_tui",
    "nanogpt_tui.contract",
    "nanogpt_tui.contract.layout",
    "nanogpt_tui.contract.env",
    "nanogpt_tui.contract.deadline",
    "nanogpt_tui.contract.runner_exit",
    "nanogpt_tui.config",
    "nanogpt_tui.records",
    "nanogpt_tui.scoring",
    "nanogpt_tui.shards",
    "nanogpt_tui.fsutil",
    "nanogpt_tui.follow",
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
    "nanogpt_tui.sessions.model",
    "nanogpt_tui.backends",
    "nanogpt_tui.backends.pool",
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


# The control room's data layer (and the threads that feed it) must stay free of Textual and Rich: the CLI and
# the benchmarks read sessions through it, and the UI stays a thin layer on top. Every module of the package is
# checked (found by walking it, so a new one is covered), and then used: a dashboard read of a session folder, a
# log tailed and rendered, a search and a diff, so a deferred import inside a function is caught too.
UI_DATA_PACKAGES = ["nanogpt_tui.tui.data"]
UI_HEADLESS_MODULES = ["nanogpt_tui.tui", "nanogpt_tui.tui.watch", "nanogpt_tui.tui.reporting", "nanogpt_tui.demo",
                       "nanogpt_tui.reports.conventions", "nanogpt_tui.reports.session"]
UI_FORBIDDEN = ("textual", "rich", "textual_plotext", "plotext", "docker", "watchfiles")

_USE_THE_DATA_LAYER = '''
import datetime as dt, json, pathlib, sys, tempfile
from nanogpt_tui.contract import layout
from nanogpt_tui.sessions.model import Session, iso, save_session
from nanogpt_tui.tui.data.dashboard import Dashboard
from nanogpt_tui.tui.data.diffs import submission_diff, submissions
from nanogpt_tui.tui.data.logrender import log_line_renderer
from nanogpt_tui.tui.data.logsearch import search_log
from nanogpt_tui.tui.data.logtail import LogTail
from nanogpt_tui.tui.data.plotdata import plot_data

root = pathlib.Path(tempfile.mkdtemp())
d = root / "s1"
(d / layout.WORKSPACE / "submissions" / "submission_1").mkdir(parents=True)
(d / layout.RUNNER / "anchor").mkdir(parents=True)
(d / layout.RUNNER / "anchor" / "train_gpt.py").write_text("lr = 0.1\\n")
(d / layout.WORKSPACE / "submissions" / "submission_1" / "train_gpt.py").write_text("lr = 0.2\\n")
now = dt.datetime.now(dt.timezone.utc)
save_session(d, Session(id="s1", agent="scripted", strategy="default", strategy_hash="h", anchor="smoke",
                        target=None, backend="local", host="local", image=None, gpus=1, budget_gpu_hours=1.0,
                        created_at=iso(now)))
(d / layout.EVENTS_FILE).write_text(json.dumps({"type": "usage", "input_tokens": 10, "output_tokens": 5}) + "\\n")
(d / layout.CONTAINER_LOG).write_text("step:1/10 val_loss:4.0\\n" + json.dumps({"type": "message", "text": "hi"}) + "\\n")
dash = Dashboard(root)
views = dash.reload()
dash.refresh_changes()
assert [v.id for v in views] == ["s1"], views
plot_data(views, "smoke", None, None, now)
render = log_line_renderer(secrets=())
tail = LogTail(d / layout.CONTAINER_LOG)
shown = [line for raw in tail.open() for line in render(raw)]
assert shown, "the log rendered to nothing"
assert search_log(d / layout.CONTAINER_LOG, "val_loss", render, before=1 << 20) is not None
assert len(submission_diff(d, submissions(d)[0])) > 1
print(json.dumps(sorted(m.split('.')[0] for m in sys.modules)))
'''


def _loaded_by(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    return set(json.loads(out.strip().splitlines()[-1]))


def test_the_ui_data_layer_imports_no_ui_library():
    code = (
        "import importlib, json, pkgutil, sys\n"
        f"names = {UI_HEADLESS_MODULES!r}\n"
        f"for package in {UI_DATA_PACKAGES!r}:\n"
        "    names += [m.name for m in pkgutil.walk_packages(importlib.import_module(package).__path__, package + '.')]\n"
        "for m in names:\n"
        "    importlib.import_module(m)\n"
        "assert len(names) > 8, names\n"
        "print(json.dumps(sorted(m.split('.')[0] for m in sys.modules)))\n"
    )
    loaded = _loaded_by(code)
    assert not loaded & set(UI_FORBIDDEN), f"the UI's data layer imported {sorted(loaded & set(UI_FORBIDDEN))}"


def test_using_the_ui_data_layer_loads_no_ui_library():
    loaded = _loaded_by(_USE_THE_DATA_LAYER)
    assert not loaded & set(UI_FORBIDDEN), f"reading sessions for the UI imported {sorted(loaded & set(UI_FORBIDDEN))}"
