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
        "DocflowProject = 'proj_1' AND DocflowWorkflowId = 'wf_1' AND DocflowStatus = 'error'"
        " AND DocflowStatus != 'pending' AND DocflowTrigger = 'api'"
        " AND StartTime >= '2026-11-01T00:00:00+00:00' AND StartTime < '2026-11-03T00:00:00+00:00'"
        " AND WorkflowId STARTS_WITH 'run_ab' AND StartTime < '2026-11-02T10:00:00+00:00'"
    )


def test_quotes_in_values_are_escaped() -> None:
    query = visibility_query("proj_1", {"workflow_id": "x' OR DocflowProject = 'other"}, None)
    assert query == "DocflowProject = 'proj_1' AND DocflowWorkflowId = 'x\\' OR DocflowProject = \\'other'"


def test_a_bad_date_is_refused_naming_the_field() -> None:
    with pytest.raises(InvalidError) as info:
        visibility_query("proj_1", {"to_date": "soon"}, None)
    assert info.value.details["field"] == "to_date"
