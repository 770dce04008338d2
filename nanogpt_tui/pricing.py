"""Dollars from tokens: the price table (per model, USD per million tokens) and what a session's tokens cost.

The shipped prices are the providers' public list prices (standard tier, no batch discount), as read on
2026-12-03 from
  - Anthropic: https://platform.claude.com/docs/en/about-claude/pricing ("Base input tokens", "Cache hits and
    refreshes", "Output tokens"),
  - OpenAI: https://developers.openai.com/api/docs/pricing ("Input", "Cached input", "Output"; the standard
    rates for contexts under 270K tokens).
A config's `[prices."<model>"]` tables replace or add entries. Cache writes are priced as plain input (Anthropic
bills them at 1.25x or 2x), so a Claude session's figure is a lower bound when it writes to its cache.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

PRICES_AS_OF = "2026-12-03"
PRICES_SOURCES = ("https://platform.claude.com/docs/en/about-claude/pricing",
                  "https://developers.openai.com/api/docs/pricing")


@dataclass(frozen=True)
class Price:
    """USD per million tokens: fresh input, input read from the prompt cache, output."""

    input: float
    cached_input: float
    output: float


DEFAULT_PRICES: dict[str, Price] = {
    # Anthropic
    "claude-opus-4-6": Price(5.00, 0.50, 25.00),
    "claude-opus-4-5": Price(5.00, 0.50, 25.00),
    "claude-sonnet-4-6": Price(3.00, 0.30, 15.00),
    "claude-sonnet-4-5": Price(3.00, 0.30, 15.00),
    "claude-haiku-4-5": Price(1.00, 0.10, 5.00),
    # OpenAI
    "gpt-5.4": Price(2.50, 0.25, 15.00),
    "gpt-5.4-mini": Price(0.75, 0.075, 4.50),
    "gpt-5.4-nano": Price(0.20, 0.02, 1.25),
}


def price_for(prices: dict[str, Price], model: str | None) -> Price | None:
    """The price of `model`: its own entry, else the longest entry it starts with (a dated snapshot such as
    `claude-haiku-4-5-20251001` has its family's price); None when the table has none."""
    if not model:
        return None
    if model in prices:
        return prices[model]
    family = [name for name in prices if model.startswith(name + "-") or model.startswith(name + "@")]
    return prices[max(family, key=len)] if family else None


def tokens_cost_usd(price: Price, input_tokens: int, cached_input_tokens: int, output_tokens: int) -> float:
    """Dollars for these tokens. `input_tokens` counts every input token, cached or not (the events' convention);
    the cached part is priced at the cache rate."""
    cached = max(0, min(int(cached_input_tokens), int(input_tokens)))
    fresh = max(0, int(input_tokens) - cached)
    return (fresh * price.input + cached * price.cached_input + max(0, int(output_tokens)) * price.output) / 1e6


def parse_price(value: object) -> Price | None:
    """A `Price` from a config table {input, cached_input, output}; None when it is not one (the caller says why)."""
    if not isinstance(value, dict) or set(value) - {"input", "cached_input", "output"} or "input" not in value \
            or "output" not in value:
        return None
    numbers = [value.get("input"), value.get("cached_input", value.get("input")), value.get("output")]
    if any(isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x) or x < 0 for x in numbers):
        return None
    return Price(*(float(x) for x in numbers))
