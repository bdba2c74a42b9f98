"""Run-list filters become visibility clauses, with values quoted so they cannot change the query."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from api.errors import InvalidError
from api.run_queries import visibility_query


def test_every_filter_becomes_a_clause() -> None:
    query = visibility_query(
        "proj_1",
        {"workflow_id": "wf_1", "status": "failed", "exclude_status": "queued", "trigger_type": "api",
         "from_date": "2026-11-01", "to_date": "2026-11-02", "search": "run_ab"},
        datetime(2026, 11, 2, 10, tzinfo=UTC),
    )  # fmt: skip
    assert query == (
        "DocflowProject = 'proj_1' AND WorkflowType = 'RunWorkflow' AND DocflowWorkflowId = 'wf_1'"
        " AND DocflowStatus = 'error'"
        " AND DocflowStatus != 'pending' AND DocflowTrigger = 'api'"
        " AND StartTime >= '2026-11-01T00:00:00+00:00' AND StartTime < '2026-11-03T00:00:00+00:00'"
        " AND WorkflowId STARTS_WITH 'run_ab' AND StartTime < '2026-11-02T10:00:00+00:00'"
    )


def test_quotes_in_values_are_escaped() -> None:
    query = visibility_query("proj_1", {"workflow_id": "x' OR DocflowProject = 'other"}, None)
    assert query == (
        "DocflowProject = 'proj_1' AND WorkflowType = 'RunWorkflow'"
        " AND DocflowWorkflowId = 'x\\' OR DocflowProject = \\'other'"
    )


def test_a_bad_date_is_refused_naming_the_field() -> None:
    with pytest.raises(InvalidError) as info:
        visibility_query("proj_1", {"to_date": "soon"}, None)
    assert info.value.details["field"] == "to_date"


def test_a_timezone_offset_in_from_date_is_honoured() -> None:
    query = visibility_query("proj_1", {"from_date": "2026-11-01T10:00:00+02:00"}, None)
    assert query.endswith("StartTime >= '2026-11-01T08:00:00+00:00'")


def test_a_datetime_without_offset_is_utc_and_z_is_accepted() -> None:
    assert visibility_query("p", {"from_date": "2026-11-01T10:00:00"}, None).endswith("'2026-11-01T10:00:00+00:00'")
    assert visibility_query("p", {"from_date": "2026-11-01T10:00:00Z"}, None).endswith("'2026-11-01T10:00:00+00:00'")


def test_a_to_date_datetime_is_an_inclusive_instant_and_a_day_covers_the_whole_day() -> None:
    assert visibility_query("p", {"to_date": "2026-11-01T10:00:00-01:00"}, None).endswith(
        "StartTime <= '2026-11-01T11:00:00+00:00'"
    )
    assert visibility_query("p", {"to_date": "2026-11-01"}, None).endswith("StartTime < '2026-11-02T00:00:00+00:00'")


@pytest.mark.parametrize(
    ("filters", "clause"),
    [
        ({"to_date": "9999-12-31"}, "StartTime <= '9999-12-31T23:59:59.999999+00:00'"),
        ({"to_date": "9999-12-31T23:00:00-05:00"}, "StartTime <= '9999-12-31T23:59:59.999999+00:00'"),
        ({"from_date": "0001-01-01T00:30:00+01:00"}, "StartTime >= '0001-01-01T00:00:00+00:00'"),
    ],
)
def test_dates_past_the_representable_range_are_clamped_to_it(filters: dict[str, str], clause: str) -> None:
    assert visibility_query("p", filters, None).endswith(clause)


def test_duration_filters_are_visibility_clauses_in_nanoseconds() -> None:
    query = visibility_query("p", {"min_duration_ms": 1500, "max_duration_ms": 10**30}, None)
    assert query.endswith("ExecutionDuration >= 1500000000 AND ExecutionDuration <= 9223372036854775807")
    assert visibility_query("p", {"min_duration_ms": -5}, None).endswith("ExecutionDuration >= 0")
