"""Writing a report to disk: the figure, then Markdown, HTML and JSON, never over an existing report unless forced."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from nanogpt_tui.errors import UserError
from nanogpt_tui.fsutil import atomic_write_text
from nanogpt_tui.records import Timeline
from nanogpt_tui.reports.build import FIGURE_FILE, build_report
from nanogpt_tui.reports.render import report_blocks, to_html, to_markdown

FORMATS = ("md", "html", "json")
FILE_NAMES = {"md": "report.md", "html": "report.html", "json": "report.json"}
REPORT_DIR = "report"  # inside a session folder, for a one-session report
GROUP_DIR = "reports"  # inside the sessions folder, for a group report


@dataclass
class ReportResult:
    """What `write_report` wrote."""

    out_dir: Path
    files: list[Path] = field(default_factory=list)
    report: dict = field(default_factory=dict)


def parse_formats(text: str | Sequence[str]) -> tuple[str, ...]:
    items = [f.strip().lower() for f in (text.split(",") if isinstance(text, str) else text) if f.strip()]
    unknown = [f for f in items if f not in FORMATS]
    if unknown or not items:
        raise UserError(f"Unknown report format(s) {', '.join(unknown) or '(none)'}; use md, html and/or json, "
                        "e.g. --format md,html,json.")
    return tuple(dict.fromkeys(items))


def default_out_dir(session_dirs: Sequence[Path]) -> Path:
    """`sessions/<id>/report/` for one session; `sessions/reports/group-<hash of the ids>/` for several."""
    dirs = [Path(p) for p in session_dirs]
    if len(dirs) == 1:
        return dirs[0] / REPORT_DIR
    ids = sorted(p.name for p in dirs)
    digest = hashlib.sha256("\n".join(ids).encode()).hexdigest()[:10]
    return dirs[0].parent / GROUP_DIR / f"group-{len(ids)}-{digest}"


def write_report(session_dirs: Sequence[Path], *, timeline: Timeline | None, baselines_dir: Path | None = None,
                 out_dir: Path | None = None, formats: Sequence[str] = FORMATS, force: bool = False,
                 now: dt.datetime | None = None) -> ReportResult:
    """Write the report of one session (or a group of sessions) into `out_dir`.

    Files: `progress.png` (always), `report.md`, `report.html` (self-contained: the figure inlined) and
    `report.json` (docs/report-schema.md), as asked by `formats`. Refuses, naming the files, when any of them
    exists already, unless `force`. Used by `nanogpt-tui report` and the control room's `r` key.
    """
    if not session_dirs:
        raise UserError("Name at least one session to report on.")
    formats = parse_formats(formats)
    out = Path(out_dir) if out_dir is not None else default_out_dir(session_dirs)
    targets = [out / FIGURE_FILE] + [out / FILE_NAMES[f] for f in formats]
    existing = [p for p in targets if p.exists()]
    if existing and not force:
        raise UserError(f"{out} already holds a report ({', '.join(p.name for p in existing)}); pass --force to "
                        "replace it, or --out DIR to write elsewhere.")
    report, spec = build_report(session_dirs, timeline=timeline, baselines_dir=baselines_dir, now=now)
    from nanogpt_tui.reports.figure import render_progress_figure

    out.mkdir(parents=True, exist_ok=True)
    figure_path = out / FIGURE_FILE
    report["figure"].update(render_progress_figure(spec, figure_path))
    written = [figure_path]
    blocks = report_blocks(report, FIGURE_FILE)
    if "md" in formats:
        atomic_write_text(out / FILE_NAMES["md"], to_markdown(blocks), mode=0o644)
        written.append(out / FILE_NAMES["md"])
    if "html" in formats:
        html = to_html(blocks, report["title"], figure_path.read_bytes())
        atomic_write_text(out / FILE_NAMES["html"], html, mode=0o644)
        written.append(out / FILE_NAMES["html"])
    if "json" in formats:
        atomic_write_text(out / FILE_NAMES["json"], json.dumps(report, indent=2, allow_nan=False) + "\n", mode=0o644)
        written.append(out / FILE_NAMES["json"])
    return ReportResult(out_dir=out, files=written, report=report)
