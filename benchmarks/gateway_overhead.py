"""Benchmark: the model gateway's overhead per model request (not a timed test).

A stand-in API on 127.0.0.1 answers a streaming Anthropic Messages request (server-sent events, ~N events); the
real gateway (`python -m nanogpt_tui.sandbox.gateway`, its keys on stdin) runs on another loopback port in front of
it. The same request is sent R times directly and R times through the gateway, interleaved, in the same run:
time to the first byte and to the whole answer, median and p95, and the difference (the gateway's overhead).

    .venv/bin/python benchmarks/gateway_overhead.py [--requests 200] [--events 200] [--json]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

KEY = "sk-ant-" + "benchmark-key"


def stand_in(events: int) -> ThreadingHTTPServer:
    body = [{"type": "message_start", "message": {"id": "m", "model": "claude-opus-4-6",
                                                  "usage": {"input_tokens": 100, "output_tokens": 1}}}]
    body += [{"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "token "}}] * events
    body += [{"type": "message_delta", "usage": {"output_tokens": events}}, {"type": "message_stop"}]
    payload = b"".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in body)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # As real API servers do: without it, Nagle on this side and delayed ACKs on the gateway's pooled
        # keep-alive connection add ~40 ms to every answer, an artefact of the stand-in, not of the gateway.
        disable_nagle_algorithm = True

        def do_POST(self):  # noqa: N802
            self.rfile.read(int(self.headers.get("content-length") or 0))
            ok = self.headers.get("x-api-key") == KEY
            self.send_response(200 if ok else 401)
            self.send_header("content-type", "text/event-stream")
            self.send_header("content-length", str(len(payload) if ok else 0))
            self.end_headers()
            if ok:
                self.wfile.write(payload)

        def log_message(self, *args):
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def one(port: int, path: str, key: str) -> tuple[float, float]:
    body = json.dumps({"model": "claude-opus-4-6", "stream": True, "max_tokens": 64,
                       "messages": [{"role": "user", "content": "hi"}]})
    t0 = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("POST", path, body=body, headers={"x-api-key": key, "content-type": "application/json"})
    response = conn.getresponse()
    first = response.read(1)
    t_first = time.perf_counter() - t0
    rest = response.read()
    t_all = time.perf_counter() - t0
    conn.close()
    assert response.status == 200 and first and rest, response.status
    return t_first * 1000, t_all * 1000


def summary(samples: list[float]) -> dict:
    ordered = sorted(samples)
    return {"median_ms": round(statistics.median(ordered), 3),
            "p95_ms": round(ordered[int(0.95 * (len(ordered) - 1))], 3)}


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--requests", type=int, default=200)
    p.add_argument("--events", type=int, default=200)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    api = stand_in(args.events)
    api_port = api.server_address[1]
    work = Path(tempfile.mkdtemp(prefix="ngt-gateway-bench-"))
    (work / "out").mkdir()
    (work / "clients.json").write_text(json.dumps({"127.0.0.1": "bench"}))  # the client is a session's address
    config = {"routes": {"anthropic": {"upstream": f"http://127.0.0.1:{api_port}", "auth": "x-api-key",
                                       "key_name": "ANTHROPIC_API_KEY"}},
              "clients_file": str(work / "clients.json"), "out_dir": str(work / "out")}
    (work / "gateway.json").write_text(json.dumps(config))
    port = free_port()
    root = Path(__file__).resolve().parent.parent
    gateway = subprocess.Popen([sys.executable, "-m", "nanogpt_tui.sandbox.gateway", "--config",
                                str(work / "gateway.json"), "--port", str(port), "--dns-port", "0",
                                "--control-port", "0"],
                               stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env={**os.environ, "PYTHONPATH": str(root)}, text=True)
    assert gateway.stdin is not None
    gateway.stdin.write(json.dumps({"ANTHROPIC_API_KEY": KEY}) + "\n")
    gateway.stdin.close()
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                http.client.HTTPConnection("127.0.0.1", port, timeout=1).request("GET", "/healthz")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        for _ in range(5):  # warm both paths
            one(api_port, "/v1/messages", KEY)
            one(port, "/anthropic/v1/messages", "placeholder")
        direct_first, direct_all, gw_first, gw_all = [], [], [], []
        for _ in range(args.requests):
            a, b = one(api_port, "/v1/messages", KEY)
            direct_first.append(a)
            direct_all.append(b)
            a, b = one(port, "/anthropic/v1/messages", "placeholder")  # the gateway puts the real key in
            gw_first.append(a)
            gw_all.append(b)
        metered = [json.loads(line) for line in (work / "out" / "bench.jsonl").read_text().splitlines()]
        result = {
            "requests": args.requests, "events_per_answer": args.events + 3,
            "direct": {"first_byte": summary(direct_first), "whole": summary(direct_all)},
            "gateway": {"first_byte": summary(gw_first), "whole": summary(gw_all)},
            "overhead_median_ms": {"first_byte": round(statistics.median(gw_first) - statistics.median(direct_first), 3),
                                   "whole": round(statistics.median(gw_all) - statistics.median(direct_all), 3)},
            "metered_requests": len([m for m in metered if m["type"] == "usage"]),
            "metered_output_tokens_each": sorted({m["output_tokens"] for m in metered if m["type"] == "usage"}),
        }
    finally:
        gateway.terminate()
        gateway.wait(timeout=10)
        api.shutdown()
    print(json.dumps(result, indent=None if args.json else 2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
