"""The model gateway: the only way out of a session's internal network. It runs in its own container (one per Docker
host), is the agent CLIs' `base_url`, holds the real API keys (the agent's container holds a placeholder), forwards
each request to the configured API over TLS, streams the answer back and meters the tokens from the responses'
usage fields into a host-side folder the agent cannot write. Anything else is refused and recorded.

Beside it, in the same process: the sessions' DNS server (answers only the names it is given, refuses and records
every other) and a CONNECT proxy for the `[sandbox] allow` destinations (the CLIs get HTTPS_PROXY). The proxy is
ours on asyncio streams rather than Squid or tinyproxy: a CONNECT tunnel is a request line, an allow-list lookup and
two byte pipes, and doing it here lets every refusal land in the same per-session record as the gateway's and the
resolver's (the session is known by its source address), with nothing more to install, configure or health-check.

Built on aiohttp: one well-kept asyncio library for both the server and the upstream client, which streams request
and response bodies chunk by chunk (server-sent events pass through as they arrive, with back-pressure) and
verifies TLS with the system's (or a given) CA bundle.

Run as `python3 -m nanogpt_tui.sandbox.gateway --config /gateway/gateway.json`; the keys arrive as one JSON line on
stdin (`{"ANTHROPIC_API_KEY": "..."}`), so they are never in the container's stored config, a file or a log.

Routes and keys are per session. Each session, before its container starts, tells the gateway where its CLI's API
lives and which keys to put in (`POST /sessions/<id>` on the control listener, which is bound to the gateway's own
loopback so no session can reach it; the host reaches it with `docker exec`, the keys on the exec's stdin). The
routes (no keys) are kept in `routes/<id>.json`, so a restarted gateway still knows them; the keys stay in memory,
and a session without its own key for a route gets the one the gateway was started with. A request is matched to its
session by its source address (`clients.json`, written by the host once the container has one); a request from an
address that belongs to no session is refused.

Metering: every answer's usage fields are read as it streams by and one `usage` line per request goes to
`out/<session>.jsonl`, in the events' convention (`input_tokens` counts every input token, cached or not;
`cached_input_tokens` is the part read from a prompt cache), with the model the API named.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import re
import socket
import ssl
import struct
import time
import sys
from pathlib import Path
from typing import Any

from aiohttp import ClientSession, ClientTimeout, TCPConnector, web

from nanogpt_tui.config import parse_allow_entry
from nanogpt_tui.sandbox.names import CONTROL_PORT

HOP_HEADERS = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
               "transfer-encoding", "upgrade", "host", "content-length"}
AUTH_HEADERS = {"x-api-key", "authorization", "api-key"}
HEALTH_PATH = "/healthz"
SESSION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def utc_now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class UsageMeter:
    """Reads token usage out of a response as it streams by: Anthropic Messages (SSE `message_start` /
    `message_delta`, or one JSON body) and OpenAI Responses / Chat Completions (`response.completed`, or `usage`)."""

    def __init__(self) -> None:
        self.model: str | None = None
        self.input_tokens = 0
        self.output_tokens = 0
        self.cache_read_tokens = 0
        self.cache_creation_tokens = 0
        self._buffer = b""
        self.seen = False
        self.anthropic = False  # Anthropic's input_tokens leaves out cache reads and writes; OpenAI's includes them

    def _usage(self, usage: Any, *, replace_output: bool = False) -> None:
        if not isinstance(usage, dict):
            return
        self.seen = True

        def num(*keys: str) -> int:
            for key in keys:
                value = usage.get(key)
                if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                    return value
            return 0

        if "input_tokens" in usage or "prompt_tokens" in usage:
            self.input_tokens = max(self.input_tokens, num("input_tokens", "prompt_tokens"))
        out = num("output_tokens", "completion_tokens")
        self.output_tokens = out if replace_output else max(self.output_tokens, out)
        self.cache_read_tokens = max(self.cache_read_tokens, num("cache_read_input_tokens"))
        details = usage.get("input_tokens_details") or usage.get("prompt_tokens_details")
        if isinstance(details, dict) and isinstance(details.get("cached_tokens"), int):
            self.cache_read_tokens = max(self.cache_read_tokens, details["cached_tokens"])
        self.cache_creation_tokens = max(self.cache_creation_tokens, num("cache_creation_input_tokens"))

    def _event(self, data: Any) -> None:
        if not isinstance(data, dict):
            return
        kind = data.get("type")
        if kind in ("message_start", "message_delta", "message"):
            self.anthropic = True
        if kind == "message_start" and isinstance(data.get("message"), dict):
            self.model = data["message"].get("model") or self.model
            self._usage(data["message"].get("usage"))
        elif kind == "message_delta":
            self._usage(data.get("usage"), replace_output=True)  # Anthropic's delta carries the running total
        elif kind in ("response.completed", "response.incomplete", "response.failed") and \
                isinstance(data.get("response"), dict):
            self.model = data["response"].get("model") or self.model
            self._usage(data["response"].get("usage"))
        elif "usage" in data:  # a whole JSON body, or a chat completion chunk with usage
            self.model = data.get("model") or self.model
            self._usage(data.get("usage"))

    def feed(self, chunk: bytes) -> None:
        self._buffer += chunk
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            line = line.strip()
            if line.startswith(b"data:"):
                self._parse(line[5:].strip())

    def finish(self) -> None:
        rest = self._buffer.strip()
        self._buffer = b""
        if rest.startswith(b"data:"):
            self._parse(rest[5:].strip())
        elif rest:
            self._parse(rest)

    def totals(self) -> dict[str, int]:
        """The request's tokens in the events' convention (input includes the cached part)."""
        extra = self.cache_read_tokens + self.cache_creation_tokens if self.anthropic else 0
        return {"input_tokens": self.input_tokens + extra, "cached_input_tokens": self.cache_read_tokens,
                "output_tokens": self.output_tokens, "cache_creation_input_tokens": self.cache_creation_tokens}

    def whole_body(self, body: bytes) -> None:
        self._parse(body.strip())

    def _parse(self, raw: bytes) -> None:
        if not raw or raw == b"[DONE]":
            return
        try:
            self._event(json.loads(raw))
        except ValueError:
            pass


class Gateway:
    """The aiohttp application: each request goes to its session's route for the path's first segment."""

    def __init__(self, config: dict[str, Any], keys: dict[str, str]) -> None:
        self.routes: dict[str, dict[str, Any]] = config.get("routes") or {}  # for sessions without their own
        # The CONNECT proxy's destinations ("host:port") and the names the resolver answers (name -> IPv4s).
        self.allow: set[tuple[str, int]] = {a for a in (parse_allow_entry(e) for e in config.get("allow") or []) if a}
        self.dns_names: dict[str, list[str]] = {str(k).lower().rstrip("."): [str(ip) for ip in v]
                                                for k, v in (config.get("dns_names") or {}).items()}
        self.keys = keys  # the gateway's own (given at start), for sessions without a key of their own
        self.session_keys: dict[str, dict[str, str]] = {}  # in memory only
        self.clients_file = Path(config["clients_file"])
        self.out_dir = Path(config["out_dir"])
        self.routes_dir = Path(config.get("routes_dir") or self.clients_file.with_name("routes"))
        self.ca_file = config.get("ca_file")
        self._clients: tuple[float, dict[str, str]] = (-1.0, {})
        self._session_routes: dict[str, tuple[float, dict[str, dict[str, Any]]]] = {}
        self.session: ClientSession | None = None

    def client_session(self, ip: str) -> str | None:
        """The session a source address belongs to (the host writes clients.json as it attaches sessions)."""
        try:
            mtime = self.clients_file.stat().st_mtime
            if mtime != self._clients[0]:
                self._clients = (mtime, json.loads(self.clients_file.read_text()))
        except (OSError, ValueError):
            pass
        found = self._clients[1].get(ip)
        return str(found) if found else None

    def routes_of(self, session: str) -> dict[str, dict[str, Any]]:
        """The session's routes (routes/<id>.json, re-read when it changes), else the gateway's own."""
        path = self.routes_dir / f"{session}.json"
        try:
            mtime = path.stat().st_mtime
        except OSError:
            return self.routes
        cached = self._session_routes.get(session)
        if cached is None or cached[0] != mtime:
            try:
                routes = json.loads(path.read_text()).get("routes")
            except (OSError, ValueError, AttributeError):
                routes = None
            cached = (mtime, routes if isinstance(routes, dict) else self.routes)
            self._session_routes[session] = cached
        return cached[1]

    def key_for(self, session: str, name: str) -> str:
        return self.session_keys.get(session, {}).get(name) or self.keys.get(name, "")

    def record(self, session: str, kind: str, **fields: Any) -> None:
        """One line in out/<session>.jsonl: `usage` (metered tokens) or `blocked` (a refused request)."""
        line = json.dumps({"ts": utc_now(), "type": kind, "session": session, **fields}, ensure_ascii=True)
        path = self.out_dir / f"{session}.jsonl"
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")

    async def start(self, app: web.Application) -> None:
        context = ssl.create_default_context(cafile=self.ca_file) if self.ca_file else ssl.create_default_context()
        self.session = ClientSession(connector=TCPConnector(ssl=context, limit=256),
                                     timeout=ClientTimeout(total=None, sock_connect=30, sock_read=900),
                                     auto_decompress=False)

    async def stop(self, app: web.Application) -> None:
        if self.session is not None:
            await self.session.close()

    # --- the control listener (the gateway's loopback only) ---------------------------------------------------

    async def control(self, request: web.Request) -> web.Response:
        """`POST /sessions/<id>` {"routes": {...}, "keys": {...}}: the session's routes (kept in routes/<id>.json)
        and keys (kept in memory); `DELETE /sessions/<id>`: forget both once the session has ended."""
        session = request.match_info.get("session", "")
        if not SESSION_ID.match(session):
            return web.json_response({"error": "not a session id"}, status=400)
        path = self.routes_dir / f"{session}.json"
        if request.method == "DELETE":
            self.session_keys.pop(session, None)
            self._session_routes.pop(session, None)
            try:
                path.unlink()
            except FileNotFoundError:
                pass
            return web.json_response({"ok": True})
        try:
            body = await request.json()
        except ValueError:
            return web.json_response({"error": "the body is not JSON"}, status=400)
        routes, keys = body.get("routes"), body.get("keys") or {}
        if not isinstance(routes, dict) or not isinstance(keys, dict) or \
                not all(isinstance(v, str) for v in keys.values()):
            return web.json_response({"error": "routes must be a table and keys strings"}, status=400)
        self.routes_dir.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}")
        partial.write_text(json.dumps({"routes": routes}))
        os.replace(partial, path)
        self._session_routes.pop(session, None)
        self.session_keys[session] = {k: v for k, v in keys.items() if v}
        return web.json_response({"ok": True, "routes": sorted(routes)})

    # --- the sessions' side -----------------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.path == HEALTH_PATH:
            return web.json_response({"ok": True, "routes": sorted(self.routes)})
        session = self.client_session(request.remote or "")
        if session is None:
            # Only a session's container is on these networks; its address is written just after it starts.
            self.record("unknown", "blocked", via="gateway", destination=f"{request.host}{request.path[:200]}",
                        reason=f"no session has the address {request.remote}")
            return web.json_response({"error": "this address belongs to no session (yet)"}, status=503,
                                     headers={"Retry-After": "1"})
        prefix = request.path.split("/", 2)[1] if request.path.count("/") >= 1 else ""
        route = self.routes_of(session).get(prefix)
        if route is None:
            self.record(session, "blocked", via="gateway", destination=f"{request.host}{request.path[:200]}",
                        reason="no such model API route")
            return web.json_response({"error": f"the model gateway has no route /{prefix}"}, status=403)
        if request.headers.get("upgrade", "").lower() == "websocket":
            # An HTTP-only gateway: the CLIs fall back to HTTP streaming.
            return web.json_response({"error": "websockets are not supported; use HTTP streaming"}, status=426)
        key = self.key_for(session, route["key_name"])
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS | AUTH_HEADERS}
        if route.get("auth") == "bearer":
            headers["Authorization"] = f"Bearer {key}"
        elif route.get("auth") == "api-key":  # Azure OpenAI
            headers["api-key"] = key
        else:
            headers["x-api-key"] = key
        rest = request.path[len(prefix) + 1:]
        url = route["upstream"].rstrip("/") + rest + (f"?{request.query_string}" if request.query_string else "")
        body = await request.read()
        meter = UsageMeter()
        assert self.session is not None
        try:
            upstream = await self.session.request(request.method, url, headers=headers, data=body)
        except Exception as err:  # noqa: BLE001 - any failure to reach the API becomes a 502 the CLI retries
            return web.json_response({"error": f"the model API did not answer ({type(err).__name__})"}, status=502)
        streaming = "text/event-stream" in upstream.headers.get("content-type", "")
        whole = bytearray()
        try:
            async with upstream:
                response = web.StreamResponse(status=upstream.status, headers={
                    k: v for k, v in upstream.headers.items() if k.lower() not in HOP_HEADERS})
                await response.prepare(request)
                async for chunk in upstream.content.iter_any():
                    if streaming:
                        meter.feed(chunk)
                    elif len(whole) < 8 << 20:
                        whole += chunk
                    await response.write(chunk)
                await response.write_eof()
        finally:
            # Metered even when the stream broke (the API cut it, or the CLI went away): what the API sent counts.
            if streaming:
                meter.finish()
            else:
                meter.whole_body(bytes(whole))
            if meter.seen:
                self.record(session, "usage", route=prefix, api="anthropic" if meter.anthropic else "openai",
                            model=meter.model, status=upstream.status, **meter.totals())
        return response


def dns_question(packet: bytes) -> tuple[int, str, bytes] | None:
    """(id, name, question section) of a DNS query, None when it is not one."""
    if len(packet) < 12:
        return None
    ident, flags, qdcount = struct.unpack_from("!HHH", packet)
    if flags & 0x8000 or qdcount < 1:
        return None
    labels, pos = [], 12
    while pos < len(packet):
        length = packet[pos]
        if length == 0 or length >= 0xC0 or pos + 1 + length > len(packet):
            break
        labels.append(packet[pos + 1: pos + 1 + length].decode("ascii", "replace"))
        pos += 1 + length
    end = pos + 5  # the zero label, QTYPE, QCLASS
    if end > len(packet):
        return None
    return ident, ".".join(labels), packet[12:end]


def dns_refusal(ident: int, question: bytes) -> bytes:
    """NXDOMAIN for the question (recursion available, so resolvers stop asking)."""
    return struct.pack("!HHHHHH", ident, 0x8183, 1, 0, 0, 0) + question


def dns_answer(ident: int, question: bytes, addresses: list[str]) -> bytes:
    """The IPv4 addresses for an A question (none for any other type: the name exists, with no such record)."""
    qtype = struct.unpack_from("!H", question, len(question) - 4)[0]
    records = [a for a in addresses if qtype == 1]
    answer = b"".join(struct.pack("!HHHIH", 0xC00C, 1, 1, 60, 4) + socket.inet_aton(a) for a in records)
    return struct.pack("!HHHHHH", ident, 0x8180, 1, len(records), 0, 0) + question + answer


class Resolver(asyncio.DatagramProtocol):
    """The sessions' DNS server (the containers' `dns`): no name outside the session's own network resolves
    (Docker's embedded DNS answers the gateway's and proxy's container names itself), and each one asked for is
    recorded as blocked. Engine 20.10's embedded DNS forwards from the host's namespace (CVE-2024-29018), so
    without this the host's own resolver would answer the sessions."""

    REPEAT_S = 2.0  # a resolver asks again (A and AAAA, retries, search domains): one refusal a name this often

    def __init__(self, gateway: "Gateway") -> None:
        self.gateway = gateway
        self.transport: asyncio.DatagramTransport | None = None
        self._recent: dict[tuple[str, str], float] = {}

    def connection_made(self, transport) -> None:  # noqa: ANN001 - asyncio's signature
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:  # noqa: ANN001
        question = dns_question(data)
        if question is None or self.transport is None:
            return
        ident, name, raw = question
        name = name.lower().rstrip(".")
        if name in self.gateway.dns_names:
            self.transport.sendto(dns_answer(ident, raw, self.gateway.dns_names[name]), addr)
            return
        now = time.monotonic()
        if now - self._recent.get((addr[0], name), -1e9) >= self.REPEAT_S:
            if len(self._recent) > 4096:
                self._recent.clear()
            self._recent[(addr[0], name)] = now
            self.gateway.record(self.gateway.client_session(addr[0]) or "unknown", "blocked", via="dns",
                                destination=name[:253], reason="the session's resolver answers no outside name")
        self.transport.sendto(dns_refusal(ident, raw), addr)


class ConnectProxy:
    """HTTPS_PROXY for the `[sandbox] allow` destinations: `CONNECT host:port` to one of them is tunnelled (TLS
    stays end to end between the CLI and the destination); any other request is refused with 403 or 405 and
    recorded as blocked for the session."""

    TIMEOUT_S = 30.0

    def __init__(self, gateway: "Gateway") -> None:
        self.gateway = gateway

    async def _refuse(self, writer: asyncio.StreamWriter, session: str, status: str, destination: str,
                      reason: str) -> None:
        self.gateway.record(session, "blocked", via="proxy", destination=destination[:253], reason=reason)
        body = f"{reason}\n".encode()
        writer.write(f"HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
                     "Connection: close\r\n\r\n".encode() + body)
        await writer.drain()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername") or ("", 0)
        session = self.gateway.client_session(peer[0]) or "unknown"
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), self.TIMEOUT_S)
            method, target, _version = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, asyncio.TimeoutError, ValueError):
            writer.close()
            return
        try:
            if method.upper() != "CONNECT":
                await self._refuse(writer, session, "405 Method Not Allowed", target,
                                   "the sandbox's proxy tunnels HTTPS (CONNECT) only")
                return
            destination = parse_allow_entry(target)
            if destination is None or destination not in self.gateway.allow:
                await self._refuse(writer, session, "403 Forbidden", target,
                                   "not in the sandbox's allowed destinations")
                return
            try:
                up_reader, up_writer = await asyncio.wait_for(asyncio.open_connection(*destination), self.TIMEOUT_S)
            except (OSError, asyncio.TimeoutError) as err:
                body = f"could not reach {target} ({type(err).__name__})\n".encode()
                writer.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
                             % len(body) + body)
                await writer.drain()
                return
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await writer.drain()
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            writer.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy until end of stream, then half-close the other side."""
    try:
        while True:
            chunk = await reader.read(1 << 16)
            if not chunk:
                break
            writer.write(chunk)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except OSError:
        writer.close()


def make_app(config: dict[str, Any], keys: dict[str, str]) -> web.Application:
    gateway = Gateway(config, keys)
    app = web.Application(client_max_size=64 << 20)
    app.on_startup.append(gateway.start)
    app.on_cleanup.append(gateway.stop)
    app.router.add_route("*", "/{tail:.*}", gateway.handle)
    app["gateway"] = gateway
    return app


def make_control_app(gateway: Gateway) -> web.Application:
    """The control listener's application (served on 127.0.0.1 only)."""
    app = web.Application(client_max_size=1 << 20)
    app.router.add_route("POST", "/sessions/{session}", gateway.control)
    app.router.add_route("DELETE", "/sessions/{session}", gateway.control)
    return app


