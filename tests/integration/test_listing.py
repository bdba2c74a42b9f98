"""Run and workflow listings: date filters at the edges of the range and with offsets, against real Temporal;
a listing reads one page of records plus what it returns, never every record of the project.

The reads are counted on a real object store (a subclass that counts its calls), not a mock.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from retab import Retab
from temporalio.client import Client, Interceptor, ListWorkflowsInput, OutboundInterceptor

from api.auth import create_key
from api.definitions import Definitions, WorkflowCreate, WorkflowUpdate
from api.runs_service import Runs
from docflow.temporal import connect
from storage.objects import ObjectStore, Versioned
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


class CountingStore(ObjectStore):
    """The real store, counting the object reads (GET and HEAD) it makes."""

    reads = 0

    async def get_json(self, key: str) -> Versioned:
        self.reads += 1
        return await super().get_json(key)

    async def exists(self, key: str) -> bool:
        self.reads += 1
        return await super().exists(key)


class CountingInterceptor(Interceptor):
    """Counts the executions a real client's run listings go through."""

    listed = 0

    def intercept_client(self, next: OutboundInterceptor) -> OutboundInterceptor:
        counter = self

        class Counting(OutboundInterceptor):
            def list_workflows(self, input: ListWorkflowsInput) -> Any:
                executions = super().list_workflows(input)

                class Counted:
                    def __aiter__(self) -> Counted:
                        return self

                    async def __anext__(self) -> Any:
                        item = await executions.__anext__()
                        counter.listed += 1
                        return item

                return Counted()

        return Counting(next)


def test_a_duration_filter_reads_one_page_not_every_run(client: Retab, stack: Stack) -> None:
    blocks, edges = chain([("in", "start_json", {}), ("f", "function", {"expression": "input"})])
    wf_id, ids = build(client, stack.project_id, blocks, edges)
    runs = [
        client.workflows.runs.create(workflow_id=wf_id, json_inputs={ids["in"]: {}}, version="draft") for _ in range(6)
    ]
    for run in runs:
        wait_for(client, run.id)
    store = CountingStore(stack.settings)
    counter = CountingInterceptor()

    async def listed(filters: dict[str, Any], limit: int) -> tuple[list[str], bool]:
        temporal = await connect(stack.settings)
        service = Runs(store, Client(**{**temporal.config(), "interceptors": [counter]}), stack.settings)
        deadline = time.monotonic() + 10
        while True:  # visibility is eventually consistent
            store.reads = counter.listed = 0
            found, more = await service.list(stack.project_id, {"workflow_id": wf_id, **filters}, None, limit)
            if len(found) >= min(limit, 6) or not filters.get("max_duration_ms") or time.monotonic() > deadline:
                return [s.run_id for s in found], more

    # No run lasts an hour: nothing matches, and no run record is read to find that out.
    found, more = asyncio.run(listed({"min_duration_ms": 3_600_000}, 2))
    assert (found, more) == ([], False)
    assert counter.listed == 0 and store.reads == 0
    # Every run matches: a page of 2 reads at most its own runs' records (and the one that shows more follow).
    found, more = asyncio.run(listed({"min_duration_ms": 0, "max_duration_ms": 3_600_000}, 2))
    assert len(found) == 2 and more
    assert counter.listed <= 3 and store.reads <= 3


def test_listing_workflows_reads_only_what_changed(stack: Stack) -> None:
    _, project = create_key(stack.settings.keys_file, name="listing")
    store = CountingStore(stack.settings)
    definitions = Definitions(store)

    async def scenario() -> tuple[int, int, int]:
        for _ in range(8):
            await definitions.create_workflow(project, WorkflowCreate(project_id=project))
        first = await definitions.list_workflows(project)
        assert len(first) == 8
        store.reads = 0
        await definitions.list_workflows(project)
        unchanged = store.reads
        await definitions.update_workflow(project, first[0].id, WorkflowUpdate(name="renamed"))
        await definitions.create_workflow(project, WorkflowCreate(project_id=project, name="new"))
        store.reads = 0
        listed = await definitions.list_workflows(project)
        assert len(listed) == 9
        assert next(w for w in listed if w.id == first[0].id).name == "renamed"
        changed = store.reads
        await definitions.delete_workflow(project, first[1].id)
        assert first[1].id not in [w.id for w in await definitions.list_workflows(project)]
        return unchanged, changed, len(listed)

    unchanged, changed, _ = asyncio.run(scenario())
    assert unchanged <= 1  # the listing index itself
    assert changed <= 3  # the index and the two records that changed


def test_reruns_and_test_runs_are_visible_by_project_and_the_runs_listing_shows_only_runs(
    client: Retab, stack: Stack, http: httpx.Client
) -> None:
    blocks, edges = chain([("in", "start_json", {}), ("f", "function", {"expression": "input"})])
    wf_id, ids = build(client, stack.project_id, blocks, edges)
    run = wait_for(
        client, client.workflows.runs.create(workflow_id=wf_id, json_inputs={ids["in"]: {}}, version="draft").id
    )
    rerun = http.post("/v1/workflows/blocks/executions", json={"run_id": run.id, "block_id": ids["f"]})
    assert rerun.status_code == 200, rerun.text
    manual = {"type": "manual", "handle_inputs": {"input-json-0": {"type": "json", "data": {"a": 1}}}}
    test = http.post(
        "/v1/workflows/tests",
        json={
            "workflow_id": wf_id,
            "target": {"type": "block", "block_id": ids["f"]},
            "source": manual,
            "assertion": {"target": {"output_handle_id": "output-json-0"}, "condition": {"kind": "exists"}},
        },
    )
    assert test.status_code == 201, test.text
    test_run = http.post("/v1/workflows/tests/runs", json={"workflow_id": wf_id})
    assert test_run.status_code == 201, test_run.text
    test_run_id = test_run.json()["id"]
    deadline = time.monotonic() + 30
    while http.get(f"/v1/workflows/tests/runs/{test_run_id}").json()["lifecycle"]["status"] not in {
        "completed",
        "error",
    }:
        assert time.monotonic() < deadline, "the test run did not end"
        time.sleep(0.2)
    # The test's child execution: the test run's one result names it.
    child = http.get("/v1/workflows/tests/results", params={"run_id": test_run_id}).json()["data"][0]["execution_id"]
    expected = {run.id, rerun.json()["id"], test_run_id, child}

    async def by_project() -> set[str]:
        temporal = await connect(stack.settings)
        query = f"DocflowProject = '{stack.project_id}' AND DocflowWorkflowId = '{wf_id}'"
        return {e.id async for e in temporal.list_workflows(query)}

    deadline = time.monotonic() + 15
    while (found := asyncio.run(by_project())) != expected:  # visibility is eventually consistent
        assert time.monotonic() < deadline, f"visibility by project found {found}, not {expected}"
        time.sleep(0.3)
    listed = http.get("/v1/workflows/runs", params={"workflow_id": wf_id}).json()["data"]
    assert [r["id"] for r in listed] == [run.id]
