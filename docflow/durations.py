"""ISO 8601 durations (`P3D`, `PT12H`, `P1DT2H30M`, `PT1.5S`, `P2W`) as timedeltas, for review deadlines.

Accepted: `PnW` alone, or `PnDTnHnMnS` with any of its parts (at least one), ASCII integers everywhere and
a fraction (`.` or `,`) on the seconds only. Refused with a message that says why: years and months (`P1Y`,
`P1M`: their length depends on the calendar, so a durable timer could not be set from them), negative
durations, and anything outside 1 second .. 366 days. The parser is a regex over at most 64 characters.
"""

from __future__ import annotations

import re
from datetime import timedelta

MIN_DURATION = timedelta(seconds=1)
MAX_DURATION = timedelta(days=366)
MAX_LENGTH = 64

_WEEKS = re.compile(r"P(?P<weeks>\d+)W", re.ASCII)
_DAY_TIME = re.compile(
    r"P(?:(?P<days>\d+)D)?(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+(?:[.,]\d+)?)S)?)?",
    re.ASCII,
)


class DurationError(ValueError):
    """A duration we refuse; the message says what to write instead."""


def parse_iso_duration(text: str) -> timedelta:
    """The timedelta an ISO 8601 duration stands for, within 1 s .. 366 days; raises DurationError."""
    if not isinstance(text, str) or len(text) > MAX_LENGTH:
        raise DurationError(f"an ISO 8601 duration is a string of at most {MAX_LENGTH} characters, like 'P3D'")
    value = text.upper()
    if value.startswith("-"):
        raise DurationError(f"{text!r}: a duration cannot be negative")
    duration = _weeks(value) or _day_time(value)
    if duration is None:
        if _is_calendar(value):
            raise DurationError(
                f"{text!r}: years and months have no fixed length; give days or weeks instead (e.g. 'P30D')"
            )
        if "." in value or "," in value:
            raise DurationError(f"{text!r}: only the seconds may have a fraction (e.g. 'PT1.5S', 'PT36H')")
        raise DurationError(f"{text!r} is not an ISO 8601 duration like 'P3D', 'PT12H', 'P1DT2H30M' or 'P2W'")
    if not MIN_DURATION <= duration <= MAX_DURATION:
        raise DurationError(f"{text!r}: a duration must lie between 1 second and 366 days")
    return duration


def _weeks(value: str) -> timedelta | None:
    match = _WEEKS.fullmatch(value)
    if match is None:
        return None
    # Huge digits are refused by the bounds, never built as a timedelta (which would overflow).
    return timedelta(weeks=min(int(match["weeks"]), 60))


def _day_time(value: str) -> timedelta | None:
    match = _DAY_TIME.fullmatch(value)
    # `P` and `PT` alone match with every part empty: a duration needs at least one, and `T` needs a time part.
    if match is None or not any(match.groupdict().values()) or value.endswith("T"):
        return None
    parts = {name: _number(match[name]) for name in ("days", "hours", "minutes", "seconds")}
    # Huge digits are refused by the bounds, never built as a timedelta (which would overflow).
    return timedelta(**{name: min(number, 1e6) for name, number in parts.items()})


def _number(text: str | None) -> float:
    return float(text.replace(",", ".")) if text else 0.0


def _is_calendar(value: str) -> bool:
    # `P1Y`, `P2M`, `P1Y2M3D`: a year or month part before any `T` (after it, `M` is minutes).
    head = value.split("T", 1)[0]
    return value.startswith("P") and ("Y" in head or "M" in head)
