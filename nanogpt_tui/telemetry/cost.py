"""A session's tokens and what they cost: the agent's (through `token_meter`, the one place they are read) and
the judge's (from its verdicts), priced with the config's price table. The agent CLI's own cost figure
(`total_cost_usd`) is carried beside ours for comparison and never used in its place: the agent can write it.

A sandboxed session's tokens are the model gateway's meter (`sessions/.egress/<host>/out/<id>.jsonl`, written by
the gateway from the API's own usage fields, where the agent cannot write), priced per model the API named. Only a
session that ran without the gateway (`--sandbox off`, the local backend) falls back to what its agent's events
say, and says so (`AgentTokens.source == "events"`): nothing the agent writes changes a metered figure.
"""

from __future__ import annotations

import os
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from nanogpt_tui.pricing import Price, price_for, tokens_cost_usd
from nanogpt_tui.telemetry.gateway_record import GatewayRecord, ModelTokens

if TYPE_CHECKING:
    from nanogpt_tui.agents.events import UsageTotals

GATEWAY = "gateway"  # AgentTokens.source: metered by the model gateway
EVENTS = "events"  # AgentTokens.source: what the agent's own stream reported (a session without the gateway)


@dataclass(frozen=True)
class AgentTokens:
    """The agent's tokens so far, the model it named (None until a stream says), and the CLI's own cost claim."""

    input_tokens: int = 0
    cached_input_tokens: int = 0
    output_tokens: int = 0
    model: str | None = None
    cli_cost_usd: float | None = None
    cli_cost_complete: bool = True
    source: str = EVENTS  # where the counts come from: EVENTS (the agent's stream) or GATEWAY (its meter)
    by_model: tuple[ModelTokens, ...] = ()  # metered: per model the API named, each priced at its own rates
    requests: int = 0  # metered: model requests that reported usage

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    @property
    def metered(self) -> bool:
        return self.source == GATEWAY


class EventsTokenMeter:
    """The agent's tokens from its events file, read on from where the last read stopped and counted as they come
    (`UsageSummary`): no event is kept, so a session's meter stays the same size however long its agent runs."""

    KEEP = ("session_start", "usage", "result")

    def __init__(self, events_path: str | os.PathLike[str]) -> None:
        from nanogpt_tui.agents.events import EventStream, UsageSummary

        self.stream = EventStream(Path(events_path))
        self.summary = UsageSummary()
        self.counted = 0  # events counted since the file (re)started
        self.model: str | None = None
        self.tokens = AgentTokens()
        self.totals: UsageTotals | None = None  # what the stream reported, in full (None while there is no file)

    def read(self) -> AgentTokens:
        from nanogpt_tui.agents.events import UsageSummary

        fresh = [ev for ev in self.stream.read_new() if ev.type in self.KEEP and not ev.partial]
        if self.stream.restarted:  # the file was replaced or cut: what was read from it before is void
            self.summary, self.counted, self.model = UsageSummary(), 0, None
        elif not fresh and self.counted:
            return self.tokens
        for ev in fresh:
            model = ev.extra.get("model") if ev.type == "session_start" else None
            if isinstance(model, str) and model:
                self.model = model
            self.summary.add(ev)
        self.counted += len(fresh)
        totals = self.totals = self.summary.totals if self.stream.lines.found else None
        if totals is None:
            self.tokens = AgentTokens()
            return self.tokens
        self.tokens = AgentTokens(totals.input_tokens, totals.cached_input_tokens, totals.output_tokens, self.model,
                                  totals.cost_usd, totals.cost_complete)
        return self.tokens


class SessionTokenMeter:
    """A session's agent tokens: the gateway's meter once the session has one (it is created when the session is
    attached to the gateway), else its events file. The events are read either way for the CLI's own cost claim
    and model, which are shown beside the metered figures, never in their place."""

    def __init__(self, session_dir: str | os.PathLike[str]) -> None:
        from nanogpt_tui.contract import layout

        self.session_dir = Path(session_dir)
        self.events = EventsTokenMeter(layout.events_path(self.session_dir))
        self.gateway: GatewayRecord | None = None  # its record once found (the control room counts its refusals)
        self._unmetered = False  # the session runs without the gateway: its events are all there is
        self._session_stamp: tuple[int, int] | None = None  # session.json's (size, mtime) when last parsed
        self._record_path: Path | None = None  # where the gateway's record will be, once the session is placed
        self.tokens = AgentTokens()

    def _find_gateway(self) -> None:
        """Look for the gateway's record (until it exists, once a read): session.json is parsed again only when its
        size or mtime changed (the session was placed on a host), like the other readers' files."""
        from nanogpt_tui.contract import layout

        try:
            st = os.stat(self.session_dir / layout.SESSION_FILE)
        except OSError:
            return
        if (st.st_size, st.st_mtime_ns) != self._session_stamp:
            self._session_stamp = (st.st_size, st.st_mtime_ns)
            try:
                session = json.loads((self.session_dir / layout.SESSION_FILE).read_text(encoding="utf-8"))
            except (OSError, ValueError):
                session = None
            session = session if isinstance(session, dict) else {}
            host = session.get("host")
            self._unmetered = session.get("sandbox") == "off"
            self._record_path = layout.gateway_records(self.session_dir.parent, host, self.session_dir.name) \
                if isinstance(host, str) and host and not self._unmetered else None
        if self._record_path is not None and self._record_path.exists():
            self.gateway = GatewayRecord(self._record_path)

    def read(self) -> AgentTokens:
        if self.gateway is None and not self._unmetered:
            self._find_gateway()
        reported = self.events.read()
        if self.gateway is None:
            self.tokens = reported
            return self.tokens
        self.gateway.update()
        by_model = self.gateway.usage
        top = max(by_model, key=lambda m: (m.input_tokens + m.output_tokens, m.requests), default=None)
        self.tokens = AgentTokens(sum(m.input_tokens for m in by_model), sum(m.cached_input_tokens for m in by_model),
                                  sum(m.output_tokens for m in by_model),
                                  (top.model if top is not None else None) or reported.model,
                                  reported.cli_cost_usd, reported.cli_cost_complete, GATEWAY, by_model,
                                  sum(m.requests for m in by_model))
        return self.tokens


