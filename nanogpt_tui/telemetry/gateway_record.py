"""A sandboxed session's record from its Docker host's model gateway (`<sessions>/.egress/<host>/out/<id>.jsonl`, a
folder no session container mounts, so the agent cannot write or remove it): what the gateway metered (`usage`: the
tokens of each model request, from the API's own usage fields) and what it, its CONNECT proxy and its resolver
refused (`blocked`: time, via, destination, reason). One reader follows the file for both: the token meter prices
the usage, the control room counts the refusals on the session's card ("3 blocked")."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from nanogpt_tui.follow import LineFollower
from nanogpt_tui.textsafe import neutralize

RECENT_KEPT = 50  # refusals kept per session (the count covers them all)


@dataclass(frozen=True)
class ModelTokens:
    """Tokens spent on one model (input counts every input token; the cached part is priced at the cache rate)."""

    model: str | None
    input_tokens: int = 0
    cached_input_tokens: int = 0
    output_tokens: int = 0
    requests: int = 0


@dataclass(frozen=True)
class Blocked:
    """One refused attempt: a request to the gateway, a tunnel asked of the proxy, a name asked of the resolver."""

    ts: str
    via: str  # "gateway", "proxy" or "dns"
    destination: str
    reason: str

    def text(self) -> str:
        return f"{self.ts[11:19]} {self.via} {self.destination}"


def _count(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 1 << 53 else None


def _clean(value: object, limit: int) -> str:
    """A field of the record as plain visible text (a DNS name is whatever the agent asked for)."""
    text = "".join(c if c.isprintable() else "?" for c in str(value))
    return neutralize(text)[:limit]


class GatewayRecord:
    """One session's gateway record, followed from where the last read stopped (a line being written is read next
    time; a replaced or truncated record is read again from its start)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.follow = LineFollower(path)
        self.by_model: dict[str | None, ModelTokens] = {}
        self.blocked_count = 0
        self.recent: list[Blocked] = []  # the last RECENT_KEPT refusals, oldest first

    @property
    def path(self) -> Path:
        return self.follow.path

    @property
    def usage(self) -> tuple[ModelTokens, ...]:
        """The metered tokens per model the API named, in the order the models first appeared."""
        return tuple(self.by_model.values())

    def update(self) -> bool:
        """Read what was appended; whether anything new was metered or refused. A missing file is nothing yet."""
        lines = self.follow.read_new()
        if self.follow.restarted:
            self.by_model, self.blocked_count, self.recent = {}, 0, []
        changed = False
        for line in lines:
            try:
                record = json.loads(line.text)
            except ValueError:
                continue
            if not isinstance(record, dict):
                continue
            if record.get("type") == "usage":
                changed |= self._usage(record)
            elif record.get("type") == "blocked":
                self.blocked_count += 1
                self.recent.append(Blocked(ts=_clean(record.get("ts", ""), 32),
                                           via=_clean(record.get("via", "?"), 16),
                                           destination=_clean(record.get("destination", "?"), 253),
                                           reason=_clean(record.get("reason", ""), 200)))
                changed = True
        del self.recent[:-RECENT_KEPT]
        return changed or self.follow.restarted

    def _usage(self, record: dict) -> bool:
        counts = [_count(record.get(k, 0)) for k in ("input_tokens", "cached_input_tokens", "output_tokens")]
        if any(c is None for c in counts):
            return False
        model = record.get("model") if isinstance(record.get("model"), str) and record.get("model") else None
        was = self.by_model.get(model) or ModelTokens(model)
        self.by_model[model] = ModelTokens(model, was.input_tokens + counts[0],
                                           was.cached_input_tokens + min(counts[1], counts[0]),
                                           was.output_tokens + counts[2], was.requests + 1)
        return True
