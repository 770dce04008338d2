"""`search_log`: find a line in a whole log file as it is shown (rendered and filtered), upwards, wrapping around."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from nanogpt_tui.tui.data.logrender import LogLine
from nanogpt_tui.tui.data.logtail import LogTail

SEARCH_CHUNK_BYTES = 256 * 1024


@dataclass(frozen=True)
class LogMatch:
    """A display line `search_log` found: where its raw line begins in the file, and the line's text."""

    offset: int
    text: str
    wrapped: bool = False  # found below the starting point (the search went on from the end of the file)


def _lines_backwards(handle, lo: int, hi: int, chunk_bytes: int = SEARCH_CHUNK_BYTES):
    """(offset, raw line) of the complete lines between byte `lo` (a line start) and byte `hi` (a line start, or
    the end of the last complete line), the last first, read in chunks of `chunk_bytes`."""
    pos, carry = hi, b""
    while pos > lo:
        step = min(chunk_bytes, pos - lo)
        pos -= step
        handle.seek(pos)
        data = handle.read(step) + carry  # ends at a line boundary: right before what was handed out already
        parts = data.split(b"\n")
        parts.pop()  # empty: data ends with a newline
        carry = b""
        if pos > lo:
            carry = parts.pop(0) + b"\n"  # cut by the chunk's start: completed by the next chunk
        end = pos + len(data)
        for line in reversed(parts):
            end -= len(line) + 1
            yield end, line


def search_log(path: str | os.PathLike[str], needle: str, render: Callable[[str], list[LogLine]], *, before: int,
               after: int | None = None, kinds: tuple[str, ...] | None = None,
               cancelled: Callable[[], bool] | None = None, progress: Callable[[float], None] | None = None,
               chunk_bytes: int = SEARCH_CHUNK_BYTES) -> LogMatch | None:
    """The nearest display line above byte `before` that contains `needle` (case-insensitive), searching the
    file upwards from there; when there is none and `after` is given (the start of the last line the caller
    holds), the last one below it, searching up from the end of the file (wrapping around). Lines are matched
    as they are shown: rendered by `render` (so masked keys are never found by their value) and of the event
    types in `kinds` (None: all). Runs for as long as the file takes (call it off the UI thread); `cancelled`
    is asked between lines, and `progress` hears the share of the file searched. None when nothing matched."""
    want = needle.lower()
    if not want:
        return None
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        regions = [(0, min(before, size), False)]
        if after is not None and after < size:
            handle.seek(0)
            regions.append((after, LogTail(path)._complete_end(handle, size), True))
        total = sum(hi - lo for lo, hi, _ in regions) or 1
        done = 0
        for lo, hi, wrapped in regions:
            for n, (offset, raw) in enumerate(_lines_backwards(handle, lo, hi, chunk_bytes)):
                if n % 1000 == 0:
                    if cancelled is not None and cancelled():
                        return None
                    if progress is not None:
                        progress((done + hi - offset) / total)
                if wrapped and offset <= after:
                    break  # the caller's own last line: everything below it was searched
                for line in reversed(render(LogTail._decode(raw))):
                    if (kinds is None or line.kind in kinds) and want in line.text.lower():
                        return LogMatch(offset, line.text, wrapped)
            done += hi - lo
    return None
