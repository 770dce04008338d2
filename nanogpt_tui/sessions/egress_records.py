"""A sandboxed session's records from its Docker host's model gateway: what the gateway, its CONNECT proxy and its
resolver refused (`blocked`: time, via, destination, reason) beside the metered usage. The gateway writes them into
`<sessions>/.egress/<host>/out/<session>.jsonl`, a folder no session container mounts, so the agent cannot write
or remove them; these are the session's host-written sandbox events, counted on its card ("3 blocked")."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from nanogpt_tui.contract import layout
from nanogpt_tui.follow import LineFollower
from nanogpt_tui.textsafe import neutralize

EGRESS_DIR = layout.EGRESS_DIR  # in the sessions folder, per Docker host: the model gateway's config and records
RECENT_KEPT = 50


def _clean(value: object, limit: int) -> str:
    """A field of the record as plain visible text (a DNS name is whatever the agent asked for)."""
    text = "".join(c if c.isprintable() else "?" for c in str(value))
    return neutralize(text)[:limit]


def records_path(sessions_root: str | os.PathLike[str], session_id: str, host: str | None) -> Path:
    return layout.gateway_records(Path(sessions_root), host or "", session_id)


@dataclass(frozen=True)
class Blocked:
    """One refused attempt: a request to the gateway, a tunnel asked of the proxy, a name asked of the resolver."""

    ts: str
    via: str  # "gateway", "proxy" or "dns"
    destination: str
    reason: str

    def text(self) -> str:
        return f"{self.ts[11:19]} {self.via} {self.destination}"


class EgressRecords:
    """Follows one session's gateway record for its refusals (a whole line at a time)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.follow = LineFollower(path)
        self.blocked_count = 0
        self.recent: list[Blocked] = []  # the last RECENT_KEPT refusals, oldest first

    @property
    def path(self) -> Path:
        return self.follow.path

    def update(self) -> bool:
        """Read what was appended; whether a refusal arrived. A missing file is no refusal yet; a replaced or
        truncated one is counted again from its start."""
        lines = self.follow.read_new()
        if self.follow.restarted:
            self.blocked_count, self.recent = 0, []
        before = self.blocked_count
        for line in lines:
            try:
                record = json.loads(line.text)
            except ValueError:
                continue
            if not isinstance(record, dict) or record.get("type") != "blocked":
                continue
            self.blocked_count += 1
            self.recent.append(Blocked(ts=_clean(record.get("ts", ""), 32), via=_clean(record.get("via", "?"), 16),
                                       destination=_clean(record.get("destination", "?"), 253),
                                       reason=_clean(record.get("reason", ""), 200)))
        del self.recent[:-RECENT_KEPT]
        return self.blocked_count != before
