"""A session's submissions, and the diff of a submission's code against the anchor it started from."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from nanogpt_tui.contract import layout as L
from nanogpt_tui.validator.protocol import CODE_SUFFIXES as FROZEN_SUFFIXES


def submissions(session_dir: Path) -> list[Path]:
    """The session's submission folders, in numeric order."""
    folder = Path(session_dir) / L.WORKSPACE / "submissions"
    if not folder.is_dir():
        return []

    def key(p: Path) -> tuple[int, str]:
        tail = p.name.rsplit("_", 1)[-1]
        return (int(tail) if tail.isdigit() else 1 << 30, p.name)

    return sorted((p for p in folder.iterdir() if p.is_dir()), key=key)


def submission_diff(session_dir: Path, submission: Path, max_lines: int = 20_000) -> list[str]:
    """A unified diff of a submission's code files against the anchor the session started from."""
    import difflib

    anchor = Path(session_dir) / L.RUNNER / "anchor"
    names = sorted({p.name for d in (anchor, submission) if d.is_dir() for p in d.iterdir()
                    if p.is_file() and p.suffix in CODE_SUFFIXES})
    out: list[str] = []
    for name in names:
        a, b = anchor / name, submission / name

        def read(p: Path) -> list[str]:
            try:
                return p.read_text(encoding="utf-8", errors="replace").splitlines()
            except FileNotFoundError:
                return []

        out.extend(difflib.unified_diff(read(a), read(b), f"anchor/{name}", f"{submission.name}/{name}",
                                        lineterm=""))
        if len(out) > max_lines:
            out = out[:max_lines] + [f"… diff clipped at {max_lines} lines"]
            break
    return out or ["(no difference from the anchor)"]


# --- any two versions of a session's code, with each hunk's kind of change ------------------------------------

ANCHOR = "anchor"
# The files a submission is judged by: what `submit` freezes, hashes and retimes. The anchor's record.toml is the
# record's description, not code a submission carries (the scripted agent copies run.sh and train_gpt.py only), so
# it is no change of a version.
CODE_SUFFIXES = FROZEN_SUFFIXES


def experiments(session_dir: Path) -> list[Path]:
    """The session's experiment folders (`experiments/NN_name`), in name order."""
    folder = Path(session_dir) / L.WORKSPACE / "experiments"
    return sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []


def versions(session_dir: Path) -> list[tuple[str, Path]]:
    """Every version of the code a diff can name: the anchor, then the experiments, then the submissions."""
    out = [(ANCHOR, Path(session_dir) / L.RUNNER / "anchor")]
    out += [(p.name, p) for p in experiments(session_dir)]
    out += [(p.name, p) for p in submissions(session_dir)]
    return out


def resolve_version(session_dir: Path, name: str) -> tuple[str, Path]:
    """`anchor`, a submission (`submission_2`) or an experiment (`03_lr`, or just `03`) of the session."""
    from nanogpt_tui.errors import UserError

    known = versions(session_dir)
    exact = [v for v in known if v[0] == name]
    if exact:
        return exact[0]
    prefixed = [v for v in known if v[0].startswith(f"{name}_")] if name else []
    if len(prefixed) == 1:
        return prefixed[0]
    names = ", ".join(n for n, _ in known)
    raise UserError(f"The session has no code version named {name!r}; use one of: {names}.")


def _code(folder: Path) -> dict[str, list[str]]:
    if not folder.is_dir():
        return {}
    return {p.name: p.read_text(encoding="utf-8", errors="replace").splitlines()
            for p in sorted(folder.iterdir()) if p.is_file() and p.suffix in CODE_SUFFIXES}


@dataclass
class Hunk:
    """One hunk of a unified diff: its file, its header, its lines, and the kind of change it is."""

    file: str
    header: str
    lines: list[str]
    new_start: int
    new_count: int
    kind: str  # hyperparameter | algorithmic | systems | neutral | unclassified

    def to_dict(self) -> dict:
        return {"file": self.file, "header": self.header, "kind": self.kind, "lines": self.lines}


