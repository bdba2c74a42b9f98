"""Visibility queries for listing runs: our filters as Temporal list-filter clauses over search attributes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from api.errors import InvalidError
from docflow.runs import RunState
from docflow.temporal import SA_PROJECT, SA_STATUS, SA_TRIGGER, SA_WORKFLOW_ID

STATUS_ALIASES = {"failed": "error", "queued": "pending"}


def visibility_query(project_id: str, filters: dict[str, Any], started_before: datetime | None) -> str:
    """The list filter for the project's runs matching `filters`, started before a cursor's start."""
    clauses = [f"{SA_PROJECT.name} = {_q(project_id)}"]
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
        clauses.append(f"StartTime >= {_q(_day(filters['from_date'], 'from_date').isoformat())}")
    if filters.get("to_date"):
        end = _day(filters["to_date"], "to_date") + timedelta(days=1)
        clauses.append(f"StartTime < {_q(end.isoformat())}")
    if filters.get("search"):
        clauses.append(f"WorkflowId STARTS_WITH {_q(filters['search'])}")
    if started_before is not None:
        clauses.append(f"StartTime < {_q(started_before.isoformat())}")
    return " AND ".join(clauses)


def duration_ok(state: RunState, filters: dict[str, Any]) -> bool:
    """Whether a run's duration is within `min_duration_ms` / `max_duration_ms` (open runs never are)."""
    low, high = filters.get("min_duration_ms"), filters.get("max_duration_ms")
    if low is None and high is None:
        return True
    t = state.timing
    if t.started_at is None or t.completed_at is None:
        return False
    ms = (t.completed_at - t.started_at).total_seconds() * 1000
    return (low is None or ms >= low) and (high is None or ms <= high)


def _q(value: str) -> str:
    """A quoted literal of the list-filter language."""
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def _day(value: str, field: str) -> datetime:
    try:
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    except ValueError as exc:
        raise InvalidError(f"{field}: expected YYYY-MM-DD", code="invalid_date", field=field) from exc
