"""A scripted model API for the real agent CLIs (tests only): Anthropic Messages and OpenAI Responses, streamed.

Claude Code sends `POST /v1/messages?beta=true` with `stream: true` and reads server-sent events; Codex sends
`POST /v1/responses` (after trying a WebSocket upgrade on the same path, which this server refuses with 405 as an
HTTP-only gateway does) and reads server-sent events. Each request is turned into a `Turn` (which API, the tools
offered, the tool results and user text the CLI sent back) and handed to a *script*: a function that returns the
next `Reply` (text, reasoning and tool calls in the API's own tool names) or a `Fault` (429 with retry-after, 500,
a stream cut mid-message, a hang). A script decides from what it actually received (the verdict `submit` printed,
the output of a command), so a trajectory only completes when the CLI really ran its tools.

Anything the server does not expect (an unknown path, a request after the script ended, a script error) is kept
in `unexpected`; tests assert it is empty. Usage figures are counted per reply so tests can check that the
session's token counts are exactly what was sent.
"""

from __future__ import annotations

import json
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import count
from typing import Any
from urllib.parse import urlsplit

ANTHROPIC = "anthropic"
OPENAI = "openai"


@dataclass
class ToolCall:
    """A tool the model calls: `name` and `arguments` as the CLI's own tool schema has them."""

    name: str
    arguments: dict[str, Any]


@dataclass
class Usage:
    input_tokens: int = 100
    output_tokens: int = 20
    cache_read_input_tokens: int = 0
    reasoning_tokens: int = 0


@dataclass
class Reply:
    """One model answer: optional reasoning, optional text, then tool calls (none ends the CLI's turn)."""

    text: str = ""
    reasoning: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)


@dataclass
class Fault:
    """A failure the server plays instead of a reply.

    kind: "status" (answer `status` with an error body and optional retry-after), "cut" (start streaming the
    reply, then close the connection mid-message), "hang" (accept, send nothing for `seconds`).
    """

    kind: str
    status: int = 500
    retry_after_s: int | None = None
    seconds: float = 0.0
    reply: Reply | None = None  # what "cut" starts to send


@dataclass
class Turn:
    """What the CLI sent in one model request, reduced to what a script decides on."""

    api: str
    n: int  # 1-based count of model requests the server answered a script for
    model: str
    tools: list[str]
    user_texts: list[str]  # user/developer text items, in order
    tool_results: list[tuple[str, str]]  # (call id, output text), in order, over the whole conversation
    body: dict[str, Any]
    headers: dict[str, str]

    @property
    def last_result(self) -> str:
        return self.tool_results[-1][1] if self.tool_results else ""

    @property
    def conversation(self) -> str:
        """Everything the CLI sent as text, for loose checks ("did the prompt arrive")."""
        return json.dumps(self.body)


Script = Callable[[Turn], "Reply | Fault | None"]


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for block in content:
            if isinstance(block, dict):
                if isinstance(block.get("text"), str):
                    parts.append(block["text"])
                elif "content" in block:
                    parts.append(_text_of(block["content"]))
                elif isinstance(block.get("output"), str):
                    parts.append(block["output"])
        return "\n".join(parts)
    return ""


def parse_anthropic(body: dict[str, Any]) -> tuple[list[str], list[tuple[str, str]], list[str]]:
    tools = [t.get("name", "") for t in body.get("tools") or [] if isinstance(t, dict)]
    users, results = [], []
    for message in body.get("messages") or []:
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            users.append(content)
            continue
        for block in content or []:
            if block.get("type") == "tool_result":
                results.append((block.get("tool_use_id", ""), _text_of(block.get("content"))))
            elif block.get("type") == "text":
                users.append(block.get("text", ""))
    return tools, results, users


