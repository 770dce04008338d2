"""The host/container contract has one home: its names are spelled only in `nanogpt_tui.contract`, every harness uses
only declared names, and the deadline file and the runner's exit record read back what was written."""

from __future__ import annotations

import ast
import datetime as dt
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from nanogpt_tui.contract import layout
from nanogpt_tui.contract.deadline import (
    DEFAULT_GRACE_S,
    Deadline,
    DeadlineError,
    read_deadline,
    read_deadline_or_none,
    write_deadline,
)
from nanogpt_tui.contract.env import (
    ALL_NAMES,
    ENV_CONTROL_DIR,
    ENV_WORKSPACE,
    contract_env,
    is_secret_name,
    without_secrets,
)
from nanogpt_tui.contract.runner_exit import (
    ExitReason,
    BrokenRunnerExit,
    RunnerExit,
    read_runner_exit,
    runner_exit_path,
    write_runner_exit,
)

PACKAGE = Path(__file__).resolve().parents[2] / "nanogpt_tui"
CONTRACT = PACKAGE / "contract"
IMAGE = PACKAGE.parent / "image"
ENV_NAME = re.compile(r"\bBENCHMARK_[A-Z0-9_]+")
# File names and container paths of the layout: spelled again, they would drift apart from it.
LAYOUT_LITERALS = {value for key, value in vars(layout).items()
                   if key.isupper() and isinstance(value, str) and ("." in value or value.startswith("/"))}


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                ids.add(id(first.value))
    return ids


