"""The pinned agent CLIs, their endpoints and credentials, and the refusal of an unsandboxed real agent."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from nanogpt_tui.agents import pins
from nanogpt_tui.agents.catalog import AGENTS, get_agent
from nanogpt_tui.agents.credentials import BASE_URL_ENV, endpoint, session_env
from nanogpt_tui.cli import main
from nanogpt_tui.config import load_config
from nanogpt_tui.errors import UserError
from nanogpt_tui.sessions.manager import resolve_sandbox, submit_time_bound_s

REPO = Path(__file__).resolve().parents[2]
KEY = "sk-ant-" "api03-UNITKEY-0123456789abcdef"


def test_one_place_pins_both_clis_with_their_integrity_hashes():
    deps = json.loads(pins.PACKAGE_JSON.read_text())["dependencies"]
    assert deps == {p.package: p.version for p in pins.pins().values()}
    claude, codex = pins.pins()["claude"], pins.pins()["codex"]
    assert claude.version.startswith("2.1.") and codex.version.startswith(("0.16", "0.17"))
    lock = json.loads(pins.LOCKFILE.read_text())["packages"]
    for pin in (claude, codex):
        entry = lock[f"node_modules/{pin.package}"]
        assert entry["version"] == pin.version and entry["integrity"].startswith("sha512-")
    assert pins.label_value() == f"{claude.spec},{codex.spec}"
    # The benchmark image installs the same two files with npm ci.
    dockerfile = (REPO / "image" / "Dockerfile").read_text()
    assert "nanogpt_tui/agents/clis/package.json nanogpt_tui/agents/clis/package-lock.json" in dockerfile
    assert "npm ci" in dockerfile and "npm install -g" not in dockerfile


def test_in_image_reads_the_label_and_cli_version_is_the_pin():
    claude, codex, scripted = get_agent("claude"), get_agent("codex"), get_agent("scripted")
    label = pins.label_value()
    assert claude.in_image(label) and codex.in_image(label)
    older = label.replace(pins.pins()["codex"].version, "0.160.0")
    assert claude.in_image(older) and not codex.in_image(older)
    assert not claude.in_image("")
    assert claude.cli_versions() == {"claude": pins.pins()["claude"].version}
    assert scripted.cli_versions() == {} and not scripted.real_agent
    assert {a.name for a in AGENTS if a.real_agent} == {"claude", "codex", "claude-autoresearch"}


def test_the_environment_overrides_the_configured_endpoint():
    assert endpoint("claude", "", {}).source == "CLI default"
    cfg = endpoint("claude", "http://gw:4000", {})
    assert (cfg.url, cfg.source) == ("http://gw:4000", "config ([agents.claude] base_url)")
    env = endpoint("claude", "http://gw:4000", {"ANTHROPIC_BASE_URL": "http://proxy:8080"})
    assert (env.url, env.source) == ("http://proxy:8080", "environment (ANTHROPIC_BASE_URL)")
    assert endpoint("codex", "", {"ANTHROPIC_BASE_URL": "http://x"}).url == ""  # each CLI its own variable
    assert endpoint("codex", "", {"OPENAI_BASE_URL": "http://o/v1"}).url == "http://o/v1"


def test_a_session_gets_only_its_own_api_credentials():
    host = {"ANTHROPIC_API_KEY": KEY, "OPENAI_API_KEY": "sk-" "other", "HOME": "/root", "AWS_REGION": ""}
    env = session_env("claude", "http://gw:4000", host)
    assert env == {"ANTHROPIC_API_KEY": KEY, "ANTHROPIC_BASE_URL": "http://gw:4000", BASE_URL_ENV: "http://gw:4000"}
    assert session_env("codex", "", host) == {"OPENAI_API_KEY": "sk-" "other"}
    assert session_env("scripted", "", host) == {}


def test_config_base_url_is_read_and_checked(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('schema_version = 1\n[agents.codex]\nbase_url = "https://gw.example/v1"\n')
    assert load_config(path).agents["codex"].base_url == "https://gw.example/v1"
    assert load_config(path).agents["claude"].model  # the defaults stay
    path.write_text('schema_version = 1\n[agents.codex]\nbase_url = "gw.example"\n')
    with pytest.raises(UserError, match="base_url.*http:// or https://"):
        load_config(path)


def test_sandbox_resolution():
    claude, scripted = get_agent("claude"), get_agent("scripted")
    with pytest.raises(UserError, match="--sandbox off") as err:
        resolve_sandbox(claude, "local", None)
    assert str(err.value).count(".") == 1  # one sentence
    assert resolve_sandbox(claude, "local", "off") == "off"
    assert resolve_sandbox(scripted, "local", None) == "off"
    with pytest.raises(UserError, match="no sandbox"):
        resolve_sandbox(scripted, "local", "on")
    assert resolve_sandbox(claude, "docker", None) == "on"
    assert resolve_sandbox(claude, "docker", "off") == "off"


def test_the_tool_time_out_is_above_the_longest_submit():
    config = load_config(None)
    bound = submit_time_bound_s(config)
    assert bound > config.validation.runs * config.validation.run_timeout_s + config.judge.timeout_s


def test_run_refuses_an_unsandboxed_real_agent_and_creates_no_session(config_file, capsys):
    sessions = config_file.parent / "sessions"
    shutil.copytree(REPO / "human_baselines" / "smoke", config_file.parent / "human_baselines" / "smoke",
                    ignore=shutil.ignore_patterns("data", "logs", "__pycache__"))
    code = main(["run", "--agent", "claude", "--backend", "local", "--record", "smoke", "--budget-gpu-hours", "0.01"])
    err = capsys.readouterr().err
    assert code != 0 and "--sandbox off" in err
    assert not sessions.exists() or not any(sessions.iterdir())
