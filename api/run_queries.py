"""Visibility queries for listing runs: our filters as Temporal list-filter clauses over search attributes.

Dates: `from_date` / `to_date` take a day (`YYYY-MM-DD`, UTC) or an ISO 8601 datetime. An offset is honoured
(converted to UTC), a datetime without one is UTC. `from_date` is the first instant included; a `to_date` day
includes the whole day, a `to_date` datetime is the last instant included. Values at the edge of the
representable range are clamped to it (`to_date=9999-12-31` means "no upper bound"), never an error.

Durations: `min_duration_ms` / `max_duration_ms` are clauses on Temporal's `ExecutionDuration` (close time
minus start time, in nanoseconds; unset while a run is open, so open runs never match), so visibility does the
filtering and a request reads one page, however few runs of the project match.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from api.errors import InvalidError
from docflow.temporal import RUN_WORKFLOW, SA_PROJECT, SA_STATUS, SA_TRIGGER, SA_WORKFLOW_ID

STATUS_ALIASES = {"failed": "error", "queued": "pending"}


def visibility_query(project_id: str, filters: dict[str, Any], started_before: datetime | None) -> str:
    """The list filter for the project's runs matching `filters`, started before a cursor's start."""
    # Block executions and test runs carry the project too (visibility by project finds them): only runs here.
    clauses = [f"{SA_PROJECT.name} = {_q(project_id)}", f"WorkflowType = {_q(RUN_WORKFLOW)}"]
    if filters.get("workflow_id"):
        clauses.append(f"{SA_WORKFLOW_ID.name} = {_q(filters['workflow_id'])}")
    if filters.get("status"):
        clauses.append(f"{SA_STATUS.name} = {_q(STATUS_ALIASES.get(filters['status'], filters['status']))}")
    if filters.get("exclude_status"):
        excluded = filters["exclude_status"]
        clauses.append(f"{SA_STATUS.name} != {_q(STATUS_ALIASES.get(excluded, excluded))}")
    if filters.get("trigger_type"):
        clauses.append(f"{SA_TRIGGER.name} = {_q(filters['trigger_type'])}")
    if filters.get("from_date"):
        start, _ = _instant(filters["from_date"], "from_date")
        clauses.append(f"StartTime >= {_q(start.isoformat())}")
    if filters.get("to_date"):
        clauses.append(_until(filters["to_date"]))
    if filters.get("min_duration_ms") is not None:
        clauses.append(f"ExecutionDuration >= {_nanoseconds(filters['min_duration_ms'])}")
    if filters.get("max_duration_ms") is not None:
        clauses.append(f"ExecutionDuration <= {_nanoseconds(filters['max_duration_ms'])}")
    if filters.get("search"):
        clauses.append(f"WorkflowId STARTS_WITH {_q(filters['search'])}")
    if started_before is not None:
        clauses.append(f"StartTime < {_q(started_before.isoformat())}")
    return " AND ".join(clauses)


def _nanoseconds(ms: int) -> int:
    # Negative bounds mean nothing more than 0; huge ones are clamped to what an int64 holds.
    return min(max(int(ms), 0) * 1_000_000, 2**63 - 1)


def _q(value: str) -> str:
    """A quoted literal of the list-filter language."""
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


_EARLIEST = datetime.min.replace(tzinfo=UTC)
_LATEST = datetime.max.replace(tzinfo=UTC)


def _until(value: str) -> str:
    """The clause of a `to_date`: before the next day for a day, up to and including a datetime."""
    end, is_day = _instant(value, "to_date")
    if is_day:
        try:
            return f"StartTime < {_q((end + timedelta(days=1)).isoformat())}"
        except OverflowError:
            end = _LATEST
    return f"StartTime <= {_q(end.isoformat())}"


def _instant(value: str, field: str) -> tuple[datetime, bool]:
    """The UTC instant a date filter names, and whether it named a whole day."""
    try:
        if len(value) == 10:
            return datetime.combine(date.fromisoformat(value), datetime.min.time(), UTC), True
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        message = f"{field}: expected a day (YYYY-MM-DD) or an ISO 8601 datetime"
        raise InvalidError(message, code="invalid_date", field=field) from exc
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC), False
    try:
        return parsed.astimezone(UTC), False
    except OverflowError:  # an offset pushes it past year 1 or 9999: clamp to the range
        return (_LATEST if parsed.year == datetime.max.year else _EARLIEST), False