def _literals_outside_contract() -> list[tuple[str, int, str]]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if CONTRACT in path.parents:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docs = _docstrings(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
                if ENV_NAME.search(node.value) or node.value in LAYOUT_LITERALS:
                    found.append((str(path.relative_to(PACKAGE.parent)), node.lineno, node.value))
    return found


def test_no_contract_name_is_spelled_outside_the_contract_package():
    assert _literals_outside_contract() == []


def test_the_scan_sees_a_literal_when_there_is_one(tmp_path, monkeypatch):
    # The check above must be able to fail: a module spelling a name is reported.
    fake = tmp_path / "nanogpt_tui"
    (fake / "contract").mkdir(parents=True)
    (fake / "agents").mkdir()
    (fake / "agents" / "x.py").write_text('"""Mentions $BENCHMARK_WORKSPACE in prose."""\n'
                                          'W = "BENCHMARK_WORKSPACE"\nF = "deadline.json"\n')
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", fake)
    monkeypatch.setattr(sys.modules[__name__], "CONTRACT", fake / "contract")
    assert [(line, text) for _, line, text in _literals_outside_contract()] == [
        (2, "BENCHMARK_WORKSPACE"), (3, "deadline.json")]


def _shell_files() -> list[Path]:
    harnesses = sorted(p for p in (PACKAGE / "agents" / "harnesses").rglob("*") if p.is_file()
                       and p.suffix in (".sh", ".toml", ".md", ""))
    return harnesses + sorted(p for p in IMAGE.iterdir() if p.is_file())


def test_every_benchmark_name_a_harness_or_the_image_uses_is_declared():
    used = {}
    for path in _shell_files():
        for name in ENV_NAME.findall(path.read_text(encoding="utf-8", errors="replace")):
            used.setdefault(name, str(path.relative_to(PACKAGE.parent)))
    assert used, "found no harness using the contract at all: the scan is looking in the wrong place"
    undeclared = {name: where for name, where in used.items() if name not in ALL_NAMES}
    assert undeclared == {}, "declare these in nanogpt_tui/contract/env.py"


def test_contract_is_standard_library_only():
    code = ("import json, sys\n"
            "before = set(sys.modules)\n"
            "import nanogpt_tui.contract.layout, nanogpt_tui.contract.env, nanogpt_tui.contract.deadline, "
            "nanogpt_tui.contract.runner_exit\n"
            "print(json.dumps(sorted(m for m in set(sys.modules) - before if m.startswith('nanogpt_tui'))))\n")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    ours = set(json.loads(out))
    # The contract stands on the small utilities only (errors, fsutil, fields), nothing above it.
    assert ours <= {"nanogpt_tui", "nanogpt_tui.contract", "nanogpt_tui.contract.layout", "nanogpt_tui.contract.env",
                    "nanogpt_tui.contract.deadline", "nanogpt_tui.contract.runner_exit", "nanogpt_tui.errors",
                    "nanogpt_tui.fsutil", "nanogpt_tui.fields"}, ours


def test_contract_env_for_a_container():
    env = contract_env(workspace="/workspace", runner="/runner", control="/control", run_id="r1", agent="scripted",
                       strategy="default", session_hours=2.5, anchor="smoke", target=None)
    assert env[ENV_WORKSPACE] == "/workspace" and env[ENV_CONTROL_DIR] == "/control"
    assert env["BENCHMARK_SESSION_HOURS"] == "2.5" and "BENCHMARK_TARGET" not in env
    assert env["BENCHMARK_EVENTS_PATH"] == "/workspace/logs/" + layout.EVENTS_FILE
    assert set(env) - {"HOME"} <= ALL_NAMES


# ------------------------------------------------------------------------------------------------ deadline

@pytest.mark.parametrize("name", ["ANTHROPIC_API_KEY", "OPENAI_API_KEY", "ANTHROPIC_AUTH_TOKEN", "GH_TOKEN",
                                  "CLAUDE_CODE_OAUTH_TOKEN", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                                  "AZURE_OPENAI_API_KEY", "DB_PASSWORD", "MY_SECRET", "GOOGLE_APPLICATION_CREDENTIALS",
                                  "hf_token", "WANDB_APIKEY"])
def test_secret_names(name):
    assert is_secret_name(name)


@pytest.mark.parametrize("name", ["TOKENIZERS_PARALLELISM", "PATH", "HOME", "SLURM_CONF", "KEYTAB_DIR",
                                  "ANTHROPIC_BASE_URL", "CUDA_VISIBLE_DEVICES", "BENCHMARK_RUN_ID", "SSH_AUTH_SOCK"])
def test_names_that_are_no_secret(name):
    assert not is_secret_name(name)


def test_without_secrets_keeps_the_rest():
    env = {"ANTHROPIC_API_KEY": "sk-ant-" "x", "TOKENIZERS_PARALLELISM": "false", "HOME": "/h"}
    assert without_secrets(env) == {"TOKENIZERS_PARALLELISM": "false", "HOME": "/h"}


def test_deadline_round_trip(tmp_path):
    moment = dt.datetime(2026, 12, 3, 12, 30, 15, 250000, tzinfo=dt.timezone.utc)
    write_deadline(tmp_path, moment, gpus=8, budget_gpu_hours=512.0, grace_s=12.0)
    got = read_deadline(tmp_path)
    assert got == Deadline(moment, 12.0, 8, 512.0)
    assert got.iso == "2026-12-03T12:30:15.250Z" and got.seconds_left(moment.timestamp() - 10) == 10.0
    assert read_deadline_or_none(tmp_path) == got


def test_deadline_from_the_iso_field_alone(tmp_path):
    (tmp_path / layout.DEADLINE_FILE).write_text(json.dumps({"deadline": "2026-11-27T06:00:00Z"}))
    got = read_deadline(tmp_path)
    assert got.epoch == dt.datetime(2026, 11, 27, 6, tzinfo=dt.timezone.utc).timestamp()
    assert got.grace_s == DEFAULT_GRACE_S and got.gpus is None


@pytest.mark.parametrize("content, field", [
    (None, None),
    ("{not json", None),
    ('["a"]', None),
    ('{"deadline": "tomorrow"}', "deadline"),
    ('{"deadline": "2026-11-27T06:00:00"}', "deadline"),  # no timezone: ambiguous
    ('{"deadline_epoch": true}', "deadline_epoch"),
    ('{"deadline_epoch": 1e400}', "deadline_epoch"),  # json reads it as infinity
    ('{"deadline_epoch": 1000}', "deadline_epoch"),  # 1970: not a deadline of this benchmark
    ('{"deadline_epoch": 1.8e9, "grace_s": -1}', "grace_s"),
    ('{"deadline_epoch": 1.8e9, "grace_s": "30"}', "grace_s"),
    ('{"deadline_epoch": 1.8e9, "gpus": 0}', "gpus"),
    ('{"deadline_epoch": 1.8e9, "budget_gpu_hours": "lots"}', "budget_gpu_hours"),
    ('{"deadline_epoch": 1.8e9, "schema_version": 2}', "schema_version"),
    ('{"deadline_epoch": NaN}', None),
    ('{}', "deadline"),
])
def test_a_broken_deadline_raises_one_error_naming_the_field(tmp_path, content, field):
    if content is not None:
        (tmp_path / layout.DEADLINE_FILE).write_text(content)
    with pytest.raises(DeadlineError) as caught:
        read_deadline(tmp_path)
    err = caught.value
    assert err.field == field and err.path == tmp_path / layout.DEADLINE_FILE
    assert str(err).count("\n") == 0 and layout.DEADLINE_FILE in str(err)
    assert read_deadline_or_none(tmp_path) is None  # the tolerant mode agents use


def test_tolerant_mode_without_a_control_folder():
    assert read_deadline_or_none(None) is None


# --------------------------------------------------------------------------------------------- runner exit

def test_runner_exit_round_trip(tmp_path):
    assert read_runner_exit(tmp_path) is None
    write_runner_exit(tmp_path, ExitReason.DEADLINE, 3, 130)
    got = read_runner_exit(tmp_path)
    assert got is not None and got.reason == ExitReason.DEADLINE and (got.exit_code, got.agent_exit_code) == (3, 130)
    assert json.loads(runner_exit_path(tmp_path).read_text())["reason"] == "deadline"


def test_runner_exit_keeps_an_unknown_reason(tmp_path):
    runner_exit_path(tmp_path).write_text(json.dumps({"reason": "from-the-future", "exit_code": 1}))
    assert read_runner_exit(tmp_path) == RunnerExit(reason="from-the-future", exit_code=1)


@pytest.mark.parametrize("content, field", [
    ('{"reason": "deadline", "exit_code": "x"}', "exit_code"),
    ('{"reason": "deadline", "at": 5}', "at"),
    ('{"reason": "deadline", "at": "yesterday"}', "at"),
    ('{"reason": "", "exit_code": 0}', "reason"),
    ('{"exit_code": 0}', "reason"),
    ('{"reason": "stopped", "agent_exit_code": 1.5}', "agent_exit_code"),
    ("[]", "(top level)"),
    ("{half", None),
    ('{"reason": "deadline", "exit_code": NaN}', None),
])
def test_a_bad_runner_exit_is_a_broken_record_naming_the_field(tmp_path, content, field):
    runner_exit_path(tmp_path).write_text(content)
    got = read_runner_exit(tmp_path)
    assert isinstance(got, BrokenRunnerExit) and got.field == field and got.written_at is not None
    assert str(runner_exit_path(tmp_path)) in got.sentence and (field is None or f"`{field}`" in got.sentence)