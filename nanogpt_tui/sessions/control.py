"""The control folder: files the host writes and the session reads (the deadline, moved by `extend`)."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

from nanogpt_tui.fsutil import atomic_write_json
from nanogpt_tui.sessions.layout import DEADLINE_FILE

DEFAULT_GRACE_S = 30.0


@dataclass(frozen=True)
class Deadline:
    deadline: dt.datetime
    grace_s: float = DEFAULT_GRACE_S  # between SIGINT and SIGKILL when the deadline passes

    def seconds_left(self, now: dt.datetime | None = None) -> float:
        return (self.deadline - (now or dt.datetime.now(dt.timezone.utc))).total_seconds()


def write_deadline(control_dir: Path, deadline: dt.datetime, *, gpus: int, budget_gpu_hours: float,
                   grace_s: float = DEFAULT_GRACE_S) -> None:
    atomic_write_json(Path(control_dir) / DEADLINE_FILE, {
        "schema_version": 1,
        "deadline": deadline.astimezone(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "deadline_epoch": deadline.timestamp(),
        "gpus": gpus,
        "budget_gpu_hours": budget_gpu_hours,
        "grace_s": grace_s,
        "updated_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z"),
    })


def read_deadline(control_dir: Path) -> Deadline:
    """Raises ValueError with a sentence when the file is missing or malformed."""
    path = Path(control_dir) / DEADLINE_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        epoch = float(data["deadline_epoch"])
        grace = float(data.get("grace_s", DEFAULT_GRACE_S))
    except FileNotFoundError:
        raise ValueError(f"{path} does not exist") from None
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{path} is malformed ({err})") from None
    return Deadline(dt.datetime.fromtimestamp(epoch, dt.timezone.utc), grace)