def parse_openai(body: dict[str, Any]) -> tuple[list[str], list[tuple[str, str]], list[str]]:
    tools = [t.get("name") or t.get("type", "") for t in body.get("tools") or [] if isinstance(t, dict)]
    users, results = [], []
    items = body.get("input")
    if isinstance(items, str):
        return tools, results, [items]
    for item in items or []:
        kind = item.get("type")
        if kind in ("function_call_output", "custom_tool_call_output"):
            output = item.get("output")
            results.append((item.get("call_id", ""), output if isinstance(output, str) else _text_of(output)))
        elif kind == "message" or (kind is None and "role" in item):
            if item.get("role") == "user":
                users.append(_text_of(item.get("content")))
    return tools, results, users


class ModelServer:
    """The scripted server in a thread. `script` answers each model request; see the module docstring."""

    def __init__(self, script: Script, *, host: str = "127.0.0.1", port: int = 0,
                 api_key: str | None = None) -> None:
        self.script = script
        self.host = host
        self.port = port
        self.api_key = api_key  # when set, a request without it is unexpected
        self.requests: list[dict[str, Any]] = []  # every request: method, path, headers (keys masked), body
        self.unexpected: list[str] = []
        self.sent_usage: list[tuple[str, Usage]] = []  # (api, usage) of each completed reply
        self.websocket_attempts: list[float] = []  # monotonic times of refused WebSocket upgrades
        self.http_model_requests: list[float] = []
        self.turns: list[Turn] = []
        self.side_requests = 0  # Claude Code's tool-less side requests (titles), answered outside the script
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._n = count(1)
        self._ids = count(1)
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle -------------------------------------------------------------------

    def start(self) -> ModelServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 - the stdlib's naming
                server._handle(self)

            def do_GET(self) -> None:  # noqa: N802
                server._handle(self)

            def do_HEAD(self) -> None:  # noqa: N802
                server._handle(self)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return

        httpd = ThreadingHTTPServer((self.host, self.port), Handler)
        httpd.daemon_threads = True
        httpd.block_on_close = False
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="model-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._closing.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> ModelServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._httpd is not None, "start() the server first"
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def usage_total(self, api: str | None = None) -> Usage:
        total = Usage(0, 0, 0, 0)
        for sent_api, usage in self.sent_usage:
            if api is None or sent_api == api:
                total.input_tokens += usage.input_tokens
                total.output_tokens += usage.output_tokens
                total.cache_read_input_tokens += usage.cache_read_input_tokens
                total.reasoning_tokens += usage.reasoning_tokens
        return total

    # --- handling --------------------------------------------------------------------

    def _unexpected(self, what: str) -> None:
        with self._lock:
            self.unexpected.append(what)

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        split = urlsplit(h.path)
        headers = {k.lower(): v for k, v in h.headers.items()}
        masked = {k: ("<set>" if k in ("authorization", "x-api-key", "api-key") else v) for k, v in headers.items()}
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = {"_raw": raw.decode("utf-8", "replace")}
        with self._lock:
            self.requests.append({"method": h.command, "path": split.path, "query": split.query,
                                  "headers": masked, "body": body, "t": time.monotonic()})
        if headers.get("upgrade", "").lower() == "websocket":
            # An HTTP-only gateway: no WebSocket here; Codex falls back to HTTP server-sent events.
            with self._lock:
                self.websocket_attempts.append(time.monotonic())
            self._json(h, 405, {"error": {"type": "invalid_request_error",
                                          "message": "WebSocket is not supported here; use HTTP."}})
            return
        if h.command == "POST" and split.path.endswith("/v1/messages") and body.get("stream"):
            self._model_request(h, ANTHROPIC, body, headers)
        elif h.command == "POST" and split.path.endswith("/responses") and body.get("stream"):
            self._model_request(h, OPENAI, body, headers)
        else:
            self._unexpected(f"{h.command} {h.path}")
            self._json(h, 404, {"error": {"type": "not_found_error", "message": f"no route {split.path}"}})

    def _key_ok(self, api: str, headers: dict[str, str]) -> bool:
        if self.api_key is None:
            return True
        if api == ANTHROPIC:
            return headers.get("x-api-key") == self.api_key or \
                headers.get("authorization") == f"Bearer {self.api_key}"
        return headers.get("authorization") == f"Bearer {self.api_key}"

    def _model_request(self, h: BaseHTTPRequestHandler, api: str, body: dict[str, Any],
                       headers: dict[str, str]) -> None:
        if not self._key_ok(api, headers):
            self._unexpected(f"{api} request without the expected key")
            self._json(h, 401, {"error": {"type": "authentication_error", "message": "invalid x-api-key"}})
            return
        tools, results, users = (parse_anthropic if api == ANTHROPIC else parse_openai)(body)
        if api == ANTHROPIC and not tools and not results:
            # Claude Code's side requests (a title or a topic check) carry no tools: answer briefly, untold.
            self._stream_anthropic(h, body, Reply(text="Speedrun work", usage=Usage(10, 3)), side=True)
            return
        turn = Turn(api=api, n=next(self._n), model=str(body.get("model", "")), tools=tools, user_texts=users,
                    tool_results=results, body=body, headers=headers)
        with self._lock:
            self.turns.append(turn)
            self.http_model_requests.append(time.monotonic())
        try:
            answer = self.script(turn)
        except Exception:  # the script's own bug: the test must fail, the CLI gets a clean error
            self._unexpected(f"script error on turn {turn.n}: {traceback.format_exc()}")
            answer = None
        if answer is None:
            self._unexpected(f"{api} request {turn.n} after the script ended")
            self._json(h, 400, {"error": {"type": "invalid_request_error", "message": "the script has ended"}})
            return
        if isinstance(answer, Fault):
            self._fault(h, api, body, answer)
            return
        (self._stream_anthropic if api == ANTHROPIC else self._stream_openai)(h, body, answer)

    # --- writing ---------------------------------------------------------------------

    def _json(self, h: BaseHTTPRequestHandler, status: int, payload: dict[str, Any],
              extra: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        try:
            h.send_response(status)
            h.send_header("Content-Type", "application/json")
            for k, v in (extra or {}).items():
                h.send_header(k, v)
            h.send_header("Content-Length", str(len(data)))
            h.end_headers()
            h.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _fault(self, h: BaseHTTPRequestHandler, api: str, body: dict[str, Any], fault: Fault) -> None:
        if fault.kind == "status":
            extra = {"retry-after": str(fault.retry_after_s)} if fault.retry_after_s is not None else {}
            kind = "rate_limit_error" if fault.status == 429 else "api_error"
            if api == ANTHROPIC:
                payload = {"type": "error", "error": {"type": kind, "message": f"scripted {fault.status}"}}
            else:
                payload = {"error": {"type": kind, "message": f"scripted {fault.status}", "code": None}}
            self._json(h, fault.status, payload, extra)
        elif fault.kind == "hang":
            self._closing.wait(fault.seconds)
            h.close_connection = True
        elif fault.kind == "cut":
            reply = fault.reply or Reply(text="I will start by reading the training script and then")
            writer = self._stream_anthropic if api == ANTHROPIC else self._stream_openai
            writer(h, body, reply, cut=True)
        else:
            raise ValueError(f"unknown fault kind {fault.kind!r}")

    def _start_sse(self, h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "text/event-stream")
        h.send_header("Cache-Control", "no-cache")
        h.send_header("Connection", "close")
        h.end_headers()
        h.close_connection = True

    def _event(self, h: BaseHTTPRequestHandler, name: str, data: dict[str, Any]) -> None:
        h.wfile.write(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())
        h.wfile.flush()

    def _id(self, prefix: str) -> str:
        return f"{prefix}_{next(self._ids):04d}"

    def _stream_anthropic(self, h: BaseHTTPRequestHandler, body: dict[str, Any], reply: Reply, *,
                          cut: bool = False, side: bool = False) -> None:
        model = str(body.get("model", "claude-test"))
        u = reply.usage
        try:
            self._start_sse(h)
            self._event(h, "message_start", {"type": "message_start", "message": {
                "id": self._id("msg"), "type": "message", "role": "assistant", "model": model, "content": [],
                "stop_reason": None, "stop_sequence": None,
                "usage": {"input_tokens": u.input_tokens, "output_tokens": 1,
                          "cache_creation_input_tokens": 0, "cache_read_input_tokens": u.cache_read_input_tokens}}})
            index = 0
            if reply.reasoning:
                self._event(h, "content_block_start", {"type": "content_block_start", "index": index,
                                                       "content_block": {"type": "thinking", "thinking": "",
                                                                         "signature": ""}})
                self._event(h, "content_block_delta", {"type": "content_block_delta", "index": index, "delta": {
                    "type": "thinking_delta", "thinking": reply.reasoning}})
                self._event(h, "content_block_delta", {"type": "content_block_delta", "index": index, "delta": {
                    "type": "signature_delta", "signature": "c2lnbmF0dXJl"}})
                self._event(h, "content_block_stop", {"type": "content_block_stop", "index": index})
                index += 1
            if reply.text:
                self._event(h, "content_block_start", {"type": "content_block_start", "index": index,
                                                       "content_block": {"type": "text", "text": ""}})
                words = reply.text.split(" ")
                half = max(1, len(words) // 2)
                for chunk in (" ".join(words[:half]), " " + " ".join(words[half:]) if words[half:] else ""):
                    if chunk:
                        self._event(h, "content_block_delta", {"type": "content_block_delta", "index": index,
                                                               "delta": {"type": "text_delta", "text": chunk}})
                if cut:
                    h.wfile.flush()
                    h.connection.shutdown(2)
                    # What the stream said before it broke is sent: message_start's usage (output 1).
                    with self._lock:
                        self.sent_usage.append((ANTHROPIC, Usage(u.input_tokens, 1, u.cache_read_input_tokens)))
                    return
                self._event(h, "content_block_stop", {"type": "content_block_stop", "index": index})
                index += 1
            for call in reply.tool_calls:
                self._event(h, "content_block_start", {"type": "content_block_start", "index": index,
                                                       "content_block": {"type": "tool_use", "id": self._id("toolu"),
                                                                         "name": call.name, "input": {}}})
                self._event(h, "content_block_delta", {"type": "content_block_delta", "index": index, "delta": {
                    "type": "input_json_delta", "partial_json": json.dumps(call.arguments)}})
                self._event(h, "content_block_stop", {"type": "content_block_stop", "index": index})
                index += 1
            stop = "tool_use" if reply.tool_calls else "end_turn"
            self._event(h, "message_delta", {"type": "message_delta",
                                             "delta": {"stop_reason": stop, "stop_sequence": None},
                                             "usage": {"output_tokens": u.output_tokens}})
            self._event(h, "message_stop", {"type": "message_stop"})
        except (BrokenPipeError, ConnectionResetError, OSError):
            return
        with self._lock:
            self.sent_usage.append((ANTHROPIC, u))
            if side:
                self.side_requests += 1

    def _stream_openai(self, h: BaseHTTPRequestHandler, body: dict[str, Any], reply: Reply, *,
                       cut: bool = False) -> None:
        model = str(body.get("model", "gpt-test"))
        u = reply.usage
        rid = self._id("resp")
        seq = count(0)

        def ev(name: str, data: dict[str, Any]) -> None:
            self._event(h, name, {"type": name, "sequence_number": next(seq), **data})

        base = {"id": rid, "object": "response", "created_at": int(time.time()), "model": model, "output": []}
        output: list[dict[str, Any]] = []
        try:
            self._start_sse(h)
            ev("response.created", {"response": {**base, "status": "in_progress"}})
            if reply.reasoning:
                item = {"type": "reasoning", "id": self._id("rs"), "summary": []}
                ev("response.output_item.added", {"output_index": len(output), "item": item})
                done = {**item, "summary": [{"type": "summary_text", "text": reply.reasoning}]}
                ev("response.reasoning_summary_part.added", {"item_id": item["id"], "output_index": len(output),
                                                            "summary_index": 0,
                                                            "part": {"type": "summary_text", "text": ""}})
                ev("response.reasoning_summary_text.delta", {"item_id": item["id"], "output_index": len(output),
                                                            "summary_index": 0, "delta": reply.reasoning})
                ev("response.reasoning_summary_text.done", {"item_id": item["id"], "output_index": len(output),
                                                           "summary_index": 0, "text": reply.reasoning})
                ev("response.output_item.done", {"output_index": len(output), "item": done})
                output.append(done)
            if reply.text:
                mid = self._id("msg")
                item = {"type": "message", "id": mid, "status": "in_progress", "role": "assistant", "content": []}
                ev("response.output_item.added", {"output_index": len(output), "item": item})
                ev("response.content_part.added", {"item_id": mid, "output_index": len(output), "content_index": 0,
                                                   "part": {"type": "output_text", "text": "", "annotations": []}})
                ev("response.output_text.delta", {"item_id": mid, "output_index": len(output), "content_index": 0,
                                                  "delta": reply.text})
                if cut:
                    h.wfile.flush()
                    h.connection.shutdown(2)
                    return
                ev("response.output_text.done", {"item_id": mid, "output_index": len(output), "content_index": 0,
                                                 "text": reply.text})
                done = {**item, "status": "completed",
                        "content": [{"type": "output_text", "text": reply.text, "annotations": []}]}
                ev("response.output_item.done", {"output_index": len(output), "item": done})
                output.append(done)
            for call in reply.tool_calls:
                fid, cid = self._id("fc"), self._id("call")
                args = json.dumps(call.arguments)
                item = {"type": "function_call", "id": fid, "call_id": cid, "name": call.name, "arguments": "",
                        "status": "in_progress"}
                ev("response.output_item.added", {"output_index": len(output), "item": item})
                ev("response.function_call_arguments.delta", {"item_id": fid, "output_index": len(output),
                                                              "delta": args})
                ev("response.function_call_arguments.done", {"item_id": fid, "output_index": len(output),
                                                             "arguments": args})
                done = {**item, "arguments": args, "status": "completed"}
                ev("response.output_item.done", {"output_index": len(output), "item": done})
                output.append(done)
            usage = {"input_tokens": u.input_tokens,
                     "input_tokens_details": {"cached_tokens": u.cache_read_input_tokens},
                     "output_tokens": u.output_tokens,
                     "output_tokens_details": {"reasoning_tokens": u.reasoning_tokens},
                     "total_tokens": u.input_tokens + u.output_tokens}
            ev("response.completed", {"response": {**base, "status": "completed", "output": output, "usage": usage}})
        except (BrokenPipeError, ConnectionResetError, OSError):
            return
        with self._lock:
            self.sent_usage.append((OPENAI, u))


def serve_forever_cli() -> None:  # pragma: no cover - a probe helper: `python -m tests.fakes.model_server`
    """Run a server that answers every model request with one short text and logs requests as JSON lines."""
    import argparse
    import sys

    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--log", required=True)
    args = parser.parse_args()
    server = ModelServer(lambda turn: Reply(text="Probe reply."), host=args.host, port=args.port).start()
    print(server.url, flush=True)
    seen = 0
    try:
        while True:
            time.sleep(0.2)
            with server._lock:
                new = server.requests[seen:]
                seen = len(server.requests)
            with open(args.log, "a") as out:
                for r in new:
                    out.write(json.dumps(r) + "\n")
    except KeyboardInterrupt:
        server.stop()
        sys.exit(0)


if __name__ == "__main__":  # pragma: no cover
    serve_forever_cli()
