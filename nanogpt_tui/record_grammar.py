"""Record code written for a newer Python than ours: the one piece of newer grammar the records use, bridged.

Since Python 3.12 (PEP 701) a replacement field of an f-string may hold a string in the f-string's own quote,
`f"{meta.get("filename", "Unknown")}"`; Python 3.11, which we support, rejects the line. Records of 2025 use it
in logging lines, so on 3.11 their whole file would not parse and could only be compared as text. Where a line
does not parse, `parse_newer` rewrites each such inner string to the other quote (`meta.get('filename',
'Unknown')`), which 3.12 parses to the same tree, and parses again; a line it cannot rewrite so (an inner string
holding both quotes, a triple-quoted f-string) leaves the SyntaxError as it was. On 3.12 and newer the first parse
succeeds and nothing is rewritten.
"""

from __future__ import annotations

import ast
import re

_FSTRING_START = re.compile(r"(?<![A-Za-z0-9_])(?:[fF][rR]?|[rR][fF])(?P<q>['\"])")
MAX_REWRITTEN_LINES = 200  # a file with more lines our Python cannot parse is not 3.12 logging: give up


def _end_of_string(line: str, start: int, quote: str) -> int | None:
    """The index just after the plain string literal opening at `start` (its quote), or None if it does not
    close on this line."""
    i = start + 1
    while i < len(line):
        if line[i] == "\\":
            i += 2
            continue
        if line[i] == quote:
            return i + 1
        i += 1
    return None


def _rewrite_fstring(line: str, start: int, quote: str) -> tuple[str, int] | None:
    """The f-string opening at `start` (index of its quote) with the strings of its replacement fields in the
    other quote, and the index after it; None when that cannot be done on this line."""
    other = "'" if quote == '"' else '"'
    if line[start:start + 3] == quote * 3:
        return None
    out, i, depth = [], start + 1, 0
    while i < len(line):
        ch = line[i]
        if depth == 0:
            if ch == "\\":
                out.append(line[i:i + 2])
                i += 2
                continue
            if ch in "{}" and line[i + 1:i + 2] == ch:
                out.append(ch * 2)
                i += 2
                continue
            if ch == quote:
                return line[:start + 1] + "".join(out) + quote, i + 1
            if ch == "{":
                depth = 1
            out.append(ch)
            i += 1
            continue
        if ch in "'\"":
            prefix_is_f = bool(out) and out[-1] in "fF"
            end = _end_of_string(line, i, ch)
            if end is None or prefix_is_f:
                return None  # a nested f-string or an unclosed one: not the simple case
            body = line[i + 1:end - 1]
            if ch == quote:
                if other in body:
                    return None
                out.append(other + body + other)
            else:
                out.append(line[i:end])
            i = end
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        out.append(ch)
        i += 1
    return None


def bridge_line(line: str) -> str | None:
    """`line` with every f-string's inner strings in the other quote where they used the f-string's own; None
    when nothing on the line needed it or it could not be done."""
    out, pos, changed = [], 0, False
    while True:
        match = _FSTRING_START.search(line, pos)
        if match is None:
            break
        start = match.start("q")
        rewritten = _rewrite_fstring(line, start, match["q"])
        if rewritten is None:
            return None
        text, end = rewritten
        fstring = text[start:]
        changed = changed or fstring != line[start:end]
        out.append(line[pos:start] + fstring)
        pos = end
    out.append(line[pos:])
    return "".join(out) if changed else None


def parse_newer(text: str, filename: str) -> ast.Module:
    """`ast.parse(text)`, bridging PEP 701 f-strings line by line where this Python rejects them."""
    try:
        return ast.parse(text, filename=filename)
    except SyntaxError as err:
        first = error = err
    lines = text.split("\n")
    for _ in range(MAX_REWRITTEN_LINES):
        lineno = error.lineno
        if lineno is None or not 1 <= lineno <= len(lines):
            break
        bridged = bridge_line(lines[lineno - 1])
        if bridged is None:
            break
        lines[lineno - 1] = bridged
        try:
            return ast.parse("\n".join(lines), filename=filename)
        except SyntaxError as err:
            if err.lineno == lineno and err.msg == error.msg:
                break
            error = err
    raise first