def classified_hunks(a: Path, b: Path, a_label: str, b_label: str, context: int = 3) -> list[Hunk]:
    """The hunks of the diff from folder `a` to folder `b`, each with the change classifier's kind for the
    evidence that falls inside it: its non-neutral kinds, heaviest first, joined by ` + ` where a hunk holds
    several (`algorithmic + hyperparameter`: a layer count and a step count three lines apart); neutral when all
    of it is; unclassified where the classifier named no place inside."""
    import difflib
    import re
    from collections import Counter

    from nanogpt_tui.classify import classify_dirs

    try:
        evidence = classify_dirs(a, b).evidence
    except (SyntaxError, ValueError, RecursionError, OSError):  # the diff still shows, only without kinds
        evidence = []
    old, new = _code(a), _code(b)
    hunks: list[Hunk] = []
    header_re = re.compile(r"^@@ -\d+(?:,\d+)? \+(\d+)(?:,(\d+))? @@")
    for name in sorted(set(old) | set(new)):
        lines = list(difflib.unified_diff(old.get(name, []), new.get(name, []), f"{a_label}/{name}",
                                          f"{b_label}/{name}", lineterm="", n=context))
        current: Hunk | None = None
        for line in lines[2:]:
            match = header_re.match(line)
            if match:
                start, count = int(match.group(1)), int(match.group(2) or 1)
                current = Hunk(name, line, [], start, count, "unclassified")
                hunks.append(current)
            elif current is not None:
                current.lines.append(line)
    for hunk in hunks:
        inside = [e for e in evidence if e.file == hunk.file and e.line is not None
                  and hunk.new_start <= e.line <= hunk.new_start + max(hunk.new_count, 1) - 1]
        if not inside and not any(e.line for e in evidence if e.file == hunk.file):
            inside = [e for e in evidence if e.file == hunk.file]  # file-level evidence (added, removed)
        weights: Counter[str] = Counter()
        for e in inside:
            if e.kind != "neutral":
                weights[e.kind] += e.weight
        hunk.kind = " + ".join(k for k, _ in sorted(weights.items(), key=lambda kv: (-kv[1], kv[0]))) if weights \
            else ("neutral" if inside else "unclassified")
    return hunks


def unified_lines(hunks: list[Hunk], a_label: str, b_label: str) -> list[str]:
    """The hunks as a unified diff, each header followed by its kind of change."""
    out: list[str] = []
    last_file = None
    for hunk in hunks:
        if hunk.file != last_file:
            out += [f"--- {a_label}/{hunk.file}", f"+++ {b_label}/{hunk.file}"]
            last_file = hunk.file
        out.append(f"{hunk.header}  [{hunk.kind}]")
        out += hunk.lines
    return out or [f"(no difference between {a_label} and {b_label})"]


def side_by_side_lines(hunks: list[Hunk], a_label: str, b_label: str, width: int = 160) -> list[str]:
    """The hunks side by side: old on the left, new on the right, `|` between (changed rows marked)."""
    half = max(20, (width - 3) // 2)

    def cell(text: str) -> str:
        text = text.expandtabs(4)
        return text[:half].ljust(half)

    out: list[str] = []
    last_file = None
    for hunk in hunks:
        if hunk.file != last_file:
            out.append(f"{cell(a_label + '/' + hunk.file)} | {b_label}/{hunk.file}")
            last_file = hunk.file
        out.append(f"{hunk.header}  [{hunk.kind}]")
        left: list[str] = []
        right: list[str] = []

        def flush() -> None:
            for i in range(max(len(left), len(right))):
                lt = left[i] if i < len(left) else ""
                rt = right[i] if i < len(right) else ""
                out.append(f"{cell(lt)} {'<' if lt and not rt else '>' if rt and not lt else '|'} {rt}".rstrip())
            left.clear()
            right.clear()

        for line in hunk.lines:
            if line.startswith("-"):
                left.append(line[1:])
            elif line.startswith("+"):
                right.append(line[1:])
            else:
                flush()
                text = line[1:] if line.startswith(" ") else line
                out.append(f"{cell(text)}   {text}".rstrip())
        flush()
    return out or [f"(no difference between {a_label} and {b_label})"]
