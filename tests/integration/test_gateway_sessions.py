"""The model gateway as a process on this machine (no container): each session's requests go to that session's
own API with that session's own key, told to the gateway through its control listener; an address that belongs to
no session is refused; the meter counts what each API sent, per session, even when a stream is cut; a session the
gateway has forgotten falls back to the gateway's own key.

Sessions are told apart by source address, as on the sessions' networks: here 127.0.0.2 and 127.0.0.3 (loopback).
Every server and client is on 127.0.0.0/8."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fakes.model_server import ANTHROPIC, OPENAI, Fault, ModelServer, Reply, Usage

ROOT = Path(__file__).resolve().parents[2]
KEY_A = "sk-ant-" "session-a-key-0123456789"
KEY_B = "sk-proj-" "session-b-key-0123456789"
GATEWAY_KEY = "sk-ant-" "the-gateways-own-key-0123"
TOOLS = [{"name": "Bash", "description": "run", "input_schema": {"type": "object"}}]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(port: int, path: str, body: dict, source: str, headers: dict | None = None,
         method: str = "POST") -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30, source_address=(source, 0))
    try:
        conn.request(method, path, body=json.dumps(body) if body is not None else None,
                     headers={"content-type": "application/json", **(headers or {})})
        answer = conn.getresponse()
        try:
            data = answer.read()
        except http.client.IncompleteRead as cut:
            data = cut.partial
        return answer.status, data
    finally:
        conn.close()


def anthropic_body(text: str) -> dict:
    return {"model": "claude-opus-4-6", "stream": True, "max_tokens": 64, "tools": TOOLS,
            "messages": [{"role": "user", "content": text}]}


def openai_body(text: str) -> dict:
    return {"model": "gpt-5.5", "stream": True, "tools": [{"type": "function", "name": "shell", "parameters": {}}],
            "input": [{"role": "user", "content": [{"type": "input_text", "text": text}]}]}


@pytest.fixture
def gateway(tmp_path):
    """The gateway process with its control listener, and two stand-in APIs with their own keys."""
    replies_a = iter([Reply(text="A-one", usage=Usage(100, 7, 20)), Fault("cut"),
                      Reply(text="A-three", usage=Usage(50, 5, 0)), Reply(text="A-four", usage=Usage(9, 1, 0))])
    api_a = ModelServer(lambda turn: next(replies_a, None), api_key=KEY_A).start()
    api_b = ModelServer(lambda turn: Reply(text="B", usage=Usage(300, 11, 64)), api_key=KEY_B).start()
    work = tmp_path / "egress"
    for sub in ("out", "routes"):
        (work / sub).mkdir(parents=True)
    (work / "clients.json").write_text(json.dumps({"127.0.0.2": "sa", "127.0.0.3": "sb"}))
    # The gateway's own routes point at A (the first session's, as when it was started for it).
    config = {"routes": {"anthropic": {"upstream": api_a.url, "auth": "x-api-key", "key_name": "ANTHROPIC_API_KEY"}},
              "clients_file": str(work / "clients.json"), "out_dir": str(work / "out"),
              "routes_dir": str(work / "routes")}
    (work / "gateway.json").write_text(json.dumps(config))
    port, control = free_port(), free_port()
    proc = subprocess.Popen([sys.executable, "-m", "nanogpt_tui.sandbox.gateway", "--config", str(work / "gateway.json"),
                             "--port", str(port), "--dns-port", "0", "--control-port", str(control)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    proc.stdin.write(json.dumps({"ANTHROPIC_API_KEY": GATEWAY_KEY}) + "\n")
    proc.stdin.close()
    deadline = time.monotonic() + 30
    while True:
        try:
            if post(port, "/healthz", None, "127.0.0.1", method="GET")[0] == 200:
                break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise
            time.sleep(0.1)
    try:
        yield {"port": port, "control": control, "work": work, "a": api_a, "b": api_b}
    finally:
        proc.kill()
        proc.wait(timeout=10)
        out = proc.stdout.read()
        for key in (KEY_A, KEY_B, GATEWAY_KEY):
            assert key not in out  # the gateway's output holds no key
        api_a.stop()
        api_b.stop()


def records(work: Path, session: str) -> list[dict]:
    path = work / "out" / f"{session}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_each_session_reaches_its_own_api_with_its_own_key_and_is_metered_apart(gateway):
    port, control, work, api_a, api_b = (gateway[k] for k in ("port", "control", "work", "a", "b"))
    # Session a: Anthropic at A with key A; session b: OpenAI at B (its /v1 base) with key B, and no Anthropic route.
    assert post(control, "/sessions/sa", {"routes": {"anthropic": {
        "upstream": api_a.url, "auth": "x-api-key", "key_name": "ANTHROPIC_API_KEY"}},
        "keys": {"ANTHROPIC_API_KEY": KEY_A}}, "127.0.0.1")[0] == 200
    assert post(control, "/sessions/sb", {"routes": {"openai": {
        "upstream": api_b.url + "/v1", "auth": "bearer", "key_name": "OPENAI_API_KEY"}},
        "keys": {"OPENAI_API_KEY": KEY_B}}, "127.0.0.1")[0] == 200
    routes_file = json.loads((work / "routes" / "sb.json").read_text())
    assert routes_file["routes"]["openai"]["upstream"] == api_b.url + "/v1" and KEY_B not in json.dumps(routes_file)
    assert post(control, "/sessions/..", {"routes": {}}, "127.0.0.1")[0] == 400

    placeholder = {"x-api-key": "sk-placeholder", "authorization": "Bearer sk-placeholder"}
    status, body = post(port, "/anthropic/v1/messages?beta=true", anthropic_body("hi"), "127.0.0.2", placeholder)
    assert status == 200 and b"A-one" in body
    status, body = post(port, "/openai/responses", openai_body("hi"), "127.0.0.3", placeholder)
    assert status == 200 and b'"B"' in body
    # b has no Anthropic route of its own: refused, not sent to the gateway's default (A's) API.
    assert post(port, "/anthropic/v1/messages", anthropic_body("x"), "127.0.0.3", placeholder)[0] == 403
    # An address that belongs to no session: refused, asked to retry (a container that just started).
    status, _ = post(port, "/anthropic/v1/messages", anthropic_body("x"), "127.0.0.4", placeholder)
    assert status == 503
    # A stream the API cuts: what it sent before the cut (message_start's usage) is metered.
    status, body = post(port, "/anthropic/v1/messages", anthropic_body("cut"), "127.0.0.2", placeholder)
    assert b"message_start" in body and b"message_stop" not in body

    # The gateway writes a request's line once the answer is through, which the client may see a moment sooner.
    deadline = time.monotonic() + 10
    while len([r for r in records(work, "sa") if r["type"] == "usage"]) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not api_a.unexpected and not api_b.unexpected  # every request carried its session's real key
    assert [t.api for t in api_a.turns] == [ANTHROPIC, ANTHROPIC] and [t.api for t in api_b.turns] == [OPENAI]
    usage_a = [r for r in records(work, "sa") if r["type"] == "usage"]
    usage_b = [r for r in records(work, "sb") if r["type"] == "usage"]
    # In the events' convention: input counts the cache reads too (Anthropic leaves them out of input_tokens).
    sent_a = [(u.input_tokens + u.cache_read_input_tokens, u.cache_read_input_tokens, u.output_tokens)
              for _api, u in api_a.sent_usage]
    assert [(r["input_tokens"], r["cached_input_tokens"], r["output_tokens"]) for r in usage_a] == sent_a
    assert sent_a == [(120, 20, 7), (100, 0, 1)]
    assert [(r["input_tokens"], r["cached_input_tokens"], r["output_tokens"], r["model"]) for r in usage_b] == \
        [(300, 64, 11, "gpt-5.5")]
    assert any(r["type"] == "blocked" and "/anthropic" in r["destination"] for r in records(work, "sb"))
    assert any(r["type"] == "blocked" and "127.0.0.4" in r["reason"] for r in records(work, "unknown"))

    # Forgotten (the session ended): its routes file goes, and its requests fall back to the gateway's own
    # routes and key, which A refuses.
    assert post(control, "/sessions/sa", None, "127.0.0.1", method="DELETE")[0] == 200
    assert not (work / "routes" / "sa.json").exists()
    status, _ = post(port, "/anthropic/v1/messages", anthropic_body("after"), "127.0.0.2", placeholder)
    assert status == 401 and api_a.unexpected == ["anthropic request without the expected key"]
