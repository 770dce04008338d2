"""A scriptable fake LLM API on 127.0.0.1 for tests: the real anthropic/openai SDKs talk to it over HTTP."""

from __future__ import annotations

import json
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

import pytest


@dataclass
class RecordedRequest:
    """One request the fake server received, kept so tests can assert on what the SDK sent."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-cased names
    body_text: str

    @property
    def json(self) -> Any:
        return json.loads(self.body_text) if self.body_text else None


# A body is a JSON-able object, a raw string sent as-is, or a function of the request
# (so a response can echo what was sent, e.g. the Authorization header).
Body = Any | Callable[[RecordedRequest], Any]


@dataclass
class ScriptedResponse:
    """What the server answers to the next request: status, body, headers and an optional delay."""

    status: int = 200
    body: Body = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


class FakeLLMServer:
    """An HTTP server in a thread that answers requests from a queue of `ScriptedResponse`s, in order.

    With the queue empty it answers 599 with a JSON error, so a test that sends more
    requests than it scripted fails loudly instead of hanging.
    """

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self._queue: deque[ScriptedResponse] = deque()
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle -------------------------------------------------------------------

    def start(self) -> FakeLLMServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 - the stdlib's naming
                self._handle()

            def do_GET(self) -> None:  # noqa: N802
                self._handle()

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                split = urlsplit(self.path)
                request = RecordedRequest(
                    method=self.command,
                    path=split.path,
                    query=parse_qs(split.query),
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body_text=raw.decode("utf-8", errors="replace"),
                )
                scripted = server._record_and_pop(request)
                if scripted.delay_s and server._closing.wait(scripted.delay_s):
                    return
                body = scripted.body(request) if callable(scripted.body) else scripted.body
                payload = body.encode("utf-8") if isinstance(body, str) else json.dumps(body).encode("utf-8")
                try:
                    self.send_response(scripted.status)
                    headers = {"Content-Type": "application/json", **scripted.headers}
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test); nothing to answer

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - keep test output quiet
                return

        httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        httpd.daemon_threads = True
        httpd.block_on_close = False
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fake-llm-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._closing.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeLLMServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._httpd is not None, "start() the server first"
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    # --- scripting -------------------------------------------------------------------

    def enqueue(self, *responses: ScriptedResponse) -> None:
        with self._lock:
            self._queue.extend(responses)

    def reply(self, body: Body, *, status: int = 200, headers: dict[str, str] | None = None,
              delay_s: float = 0.0) -> None:
        self.enqueue(ScriptedResponse(status=status, body=body, headers=dict(headers or {}), delay_s=delay_s))

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._queue)

    def _record_and_pop(self, request: RecordedRequest) -> ScriptedResponse:
        with self._lock:
            self.requests.append(request)
            if self._queue:
                return self._queue.popleft()
        return ScriptedResponse(status=599, body={"error": {"type": "fake_server_error",
                                                            "message": "no scripted response left"}})


# --- provider-shaped bodies ----------------------------------------------------------


def anthropic_tool_reply(tool_input: Any, *, tool_name: str = "record_verdict", input_tokens: int = 1200,
                         output_tokens: int = 80, cache_read_input_tokens: int = 0,
                         model: str = "claude-test") -> dict[str, Any]:
    """A Messages API reply whose content is one `tool_use` block (what forced tool choice yields)."""
    return {
        "id": "msg_fake",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "tool_use", "id": "toolu_fake", "name": tool_name, "input": tool_input}],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens,
                  "cache_read_input_tokens": cache_read_input_tokens, "cache_creation_input_tokens": 0},
    }


def anthropic_text_reply(text: str, *, stop_reason: str = "end_turn", stop_details: dict | None = None,
                         input_tokens: int = 1200, output_tokens: int = 10) -> dict[str, Any]:
    """A Messages API reply with only text (no tool call), e.g. a refusal."""
    return {
        "id": "msg_fake",
        "type": "message",
        "role": "assistant",
        "model": "claude-test",
        "content": [{"type": "text", "text": text}] if text else [],
        "stop_reason": stop_reason,
        "stop_details": stop_details,
        "stop_sequence": None,
        "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
    }


def anthropic_error(status_type: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": status_type, "message": message}}


def openai_reply(content: Any = None, *, refusal: str | None = None, finish_reason: str = "stop",
                 prompt_tokens: int = 1500, completion_tokens: int = 90, cached_tokens: int = 0,
                 model: str = "gpt-test") -> dict[str, Any]:
    """A Chat Completions reply; a dict `content` is serialised to the JSON text structured outputs return."""
    text = json.dumps(content) if isinstance(content, (dict, list)) else content
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": model,
        "choices": [{"index": 0, "finish_reason": finish_reason,
                     "message": {"role": "assistant", "content": text, "refusal": refusal}}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens,
                  "prompt_tokens_details": {"cached_tokens": cached_tokens}},
    }


def openai_error(message: str, *, type_: str = "server_error", code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


# What the SDKs read from the environment besides what a test passes them: proxies, keys, base URLs, extra headers,
# profiles. A test of ours against the fake server must see none of the developer's.
SDK_ENVIRONMENT = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy",
                   "ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_BASE_URL", "ANTHROPIC_CUSTOM_HEADERS",
                   "ANTHROPIC_PROFILE", "OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_ORG_ID", "OPENAI_PROJECT_ID",
                   "OPENAI_CUSTOM_HEADERS", "AZURE_OPENAI_API_KEY", "AZURE_OPENAI_ENDPOINT", "OPENAI_API_VERSION")


@pytest.fixture(autouse=True)
def hermetic_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the SDKs from reading the developer's proxies, keys or extra headers: for every test of a module that
    imports this fixture (with `server`, the fake server for each test)."""
    for name in SDK_ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("ANTHROPIC_CONFIG_DIR", "/nonexistent-nanogpt-tui-test")


@pytest.fixture
def server():
    with FakeLLMServer() as fake:
        yield fake
