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
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import socket
import ssl
import struct
import time
import sys
from pathlib import Path
from typing import Any

from aiohttp import ClientSession, ClientTimeout, TCPConnector, web

from nanogpt_tui.config import parse_allow_entry

HOP_HEADERS = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
               "transfer-encoding", "upgrade", "host", "content-length"}
AUTH_HEADERS = {"x-api-key", "authorization", "api-key"}
HEALTH_PATH = "/healthz"


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
    """The aiohttp application: routes by path prefix, one per configured API."""

    def __init__(self, config: dict[str, Any], keys: dict[str, str]) -> None:
        self.routes: dict[str, dict[str, Any]] = config.get("routes") or {}
        # The CONNECT proxy's destinations ("host:port") and the names the resolver answers (name -> IPv4s).
        self.allow: set[tuple[str, int]] = {a for a in (parse_allow_entry(e) for e in config.get("allow") or []) if a}
        self.dns_names: dict[str, list[str]] = {str(k).lower().rstrip("."): [str(ip) for ip in v]
                                                for k, v in (config.get("dns_names") or {}).items()}
        self.keys = keys
        self.clients_file = Path(config["clients_file"])
        self.out_dir = Path(config["out_dir"])
        self.ca_file = config.get("ca_file")
        self._clients: tuple[float, dict[str, str]] = (-1.0, {})
        self.session: ClientSession | None = None

    def client_session(self, ip: str) -> str:
        """The session a source address belongs to (the host writes clients.json as it attaches sessions)."""
        try:
            mtime = self.clients_file.stat().st_mtime
            if mtime != self._clients[0]:
                self._clients = (mtime, json.loads(self.clients_file.read_text()))
        except (OSError, ValueError):
            pass
        return str(self._clients[1].get(ip) or "unknown")

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

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.path == HEALTH_PATH:
            return web.json_response({"ok": True, "routes": sorted(self.routes)})
        session = self.client_session(request.remote or "")
        prefix = request.path.split("/", 2)[1] if request.path.count("/") >= 1 else ""
        route = self.routes.get(prefix)
        if route is None:
            self.record(session, "blocked", via="gateway", destination=f"{request.host}{request.path[:200]}",
                        reason="no such model API route")
            return web.json_response({"error": f"the model gateway has no route /{prefix}"}, status=403)
        if request.headers.get("upgrade", "").lower() == "websocket":
            # An HTTP-only gateway: the CLIs fall back to HTTP streaming.
            return web.json_response({"error": "websockets are not supported; use HTTP streaming"}, status=426)
        key = self.keys.get(route["key_name"], "")
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS | AUTH_HEADERS}
        if route.get("auth") == "bearer":
            headers["Authorization"] = f"Bearer {key}"
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
        async with upstream:
            response = web.StreamResponse(status=upstream.status, headers={
                k: v for k, v in upstream.headers.items() if k.lower() not in HOP_HEADERS})
            await response.prepare(request)
            streaming = "text/event-stream" in upstream.headers.get("content-type", "")
            whole = bytearray()
            async for chunk in upstream.content.iter_any():
                if streaming:
                    meter.feed(chunk)
                elif len(whole) < 8 << 20:
                    whole += chunk
                await response.write(chunk)
            await response.write_eof()
        if streaming:
            meter.finish()
        else:
            meter.whole_body(bytes(whole))
        if meter.seen:
            self.record(session, "usage", route=prefix, model=meter.model, status=upstream.status,
                        input_tokens=meter.input_tokens, output_tokens=meter.output_tokens,
                        cache_read_input_tokens=meter.cache_read_tokens,
                        cache_creation_input_tokens=meter.cache_creation_tokens)
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
            self.gateway.record(self.gateway.client_session(addr[0]), "blocked", via="dns", destination=name[:253],
                                reason="the session's resolver answers no outside name")
        self.transport.sendto(dns_refusal(ident, raw), addr)


class ConnectProxy:
    """HTTPS_PROXY for the `[sandbox] allow` destinations: `CONNECT host:port` to one of them is tunnelled (TLS
    stays end to end between the CLI and the destination); any other request is refused with 403 or 405 and
    recorded as blocked for the session."""

    HEAD_LIMIT = 16 << 10
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
        session = self.gateway.client_session(peer[0])
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


async def serve(config: dict[str, Any], keys: dict[str, str], port: int, dns_port: int | None,
                proxy_port: int | None = None) -> None:
    app = make_app(config, keys)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "0.0.0.0", port).start()
    if dns_port:
        loop = asyncio.get_running_loop()
        await loop.create_datagram_endpoint(lambda: Resolver(app["gateway"]), local_addr=("0.0.0.0", dns_port))
    if proxy_port:
        await asyncio.start_server(ConnectProxy(app["gateway"]).handle, "0.0.0.0", proxy_port)
    print(f"model gateway: {len(config.get('routes') or {})} route(s), {len(keys)} key(s), port {port}"
          + (f", DNS on {dns_port}/udp" if dns_port else "")
          + (f", CONNECT proxy on {proxy_port} for {len(app['gateway'].allow)} destination(s)" if proxy_port else ""),
          flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="nanogpt_tui.sandbox.gateway")
    p.add_argument("--config", type=Path, required=True)
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--dns-port", type=int, default=53)
    p.add_argument("--proxy-port", type=int, default=3128)
    args = p.parse_args(argv)
    config = json.loads(args.config.read_text())
    line = sys.stdin.readline()
    keys = json.loads(line) if line.strip() else {}
    try:
        asyncio.run(serve(config, keys, args.port, args.dns_port or None, args.proxy_port or None))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
