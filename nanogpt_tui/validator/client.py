"""The agent's side of the submit protocol: ask the validator, print its progress as it comes, block until the
verdict (or the refusal) and print it. What `submit` does inside a session (where $BENCHMARK_VALIDATOR_DIR is set)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from nanogpt_tui.validator import protocol as P

POLL_S = 0.2
NOTICE_AFTER_S = 30.0


def request_and_wait(workspace: Path, vdir: Path, request: P.SubmitRequest, *,
                     on_progress: Callable[[str], None] = print, poll_s: float = POLL_S,
                     notice_after_s: float = NOTICE_AFTER_S, timeout_s: float | None = None) -> dict:
    """Write the request, stream the validator's progress for it, and return its response
    (`{"status": "verdict"|"refused", "text", "verdict_file", "exit_code"}`)."""
    P.write_request(Path(workspace) / P.L.REQUESTS, request)
    progress_path = Path(vdir) / P.PROGRESS_FILE
    response_path = Path(vdir) / P.RESPONSES / f"{request.request_id}.json"
    offset = progress_path.stat().st_size if progress_path.is_file() else 0
    started, seen, noticed = time.monotonic(), False, False
    pending = b""
    while True:
        if progress_path.is_file():
            with open(progress_path, "rb") as handle:
                handle.seek(offset)
                chunk = handle.read()
            offset += len(chunk)
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for raw in lines:
                try:
                    event = json.loads(raw)
                except ValueError:
                    continue
                if isinstance(event, dict) and event.get("request_id") == request.request_id:
                    seen = True
                    if event.get("type") not in ("verdict", "refused"):
                        on_progress(str(event.get("text", "")))
        if response_path.is_file():
            try:
                return json.loads(response_path.read_text(encoding="utf-8"))
            except ValueError:
                pass  # being written: atomic renames make this rare; read again
        waited = time.monotonic() - started
        if not seen and not noticed and waited > notice_after_s:
            noticed = True
            on_progress("waiting for the validator: no host process has taken the request yet (nanogpt-tui starts "
                        "one per session; `nanogpt-tui sessions list` on the host starts it again)")
        if timeout_s is not None and waited > timeout_s:
            return {"status": "refused", "exit_code": 1, "verdict_file": None,
                    "text": f"Submit gave up after {timeout_s:g} s: the validator did not answer."}
        time.sleep(poll_s)

