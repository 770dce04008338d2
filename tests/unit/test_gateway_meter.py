"""The model gateway's token meter and DNS refusals, on streams shaped like the real APIs'."""

from __future__ import annotations

import json
import struct

from nanogpt_tui.sandbox.gateway import UsageMeter, dns_question, dns_refusal

ANTHROPIC_SSE = [
    {"type": "message_start", "message": {"id": "msg_1", "model": "claude-opus-4-6", "usage": {
        "input_tokens": 1200, "cache_read_input_tokens": 300, "cache_creation_input_tokens": 40, "output_tokens": 1}}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "usage: {\"output_tokens\": 9}"}},
    {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 57}},
    {"type": "message_stop"},
]
OPENAI_SSE = [
    {"type": "response.created", "response": {"id": "resp_1", "model": "gpt-5.4", "usage": None}},
    {"type": "response.output_text.delta", "delta": "hello"},
    {"type": "response.completed", "response": {"id": "resp_1", "model": "gpt-5.4", "usage": {
        "input_tokens": 800, "input_tokens_details": {"cached_tokens": 128}, "output_tokens": 33}}},
]


def sse(events: list[dict], names: bool = True) -> bytes:
    out = b""
    for e in events:
        if names:
            out += f"event: {e['type']}\n".encode()
        out += b"data: " + json.dumps(e).encode() + b"\n\n"
    return out


def feed_in_pieces(meter: UsageMeter, data: bytes, size: int) -> None:
    for i in range(0, len(data), size):
        meter.feed(data[i:i + size])
    meter.finish()


def test_anthropic_stream_in_any_chunking():
    for size in (1, 7, 4096):
        meter = UsageMeter()
        feed_in_pieces(meter, sse(ANTHROPIC_SSE), size)
        assert (meter.model, meter.input_tokens, meter.output_tokens) == ("claude-opus-4-6", 1200, 57)
        assert (meter.cache_read_tokens, meter.cache_creation_tokens) == (300, 40)


def test_openai_responses_stream_and_a_whole_json_body():
    meter = UsageMeter()
    feed_in_pieces(meter, sse(OPENAI_SSE, names=False), 13)
    assert (meter.model, meter.input_tokens, meter.output_tokens, meter.cache_read_tokens) == ("gpt-5.4", 800, 33, 128)
    meter = UsageMeter()
    meter.whole_body(json.dumps({"id": "msg", "model": "claude-opus-4-6",
                                 "usage": {"input_tokens": 5, "output_tokens": 6}}).encode())
    assert (meter.input_tokens, meter.output_tokens, meter.seen) == (5, 6, True)


def test_text_that_mentions_usage_is_not_metered_and_garbage_is_ignored():
    meter = UsageMeter()
    feed_in_pieces(meter, b"data: {not json\n\ndata: [DONE]\n\n" + sse(ANTHROPIC_SSE[1:2]), 5)
    assert not meter.seen and meter.output_tokens == 0


def test_dns_questions_are_answered_nxdomain():
    query = struct.pack("!HHHHHH", 0xBEEF, 0x0100, 1, 0, 0, 0) + b"\x09forbidden\x07example\x00\x00\x01\x00\x01"
    ident, name, question = dns_question(query)
    assert (ident, name) == (0xBEEF, "forbidden.example")
    answer = dns_refusal(ident, question)
    flags = struct.unpack_from("!H", answer, 2)[0]
    assert struct.unpack_from("!H", answer)[0] == 0xBEEF and flags & 0x8000 and flags & 0xF == 3
    assert dns_question(answer) is None  # an answer is not a question
    assert dns_question(b"\x00\x01") is None


def test_totals_are_in_the_events_convention():
    """Input counts every input token: Anthropic's cache reads and writes are added, OpenAI's already are in."""
    meter = UsageMeter()
    feed_in_pieces(meter, sse(ANTHROPIC_SSE), 64)
    assert meter.totals() == {"input_tokens": 1540, "cached_input_tokens": 300, "output_tokens": 57,
                              "cache_creation_input_tokens": 40}
    meter = UsageMeter()
    feed_in_pieces(meter, sse(OPENAI_SSE, names=False), 64)
    assert meter.totals() == {"input_tokens": 800, "cached_input_tokens": 128, "output_tokens": 33,
                              "cache_creation_input_tokens": 0}
