"""The mends for Textual's bugs (nanogpt_tui/tui/textual_mends.py): the same styles as Textual's own code gives, no
widget's cache kept, and nothing done where the bug is gone."""

from __future__ import annotations

import gc
import weakref

import pytest
from textual._styles_cache import StylesCache
from textual.color import Color

from nanogpt_tui.tui import textual_mends
from nanogpt_tui.tui.textual_mends import mend_textual, release_dropped_widgets_styles


def test_the_styles_are_textuals_own_and_no_cache_is_kept() -> None:
    mend_textual()
    base, background = Color(10, 20, 30), Color(200, 100, 50, 0.5)
    cache = StylesCache()
    inner, outer = cache.get_inner_outer(base, background)
    assert inner.background == base + background and outer.background == base
    assert StylesCache().get_inner_outer(base, background) == (inner, outer)
    held = weakref.ref(cache)
    del cache
    gc.collect()
    assert held() is None


def test_nothing_is_done_where_textual_no_longer_caches_by_instance(monkeypatch: pytest.MonkeyPatch) -> None:
    def get_inner_outer(self, base_background, background):  # as a release that fixed the bug might have it
        raise AssertionError("not called here")

    monkeypatch.setattr(StylesCache, "get_inner_outer", get_inner_outer)
    monkeypatch.setattr(textual_mends, "_applied", False)
    assert release_dropped_widgets_styles() is False
    assert StylesCache.__dict__["get_inner_outer"] is get_inner_outer
