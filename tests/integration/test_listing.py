"""Run and workflow listings: date filters at the edges of the range and with offsets, against real Temporal."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta, timezone

import httpx
import pytest
from retab import Retab

from tests.conftest import Stack
from tests.integration.builders import build, chain, wait_for


@pytest.mark.parametrize(
    "params",
    [
        {"to_date": "9999-12-31"},
        {"to_date": "9999-12-31T23:00:00-05:00"},
        {"from_date": "0001-01-01"},
        {"from_date": "0001-01-01T00:30:00+01:00", "to_date": "9999-12-31T23:59:59Z"},
    ],
)
def test_dates_at_the_edges_of_the_range_are_not_a_500(http: httpx.Client, params: dict[str, str]) -> None:
    answer = http.get("/v1/workflows/runs", params=params)
    assert answer.status_code == 200, answer.text


def test_a_timezone_offset_in_from_date_is_honoured(client: Retab, stack: Stack, http: httpx.Client) -> None:
    blocks, edges = chain([("in", "start_json", {}), ("f", "function", {"expression": "input"})])
    wf_id, ids = build(client, stack.project_id, blocks, edges)
    before = datetime.now(UTC) - timedelta(minutes=10)
    run = client.workflows.runs.create(workflow_id=wf_id, json_inputs={ids["in"]: {}}, version="draft")
    wait_for(client, run.id)

    def listed(**params: str) -> list[str]:
        deadline = time.monotonic() + 10
        while True:  # visibility is eventually consistent
            found = [
                r["id"] for r in http.get("/v1/workflows/runs", params={"workflow_id": wf_id, **params}).json()["data"]
            ]
            if found or time.monotonic() > deadline:
                return found
            time.sleep(0.2)

    # Ten minutes before the run, written at +05:00: read as UTC (offset dropped) it is 5 h later, after the run.
    east = before.astimezone(timezone(timedelta(hours=5))).isoformat()
    assert listed(from_date=east) == [run.id]
    # Ten minutes before the run, written at -05:00: read as UTC it is 5 h earlier, so the run would be listed.
    west = before.astimezone(timezone(timedelta(hours=-5))).isoformat()
    assert http.get("/v1/workflows/runs", params={"workflow_id": wf_id, "to_date": west}).json()["data"] == []
