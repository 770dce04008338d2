"""The one follower of files that others append lines to (events, the gateway's records, GPU samples): new whole
lines from a byte offset, a partial last line kept for later, a replaced or truncated file read again from its start,
and over-long lines skipped and reported instead of held in memory."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

MAX_LINE_BYTES = 16 * 1024 * 1024
CHUNK_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class Line:
    """One line read (without its newline): its number since reading began and its text (UTF-8, bad bytes
    replaced), or `too_long` with empty text for a line longer than the follower keeps."""

    no: int
    text: str
    too_long: bool = False


class LineFollower:
    """Follows a file that others append lines to, from a byte offset.

    `read_new()` returns the lines completed since the last call. A last line without its newline yet (the writer is
    mid-line) is kept and finished by a later call, or returned as it is when `final=True` (the writer is gone).
    A file that shrank or was replaced (another inode) is read again from its start, and `restarted` says so, so a
    reader that sums lines can drop what it summed. A line longer than `max_line_bytes` is returned once as
    `too_long` and its bytes are dropped up to its newline, so a runaway line cannot exhaust memory.

    `offset` is where a new follower would resume: the end of the last line returned (or skipped). With
    `tail_bytes`, a first read (or one after a restart) of a longer file starts that many bytes before its end, at
    the next line's start, for readers that keep only the newest lines; line numbers then count from there.
    """

    def __init__(self, path: str | os.PathLike[str], *, offset: int = 0, line_no: int = 0,
                 max_line_bytes: int = MAX_LINE_BYTES, tail_bytes: int | None = None,
                 chunk_bytes: int = CHUNK_BYTES) -> None:
        self.path = Path(path)
        self.offset = offset
        self.line_no = line_no
        self.max_line_bytes = max_line_bytes
        self.tail_bytes = tail_bytes
        self.chunk_bytes = chunk_bytes
        self.restarted = False  # the last read found the file shrunk or replaced and began again
        self.found = False  # the file was there at the last read
        self._inode: int | None = None
        self._read_to = offset  # bytes of the file read so far (offset plus the pending partial line)
        self._pending = bytearray()  # the partial last line
        self._skipping = False  # inside a line that is dropped up to its newline

    def _start_over(self, size: int, handle) -> None:
        self.offset = self._read_to = self.line_no = 0
        self._pending.clear()
        self._skipping = False
        if self.tail_bytes is not None and size > self.tail_bytes:
            start = size - self.tail_bytes
            handle.seek(start - 1)
            # Cut mid-line unless the byte before the start ends a line: that line's rest is dropped silently.
            self._skipping = handle.read(1) != b"\n"
            self.offset = self._read_to = start

    def read_new(self, *, final: bool = False) -> list[Line]:
        self.restarted = False
        try:
            handle = open(self.path, "rb")
        except FileNotFoundError:
            self.found = False
            return []
        self.found = True
        lines: list[Line] = []
        with handle:
            st = os.fstat(handle.fileno())
            if self._inode is None and self._read_to == 0 and self.tail_bytes is not None:
                self._start_over(st.st_size, handle)  # a first read of a tail reader
            elif (self._inode is not None and st.st_ino != self._inode) or st.st_size < self._read_to:
                self._start_over(st.st_size, handle)
                self.restarted = True
            self._inode = st.st_ino
            handle.seek(self._read_to)
            left = st.st_size - self._read_to  # up to the size seen now: a writer that keeps going is read next time
            while left > 0:
                data = handle.read(min(left, self.chunk_bytes))
                if not data:
                    break
                left -= len(data)
                self._read_to += len(data)
                self._take(data, lines)
        if final:
            if self._pending:
                self._line(bytes(self._pending), lines)
                self._pending.clear()
            self._skipping = False
            self.offset = self._read_to
        return lines

    def _take(self, data: bytes, lines: list[Line]) -> None:
        *whole, rest = data.split(b"\n")
        for piece in whole:
            if self._skipping:
                self._skipping = False
                self.offset += len(piece) + 1
                continue
            if self._pending:
                piece = bytes(self._pending) + piece
                self._pending.clear()
            self.offset += len(piece) + 1
            self._line(piece, lines)
        if self._skipping:
            self.offset += len(rest)
            return
        self._pending += rest
        if len(self._pending) > self.max_line_bytes:
            self.offset += len(self._pending)
            self._pending.clear()
            self._skipping = True
            self.line_no += 1
            lines.append(Line(self.line_no, "", too_long=True))

    def _line(self, raw: bytes, lines: list[Line]) -> None:
        self.line_no += 1
        if len(raw) > self.max_line_bytes:
            lines.append(Line(self.line_no, "", too_long=True))
        else:
            lines.append(Line(self.line_no, raw.decode("utf-8", "replace")))
