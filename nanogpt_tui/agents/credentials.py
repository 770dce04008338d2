"""Which API endpoint and credentials an agent CLI gets, and the one place they pass from the host into a session.

Endpoints: `[agents.NAME] base_url` in the config, overridden by the CLI's own variable in the host environment
(`ANTHROPIC_BASE_URL` for Claude Code, `OPENAI_BASE_URL` for Codex); empty means the CLI's default (the vendor's
API). The effective one reaches the harness as BENCHMARK_AGENT_BASE_URL (Claude Code reads it as
ANTHROPIC_BASE_URL; Codex gets a `model_providers` entry with it, since Codex ignores OPENAI_BASE_URL alone).

Credentials come from the host environment only and are never written into the session folder, a log or a report:
`session_env` is the single function that copies them into a session's environment (the sandbox's model gateway
replaces it: the gateway then holds the keys and the session gets a placeholder).

What each CLI accepts without a browser (docs/agent-clis.md has the details):

- Claude Code: an API key (`ANTHROPIC_API_KEY`, sent as x-api-key), a bearer token (`ANTHROPIC_AUTH_TOKEN`, e.g.
  for a LiteLLM gateway), a subscription token made on another machine with `claude setup-token`
  (`CLAUDE_CODE_OAUTH_TOKEN`), Amazon Bedrock (`CLAUDE_CODE_USE_BEDROCK=1` with the AWS variables) and Google
  Vertex AI (`CLAUDE_CODE_USE_VERTEX=1` with `ANTHROPIC_VERTEX_PROJECT_ID`, `CLOUD_ML_REGION` and
  `GOOGLE_APPLICATION_CREDENTIALS`, a key file the container must see).
- Codex: an API key (`OPENAI_API_KEY`, passed to `codex exec` as `CODEX_API_KEY`), Azure OpenAI
  (`AZURE_OPENAI_API_KEY` + `AZURE_OPENAI_ENDPOINT`, with `OPENAI_API_VERSION` as the `api-version` query), or any
  Responses-API gateway through `base_url`. A ChatGPT subscription login needs `codex login` in a browser (or its
  device-code flow on a terminal), whose auth.json we do not copy into sessions.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from nanogpt_tui.contract.env import ENV_AGENT_BASE_URL

# Per agent: (the endpoint variable the CLI reads, the variables holding credentials or provider settings).
_ANTHROPIC = ("ANTHROPIC_BASE_URL", ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN",
                                     "CLAUDE_CODE_USE_BEDROCK", "CLAUDE_CODE_USE_VERTEX", "AWS_ACCESS_KEY_ID",
                                     "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION", "AWS_PROFILE",
                                     "ANTHROPIC_VERTEX_PROJECT_ID", "CLOUD_ML_REGION",
                                     "GOOGLE_APPLICATION_CREDENTIALS"))
_OPENAI = ("OPENAI_BASE_URL", ("OPENAI_API_KEY", "CODEX_API_KEY", "AZURE_OPENAI_API_KEY", "AZURE_OPENAI_ENDPOINT",
                               "OPENAI_API_VERSION"))
AGENT_API = {"claude": _ANTHROPIC, "claude-autoresearch": _ANTHROPIC, "codex": _OPENAI}
BASE_URL_ENV = ENV_AGENT_BASE_URL


@dataclass(frozen=True)
class Endpoint:
    """The API endpoint an agent's CLI talks to, and where that choice comes from."""

    url: str  # "" for the CLI's default
    source: str  # "environment (ANTHROPIC_BASE_URL)", "config ([agents.claude] base_url)" or "CLI default"


def endpoint(agent: str, config_base_url: str = "", environ: Mapping[str, str] | None = None) -> Endpoint:
    env = os.environ if environ is None else environ
    api = AGENT_API.get(agent)
    if api is None:
        return Endpoint("", "none (this agent calls no model API)")
    variable = api[0]
    if env.get(variable):
        return Endpoint(env[variable], f"environment ({variable})")
    if config_base_url:
        return Endpoint(config_base_url, f"config ([agents.{agent}] base_url)")
    return Endpoint("", "CLI default")


def session_env(agent: str, config_base_url: str = "", environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """What a session's environment gets for its agent's model API: the effective endpoint and the credentials set
    on the host (only the variables of this agent's API)."""
    env = os.environ if environ is None else environ
    api = AGENT_API.get(agent)
    if api is None:
        return {}
    out = {k: env[k] for k in api[1] if env.get(k)}
    where = endpoint(agent, config_base_url, env)
    if where.url:
        out[api[0]] = where.url
        out[BASE_URL_ENV] = where.url
    return out
