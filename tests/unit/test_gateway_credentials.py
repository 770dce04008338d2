"""What a sandboxed session hands the model gateway: every credential it can hold leaves the session's environment
(the container gets a placeholder, so its CLI signs in the same way), and the session's route says how the gateway
sends it: an API key as x-api-key, a bearer token as Authorization, Azure's key as api-key."""

from __future__ import annotations

import json

import pytest

from nanogpt_tui.config import load_config
from nanogpt_tui.errors import UserError
from nanogpt_tui.sessions.manager import GATEWAY_KEYS, PLACEHOLDER_KEY, SessionManager

TOKEN = "sk-ant-" "oat01-a-subscription-token-0123456789"
AZURE = "azure-" "key-0123456789abcdef"


@pytest.fixture
def manager(tmp_path, monkeypatch):
    path = tmp_path / "c.toml"
    path.write_text('schema_version = 1\n[paths]\nsessions_dir = "sessions"\n')
    for name in (*GATEWAY_KEYS, "ANTHROPIC_BASE_URL", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    return SessionManager(load_config(str(path)))


def test_bearer_tokens_and_azure_keys_are_held_by_the_gateway_and_sent_their_own_way(manager, monkeypatch):
    monkeypatch.setenv("CLAUDE_CODE_OAUTH_TOKEN", TOKEN)
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", AZURE)
    monkeypatch.setenv("OPENAI_BASE_URL", "https://example-resource.openai.azure.com/openai/v1")
    spec = manager.probe_spec("local")
    assert TOKEN not in json.dumps(spec.env) and AZURE not in json.dumps(spec.env)
    assert spec.env["CLAUDE_CODE_OAUTH_TOKEN"] == PLACEHOLDER_KEY == spec.env["AZURE_OPENAI_API_KEY"]
    assert spec.egress.keys == {"CLAUDE_CODE_OAUTH_TOKEN": TOKEN, "AZURE_OPENAI_API_KEY": AZURE}
    anthropic, openai = spec.egress.routes["anthropic"], spec.egress.routes["openai"]
    assert (anthropic["key_name"], anthropic["auth"]) == ("CLAUDE_CODE_OAUTH_TOKEN", "bearer")
    assert (openai["key_name"], openai["auth"], openai["upstream"]) == \
        ("AZURE_OPENAI_API_KEY", "api-key", "https://example-resource.openai.azure.com/openai/v1")


def test_an_api_key_wins_over_a_token_and_codex_s_own_key_is_used_alone(manager, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-" "api03-key")
    monkeypatch.setenv("ANTHROPIC_AUTH_TOKEN", "bearer-" "token")
    monkeypatch.setenv("CODEX_API_KEY", "sk-proj-" "codex-key")
    routes = manager.probe_spec("local").egress.routes
    assert (routes["anthropic"]["key_name"], routes["anthropic"]["auth"]) == ("ANTHROPIC_API_KEY", "x-api-key")
    assert (routes["openai"]["key_name"], routes["openai"]["auth"]) == ("CODEX_API_KEY", "bearer")


def test_bedrock_or_vertex_credentials_are_refused_in_the_sandbox_with_the_way_out(manager, monkeypatch):
    monkeypatch.setenv("CLAUDE_CODE_USE_BEDROCK", "1")
    with pytest.raises(UserError, match="cannot hold Bedrock or Vertex credentials.*--sandbox off"):
        manager._egress_spec("claude", "local", {"CLAUDE_CODE_USE_BEDROCK": "1", "AWS_SECRET_ACCESS_KEY": "x"})
