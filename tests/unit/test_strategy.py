"""Prompting strategies (loading, resolving, composing, hashing, clear errors) and the agent catalog."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from nanogpt_tui.agents.catalog import AGENTS, check_strategy_fits, copy_harness, copy_strategy, get_agent
from nanogpt_tui.agents.strategy import (BUILTIN_DIR, available_strategies, builtin_names, content_hash,
                                         load_strategy, prompt_context, resolve_strategy)
from nanogpt_tui.cli import main as cli_main
from nanogpt_tui.errors import UserError


def write_strategy(root: Path, manifest: str, files: dict[str, str] | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "strategy.toml").write_text(manifest)
    for name, text in (files or {"a.md": "Task for {{agent}} on {{anchor}}.", "r.md": "Go on."}).items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


GOOD = ('name = "mine"\ndescription = "Mine."\nagents = ["claude"]\n'
        'first_prompt = ["a.md"]\nresume_prompt = ["r.md"]\n')


def test_builtin_strategies_load():
    assert builtin_names() == ["autoresearch", "default"]
    default = resolve_strategy("default")
    assert default.builtin and default.first_prompt == ("problem.md", "rules.md", "local_execution.md")
    assert default.supports("claude") and default.supports("codex") and not default.supports("replay")
    auto = resolve_strategy("autoresearch")
    assert auto.supports("claude-autoresearch") and "program.md" in auto.first_prompt


def test_builtin_prompts_state_the_benchmark_rules():
    first = resolve_strategy("default").compose("first", {})
    for fact in ("val_tokens = 10485760", "val_batch_size = 4 * 64 * 1024 * 8", "30 steps", "under 10 minutes",
                 "fixed number of steps", "p < 0.01", "Do not install, upgrade or remove packages",
                 "torch.compile", "coordinate-descent"):
        assert fact in first, fact
    program = resolve_strategy("autoresearch").compose("first", {})
    for fact in ("results.tsv", "autoresearch/{{run_id}}", "keep", "discard", "crash", "Never stop"):
        assert fact in program, fact


def test_compose_fills_placeholders_and_keeps_unknown_ones(tmp_path):
    root = write_strategy(tmp_path / "s", GOOD, {"a.md": "Hi {{agent}} on {{ anchor }}; {{mystery}} stays.\n\n",
                                                 "r.md": "Again."})
    text = load_strategy(root).compose("first", {"agent": "claude", "anchor": "2025-09-03_FA3"})
    assert text == "Hi claude on 2025-09-03_FA3; {{mystery}} stays.\n"
    with pytest.raises(ValueError):
        load_strategy(root).compose("middle")


def test_prompt_context_from_the_session(tmp_path):
    control = tmp_path / "control"
    control.mkdir()
    epoch = 1795996800.0  # 2026-11-30T00:00:00Z
    (control / "deadline.json").write_text(json.dumps({"deadline": "2026-11-30T00:00:00.000Z",
                                                       "deadline_epoch": epoch, "gpus": 8}))
    anchor = tmp_path / "runner" / "anchor"
    anchor.mkdir(parents=True)
    (anchor / "record.toml").write_text("val_loss_target = 2.0\n")
    ctx = prompt_context({"BENCHMARK_WORKSPACE": "/workspace", "BENCHMARK_CONTROL_DIR": str(control),
                          "BENCHMARK_RUNNER_DIR": str(tmp_path / "runner"), "BENCHMARK_ANCHOR": "smoke",
                          "BENCHMARK_SESSION_HOURS": "0.5"}, now=epoch - 7200)
    assert ctx["hours_left"] == "2.0" and ctx["gpus"] == "8" and ctx["deadline"] == "2026-11-30T00:00:00.000Z"
    assert ctx["val_loss_target"] == "2" and ctx["anchor"] == "smoke" and ctx["target"] == "(unknown)"
    assert ctx["submission_dir"] == "/workspace/submissions" and ctx["submit"] == "nanogpt-tui submit"


def test_content_hash_covers_every_file_and_only_content(tmp_path):
    a = write_strategy(tmp_path / "a", GOOD)
    b = shutil.copytree(a, tmp_path / "b")
    assert content_hash(a) == content_hash(b) == load_strategy(a).content_hash
    (b / ".DS_Store").write_text("ignored")
    assert content_hash(a) == content_hash(b)
    (b / "notes" / "x.md").parent.mkdir()
    (b / "notes" / "x.md").write_text("an extra file counts too")
    assert content_hash(a) != content_hash(b)
    (a / "a.md").write_text((a / "a.md").read_text() + " ")
    assert content_hash(a) != load_strategy(b).content_hash
    assert len(content_hash(BUILTIN_DIR / "default")) == 64


@pytest.mark.parametrize("manifest, message", [
    ('name = "x"\nagents = ["claude"]\nfirst_prompt = ["a.md"]\nresume_prompt = ["r.md"]\ncolour = 1\n',
     "`colour` is not a known field"),
    ('name = "bad name!"\nagents = ["claude"]\nfirst_prompt = ["a.md"]\nresume_prompt = ["r.md"]\n', "`name`"),
    ('name = "x"\nagents = []\nfirst_prompt = ["a.md"]\nresume_prompt = ["r.md"]\n', "`agents`"),
    ('name = "x"\nagents = ["claude"]\nfirst_prompt = "a.md"\nresume_prompt = ["r.md"]\n', "`first_prompt`"),
    ('name = "x"\nagents = ["claude"]\nfirst_prompt = ["a.md"]\nresume_prompt = ["gone.md"]\n', "does not exist"),
    ('name = "x"\nagents = ["claude"]\nfirst_prompt = ["../a.md"]\nresume_prompt = ["r.md"]\n', "outside"),
    ('name = "x"\nagents = ["claude"]\nfirst_prompt = ["a.md"]\nresume_prompt = ["r.md"]\nschema_version = 2\n',
     "`schema_version`"),
    ('name = "x"\nagents = ["claude"\n', "not valid TOML"),
])
def test_bad_manifests_are_one_clear_sentence(tmp_path, manifest, message):
    root = write_strategy(tmp_path / "s", manifest)
    with pytest.raises(UserError) as err:
        load_strategy(root)
    text = str(err.value)
    assert message in text and str(root) in text and "\n" not in text


def test_missing_folders_and_names(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        resolve_strategy(str(tmp_path / "nowhere"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="has no strategy.toml"):
        load_strategy(tmp_path / "empty")
    with pytest.raises(UserError, match="No strategy named 'nope'"):
        resolve_strategy("nope", environ={})
    assert load_strategy("autoresearch").builtin  # a bare name is resolved
    assert load_strategy(BUILTIN_DIR / "default").path == BUILTIN_DIR / "default"


def test_user_strategies_by_path_and_by_name(tmp_path):
    mine = write_strategy(tmp_path / "lib" / "mine", GOOD)
    write_strategy(tmp_path / "lib" / "default", GOOD.replace('"mine"', '"default"'))
    write_strategy(tmp_path / "lib" / "broken", 'name = "broken"\n')
    env = {"NANOGPT_TUI_STRATEGIES": str(tmp_path / "lib")}
    assert resolve_strategy(str(mine)).name == "mine" and not resolve_strategy(str(mine)).builtin
    assert resolve_strategy("mine", environ=env).root == mine.resolve()
    assert resolve_strategy("default", environ=env).builtin  # built-in names are never shadowed
    notes = {str(folder): note for _, folder, note in available_strategies(env)}
    assert notes[str(BUILTIN_DIR / "default")] == "built-in" and notes[str(mine)] == "user"
    assert "shadowed" in notes[str(tmp_path / "lib" / "default")]
    assert "`agents`" in notes[str(tmp_path / "lib" / "broken")]


def test_strategy_prompt_command_inside_a_session(tmp_path):
    runner = tmp_path / "runner"
    copy_strategy(BUILTIN_DIR / "default", runner / "strategy")
    control = tmp_path / "control"
    control.mkdir()
    (control / "deadline.json").write_text(json.dumps({"deadline": "2026-11-30T00:00:00.000Z",
                                                       "deadline_epoch": 1795996800.0, "gpus": 8}))
    env = {**os.environ, "BENCHMARK_RUNNER_DIR": str(runner), "BENCHMARK_CONTROL_DIR": str(control),
           "BENCHMARK_ANCHOR": "2025-09-03_FA3", "BENCHMARK_WORKSPACE": "/workspace"}
    out = subprocess.run([sys.executable, "-m", "nanogpt_tui.agents.strategy", "prompt", "resume"], env=env,
                         capture_output=True, text=True, check=True).stdout
    assert out.startswith("Continue the work") and "2026-11-30T00:00:00.000Z" in out and "{{" not in out
    out = subprocess.run([sys.executable, "-m", "nanogpt_tui.agents.strategy", "hash"], env=env,
                         capture_output=True, text=True, check=True).stdout.strip()
    assert out == content_hash(BUILTIN_DIR / "default")
    (runner / "strategy" / "strategy.toml").write_text('name = "x"\n')
    proc = subprocess.run([sys.executable, "-m", "nanogpt_tui.agents.strategy", "prompt", "first"], env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "`agents`" in proc.stderr and proc.stdout == ""


# ------------------------------------------------------------------------------------------------ catalog

def test_catalog_harnesses_exist_and_name_their_needs():
    assert [a.name for a in AGENTS] == ["claude", "codex", "claude-autoresearch", "scripted", "replay"]
    for name in ("claude", "codex", "claude-autoresearch", "replay"):
        spec = get_agent(name)
        assert spec.harness_present() and not (spec.harness_dir / "install.sh").exists()  # nothing installs
        assert spec.entry_command() == ["bash", "/runner/agent/run.sh"]
    assert get_agent("codex").keys_text() == "OPENAI_API_KEY or AZURE_OPENAI_API_KEY + AZURE_OPENAI_ENDPOINT"
    assert get_agent("codex").keys_available({"AZURE_OPENAI_API_KEY": "k", "AZURE_OPENAI_ENDPOINT": "e"})
    assert not get_agent("codex").keys_available({"AZURE_OPENAI_API_KEY": "k"})
    assert get_agent("replay").keys_available({})
    assert get_agent("claude-autoresearch").default_strategy == "autoresearch"
    with pytest.raises(UserError, match="No agent named 'gpt'"):
        get_agent("gpt")


def test_strategy_must_fit_the_agent():
    auto = resolve_strategy("autoresearch")
    check_strategy_fits(get_agent("claude-autoresearch"), auto.agents, auto.name)
    check_strategy_fits(get_agent("replay"), auto.agents, auto.name)  # replay sends no prompt
    with pytest.raises(UserError, match="written for"):
        check_strategy_fits(get_agent("claude-autoresearch"), resolve_strategy("default").agents, "default")


def test_the_autoresearch_harness_gets_the_claude_loop_as_a_shared_file(tmp_path):
    auto, claude = get_agent("claude-autoresearch"), get_agent("claude")
    assert not (auto.harness_dir / "claude.sh").exists()  # one source: harnesses/claude/run.sh
    dest = copy_harness(auto, tmp_path / "runner" / "agent")
    assert sorted(p.name for p in dest.iterdir()) == ["claude.sh", "loop.sh", "run.sh"]
    copied = dest / "claude.sh"
    assert copied.read_bytes() == (claude.harness_dir / "run.sh").read_bytes()
    assert copied.stat().st_mode & stat.S_IXUSR
    assert subprocess.run(["bash", "-n", str(copied)]).returncode == 0
    assert 'exec bash "$here/claude.sh"' in (dest / "run.sh").read_text()
    # Copying the plain claude harness over it leaves no stale shared file behind.
    copy_harness(claude, dest)
    assert not (dest / "claude.sh").exists()


def test_every_shared_harness_file_exists_and_does_not_shadow_the_harness_own():
    for spec in AGENTS:
        for name, source in spec.shared_files().items():
            assert source.is_file(), (spec.name, source)
            assert not (spec.harness_dir / name).exists(), (spec.name, name)


def test_copy_harness_refuses_a_shared_file_that_shadows_or_leaves_the_folder(tmp_path):
    claude = get_agent("claude")
    shadowing = dataclasses.replace(claude, shared=(("run.sh", "codex/run.sh"),))
    with pytest.raises(ValueError, match="has its own run.sh"):
        copy_harness(shadowing, tmp_path / "agent")
    escaping = dataclasses.replace(claude, shared=(("../claude.sh", "claude/run.sh"),))
    with pytest.raises(ValueError, match="plain file name"):
        copy_harness(escaping, tmp_path / "agent")
    missing = dataclasses.replace(claude, shared=(("extra.sh", "claude/missing.sh"),))
    assert not missing.harness_present()
    with pytest.raises(UserError, match="harness .* is missing"):
        copy_harness(missing, tmp_path / "agent")


def test_harness_scripts_never_trace_or_eval():
    for spec in AGENTS:
        for script in spec.harness_dir.glob("*.sh"):
            text = script.read_text()
            code = "\n".join(ln for ln in text.splitlines() if not ln.lstrip().startswith("#"))
            assert "set -x" not in code and "eval " not in code, script
            assert subprocess.run(["bash", "-n", str(script)]).returncode == 0, script


def test_copy_harness_sets_executable_bits(tmp_path):
    dest = copy_harness(get_agent("codex"), tmp_path / "runner" / "agent")
    for name in ("run.sh", "loop.sh"):
        assert (dest / name).stat().st_mode & stat.S_IXUSR
    copy_harness(get_agent("claude"), dest)  # replaces what was there
    assert "Claude Code harness" in (dest / "run.sh").read_text()


# ---------------------------------------------------------------------------------------------------- CLI

def test_agents_and_strategies_list(capsys, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-" "test-key-1234567890")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("AZURE_OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("NANOGPT_TUI_STRATEGIES", "")
    assert cli_main(["agents", "list", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["claude"]["keys_here"] is True and rows["codex"]["keys_here"] is False
    assert rows["claude"]["clis"] == ["claude"] and set(rows["claude"]["strategies"]) == {"default", "autoresearch"}
    assert rows["claude-autoresearch"]["strategies"] == ["autoresearch"] and rows["replay"]["strategies"] == []
    assert cli_main(["agents", "list"]) == 0
    table = capsys.readouterr().out
    assert "OPENAI_API_KEY or AZURE_OPENAI_API_KEY + AZURE_OPENAI_ENDPOINT" in table
    assert "sk-ant-test" not in table
    assert cli_main(["strategies", "list", "--json"]) == 0
    strategies = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert strategies["default"]["sha256"] == content_hash(BUILTIN_DIR / "default")
    assert cli_main(["strategies", "show", "autoresearch", "--prompt", "resume"]) == 0
    assert capsys.readouterr().out.startswith("Continue the research loop")
    assert cli_main(["strategies", "show", "nope"]) == 2


def test_agents_events_command(capsys):
    stream = Path(__file__).resolve().parents[1] / "fixtures" / "streams" / "codex_stream.jsonl"
    assert cli_main(["agents", "events", str(stream), "--usage"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "codex  start   thread 0199a213-81c0-7800-8aa1-bbab2a035a53"
    assert out[-1].startswith("total: in 61,870 (55,296 cached) out 2,481")
