"""The control room on hostile session data: broken sessions are shown as broken and the rest keep updating; an
internal error ends it with one line, a trace file and a non-zero status."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from nanogpt_tui.config import load_config
from nanogpt_tui.contract import layout as L
from nanogpt_tui.validator.protocol import VERDICTS, Sealer, validator_dir
from nanogpt_tui.tui.app import create_app
from nanogpt_tui.tui.widgets.card import SessionCard
from tests.tui.conftest import run, wait_for
from tests.tui.sessions_data import build_fixed_sessions


def test_broken_sessions_and_verdicts_never_stop_the_control_room(tui_env):
    ids = build_fixed_sessions(tui_env.root)
    path = tui_env.root / ids[0] / L.SESSION_FILE
    path.write_text(path.read_text().replace('"started_at": "', '"started_at": "yesterday', 1))
    path = tui_env.root / ids[1] / L.SESSION_FILE
    data = json.loads(path.read_text())
    path.write_text(json.dumps(data).replace(f'"budget_gpu_hours": {json.dumps(data["budget_gpu_hours"])}',
                                             '"budget_gpu_hours": NaN'))
    verdict = next((validator_dir(tui_env.root / ids[2]) / VERDICTS).glob("*.json"))
    data = json.loads(verdict.read_text())
    data["stats"] = "str"
    verdict.write_text(json.dumps(data))
    Sealer.for_sessions(tui_env.root, create=False).seal_file(verdict)  # bad, yet the validator's (an older version's)

    async def go():
        app = create_app(load_config(), refresh_every_s=0.3)
        async with app.run_test(size=(120, 36)) as pilot:
            await wait_for(pilot, lambda: app.loaded and len(app.screen.query(SessionCard)) == 1, what="the card")
            await wait_for(pilot, lambda: sum("has a bad field" in n.message or "not readable JSON" in n.message
                                              for n in app._notifications) >= 2, what="two broken sessions named")
            notes = [n.message for n in app._notifications]
            assert any("`started_at`" in n for n in notes) and any("NaN" in n for n in notes)
            await wait_for(pilot, lambda: any("`stats` is 'str'" in n.message for n in app._notifications),
                           what="the bad verdict named")
            await wait_for(pilot, lambda: ids[2] in app._by_id and app._by_id[ids[2]].complete, what="its verdicts")
            assert ids[0] not in app._by_id and ids[1] not in app._by_id  # the card with the bad verdict got its verdicts and usage all the same

    run(go())


def test_an_internal_error_exits_non_zero_with_one_line_and_a_trace_file(tui_env):
    script = textwrap.dedent("""
        import sys
        from nanogpt_tui.cli.tui_cmd import run_app
        from nanogpt_tui.tui.app import create_app

        app = create_app(live=False)

        def fail():
            raise RuntimeError("a bug in the control room")

        app.call_later(fail)
        sys.exit(run_app(app, headless=True))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    text = lines[0]
    assert "RuntimeError: a bug in the control room" in text and "the full trace is in" in text
    logs = list((tui_env.root / ".crash").glob("control-room-*.log"))
    assert len(logs) == 1 and "Traceback" in logs[0].read_text() and "fail" in logs[0].read_text()
