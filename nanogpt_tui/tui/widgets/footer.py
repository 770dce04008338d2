"""Textual's footer, redrawn only when the keys it shows change (not on every focus move between session cards)."""

from __future__ import annotations

from textual.screen import Screen
from textual.widgets import Footer


class KeyFooter(Footer):
    """The stock footer recomposes (a layout of the whole screen) whenever focus moves; moving between cards
    changes no key it shows, and under a flood of log lines that layout is what made navigation slow."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._shown: tuple | None = None

    def bindings_changed(self, screen: Screen) -> None:
        shown = tuple((key, binding.description, enabled) for key, (_, binding, enabled, _)
                      in screen.active_bindings.items() if binding.show)
        if shown == self._shown and self._bindings_ready:
            return
        self._shown = shown
        super().bindings_changed(screen)
