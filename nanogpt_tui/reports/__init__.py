"""Reports: session and group reports (Markdown, self-contained HTML, JSON, a progress figure), reproducing the
published table, comparing prompting strategies, and the GPU-hours spent per kind of change. Headless: nothing
here imports Textual; matplotlib is imported only by `figure` when a figure is drawn.

    write_report(session_dirs, timeline=..., baselines_dir=..., out_dir=None, formats=("md", "html", "json"),
                 force=False) -> ReportResult        the `report` command and the control room's `r` key
    change_summary(session_dir, ...) -> dict        GPU-hours and shares per kind of change, for a card
    load_outcomes / reproduce / compare             `nanogpt-tui reproduce` and `nanogpt-tui compare`
"""

from __future__ import annotations

__all__ = ["ReportResult", "write_report", "change_summary", "load_outcomes", "reproduce", "compare",
           "REPORT_SCHEMA_VERSION"]


def __getattr__(name: str):
    # Lazy, so importing the package costs nothing until a report is made.
    if name in ("ReportResult", "write_report"):
        from nanogpt_tui.reports import writer
        return getattr(writer, name)
    if name == "REPORT_SCHEMA_VERSION":
        from nanogpt_tui.reports.build import REPORT_SCHEMA_VERSION
        return REPORT_SCHEMA_VERSION
    if name in ("change_summary", "load_outcomes", "reproduce", "compare"):
        from nanogpt_tui.reports import outcomes
        return getattr(outcomes, name)
    raise AttributeError(name)
