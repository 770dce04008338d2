"""The control room in a browser, through textual-serve (the one module that imports it): each browser tab runs its
own control room process; read-only unless the page was opened with the control token.

textual-serve answers `/` with a page whose script opens a websocket at `/ws` and starts the command there. Ours
adds `/ws/<token>`, which starts the control room with kill, extend and new session enabled when the token is the
one this server printed (compared in constant time), and refuses the connection otherwise; `/` with `?token=` points
the page at it. The page is our own template: everything it loads (script, stylesheet, font) comes from this
server, so it works through an SSH tunnel with no internet.
"""

from __future__ import annotations

import contextvars
import hmac
import secrets
import shlex
import sys
from pathlib import Path
from typing import Any

import aiohttp_jinja2
from aiohttp import web
from textual_serve.server import Server

TEMPLATES = Path(__file__).resolve().parent / "serve_templates"
LOOPBACK = {"127.0.0.1", "localhost", "::1"}

# The command of the websocket being handled (each connection runs in its own task, so its own context).
_command: contextvars.ContextVar[str] = contextvars.ContextVar("nanogpt_tui_serve_command")


def app_command(config_path: str | None, *, control: bool, sessions_dir: str | None = None) -> str:
    """The shell command that runs one browser tab's control room (textual-serve starts it through a shell), on
    the config and sessions folder this server was started with."""
    parts = [sys.executable, "-m", "nanogpt_tui"]
    if config_path:
        parts += ["--config", config_path]
    if sessions_dir:
        parts += ["--sessions-dir", sessions_dir]
    parts += ["serve", "--run-app", "control" if control else "read-only"]
    return shlex.join(parts)


class ControlRoomServer(Server):
    """textual-serve's server with a read-only command by default and a token-guarded one for control."""

    def __init__(self, *, host: str, port: int, config_path: str | None, token: str | None = None,
                 sessions_dir: str | None = None) -> None:
        self.read_only_command = app_command(config_path, control=False, sessions_dir=sessions_dir)
        self.control_command = app_command(config_path, control=True, sessions_dir=sessions_dir)
        self.token = token or secrets.token_urlsafe(24)
        super().__init__(self.read_only_command, host=host, port=port, title="nanogpt-tui control room",
                         templates_path=TEMPLATES)

    # textual-serve reads `self.command` when a websocket starts its app: per connection, through the context.
    @property
    def command(self) -> str:
        return _command.get(self.read_only_command)

    @command.setter
    def command(self, value: str) -> None:
        self.read_only_command = value

    def control_url(self) -> str:
        return f"{self.public_url}/?token={self.token}"

    def _token_ok(self, given: str | None) -> bool:
        return bool(given) and hmac.compare_digest(given.encode(), self.token.encode())

    async def _make_app(self) -> web.Application:
        app = await super()._make_app()
        app.router.add_get("/ws/{token}", self.handle_control_websocket)
        return app

    @aiohttp_jinja2.template("app_index.html")
    async def handle_index(self, request: web.Request) -> dict[str, Any]:
        """textual-serve's page context; its websocket is `/ws/<token>` when the page was opened with the right
        token, else the read-only `/ws`."""
        context = await Server.handle_index.__wrapped__(self, request)
        if self._token_ok(request.query.get("token")):
            context["app_websocket_url"] = context["app_websocket_url"].rstrip("/") + f"/{self.token}"
        return context

    async def handle_control_websocket(self, request: web.Request) -> web.StreamResponse:
        if not self._token_ok(request.match_info.get("token")):
            raise web.HTTPForbidden(text="wrong control token: open the page with the token the server printed")
        _command.set(self.control_command)
        return await self.handle_websocket(request)

    async def on_startup(self, app: web.Application) -> None:
        """Print where to look (and the control link) instead of textual-serve's banner."""
        print(f"nanogpt-tui control room at {self.public_url}/ (read-only: no kill, extend or new session)",
              flush=True)
        print(f"with control: {self.control_url()}  (keep this link private: it can kill sessions)", flush=True)
        if self.host not in LOOPBACK:
            print(f"warning: listening on {self.host}, not only this machine; anyone who can reach it can watch.",
                  flush=True)

