"""`LogTail`: a bounded window on the end of a growing log, read by byte offset; a 1 GB file opens by seeking
backwards from its end, and older lines are read on demand."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

LOG_WINDOW_LINES = 5_000  # lines a live log view keeps in memory; older ones are read from disk on demand
MAX_LINE_CHARS = 4_096  # a longer line is clipped for display (the file keeps it whole)


class LogTail:
    """A window on the end of a growing text file, read by byte offset.

    `open()` returns the last lines by reading backwards from the end in blocks (a 1 GB file opens in
    milliseconds); `read_new()` returns complete lines appended since; `read_older()` reads lines before the
    window's start; `read_around(offset)` moves the window's start to lines around a line found by
    `search_log`. A file that shrank or was replaced is read again from its tail. When the writer gets
    more than `max_lag_bytes` ahead, the lines in between are skipped with one note, so a flood cannot make
    the reader fall ever further behind. After each read, `offsets` holds the byte offset of each line it
    returned.
    """

    BLOCK = 64 * 1024

    def __init__(self, path: str | os.PathLike[str], *, max_lag_bytes: int = 8 * 1024 * 1024) -> None:
        self.path = Path(path)
        self.start = 0  # byte offset of the first line handed out
        self.offset = 0  # byte offset after the last complete line handed out
        self.max_lag_bytes = max_lag_bytes
        self.offsets: list[int] = []  # where each line the last read returned begins
        self._inode: int | None = None

    @staticmethod
    def _decode(raw: bytes) -> str:
        text = raw.decode("utf-8", "replace").rstrip("\r")
        return text if len(text) <= MAX_LINE_CHARS else text[:MAX_LINE_CHARS] + f" … (+{len(text) - MAX_LINE_CHARS} chars)"

    def _lines_before(self, handle, end: int, n: int) -> tuple[int, list[bytes]]:
        """The last `n` complete lines before byte `end` (which sits at a line start) and where the first begins."""
        if end <= 0 or n <= 0:
            self.offsets = []
            return end, []
        pos, buf = end, b""
        while pos > 0 and buf.count(b"\n") <= n:
            step = min(self.BLOCK, pos)
            pos -= step
            handle.seek(pos)
            buf = handle.read(step) + buf
        lines = buf.split(b"\n")
        if buf.endswith(b"\n"):
            lines.pop()
        if pos > 0:
            lines.pop(0)  # a partial line: the block boundary cut it
        lines = lines[-n:]
        start = end - sum(len(x) + 1 for x in lines)
        self._set_offsets(start, lines)
        return start, lines

    def _set_offsets(self, start: int, lines: list[bytes]) -> None:
        offsets, pos = [], start
        for line in lines:
            offsets.append(pos)
            pos += len(line) + 1
        self.offsets = offsets

    def open(self, n: int = LOG_WINDOW_LINES) -> list[str]:
        """The last `n` complete lines; later `read_new()` calls continue from there."""
        try:
            with open(self.path, "rb") as handle:
                st = os.fstat(handle.fileno())
                self._inode = st.st_ino
                size = st.st_size
                end = self._complete_end(handle, size)
                self.start, lines = self._lines_before(handle, end, n)
                self.offset = end
                return [self._decode(x) for x in lines]
        except FileNotFoundError:
            self.start = self.offset = 0
            self.offsets = []
            return []

    def read_all(self) -> Iterator[str]:
        """Every complete line from the start of the file, read a block at a time (a whole log, as `sessions logs`
        prints it, without holding it in memory); later `read_new()` calls continue after the last one."""
        self.offsets = []
        try:
            handle = open(self.path, "rb")
        except FileNotFoundError:
            self.start = self.offset = 0
            return
        with handle:
            st = os.fstat(handle.fileno())
            self._inode, self.start, self.offset = st.st_ino, 0, 0
            end = self._complete_end(handle, st.st_size)
            handle.seek(0)
            buf = b""
            while self.offset < end:
                block = handle.read(min(self.BLOCK, end - self.offset - len(buf)))
                if not block:
                    break
                *complete, buf = (buf + block).split(b"\n")
                for raw in complete:
                    self.offset += len(raw) + 1
                    yield self._decode(raw)

    def _complete_end(self, handle, size: int) -> int:
        """The offset just after the last newline at or before `size` (a writer may be mid-line)."""
        pos = size
        while pos > 0:
            step = min(self.BLOCK, pos)
            handle.seek(pos - step)
            chunk = handle.read(step)
            i = chunk.rfind(b"\n")
            if i >= 0:
                return pos - step + i + 1
            pos -= step
        return 0

    def read_new(self, max_lines: int = LOG_WINDOW_LINES) -> tuple[list[str], bool]:
        """Lines appended since the last call, and whether the window restarted (file replaced, or too far
        behind: then the lines are the new tail and the caller should drop what it holds)."""
        self.offsets = []
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return [], False
        if (self._inode is not None and st.st_ino != self._inode) or st.st_size < self.offset:
            return self.open(max_lines), True
        if st.st_size - self.offset > self.max_lag_bytes:
            return self.open(max_lines), True
        if st.st_size == self.offset:
            return [], False
        with open(self.path, "rb") as handle:
            handle.seek(self.offset)
            data = handle.read(st.st_size - self.offset)
        end = data.rfind(b"\n")
        if end < 0:
            return [], False
        chunk = data[: end + 1]
        first = self.offset
        self.offset += len(chunk)
        lines = chunk.split(b"\n")[:-1]
        restarted = len(lines) > max_lines
        if restarted:
            first = self.offset - sum(len(x) + 1 for x in lines[-max_lines:])
            lines = lines[-max_lines:]
        self._set_offsets(first, lines)
        return [self._decode(x) for x in lines], restarted

    def read_older(self, n: int) -> list[str]:
        """Up to `n` lines before the window's first line (empty at the start of the file)."""
        self.offsets = []
        if self.start <= 0:
            return []
        try:
            with open(self.path, "rb") as handle:
                self.start, lines = self._lines_before(handle, self.start, n)
        except FileNotFoundError:
            return []
        return [self._decode(x) for x in lines]

    def read_around(self, offset: int, before: int, after: int) -> list[str]:
        """`before` lines before the line starting at byte `offset`, that line, and up to `after` - 1 lines after
        it; the window's start moves there (`read_older()` goes on from it). `read_new()` is not affected: it
        still continues from the end."""
        self.offsets = []
        try:
            with open(self.path, "rb") as handle:
                start, older = self._lines_before(handle, offset, before)
                handle.seek(offset)
                newer: list[bytes] = []
                buf = b""
                while len(newer) < after:
                    block = handle.read(self.BLOCK)
                    if not block:
                        break  # the last line has no newline yet: a writer is mid-line
                    buf += block
                    *complete, buf = buf.split(b"\n")
                    newer.extend(complete)
                newer = newer[:after]
        except FileNotFoundError:
            return []
        self.start = start
        lines = older + newer
        self._set_offsets(start, lines)
        return [self._decode(x) for x in lines]

    @property
    def at_start(self) -> bool:
        return self.start <= 0

    def position(self) -> tuple[int, int, int | None]:
        """(start, offset, inode): where the window stands, to `resume` a tail on the same file later."""
        return self.start, self.offset, self._inode

    def resume(self, position: tuple[int, int, int | None], max_lag_bytes: int) -> bool:
        """Stand at a `position` taken earlier, if the file is still the same one and has grown by at most
        `max_lag_bytes` since (then `read_new()` returns what was appended meanwhile); False otherwise."""
        start, offset, inode = position
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return False
        if inode is None or st.st_ino != inode or st.st_size < offset or st.st_size - offset > max_lag_bytes:
            return False
        self.start, self.offset, self._inode = start, offset, inode
        return True
