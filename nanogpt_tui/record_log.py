"""Reading a speedrun training log: its code section, and that section split into the record's own files."""

from __future__ import annotations

import re

# The script that wrote the log named the first file it printed after itself; the others follow file headers.
MAIN_FILE = "train_gpt.py"
FILE_HEADER_RULE = "-" * 40
# Since 2026-01-18 the script logs `code += f"\n\n{'-'*40}\n# NAME\n{'-'*40}\n\n" + NAME's text` per companion
# file, then prints the whole with print() (one newline more). The pattern undoes exactly that.
_HEADER = re.compile(r"\n\n" + FILE_HEADER_RULE + r"\n# (?P<name>[^\n]*)\n" + FILE_HEADER_RULE + r"\n\n")
_FILE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


def code_section(log_text: str) -> str:
    """The code a speedrun log begins with: every line before the first line of `=` characters, each ending in a
    newline. The logs of late 2024 print a separator line before the code as well: there the code is what lies
    between the first two. Raises ValueError when the log has no such section."""
    lines = log_text.splitlines()
    separators = [i for i, line in enumerate(lines) if line.strip() and set(line.strip()) == {"="}]
    if not separators:
        raise ValueError("the log has no line of '=' characters separating the code from the run's output")
    start = 0
    if separators[0] == 0:
        if len(separators) < 2 or separators[1] == 1:
            raise ValueError("the log starts with the separator line and no code follows it before the next one")
        start = 1
    return "".join(f"{ln}\n" for ln in lines[start:separators[start]])


def split_code_section(section: str) -> dict[str, str]:
    """The record's files, in the order the log holds them: `train_gpt.py` first, then one per file header (a line
    of 40 `-`, `# NAME`, a line of 40 `-`). Each file's text is what the script read from disk: the blank lines the
    header adds and the final newline `print` adds are taken off. Raises ValueError for a header whose name is not
    a plain file name or names a file twice."""
    text = section[:-1] if section.endswith("\n") else section
    files: dict[str, str] = {}
    name, start = MAIN_FILE, 0
    for match in _HEADER.finditer(text):
        files[name] = text[start:match.start()]
        name, start = match["name"].strip(), match.end()
        if not _FILE_NAME.fullmatch(name) or name in (".", ".."):
            raise ValueError(f"the file header '# {name}' does not name a plain file")
        if name in files:
            raise ValueError(f"the code section names {name} twice")
    files[name] = text[start:]
    return files


def join_code_files(files: dict[str, str]) -> str:
    """The code section a log would hold for these files (the inverse of `split_code_section`)."""
    items = iter(files.items())
    _, text = next(items)
    for name, body in items:
        text += f"\n\n{FILE_HEADER_RULE}\n# {name}\n{FILE_HEADER_RULE}\n\n{body}"
    return text + "\n"
