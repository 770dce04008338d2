"""Configuration: defaults, every field validated with a message naming the field and the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from nanogpt_tui.config import Config, load_config
from nanogpt_tui.errors import UserError

REPO = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "nanogpt-tui.toml"
    path.write_text(text)
    return path


def test_defaults_without_a_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("NANOGPT_TUI_CONFIG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    config = load_config()
    assert config == Config() and config.source is None
    assert config.benchmark.anchor == "2025-09-03_FA3" and config.validation.runs == 10
    assert config.validation.p_value_threshold == 0.01 and config.benchmark.val_loss_target == 3.28


def test_the_documented_example_loads(tmp_path):
    config = load_config(REPO / "docs" / "nanogpt-tui.example.toml")
    assert config.benchmark.target == "2026-01-19_BigramHashEmbedding"
    assert [h.name for h in config.hosts] == ["local"]


def test_values_and_relative_paths(tmp_path):
    path = write(tmp_path, """
schema_version = 1
[benchmark]
anchor = "2026-01-19_BigramHashEmbedding"
target = "2026-07-17_FP8DownProjection"
budget_gpu_hours = 64
gpus_per_session = 2
[validation]
runs = 3
[judge]
provider = "openai"
model = "gpt-5.4"
[paths]
sessions_dir = "my-sessions"
[[hosts]]
name = "node1"
url = "ssh://bench@node1"
gpus = [0, 1, 2, 3]
[[hosts]]
name = "node2"
url = "tcp://node2:2376"
tls = { ca_cert = "ca.pem", client_cert = "cert.pem", client_key = "key.pem" }
""")
    config = load_config(path)
    assert config.benchmark.budget_gpu_hours == 64.0 and config.benchmark.gpus_per_session == 2
    assert config.judge.provider == "openai" and config.validation.runs == 3
    assert config.paths.sessions_dir == tmp_path / "my-sessions"
    assert config.hosts[0].gpus == (0, 1, 2, 3) and config.hosts[1].tls.ca_cert == "ca.pem"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[benchmark]\nbudget_gpu_hours = 'lots'\n", r"`benchmark.budget_gpu_hours` is 'lots' but must be a number"),
        ("[benchmark]\ngpus_per_session = 0\n", r"`benchmark.gpus_per_session` is 0 but must be at least 1"),
        ("[validation]\nruns = 1\n", r"`validation.runs` is 1 but must be at least 2"),
        ("[validation]\np_value_threshold = 0.9\n", r"`validation.p_value_threshold` .* at most 0.5"),
        ("[judge]\nprovider = 'gemini'\n", r"`judge.provider` is 'gemini' but must be one of anthropic, openai, none"),
        ("[judge]\nmodle = 'x'\n", r"`judge.modle` is not a known setting"),
        ("colour = 'blue'\n", r"`colour` is not a known setting"),
        ("schema_version = 2\n", r"`schema_version` is 2"),
        ("benchmark = 3\n", r"`benchmark` must be a table"),
        ("[benchmark]\nanchor = 'X'\ntarget = 'X'\n", r"are both 'X'"),
        ("[[hosts]]\nname = 'a'\n", r"`hosts\[0\].url` is missing"),
        ("[[hosts]]\nname = 'a'\nurl = 'http://x'\n", r"`hosts\[0\].url` is 'http://x' but must be a Docker endpoint"),
        ("[[hosts]]\nname = 'a'\nurl = 'unix:///s'\ngpus = [0, 0]\n", r"`hosts\[0\].gpus` .* distinct GPU ids"),
        ("[[hosts]]\nname='a'\nurl='unix:///s'\n[[hosts]]\nname='a'\nurl='unix:///t'\n", r"host name 'a' appears twice"),
        ("[[hosts]]\nname='a'\nurl='tcp://h:1'\ntls={client_cert='c'}\n", r"needs both client_cert and client_key"),
        ("[benchmark\n", r"is not valid TOML"),
        ("[sandbox]\nallow = ['pypi.org']\n", r"`sandbox.allow` is \['pypi.org'\] but must be a list of \"host:port\""),
        ("[sandbox]\nallow = 'pypi.org:443'\n", r"`sandbox.allow` is 'pypi.org:443' but must be a list"),
        ("[sandbox]\nallow = ['a:99999']\n", r"`sandbox.allow` .* must be a list of \"host:port\""),
        ("[sandbox]\nallwo = []\n", r"`sandbox.allwo` is not a known setting"),
    ],
)
def test_bad_fields_name_the_field_and_the_file(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(UserError, match=message) as info:
        load_config(path)
    assert str(path) in str(info.value)


def test_sandbox_allow_entries(tmp_path):
    from nanogpt_tui.config import parse_allow_entry

    config = load_config(write(tmp_path, "[sandbox]\nallow = ['PyPI.org:443', ' 10.0.0.1:8080', '[::1]:443']\n"))
    assert config.sandbox.allow == ("PyPI.org:443", "10.0.0.1:8080", "[::1]:443")
    assert [parse_allow_entry(a) for a in config.sandbox.allow] == [("pypi.org", 443), ("10.0.0.1", 8080),
                                                                     ("::1", 443)]
    assert [parse_allow_entry(a) for a in ("pypi.org", ":443", "a b:1", "user@h:1", "h:0")] == [None] * 5
    assert load_config(write(tmp_path, "")).sandbox.allow == ()


def test_missing_explicit_or_env_file(tmp_path, monkeypatch):
    with pytest.raises(UserError, match="does not exist; check the --config path"):
        load_config(tmp_path / "nope.toml")
    monkeypatch.setenv("NANOGPT_TUI_CONFIG", str(tmp_path / "nope.toml"))
    with pytest.raises(UserError, match=r"\$NANOGPT_TUI_CONFIG names"):
        load_config()