async def serve(config: dict[str, Any], keys: dict[str, str], port: int, dns_port: int | None,
                proxy_port: int | None = None, control_port: int | None = CONTROL_PORT) -> None:
    app = make_app(config, keys)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "0.0.0.0", port).start()
    runners = [runner]
    if control_port:
        control = web.AppRunner(make_control_app(app["gateway"]))
        await control.setup()
        await web.TCPSite(control, "127.0.0.1", control_port).start()
        runners.append(control)
    if dns_port:
        loop = asyncio.get_running_loop()
        await loop.create_datagram_endpoint(lambda: Resolver(app["gateway"]), local_addr=("0.0.0.0", dns_port))
    if proxy_port:
        await asyncio.start_server(ConnectProxy(app["gateway"]).handle, "0.0.0.0", proxy_port)
    print(f"model gateway: {len(config.get('routes') or {})} route(s), {len(keys)} key(s), port {port}"
          + (f", control on 127.0.0.1:{control_port}" if control_port else "")
          + (f", DNS on {dns_port}/udp" if dns_port else "")
          + (f", CONNECT proxy on {proxy_port} for {len(app['gateway'].allow)} destination(s)" if proxy_port else ""),
          flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        for each in reversed(runners):
            await each.cleanup()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="nanogpt_tui.sandbox.gateway")
    p.add_argument("--config", type=Path, required=True)
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--dns-port", type=int, default=53)
    p.add_argument("--proxy-port", type=int, default=3128)
    p.add_argument("--control-port", type=int, default=CONTROL_PORT, help="on 127.0.0.1; 0 for none")
    args = p.parse_args(argv)
    config = json.loads(args.config.read_text())
    line = sys.stdin.readline()
    keys = json.loads(line) if line.strip() else {}
    try:
        asyncio.run(serve(config, keys, args.port, args.dns_port or None, args.proxy_port or None,
                          args.control_port or None))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
