"""Messages the watcher threads post to the app (thread-safe) and the app hands to its screens."""

from __future__ import annotations

from textual.message import Message

from nanogpt_tui.tui.data.views import SessionView


class DashboardUpdated(Message):
    """Fresh session views from disk; a newer one supersedes any still queued (they are whole snapshots)."""

    def __init__(self, views: list[SessionView], problems: list[str]) -> None:
        super().__init__()
        self.views = views
        self.problems = problems

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, DashboardUpdated) and not self.problems


class FileGrew(Message):
    """A session's container.log or events file changed (from the monitor); log panels following it read on."""

    def __init__(self, session_id: str, what: str) -> None:
        super().__init__()
        self.session_id = session_id
        self.what = what


class Problem(Message):
    """Something a watcher could not do, as one sentence for a notification."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text
