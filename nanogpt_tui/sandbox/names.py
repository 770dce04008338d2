"""Where a sandboxed session finds its way out, by name (no docker, no aiohttp: the session manager and the
probe read these too): the model gateway's alias on every session network, its ports, the URLs and placeholder key the CLIs get,
and the routes it forwards by default."""

from __future__ import annotations

GATEWAY_ALIAS = "model-gateway"
GATEWAY_PORT = 8080
PROXY_PORT = 3128  # the gateway's CONNECT proxy, for the `[sandbox] allow` destinations
CONTROL_PORT = 8081  # the gateway's control listener, on its own loopback only (the host reaches it by docker exec)
# What a sandboxed session's CLIs get instead of the APIs and their keys.
GATEWAY_URLS = {api: f"http://{GATEWAY_ALIAS}:{GATEWAY_PORT}/{api}" for api in ("anthropic", "openai")}
PLACEHOLDER_KEY = "sk-placeholder-the-model-gateway-holds-the-key"
# The model APIs the gateway forwards to, by route (the first path segment of the CLI's base_url), before the
# user's endpoints (ANTHROPIC_BASE_URL, OPENAI_BASE_URL) replace them.
DEFAULT_ROUTES = {
    "anthropic": {"upstream": "https://api.anthropic.com", "auth": "x-api-key", "key_name": "ANTHROPIC_API_KEY"},
    "openai": {"upstream": "https://api.openai.com/v1", "auth": "bearer", "key_name": "OPENAI_API_KEY"},
}


def proxy_env() -> dict[str, str]:
    """The CONNECT proxy for the CLIs (both spellings: tools read one or the other), the gateway itself bypassing
    it."""
    proxy = f"http://{GATEWAY_ALIAS}:{PROXY_PORT}"
    no_proxy = f"{GATEWAY_ALIAS},localhost,127.0.0.1"
    return {"HTTPS_PROXY": proxy, "https_proxy": proxy, "NO_PROXY": no_proxy, "no_proxy": no_proxy}
