"""Reading speedrun training logs: the final `step:N/N val_loss:X train_time:Yms` line that scores a run."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from nanogpt_tui.errors import UserError

# The speedrun prints e.g. `step:1600/1600 val_loss:3.2770 train_time:98031ms step_avg:61.27ms`.
VAL_LINE = re.compile(
    r"^step:(?P<step>\d+)/(?P<total>\d+)\s+val_loss:(?P<loss>[0-9]*\.?[0-9]+(?:[eE][-+]?\d+)?)"
    r"\s+train_time:(?P<time>[0-9]*\.?[0-9]+)ms"
)


@dataclass(frozen=True)
class FinalLine:
    """The line that scores a run."""

    step: int
    total_steps: int
    val_loss: float
    train_time_ms: float


def _separator_index(lines: list[str]) -> int | None:
    for index, line in enumerate(lines):
        stripped = line.strip()
        if len(stripped) >= 10 and set(stripped) == {"="}:
            return index
    return None


def output_section(text: str) -> str:
    """The run's output: logs that begin with the code (records print their own source) start after the first
    line of `=` characters; logs without that separator are all output."""
    lines = text.splitlines()
    index = _separator_index(lines)
    return text if index is None else "\n".join(lines[index + 1 :])


def code_section(text: str) -> str | None:
    """The code a log begins with (everything before the first line of `=` characters, trailing blank lines
    dropped), or None when the log has no such section."""
    lines = text.splitlines()
    index = _separator_index(lines)
    if not index:
        return None
    return "\n".join(lines[:index]).rstrip("\n") + "\n"


@dataclass(frozen=True)
class RunLog:
    """One run's log as `stats` reads it: where it is, its scoring line, and the code it ran (if it says)."""

    path: Path
    final: FinalLine
    code: str | None


def last_val_line(text: str) -> FinalLine | None:
    """The last validation line of the run's output, or None when it printed none."""
    found = None
    for line in output_section(text).splitlines():
        match = VAL_LINE.match(line.strip())
        if match:
            found = match
    if found is None:
        return None
    return FinalLine(step=int(found["step"]), total_steps=int(found["total"]), val_loss=float(found["loss"]),
                     train_time_ms=float(found["time"]))


def final_line(text: str) -> FinalLine | None:
    """The scoring line: the last validation line, and only if it is at the final step (a run cut short has none)."""
    line = last_val_line(text)
    if line is None or line.step != line.total_steps:
        return None
    return line


def read_final_lines(paths: list[Path]) -> list[FinalLine]:
    """Each file one run; every file must hold a final line, else a clear error names the file."""
    return [log.final for log in read_run_logs(paths)]


def read_run_logs(paths: list[Path]) -> list[RunLog]:
    """Each file one run, with the code it begins with; every file must hold a final line, else a clear error
    names the file."""
    results = []
    for path in paths:
        try:
            text = Path(path).read_text(encoding="utf-8", errors="replace")
        except OSError as err:
            raise UserError(f"Cannot read the log {path} ({err.strerror}); check the path.") from None
        line = final_line(text)
        if line is None:
            last = last_val_line(text)
            detail = (f"its last validation line is at step {last.step} of {last.total_steps}" if last
                      else "it has no `step:N/N val_loss:X train_time:Yms` line")
            raise UserError(f"The log {path} did not finish: {detail}; pass only logs of completed runs.")
        results.append(RunLog(path=Path(path), final=line, code=code_section(text)))
    return results
