"""The one door from the control room to the reports module (`nanogpt_tui.reports.write_report`)."""

from __future__ import annotations

from pathlib import Path

from nanogpt_tui.config import Config
from nanogpt_tui.errors import UserError
from nanogpt_tui.records import Timeline


class ReportsUnavailable(UserError):
    """The reports module (or its entry point) is not installed."""


def export_report(config: Config, timeline: Timeline | None, session_dirs: list[Path]) -> tuple[Path, list[Path]]:
    """Write the report of one session (its `report/` folder) or of several (`sessions/reports/group-...`).

    A report is derived from the session files only, so exporting again replaces the previous one. Returns the
    folder and the files written.
    """
    try:
        from nanogpt_tui.reports import write_report
    except ImportError:
        raise ReportsUnavailable("Reports are not available in this installation of nanogpt-tui (the reports "
                                 "module is missing); the session files under sessions/ hold everything a report "
                                 "shows.") from None
    if not session_dirs:
        raise UserError("There are no sessions to report on yet; start one with n.")
    result = write_report(session_dirs, timeline=timeline, baselines_dir=config.paths.baselines_dir, force=True)
    return result.out_dir, list(result.files)
