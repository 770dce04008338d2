"""The detail screen's Transcript tab: turns with tool calls that expand to their outputs, tokens and cost per
turn, verdicts in place, and the jump from a verdict row to its place in the transcript and in the log."""

from __future__ import annotations

import json

from nanogpt_tui.agents.events import event_line
from nanogpt_tui.config import load_config
from nanogpt_tui.contract import layout as L
from nanogpt_tui.tui.app import create_app
from nanogpt_tui.tui.screens.detail import DetailScreen
from nanogpt_tui.tui.widgets.transcript_view import TranscriptView
from tests.tui.conftest import run, wait_for
from tests.tui.sessions_data import fixed_clock
from tests.tui.test_snapshots import loaded

SESSION = "20261120T180000Z-claude-default"


def add_submission_events(root) -> None:
    """The agent's own lines around submission_3 (its verdict is in the fixed session's verdicts/)."""
    lines = [
        json.dumps({"type": "assistant", "message": {"id": "m9", "content": [
            {"type": "text", "text": "Submitting the shorter schedule."},
            {"type": "tool_use", "id": "t9", "name": "Bash",
             "input": {"command": "nanogpt-tui submit submissions/submission_3"}}],
            "usage": {"input_tokens": 1200, "cache_read_input_tokens": 1000, "output_tokens": 80}}}) + "\n",
        event_line("submission_started", submission="submission_3", ts="2026-11-21T01:44:00Z"),
        json.dumps({"type": "user", "message": {"content": [
            {"type": "tool_result", "tool_use_id": "t9", "content": "verdict: VALIDATED (submission_3)\nrun 1/10 ok"}]}}) + "\n",
        event_line("verdict", submission="submission_3", outcome="validated", counts=True, verdict_path="v.json",
                   ts="2026-11-21T02:24:00Z"),
    ]
    with open(root / SESSION / L.WORKSPACE / "logs" / L.EVENTS_FILE, "a") as handle:
        handle.write("".join(lines))
    with open(root / SESSION / L.CONTAINER_LOG, "a") as handle:
        handle.write("submission_3: VALIDATED, mean train_time 157.980 s over 10 run(s)\n")


async def open_detail(pilot) -> DetailScreen:
    await loaded(pilot)
    await pilot.press("enter")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, DetailScreen), what="the detail screen")
    await loaded(pilot)
    view = pilot.app.screen.query_one(TranscriptView)
    await wait_for(pilot, lambda: view.transcript is not None and view.transcript.turns, what="the transcript")
    return pilot.app.screen


def test_transcript_turns_tools_and_the_jump_from_a_verdict(fixed_env):
    add_submission_events(fixed_env.root)

    async def scenario():
        app = create_app(load_config(), clock=fixed_clock, live=False)
        async with app.run_test(size=(140, 40)) as pilot:
            screen = await open_detail(pilot)
            view = screen.query_one(TranscriptView)
            turns = view.transcript.turns
            assert len(turns) == 3  # two invocations of the fixed session, then the submitting response
            assert turns[0].cost_usd == 3.12 and turns[-1].usage["output_tokens"] == 80
            labels = [str(node.label) for node in view.root.children]
            assert "verdict submission_3: validated" in labels[-1] and "1 tool call" in labels[-1]
            # A closed turn says what it was about: its first words, else its first call.
            assert labels[-1].endswith("say: Submitting the shorter schedule.") and labels[0].endswith("Bash bash run.sh")
            # The submit call expands to its command and its output.
            submit = turns[-1].tool_calls[0]
            assert submit.output.startswith("verdict: VALIDATED")
            node = next(n for n in view.root.children[-1].children if str(n.label).startswith("tool Bash"))
            output = next(n for n in node.children if str(n.label).startswith("output"))
            assert str(output.label) == "output (2 lines)"  # line by line, not one line joined with ↵
            assert [str(n.label) for n in output.children] == ["verdict: VALIDATED (submission_3)", "run 1/10 ok"]
            # From the verdict row: g opens the transcript at its verdict, G the log at the submission.
            await pilot.press("4")
            await pilot.pause(0.2)
            assert screen.query_one("#session-verdicts").current.verdict.submission == "submission_3"
            await pilot.press("g")
            await pilot.pause(0.2)
            assert screen.query_one("#tabs").active == "events" and app.focused is view
            node = view.cursor_node
            assert node is not None and str(node.label).startswith("verdict: ") and "submission_3" in str(node.label)
            await pilot.press("4", "G")
            await wait_for(pilot, lambda: screen.query_one("#detail-log").view.match_index is not None,
                           what="the log to show the submission")
            log = screen.query_one("#detail-log").view
            assert screen.query_one("#tabs").active == "log"
            assert "submission_3" in log.visible_lines[log.match_index].text

    run(scenario())


def test_transcript_tab_120x36(fixed_env, snap_compare):
    add_submission_events(fixed_env.root)

    async def transcript(pilot):
        await open_detail(pilot)
        await pilot.press("2")
        await pilot.pause(0.3)

    assert snap_compare(create_app(load_config(), clock=fixed_clock, live=False), terminal_size=(120, 36),
                        run_before=transcript)
