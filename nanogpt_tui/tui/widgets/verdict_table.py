"""The verdicts of every session (or one), newest first: time, session, submission, judge, statistics, progress."""

from __future__ import annotations

from rich.text import Text
from textual.message import Message
from textual.widgets import DataTable

from nanogpt_tui.tui.data.views import VerdictRow
from nanogpt_tui.tui.widgets.card import OUTCOME_STYLES

# "p val_loss": the one-sided t-test that mean val_loss is below the target ("signif." is that test passing);
# "p faster": Welch's test that it is faster than the session's best so far (or the anchor).
COLUMNS = (("time", "time (UTC)"), ("session", "session"), ("submission", "submission"), ("outcome", "outcome"),
           ("judge", "judge"), ("p", "p val_loss"), ("significant", "signif."), ("mean", "mean ± CI (s)"),
           ("p_faster", "p faster"), ("speedup", "speedup"), ("percent", "% human"))
RIGHT = {"p", "mean", "p_faster", "speedup", "percent"}
JUDGE_STYLES = {"cleared": "green", "flagged": "red", "rules broken": "red", "unavailable": "yellow",
                "failed": "yellow", "skipped": "bright_black"}


class VerdictTable(DataTable):
    """Cells are `Text`, never markup: submission names and judge words come from files agents can write."""

    class Chosen(Message):
        """`enter` on a row: show that verdict in the session's detail screen."""

        def __init__(self, session_id: str, verdict_id: str) -> None:
            super().__init__()
            self.session_id = session_id
            self.verdict_id = verdict_id

    def __init__(self, *, show_session: bool = True, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes, cursor_type="row", zebra_stripes=True)
        self.show_session = show_session
        self.rows_by_key: dict[str, VerdictRow] = {}
        self._signature: tuple = ()
        self._widths: dict[str, int] | None = None

    def on_mount(self) -> None:
        self._set_columns({})

    def _set_columns(self, widths: dict[str, int]) -> None:
        """(Re)create the columns, each as wide as its label or widest cell. The widths are set here rather than
        left to DataTable's auto width, which measures new rows only when the table next goes idle: a frame drawn
        before that (on a busy machine) showed every column cut to its label's width."""
        self.clear(columns=True)
        for key, label in COLUMNS:
            if key == "session" and not self.show_session:
                continue
            self.add_column(Text(label, justify="right" if key in RIGHT else "left"), key=key,
                            width=max(len(label), widths.get(key, 0)))
        self._widths = widths

    def update_rows(self, rows: list[VerdictRow]) -> None:
        rows = sorted(rows, key=lambda r: (r.time or "", r.verdict.verdict_id), reverse=True)
        signature = tuple((r.session_id, r.verdict.verdict_id) for r in rows)
        if signature == self._signature:
            return
        self._signature = signature
        selected = None
        if self.row_count and self.cursor_row < self.row_count:
            selected = self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        all_cells = [row.cells() for row in rows]
        widths = {column: max((Text(c[column]).cell_len for c in all_cells), default=0) for column, _ in COLUMNS}
        if widths != self._widths:
            self._set_columns(widths)
        else:
            self.clear()
        self.rows_by_key = {}
        for row, cells in zip(rows, all_cells):
            key = f"{row.session_id}/{row.verdict.verdict_id}"
            self.rows_by_key[key] = row
            out = []
            for column, _ in COLUMNS:
                if column == "session" and not self.show_session:
                    continue
                style = ""
                if column == "outcome":
                    style = OUTCOME_STYLES.get(cells[column], "")
                elif column == "judge":
                    style = JUDGE_STYLES.get(cells[column], "")
                elif column == "significant":
                    style = {"yes": "green", "baseline": "cyan"}.get(cells[column], "bright_black")
                out.append(Text(cells[column], style=style, justify="right" if column in RIGHT else "left"))
            self.add_row(*out, key=key)
        if selected in self.rows_by_key:
            self.move_cursor(row=self.get_row_index(selected), animate=False)

    def select_verdict(self, verdict_id: str) -> None:
        for key, row in self.rows_by_key.items():
            if row.verdict.verdict_id == verdict_id:
                self.move_cursor(row=self.get_row_index(key), animate=False)
                return

    @property
    def current(self) -> VerdictRow | None:
        if not self.row_count:
            return None
        key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        return self.rows_by_key.get(key)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        row = self.rows_by_key.get(event.row_key.value)
        if row is not None:
            event.stop()
            self.post_message(self.Chosen(row.session_id, row.verdict.verdict_id))
