"""The gateway's CONNECT proxy and resolver on loopback (no Docker): an allowed destination is tunnelled byte for
byte, anything else refused with 403 (a tunnel elsewhere) or 405 (plain HTTP) and recorded as blocked for the
session its source address belongs to; the resolver answers only the names it is given and records the others
once per name and client, however often the session's resolver asks again."""

from __future__ import annotations

import asyncio
import json

from nanogpt_tui.sandbox.gateway import ConnectProxy, Gateway, Resolver


def query(name: str, qtype: int = 1, ident: int = 7) -> bytes:
    labels = b"".join(bytes([len(part)]) + part.encode() for part in name.split("."))
    return ident.to_bytes(2, "big") + b"\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00" + labels + b"\x00" + \
        qtype.to_bytes(2, "big") + b"\x00\x01"


def test_the_proxy_tunnels_allowed_destinations_and_records_every_refusal(tmp_path):
    async def scenario() -> dict:
        async def echo(reader, writer):
            writer.write(b"echo:" + await reader.read(100))
            await writer.drain()
            writer.close()

        target = await asyncio.start_server(echo, "127.0.0.1", 0)
        port = target.sockets[0].getsockname()[1]
        (tmp_path / "out").mkdir()
        (tmp_path / "clients.json").write_text(json.dumps({"127.0.0.1": "s1"}))
        gateway = Gateway({"clients_file": str(tmp_path / "clients.json"), "out_dir": str(tmp_path / "out"),
                           "allow": [f"127.0.0.1:{port}"], "dns_names": {"Pypi.org.": ["10.1.2.3"]}}, {})
        proxy = await asyncio.start_server(ConnectProxy(gateway).handle, "127.0.0.1", 0)
        proxy_port = proxy.sockets[0].getsockname()[1]

        async def ask(request: bytes, then: bytes = b"") -> bytes:
            reader, writer = await asyncio.open_connection("127.0.0.1", proxy_port)
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            if then:
                writer.write(then)
            rest = await reader.read()
            writer.close()
            return head + rest

        out = {
            "tunnel": await ask(f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\n\r\n".encode(), b"hello"),
            "elsewhere": await ask(b"CONNECT 127.0.0.1:9 HTTP/1.1\r\nHost: x\r\n\r\n"),
            "plain": await ask(b"GET http://example.invalid/ HTTP/1.1\r\n\r\n"),
        }
        sent = []

        class Transport:
            def sendto(self, data, addr):
                sent.append(data)

        resolver = Resolver(gateway)
        resolver.connection_made(Transport())
        for name in ("pypi.org", "github.com", "github.com", "GitHub.com."):
            resolver.datagram_received(query(name), ("127.0.0.1", 5353))
        out["dns"] = sent
        proxy.close()
        target.close()
        return out

    out = asyncio.run(scenario())
    assert out["tunnel"].startswith(b"HTTP/1.1 200 Connection established\r\n\r\n")
    assert out["tunnel"].endswith(b"echo:hello")
    assert out["elsewhere"].startswith(b"HTTP/1.1 403 ") and b"not in the sandbox's allowed" in out["elsewhere"]
    assert out["plain"].startswith(b"HTTP/1.1 405 ")
    answer, *refusals = out["dns"]
    assert answer[3] & 0x0F == 0 and answer[6:8] == b"\x00\x01" and answer.endswith(bytes([10, 1, 2, 3]))
    assert all(r[3] & 0x0F == 3 for r in refusals) and b"\x06github\x03com" in refusals[0]
    records = [json.loads(line) for line in (tmp_path / "out" / "s1.jsonl").read_text().splitlines()]
    assert [(r["via"], r["destination"]) for r in records] == [
        ("proxy", "127.0.0.1:9"), ("proxy", "http://example.invalid/"), ("dns", "github.com")]
