"""A session's GPU samples (`gpu.jsonl`, schema in docs/gpu-telemetry.md): the line format, an incremental
reader keeping a bounded history, the figures a card, a table row and a report show, and idle detection."""

from __future__ import annotations

import datetime as dt
import json
import math
import os
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from nanogpt_tui.follow import LineFollower

GPU_SCHEMA_VERSION = 1
SAMPLES_KEPT = 240  # per session: 20 minutes at one sample every 5 s
IDLE_UTIL_PCT = 5.0  # a GPU at or below this utilisation counts as idle
SPARK = "▁▂▃▄▅▆▇█"
TAIL_BYTES = 4 * 1024 * 1024  # what a first read of a long gpu.jsonl starts from the end of


@dataclass(frozen=True)
class GpuReading:
    """One GPU at one moment."""

    index: int
    util_pct: float | None
    mem_used_mib: float | None
    mem_total_mib: float | None
    power_w: float | None


@dataclass(frozen=True)
class GpuSample:
    """Every pinned GPU of a session at one moment (`at`: seconds since the epoch)."""

    at: float
    gpus: tuple[GpuReading, ...]
    source: str = ""

    @property
    def util_pct(self) -> float | None:
        """The mean utilisation over the GPUs that reported one."""
        values = [g.util_pct for g in self.gpus if g.util_pct is not None]
        return sum(values) / len(values) if values else None

    @property
    def mem_used_mib(self) -> float | None:
        values = [g.mem_used_mib for g in self.gpus if g.mem_used_mib is not None]
        return sum(values) if values else None

    @property
    def mem_total_mib(self) -> float | None:
        values = [g.mem_total_mib for g in self.gpus if g.mem_total_mib is not None]
        return sum(values) if values else None

    @property
    def power_w(self) -> float | None:
        values = [g.power_w for g in self.gpus if g.power_w is not None]
        return sum(values) if values else None

    @property
    def idle(self) -> bool:
        """Every GPU that reported a utilisation sat at or below IDLE_UTIL_PCT."""
        values = [g.util_pct for g in self.gpus if g.util_pct is not None]
        return bool(values) and all(v <= IDLE_UTIL_PCT for v in values)

    def to_line(self) -> str:
        moment = dt.datetime.fromtimestamp(self.at, dt.timezone.utc).isoformat(timespec="milliseconds")
        return json.dumps({"schema_version": GPU_SCHEMA_VERSION, "ts": moment.replace("+00:00", "Z"),
                           "source": self.source, "gpus": [
                               {"index": g.index, "util_pct": g.util_pct, "mem_used_mib": g.mem_used_mib,
                                "mem_total_mib": g.mem_total_mib, "power_w": g.power_w} for g in self.gpus]},
                          allow_nan=False) + "\n"


def _number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        return None
    return float(value)


def parse_sample(line: str) -> GpuSample | None:
    """A sample from one line of gpu.jsonl; None for a line that is not one (a torn write, another version)."""
    try:
        obj = json.loads(line)
    except ValueError:
        return None
    if not isinstance(obj, dict) or obj.get("schema_version") != GPU_SCHEMA_VERSION or not isinstance(
            obj.get("gpus"), list) or not isinstance(obj.get("ts"), str):
        return None
    try:
        at = dt.datetime.fromisoformat(obj["ts"].replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
    gpus = []
    for g in obj["gpus"]:
        if not isinstance(g, dict) or isinstance(g.get("index"), bool) or not isinstance(g.get("index"), int):
            return None
        util = _number(g.get("util_pct"))
        gpus.append(GpuReading(g["index"], None if util is None else min(util, 100.0), _number(g.get("mem_used_mib")),
                               _number(g.get("mem_total_mib")), _number(g.get("power_w"))))
    return GpuSample(at, tuple(gpus), obj.get("source") if isinstance(obj.get("source"), str) else "")


class GpuHistory:
    """The last SAMPLES_KEPT samples of a session's gpu.jsonl, read on from where the last read stopped."""

    def __init__(self, path: str | os.PathLike[str], kept: int = SAMPLES_KEPT) -> None:
        # Only the tail matters: a long-lived file is read from its last few MiB (thousands of samples).
        self.follow = LineFollower(path, tail_bytes=TAIL_BYTES)
        self.samples: deque[GpuSample] = deque(maxlen=kept)
        self.rejected = 0  # lines that were not samples

    @property
    def path(self) -> Path:
        return self.follow.path

    def update(self) -> bool:
        """Read what was appended; returns whether a sample arrived. A replaced or truncated file starts the
        history again."""
        lines = self.follow.read_new()
        if self.follow.restarted:
            self.samples.clear()
        added = False
        for line in lines:
            sample = None if line.too_long else parse_sample(line.text)
            if sample is None:
                self.rejected += 1
                continue
            self.samples.append(sample)
            added = True
        return added

    @property
    def latest(self) -> GpuSample | None:
        return self.samples[-1] if self.samples else None

    def idle_for_s(self, now: float) -> float:
        """How long every GPU has sat idle, up to now (0 when the last sample was busy or there is none)."""
        if not self.samples or not self.samples[-1].idle:
            return 0.0
        since = self.samples[-1].at
        for sample in reversed(self.samples):
            if not sample.idle:
                break
            since = sample.at
        return max(0.0, now - since)


def sparkline(values: list[float | None], width: int, top: float = 100.0) -> str:
    """The last `width` values as block characters from 0 to `top` (a gap for a missing value)."""
    out = []
    for v in values[-width:]:
        if v is None:
            out.append(" ")
        else:
            out.append(SPARK[min(len(SPARK) - 1, max(0, int(v / top * (len(SPARK) - 1) + 0.5)))])
    return "".join(out)


@dataclass(frozen=True)
class GpuFigures:
    """What a card, a row and a report say about a session's GPUs: the latest sample, the utilisation history,
    how long they have sat idle, and the means over the samples kept."""

    latest: GpuSample | None
    util_history: tuple[float | None, ...]
    idle_s: float
    mean_util_pct: float | None
    mean_power_w: float | None

    @classmethod
    def of(cls, history: GpuHistory, now: float) -> GpuFigures:
        utils = [s.util_pct for s in history.samples]
        known = [u for u in utils if u is not None]
        powers = [s.power_w for s in history.samples if s.power_w is not None]
        return cls(history.latest, tuple(utils), history.idle_for_s(now),
                   sum(known) / len(known) if known else None, sum(powers) / len(powers) if powers else None)

    def compact(self) -> str:
        """`97% · mem 43% · 5.1 kW` (mean utilisation, memory used of all the GPUs', their power); `-` without
        samples."""
        s = self.latest
        if s is None:
            return "-"
        parts = ["util -" if s.util_pct is None else f"{s.util_pct:.0f}%"]
        if s.mem_used_mib is not None and s.mem_total_mib:
            parts.append(f"mem {100 * s.mem_used_mib / s.mem_total_mib:.0f}%")
        if s.power_w is not None:
            parts.append(f"{s.power_w / 1000:.1f} kW" if s.power_w >= 1000 else f"{s.power_w:.0f} W")
        return " · ".join(parts)
