"""Where a sandboxed session's records from its Docker host's model gateway are: `<sessions>/.egress/<host>/out/
<session>.jsonl`, a folder no session container mounts. `nanogpt_tui.telemetry.gateway_record` reads them (the
metered usage and what was refused) once for the token meter and the card's "3 blocked"."""

from __future__ import annotations

import os
from pathlib import Path

from nanogpt_tui.contract import layout


def records_path(sessions_root: str | os.PathLike[str], session_id: str, host: str | None) -> Path:
    return layout.gateway_records(Path(sessions_root), host or "", session_id)
