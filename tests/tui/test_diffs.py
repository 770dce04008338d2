"""The Submissions tab's diffs: any experiment or submission against the anchor or against another version, each
hunk marked with its kind of change, unified or side by side."""

from __future__ import annotations

from nanogpt_tui.config import load_config
from nanogpt_tui.tui.app import create_app
from nanogpt_tui.tui.widgets.log_view import LogView
from tests.tui.conftest import run, wait_for
from tests.tui.sessions_data import fixed_clock
from tests.tui.test_transcript import open_detail


def diff_text(screen) -> list[str]:
    return [line.text for line in screen.query_one("#diff", LogView).lines]


def test_diffs_between_versions_with_kinds(fixed_env, snap_compare):
    async def scenario():
        app = create_app(load_config(), clock=fixed_clock, live=False)
        async with app.run_test(size=(140, 40)) as pilot:
            screen = await open_detail(pilot)
            await pilot.press("3")
            options = screen.query_one("#submission-list")
            await wait_for(pilot, lambda: options.option_count >= 6, what="the versions")
            names = [options.get_option_at_index(i).id for i in range(options.option_count)]
            assert names[:3] == ["01_lr", "02_zloss", "03_compile"] and "submission_3" in names
            options.focus()
            options.highlighted = names.index("01_lr")
            await wait_for(pilot, lambda: any("+++ 01_lr/train_gpt.py" in t for t in diff_text(screen)),
                           what="the diff against the anchor")
            assert any(t.startswith("@@") and t.endswith("[hyperparameter]") for t in diff_text(screen))
            # b: compare against 01_lr from now on; 02_zloss against it adds the z-loss, an algorithmic change.
            await pilot.press("b")
            options.highlighted = names.index("02_zloss")
            await wait_for(pilot, lambda: any("--- 01_lr/train_gpt.py" in t for t in diff_text(screen)),
                           what="the diff against 01_lr")
            hunks = [t for t in diff_text(screen) if t.startswith("@@")]
            assert hunks and all(t.endswith("[algorithmic]") for t in hunks)
            # s: side by side, old on the left and new on the right.
            await pilot.press("s")
            await wait_for(pilot, lambda: any(" > " in t or " | " in t for t in diff_text(screen)),
                           what="the side-by-side diff")
            assert any("logsumexp" in t and " > " in t for t in diff_text(screen)), diff_text(screen)

    run(scenario())
