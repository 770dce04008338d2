"""Numbers from the command line, the config and the session manager: finite and in range, or refused in one
sentence before anything is created."""

from __future__ import annotations

import pytest

from nanogpt_tui.cli import main
from nanogpt_tui.config import load_config
from nanogpt_tui.errors import UserError
from nanogpt_tui.fields import BadField, number_from_text
from nanogpt_tui.sessions.manager import LaunchRequest, SessionManager


@pytest.fixture
def config_path(tmp_path):
    path = tmp_path / "nanogpt-tui.toml"
    path.write_text(f'schema_version = 1\n[paths]\nsessions_dir = "{tmp_path / "sessions"}"\n')
    return path


@pytest.mark.parametrize("args", [
    ["run", "--agent", "scripted", "--backend", "local", "--record", "smoke", "--budget-gpu-hours", "nan"],
    ["run", "--agent", "scripted", "--backend", "local", "--record", "smoke", "--budget-gpu-hours", "inf"],
    ["run", "--agent", "scripted", "--backend", "local", "--record", "smoke", "--budget-gpu-hours", "-5"],
    ["run", "--agent", "scripted", "--backend", "local", "--record", "smoke", "--budget-gpu-hours", "1e300"],
    ["run", "--agent", "scripted", "--backend", "local", "--record", "smoke", "--gpus", "0"],
    ["run", "--agent", "scripted", "--backend", "local", "--record", "smoke", "--gpus", "2.5"],
    ["sessions", "extend", "x", "--gpu-hours", "nan"],
    ["sessions", "extend", "x", "--wall-hours", "-inf"],
    ["sessions", "logs", "x", "--tail", "-1"],
    ["submit", "cand", "--runs", "0"],
    ["submit", "cand", "--run-timeout", "inf"],
    ["score", "--seconds-faster", "nan"],
    ["reproduce", "--threshold", "nan"],
    ["compare", "--alpha", "nan"],
])
def test_bad_numbers_on_the_command_line_are_refused_and_nothing_is_created(config_path, capsys, args):
    with pytest.raises(SystemExit) as exit_info:
        main(["--config", str(config_path), *args])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1].startswith("nanogpt-tui") and "argument --" in err
    assert "Traceback" not in err
    assert not (config_path.parent / "sessions").exists()


@pytest.mark.parametrize(("text", "expected"), [
    ("nan", "is nan, not a finite number"), ("inf", "is inf, not a finite number"), ("abc", "not a number"),
    ("-1", "must be more than 0"), ("2e6", "above the most allowed"),
])
def test_typed_numbers_name_what_is_wrong(text, expected):
    with pytest.raises(BadField, match=expected):
        number_from_text(text, "budget", positive=True, maximum=1e6)


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_non_finite_numbers_in_the_config_are_refused(tmp_path, value):
    path = tmp_path / "c.toml"
    path.write_text(f"schema_version = 1\n[benchmark]\nbudget_gpu_hours = {value}\n")
    with pytest.raises(UserError, match="`benchmark.budget_gpu_hours` is .* but must be a finite number"):
        load_config(str(path))


@pytest.mark.parametrize(("budget", "gpus", "field"), [(float("nan"), 1, "budget_gpu_hours"),
                                                        (float("inf"), 1, "budget_gpu_hours"),
                                                        (-5.0, 1, "budget_gpu_hours"), (1.0, 0, "gpus"),
                                                        (1.0, True, "gpus")])
def test_the_manager_refuses_bad_numbers_before_creating_anything(config_path, budget, gpus, field):
    manager = SessionManager(load_config(str(config_path)))
    with pytest.raises(UserError, match=f"`{field}`"):
        manager.create(LaunchRequest(agent="scripted", anchor="smoke", backend="local", budget_gpu_hours=budget,
                                     gpus=gpus))
    assert not manager.root.exists() or not any(manager.root.iterdir())
