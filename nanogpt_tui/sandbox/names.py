"""Where a sandboxed session finds its way out, by name (no docker, no aiohttp: the session manager and the
probe read these too): the model gateway's alias on every session network, its port, and its CONNECT proxy's."""

from __future__ import annotations

GATEWAY_ALIAS = "model-gateway"
GATEWAY_PORT = 8080
PROXY_PORT = 3128  # the gateway's CONNECT proxy, for the `[sandbox] allow` destinations


def proxy_env() -> dict[str, str]:
    """The CONNECT proxy for the CLIs (both spellings: tools read one or the other), the gateway itself bypassing
    it."""
    proxy = f"http://{GATEWAY_ALIAS}:{PROXY_PORT}"
    no_proxy = f"{GATEWAY_ALIAS},localhost,127.0.0.1"
    return {"HTTPS_PROXY": proxy, "https_proxy": proxy, "NO_PROXY": no_proxy, "no_proxy": no_proxy}
