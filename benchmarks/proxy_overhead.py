"""Benchmark: the sandbox's CONNECT proxy overhead per request (not a timed test).

An HTTPS server on 127.0.0.1 (a self-signed certificate) stands for an allowed destination (`[sandbox] allow`);
the real gateway process (`python -m nanogpt_tui.sandbox.gateway`, its CONNECT proxy on another loopback port,
the destination allowed) runs beside it. Each request is what a CLI does behind HTTPS_PROXY: a new connection,
`CONNECT host:port`, the TLS handshake through the tunnel, one GET and its whole answer (--kib KiB). The same
request is made R times directly and R times through the proxy, interleaved, in the same run: median and p95,
and the difference (the proxy's overhead). A refused CONNECT is timed too (the answer a forbidden tunnel gets).

    .venv/bin/python benchmarks/proxy_overhead.py [--requests 200] [--kib 64] [--json]
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import json
import os
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def certificate(work: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "allowed destination")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = work / "cert.pem", work / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def destination(cert: Path, key: Path, kib: int) -> ThreadingHTTPServer:
    body = os.urandom(kib * 1024)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def do_GET(self):  # noqa: N802
            self.send_response(200)
            self.send_header("content-length", str(len(body)))
            self.send_header("connection", "close")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_head(sock: socket.socket) -> bytes:
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            break
        head += chunk
    return head


def one(context: ssl.SSLContext, port: int, proxy: int | None) -> float:
    t0 = time.perf_counter()
    sock = socket.create_connection(("127.0.0.1", proxy or port), timeout=30)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if proxy:
        sock.sendall(f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        assert read_head(sock).startswith(b"HTTP/1.1 200"), "the proxy refused the allowed destination"
    with context.wrap_socket(sock, server_hostname="127.0.0.1") as tls:
        tls.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        received = b""
        while True:
            chunk = tls.recv(1 << 16)
            if not chunk:
                break
            received += chunk
    assert received.startswith(b"HTTP/1.1 200"), received[:80]
    return (time.perf_counter() - t0) * 1000


def refused(proxy: int) -> float:
    t0 = time.perf_counter()
    with socket.create_connection(("127.0.0.1", proxy), timeout=30) as sock:
        sock.sendall(b"CONNECT 127.0.0.1:9 HTTP/1.1\r\nHost: 127.0.0.1:9\r\n\r\n")
        assert read_head(sock).startswith(b"HTTP/1.1 403")
    return (time.perf_counter() - t0) * 1000


def summary(samples: list[float]) -> dict:
    ordered = sorted(samples)
    return {"median_ms": round(statistics.median(ordered), 3),
            "p95_ms": round(ordered[int(0.95 * (len(ordered) - 1))], 3)}


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--requests", type=int, default=200)
    p.add_argument("--kib", type=int, default=64, help="size of each answer")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ngt-proxy-bench-"))
    cert, key = certificate(work)
    server = destination(cert, key, args.kib)
    port = server.server_address[1]
    (work / "out").mkdir()
    (work / "clients.json").write_text("{}")
    (work / "gateway.json").write_text(json.dumps({
        "routes": {}, "clients_file": str(work / "clients.json"), "out_dir": str(work / "out"),
        "allow": [f"127.0.0.1:{port}"]}))
    gateway_port, proxy = free_port(), free_port()
    root = Path(__file__).resolve().parent.parent
    gateway = subprocess.Popen([sys.executable, "-m", "nanogpt_tui.sandbox.gateway", "--config",
                                str(work / "gateway.json"), "--port", str(gateway_port), "--dns-port", "0",
                                "--proxy-port", str(proxy)],
                               stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env={**os.environ, "PYTHONPATH": str(root)}, text=True)
    assert gateway.stdin is not None
    gateway.stdin.write("{}\n")
    gateway.stdin.close()
    context = ssl.create_default_context(cafile=str(cert))
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", proxy), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        for _ in range(5):  # warm both paths
            one(context, port, None)
            one(context, port, proxy)
        direct, proxied, refusals = [], [], []
        for _ in range(args.requests):
            direct.append(one(context, port, None))
            proxied.append(one(context, port, proxy))
        for _ in range(min(args.requests, 50)):
            refusals.append(refused(proxy))
        recorded = [json.loads(line) for line in (work / "out" / "unknown.jsonl").read_text().splitlines()]
        result = {
            "requests": args.requests, "answer_kib": args.kib,
            "direct": summary(direct), "through_proxy": summary(proxied),
            "overhead_median_ms": round(statistics.median(proxied) - statistics.median(direct), 3),
            "refused_connect": summary(refusals),
            "refusals_recorded": sum(1 for r in recorded if r["type"] == "blocked" and r["via"] == "proxy"),
        }
    finally:
        gateway.terminate()
        gateway.wait(timeout=10)
        server.shutdown()
    print(json.dumps(result, indent=None if args.json else 2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
