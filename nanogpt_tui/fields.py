"""Strict checks for the fields of files read from disk: type, range, finiteness and timestamps, each failure naming
its field (every reader of a session's files builds on these, so a bad value is caught where it is read)."""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable, Iterable
from typing import Any

# Timestamps are ISO 8601 with a timezone, as `iso()` writes them ("2026-12-03T11:06:47.123Z"; seconds optional).
TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2})")
# Dates outside these years are a typo or a hostile edit (and near year 9999 a deadline would overflow).
FIRST_YEAR, LAST_YEAR = 2000, 2200
_MISSING = object()
# The ranges of a session's numbers wherever they come from (command line, config, forms, files).
MAX_GPUS = 4096
MAX_GPU_HOURS = 1_000_000.0  # 114 years of one GPU: more is a typo, and the deadline must stay a real date


class BadField(ValueError):
    """One field of a file is missing or wrong; `field` names it (dotted, with list indexes: `transitions[2].at`)."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"`{field}` {problem}")
        self.field = field
        self.problem = problem


def parse_timestamp(text: Any, field: str = "timestamp") -> dt.datetime:
    """A timezone-aware UTC datetime from strict ISO 8601 text; `BadField` otherwise."""
    if not isinstance(text, str) or not TIMESTAMP.fullmatch(text):
        raise BadField(field, f"is {_shown(text)}, not a timestamp like 2026-01-31T12:00:00Z")
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise BadField(field, f"is {_shown(text)}, which is not a real date and time") from None
    if not FIRST_YEAR <= when.year <= LAST_YEAR:
        raise BadField(field, f"is {_shown(text)}, outside the years {FIRST_YEAR} to {LAST_YEAR}")
    return when.astimezone(dt.timezone.utc)


def _shown(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


class Fields:
    """Read a JSON object's fields one by one, checking each; the first bad one raises `BadField`."""

    def __init__(self, data: Any, prefix: str = "") -> None:
        self.prefix = prefix
        if not isinstance(data, dict):
            raise BadField(prefix or "(top level)", f"is {type(data).__name__}, not a JSON object")
        self.data = data

    def name(self, key: str) -> str:
        return f"{self.prefix}.{key}" if self.prefix else key

    def _get(self, key: str, default: Any) -> Any:
        value = self.data.get(key, _MISSING)
        if value is _MISSING:
            if default is _MISSING:
                raise BadField(self.name(key), "is missing")
            return default
        return value

    def _type(self, key: str, value: Any, kind: str) -> BadField:
        return BadField(self.name(key), f"is {_shown(value)} ({type(value).__name__}), not {kind}")

    def text(self, key: str, default: Any = _MISSING, *, optional: bool = False, choices: Iterable[str] = (),
             non_empty: bool = False, pattern: re.Pattern[str] | None = None) -> Any:
        value = self._get(key, default)
        if value is None and optional:
            return None
        if not isinstance(value, str):
            raise self._type(key, value, "text" + (" or null" if optional else ""))
        options = tuple(choices)
        if options and value not in options:
            raise BadField(self.name(key), f"is {_shown(value)}, not one of {', '.join(options)}")
        if non_empty and not value:
            raise BadField(self.name(key), "is empty")
        if pattern is not None and not pattern.fullmatch(value):
            raise BadField(self.name(key), f"is {_shown(value)}, which has characters outside {pattern.pattern}")
        return value

    def boolean(self, key: str, default: Any = _MISSING) -> bool:
        value = self._get(key, default)
        if not isinstance(value, bool):
            raise self._type(key, value, "true or false")
        return value

    def number(self, key: str, default: Any = _MISSING, *, optional: bool = False, minimum: float | None = None,
               maximum: float | None = None, positive: bool = False) -> Any:
        value = self._get(key, default)
        if value is None and optional:
            return None
        return finite(value, self.name(key), minimum=minimum, maximum=maximum, positive=positive)

    def integer(self, key: str, default: Any = _MISSING, *, optional: bool = False, minimum: int | None = None,
                maximum: int | None = None) -> Any:
        value = self._get(key, default)
        if value is None and optional:
            return None
        return whole(value, self.name(key), minimum=minimum, maximum=maximum)

    def timestamp(self, key: str, default: Any = _MISSING, *, optional: bool = False) -> Any:
        """The timestamp's text, kept as written (so a file round-trips), after a strict parse."""
        value = self._get(key, default)
        if value is None and optional:
            return None
        parse_timestamp(value, self.name(key))
        return value

    def mapping(self, key: str, default: Any = _MISSING) -> dict:
        value = self._get(key, default)
        if not isinstance(value, dict):
            raise self._type(key, value, "a JSON object")
        return value

    def items(self, key: str, read: Callable[["Fields"], Any], default: Any = _MISSING) -> list:
        """A list of objects, each read by `read` with its index in the field names."""
        value = self._get(key, default)
        if not isinstance(value, list):
            raise self._type(key, value, "a list")
        return [read(Fields(item, f"{self.name(key)}[{i}]")) for i, item in enumerate(value)]

    def values(self, key: str, check: Callable[[Any, str], Any], default: Any = _MISSING) -> list:
        """A list of plain values, each checked by `check(value, field_name)`."""
        value = self._get(key, default)
        if not isinstance(value, list):
            raise self._type(key, value, "a list")
        return [check(item, f"{self.name(key)}[{i}]") for i, item in enumerate(value)]


def finite(value: Any, field: str, *, minimum: float | None = None, maximum: float | None = None,
           positive: bool = False) -> float:
    """A finite number (int or float, never bool) within the bounds; `BadField` naming `field` otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadField(field, f"is {_shown(value)} ({type(value).__name__}), not a number")
    if isinstance(value, int) and abs(value) > 2 ** 63:
        raise BadField(field, f"is {_shown(value)}, far out of range")
    if not math.isfinite(value):
        raise BadField(field, f"is {value!r}, not a finite number")
    if positive and value <= 0:
        raise BadField(field, f"is {value!r}, but must be more than 0")
    if minimum is not None and value < minimum:
        raise BadField(field, f"is {value!r}, below the least allowed, {minimum:g}")
    if maximum is not None and value > maximum:
        raise BadField(field, f"is {value!r}, above the most allowed, {maximum:g}")
    return value


def whole(value: Any, field: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """An int (never bool) within the bounds; `BadField` naming `field` otherwise."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadField(field, f"is {_shown(value)} ({type(value).__name__}), not a whole number")
    if minimum is not None and value < minimum:
        raise BadField(field, f"is {value!r}, below the least allowed, {minimum}")
    if maximum is not None and value > maximum:
        raise BadField(field, f"is {value!r}, above the most allowed, {maximum}")
    return value


def number_from_text(text: str, field: str, *, integer: bool = False, minimum: float | None = None,
                     maximum: float | None = None, positive: bool = False) -> float | int:
    """A number typed by a person (command line, forms), checked like a file's: `BadField` naming `field`."""
    try:
        value = int(text.strip()) if integer else float(text.strip())
    except (ValueError, AttributeError):
        raise BadField(field, f"is {_shown(text)}, not a {'whole ' if integer else ''}number") from None
    if integer:
        return whole(value, field, minimum=1 if positive and minimum is None else minimum, maximum=maximum)
    return finite(value, field, minimum=minimum, maximum=maximum, positive=positive)
