"""Mends for bugs of Textual's that the control room meets, applied once before an app runs.

Each names its upstream issue and does nothing where the Textual installed no longer has the bug (a release
that fixes it), so dropping a mend is a matter of deleting it once the pinned Textual is past the fix.
"""

from __future__ import annotations

from functools import lru_cache

_applied = False


def mend_textual() -> None:
    """Apply every mend (idempotent)."""
    global _applied
    if not _applied:
        _applied = True
        release_dropped_widgets_styles()


def release_dropped_widgets_styles() -> bool:
    """Textual's `StylesCache.get_inner_outer` is an `lru_cache` over an instance method, so its 1,024 keys hold the
    `StylesCache` of every widget that rendered, with the lines that widget last drew, long after the widget is
    gone (Textualize/textual#6665). In the control room every toast ("Sorted by …", an alert) is two widgets that
    live a few seconds; under a fleet's keys and alerts the dropped ones piled up (258 `StylesCache` after 30
    minutes, +0.16 MB a minute of RSS, by `benchmarks/tui_fleet.py --memory-minutes 30 --allocator-stats`). The
    two styles it returns depend on the two colours alone: cached by them, the widget's cache is never kept.
    True if mended, False where the method is not such a cache (a Textual that fixed it)."""
    from textual._styles_cache import StylesCache

    cached = StylesCache.__dict__.get("get_inner_outer")
    original = getattr(cached, "__wrapped__", None)
    if original is None or not hasattr(cached, "cache_clear"):
        return False

    @lru_cache(1024)
    def by_colours(base_background, background):
        # the class stands in for the instance: the styles come from the colours alone (the body reads no
        # attribute of it; one that did would fail on the first frame, which every TUI test draws)
        return original(StylesCache, base_background, background)

    def get_inner_outer(self, base_background, background):
        return by_colours(base_background, background)

    get_inner_outer.__doc__ = original.__doc__
    StylesCache.get_inner_outer = get_inner_outer
    cached.cache_clear()  # what it held so far (widgets of an app run before this one, in tests)
    return True
