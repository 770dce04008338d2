"""The one follower of appended line files (nanogpt_tui.follow) and the readers built on it: events, the gateway's
usage and refusals, GPU samples. Each reader is driven through the same file changes: a partial last line, a file
replaced or truncated under it, an over-long line and a malformed one."""

from __future__ import annotations

import json
import os

import pytest

from nanogpt_tui.agents.events import EventStream, event_line
from nanogpt_tui.follow import LineFollower
from nanogpt_tui.telemetry.gateway_record import GatewayRecord
from nanogpt_tui.telemetry.gpu import GpuHistory, GpuReading, GpuSample


def _append(path, data: bytes) -> None:
    with open(path, "ab") as handle:
        handle.write(data)


def _replace(path, data: bytes) -> None:
    """A new file under the same name (another inode), as a writer that rotates or rewrites it does."""
    tmp = path.with_name(path.name + ".new")
    tmp.write_bytes(data)
    os.replace(tmp, path)


# ------------------------------------------------------------------------------------------- the follower

def test_a_partial_line_waits_for_its_newline_and_final_takes_it(tmp_path):
    path = tmp_path / "a.jsonl"
    follow = LineFollower(path)
    assert follow.read_new() == []  # no file yet
    path.write_bytes(b"one\ntw")
    assert [(l.no, l.text) for l in follow.read_new()] == [(1, "one")]
    assert follow.offset == 4 and follow.read_new() == []  # still mid-line; the offset stays at the whole line
    _append(path, b"o\nthr")
    assert [l.text for l in follow.read_new()] == ["two"]
    assert [(l.no, l.text) for l in follow.read_new(final=True)] == [(3, "thr")] and follow.offset == 11