def token_meter(session_dir: str | os.PathLike[str]) -> SessionTokenMeter:
    """The meter of a session's agent tokens: the one place every consumer (control room, CLI, reports) gets
    them from."""
    return SessionTokenMeter(session_dir)


def agent_tokens(session_dir: str | os.PathLike[str]) -> AgentTokens:
    """A session's agent tokens, read once."""
    return token_meter(session_dir).read()


@dataclass(frozen=True)
class JudgeTokens:
    model: str
    input_tokens: int
    cached_input_tokens: int
    output_tokens: int


def judge_tokens(verdicts: Iterable) -> list[JudgeTokens]:
    """The judge's tokens per verdict that asked it (`Verdict.judge` holds its model and usage)."""
    out = []
    for v in verdicts:
        judge = v.judge if isinstance(getattr(v, "judge", None), Mapping) else {}
        usage = judge.get("usage") if isinstance(judge.get("usage"), Mapping) else {}
        counts = [usage.get(k, 0) for k in ("input_tokens", "cached_input_tokens", "output_tokens")]
        if not any(isinstance(c, int) and not isinstance(c, bool) and c > 0 for c in counts):
            continue
        counts = [c if isinstance(c, int) and not isinstance(c, bool) and c > 0 else 0 for c in counts]
        out.append(JudgeTokens(str(judge.get("model") or ""), *counts))
    return out


@dataclass(frozen=True)
class SessionCost:
    """Dollars spent by a session: the agent's and the judge's at the price table's rates (None where a model has
    no price), the models without one, and the agent CLI's own claim (shown beside, never trusted)."""

    agent_usd: float | None
    judge_usd: float | None
    cli_usd: float | None = None
    cli_complete: bool = True
    agent_model: str | None = None
    unpriced: tuple[str, ...] = ()
    metered: bool = False  # the agent's tokens are the model gateway's meter (else what the agent reported)

    @property
    def total_usd(self) -> float | None:
        parts = [x for x in (self.agent_usd, self.judge_usd) if x is not None]
        return sum(parts) if parts else None

    def compact(self) -> str:
        """`$12.40` (agent and judge); `$-` when nothing could be priced."""
        total = self.total_usd
        return "$-" if total is None else f"${total:,.2f}"

    def text(self) -> str:
        """`$12.40 (agent $12.10 · judge $0.30) · CLI says $11.90`, and which models have no price."""
        if self.total_usd is None and self.cli_usd is None and not self.unpriced:
            return "no cost yet"
        parts = [self.compact()]
        if self.judge_usd:
            parts[0] += f" (agent ${self.agent_usd or 0:,.2f} · judge ${self.judge_usd:,.2f})"
        if self.cli_usd is not None:
            parts.append(f"CLI says ${self.cli_usd:,.2f}{'' if self.cli_complete else '+'}")
        if self.unpriced:
            parts.append("no price for " + ", ".join(self.unpriced))
        return " · ".join(parts)

    def to_dict(self) -> dict:
        return {"total": _round(self.total_usd), "agent": _round(self.agent_usd), "judge": _round(self.judge_usd),
                "agent_cli_reported": _round(self.cli_usd), "agent_model": self.agent_model,
                "unpriced_models": list(self.unpriced), "agent_tokens_metered": self.metered}


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 6)


def session_cost(tokens: AgentTokens, judges: Iterable[JudgeTokens], prices: Mapping[str, Price],
                 default_model: str | None = None) -> SessionCost:
    """Price a session: the agent's tokens at its model's rates (the model its stream named, else the one the
    config gives the agent), the judge's at the judge model's."""
    unpriced: list[str] = []
    model = tokens.model or default_model or None
    agent_usd: float | None = 0.0 if not tokens.total_tokens else None
    parts = [m for m in tokens.by_model if m.input_tokens or m.output_tokens] or \
        ([ModelTokens(model, tokens.input_tokens, tokens.cached_input_tokens, tokens.output_tokens)]
         if tokens.total_tokens else [])
    for part in parts:  # metered: each model the API named at its own rates; else the one model of the stream
        name = part.model or (default_model if tokens.metered else model) or None
        price = price_for(dict(prices), name)
        if price is None:
            if (name or "the agent's model (unknown)") not in unpriced:
                unpriced.append(name or "the agent's model (unknown)")
            continue
        agent_usd = (agent_usd or 0.0) + tokens_cost_usd(price, part.input_tokens, part.cached_input_tokens,
                                                         part.output_tokens)
    judge_usd: float | None = None
    for j in judges:
        price = price_for(dict(prices), j.model)
        if price is None:
            if (j.model or "the judge's model (unknown)") not in unpriced:
                unpriced.append(j.model or "the judge's model (unknown)")
            continue
        judge_usd = (judge_usd or 0.0) + tokens_cost_usd(price, j.input_tokens, j.cached_input_tokens, j.output_tokens)
    return SessionCost(agent_usd, judge_usd, tokens.cli_cost_usd, tokens.cli_cost_complete, model, tuple(unpriced),
                       tokens.metered)
