"""A session's submissions, and the diff of a submission's code against the anchor it started from."""

from __future__ import annotations

from pathlib import Path

from nanogpt_tui.contract import layout as L


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
                    if p.is_file() and p.suffix in (".py", ".sh", ".toml")})
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