def test_a_partial_line_is_finished_across_small_chunks(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_bytes(b"a" * 30 + b"\n" + b"b" * 10)
    follow = LineFollower(path, chunk_bytes=7)
    assert [l.text for l in follow.read_new()] == ["a" * 30]
    _append(path, b"b" * 10 + b"\n")
    assert [l.text for l in follow.read_new()] == ["b" * 20]


def test_a_resumed_follower_starts_at_the_saved_offset(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_bytes(b"one\ntwo\n")
    first = LineFollower(path)
    first.read_new()
    _append(path, b"three\n")
    again = LineFollower(path, offset=first.offset, line_no=first.line_no)
    assert [(l.no, l.text) for l in again.read_new()] == [(3, "three")] and not again.restarted


@pytest.mark.parametrize("change", ["replaced", "truncated"])
def test_a_replaced_or_truncated_file_is_read_again_from_its_start(tmp_path, change):
    path = tmp_path / "a.jsonl"
    path.write_bytes(b"one\ntwo\nthree\n")
    follow = LineFollower(path)
    assert len(follow.read_new()) == 3 and not follow.restarted
    if change == "replaced":
        _replace(path, b"new\n")  # shorter, and another inode
    else:
        path.write_bytes(b"new\n")  # the same inode, cut and rewritten
    assert [(l.no, l.text) for l in follow.read_new()] == [(1, "new")] and follow.restarted
    _append(path, b"more\n")
    assert [(l.no, l.text) for l in follow.read_new()] == [(2, "more")] and not follow.restarted


def test_a_replaced_file_longer_than_the_old_one_is_read_from_its_start(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_bytes(b"one\n")
    follow = LineFollower(path)
    follow.read_new()
    _replace(path, b"first\nsecond\nthird\n")
    assert [l.text for l in follow.read_new()] == ["first", "second", "third"] and follow.restarted


@pytest.mark.parametrize("chunk", [8, 1 << 20])
def test_an_over_long_line_is_reported_once_and_dropped(tmp_path, chunk):
    path = tmp_path / "a.jsonl"
    path.write_bytes(b"ok\n" + b"x" * 100)
    follow = LineFollower(path, max_line_bytes=40, chunk_bytes=chunk)
    got = follow.read_new()
    assert [(l.text, l.too_long) for l in got] == [("ok", False), ("", True)]  # reported while still being written
    _append(path, b"x" * 100 + b"\nafter\n")
    assert [(l.no, l.text, l.too_long) for l in follow.read_new()] == [(3, "after", False)]
    assert follow.offset == path.stat().st_size


def test_a_whole_over_long_line_in_one_read_is_reported(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_bytes(b"x" * 100 + b"\nafter\n")
    assert [(l.no, l.too_long) for l in LineFollower(path, max_line_bytes=40).read_new()] == [(1, True), (2, False)]


def test_a_tail_reader_starts_at_a_line_near_the_end(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_bytes(b"".join(b"line %03d\n" % i for i in range(100)))  # 9 bytes a line
    follow = LineFollower(path, tail_bytes=9 * 3 + 4)  # cuts into line 96: its rest is dropped
    assert [l.text for l in follow.read_new()] == ["line 097", "line 098", "line 099"]
    exact = LineFollower(path, tail_bytes=9 * 2)  # starts on a line's first byte: nothing dropped
    assert [l.text for l in exact.read_new()] == ["line 098", "line 099"]


def test_bad_utf8_is_replaced_not_raised(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_bytes(b"\xff\xfe ok\n")
    (line,) = LineFollower(path).read_new()
    assert line.text == "\ufffd\ufffd ok"


# -------------------------------------------------------------------------------- the readers built on it

def _usage(n: int) -> bytes:
    return (json.dumps({"type": "usage", "model": "m", "input_tokens": n, "cached_input_tokens": 0,
                        "output_tokens": 1}) + "\n").encode()


def _blocked(dest: str) -> bytes:
    return (json.dumps({"type": "blocked", "ts": "2026-12-03T10:00:00Z", "via": "proxy", "destination": dest,
                        "reason": "not allowed"}) + "\n").encode()


def _sample(util: float) -> bytes:
    return GpuSample(1_800_000_000.0, (GpuReading(0, util, 1.0, 2.0, 3.0),)).to_line().encode()


def _event(text: str) -> bytes:
    return event_line("message", text=text).encode()


class _Reader:
    """Each reader seen the same way: feed it, read it, say what it holds now."""

    def __init__(self, kind, path):
        self.kind = kind
        self.reader = {"events": lambda: EventStream(path), "usage": lambda: GatewayRecord(path),
                       "blocked": lambda: GatewayRecord(path), "gpu": lambda: GpuHistory(path)}[kind]()
        self.seen: list = []

    def line(self, i: int) -> bytes:
        return {"events": lambda: _event(f"m{i}"), "usage": lambda: _usage(i), "blocked": lambda: _blocked(f"d{i}"),
                "gpu": lambda: _sample(float(i))}[self.kind]()

    def held(self) -> list:
        r = self.reader
        if self.kind == "events":
            events = r.read_new()
            self.seen = ([] if r.restarted else self.seen) + [e.text if e.type == "message" else "?" for e in events]
            return self.seen
        r.update()
        if self.kind == "usage":
            return [m.input_tokens for m in r.usage]
        if self.kind == "blocked":
            return [b.destination for b in r.recent]
        return [s.util_pct for s in r.samples]


READERS = ["events", "usage", "blocked", "gpu"]
HELD = {"events": lambda *i: [f"m{n}" for n in i], "usage": lambda *i: [sum(i)] if i else [],
        "blocked": lambda *i: [f"d{n}" for n in i], "gpu": lambda *i: [float(n) for n in i]}


@pytest.mark.parametrize("kind", READERS)
def test_each_reader_waits_for_a_partial_line(tmp_path, kind):
    path = tmp_path / "f.jsonl"
    r = _Reader(kind, path)
    assert r.held() == HELD[kind]()  # no file yet
    whole = r.line(5)
    path.write_bytes(r.line(3) + whole[:7])
    assert r.held() == HELD[kind](3)
    _append(path, whole[7:])
    assert r.held() == HELD[kind](3, 5)


@pytest.mark.parametrize("kind", READERS)
@pytest.mark.parametrize("change", ["replaced", "truncated"])
def test_each_reader_drops_what_it_held_when_the_file_is_replaced_or_truncated(tmp_path, kind, change):
    path = tmp_path / "f.jsonl"
    r = _Reader(kind, path)
    path.write_bytes(r.line(3) + r.line(4))
    assert r.held() == HELD[kind](3, 4)
    (_replace if change == "replaced" else lambda p, d: p.write_bytes(d))(path, r.line(7))
    assert r.held() == HELD[kind](7)


@pytest.mark.parametrize("kind", READERS)
def test_each_reader_skips_over_long_and_malformed_lines(tmp_path, kind):
    path = tmp_path / "f.jsonl"
    r = _Reader(kind, path)
    follower = r.reader.lines if kind == "events" else r.reader.follow
    follower.max_line_bytes = 1024
    path.write_bytes(r.line(3) + b"{" * 5000 + b"\n" + b"not json\n" + b'{"type": 1}\n' + r.line(4))
    held = r.held()
    if kind == "events":  # the event stream keeps what it could not read, marked malformed
        assert held[0] == "m3" and held[-1] == "m4" and set(held[1:-1]) == {"?"}
    else:
        assert held == HELD[kind](3, 4)
    if kind == "gpu":
        assert r.reader.rejected == 3
