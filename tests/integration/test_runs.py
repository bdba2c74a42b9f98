"""Runs end to end, through the official SDK, against real Temporal, real S3 and a worker process."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from retab import Retab
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowExecutionStatus

from docflow.temporal import connect
from storage.objects import ObjectStore
from tests.chat_server import ChatCompletionsServer
from tests.conftest import RECORDING, Stack
from tests.http_target import HttpTarget
from tests.integration.builders import build, build_invoice, chain, json_edge, wait_for


def test_invoice_pdf_run_completes_with_steps_and_artifacts(
    client: Retab, stack: Stack, samples: Path, store: ObjectStore, model_server: ChatCompletionsServer
) -> None:
    wf_id, ids = build_invoice(client, stack.project_id)
    earlier = len(model_server.requests)  # other tests run the same sample invoice
    run = client.workflows.runs.create(
        workflow_id=wf_id,
        documents={ids["invoice"]: samples / "invoice.pdf"},
        json_inputs={ids["customer"]: {"customer_id": "cust_123", "priority": "high"}},
    )
    assert run.lifecycle.status in {"pending", "running"}
    done = wait_for(client, run.id)
    assert done.lifecycle.status == "completed", done.lifecycle
    assert done.inputs is not None and done.inputs.documents[ids["invoice"]].filename == "invoice.pdf"

    steps = {s.block_id: s for s in client.workflows.steps.list(run_id=run.id)}
    assert ids["readme"] not in steps  # notes never execute
    assert steps[ids["auto_approve"]].lifecycle.status == "skipped"
    assert "output-json-else" in steps[ids["auto_approve"]].lifecycle.reason  # type: ignore[union-attr]
    merged = client.workflows.steps.get(ids["merge"], run_id=run.id)
    data = merged.handle_outputs["output-json-0"].data  # type: ignore[index]
    assert data["invoice_number"] == "INV-2026-0042"
    assert data["total_amount"] == 1440.0
    assert data["needs_approval"] is True
    assert data["customer_id"] == "cust_123"

    extract = steps[ids["extract"]]
    assert extract.artifact is not None and extract.artifact.operation == "extraction"
    artifact = client.workflows.artifacts.get(extract.artifact.id)
    assert artifact.output["vendor_name"] == "Acme Supplies Ltd"  # type: ignore[union-attr]
    assert artifact.model == "test-model"
    calls = [r for r in model_server.requests[earlier:] if "INV-2026-0042" in json.dumps(r.body)]
    assert len(calls) == 1 and calls[0].header("Authorization") == "Bearer sk-test"
    assert calls[0].body["response_format"]["json_schema"]["schema"]["properties"]["vendor_name"]
    operations = {a.operation for a in client.workflows.artifacts.list(run_id=run.id)}
    assert {"parse", "extraction", "conditional_evaluation"} <= operations
    if RECORDING:
        _record_history(stack, run.id, "invoice_run")
    else:
        offloaded = asyncio.run(store.list_keys("temporal-payloads/"))
        assert any(run.id in key for key in offloaded), "no payload of this run went through Temporal's claim check"


def _record_history(stack: Stack, run_id: str, name: str) -> None:
    async def fetch() -> str:
        client = await connect(stack.settings)
        return (await client.get_workflow_handle(run_id).fetch_history()).to_json()

    (Path(__file__).resolve().parents[1] / "histories" / f"{name}.json").write_text(asyncio.run(fetch()))


def test_block_log_lines_carry_run_block_and_step_ids(client: Retab, stack: Stack) -> None:
    blocks, edges = chain([("in", "start_json", {}), ("f", "function", {"expression": "input"})])
    wf_id, ids = build(client, stack.project_id, blocks, edges)
    run = client.workflows.runs.create(workflow_id=wf_id, json_inputs={ids["in"]: {}}, version="draft")
    assert wait_for(client, run.id).lifecycle.status == "completed"
    lines = [json.loads(line) for line in (stack.settings.data_dir / "logs" / "worker.log").read_text().splitlines()
             if line.startswith("{")]  # fmt: skip
    mine = [line for line in lines if line.get("run_id") == run.id]
    assert {line["event"] for line in mine} >= {"block started", "block completed"}
    assert {(line["block_id"], line["step_id"]) for line in mine} == {(ids["in"], ids["in"]), (ids["f"], ids["f"])}


def test_get_run_page_fields_and_run_scoped_steps(client: Retab, http: httpx.Client, stack: Stack) -> None:
    blocks, edges = chain([("in", "start_json", {}), ("double", "function", {"expression": "input['n'] * 2"})])
    wf_id, ids = build(client, stack.project_id, blocks, edges)
    run = client.workflows.runs.create(workflow_id=wf_id, json_inputs={ids["in"]: {"n": 21}}, version="draft")
    wait_for(client, run.id)
    body = http.get(f"/v1/workflows/runs/{run.id}").json()
    assert body["lifecycle"] == {"status": "completed", "kind": "completed"}
    timing = body["timing"]
    assert timing["duration_ms"] >= 0 and timing["active_duration_ms"] == timing["duration_ms"]
    assert timing["accumulated_human_waiting_ms"] == 0 and timing["accumulated_review_waiting_ms"] == 0
    assert body["workflow"]["version_id"] == body["workflow_version_id"]
    assert body["inputs"]["json_data"] == {ids["in"]: {"n": 21}}
    listed = http.get(f"/v1/workflows/runs/{run.id}/steps").json()
    assert [s["block_id"] for s in listed] == [ids["in"], ids["double"]]
    step = http.get(f"/v1/workflows/runs/{run.id}/steps/{ids['double']}").json()
    assert step["handle_outputs"]["output-json-0"]["data"] == 42


def test_api_call_retries_and_traces(client: Retab, stack: Stack, http_target: HttpTarget) -> None:
    config = {
        "method": "POST",
        "url": f"{http_target.url}/flaky/a?fail=2",
        "body": {"sku": "{{ sku }}", "qty": "{{ qty }}"},
        "retry": {"max_attempts": 4, "initial_backoff_seconds": 0.05},
    }
    blocks, edges = chain([("in", "start_json", {}), ("call", "api_call", config)])
    wf_id, ids = build(client, stack.project_id, blocks, edges)
    run = client.workflows.runs.create(
        workflow_id=wf_id, json_inputs={ids["in"]: {"sku": "W-1", "qty": 3}}, version="draft"
    )
    assert wait_for(client, run.id).lifecycle.status == "completed"
    step = client.workflows.steps.get(ids["call"], run_id=run.id)
    assert step.handle_outputs["output-json-0"].data["received"] == {"sku": "W-1", "qty": 3}  # type: ignore[index]
    trace = client.workflows.artifacts.get(step.artifact.id)  # type: ignore[union-attr]
    assert [a.response_status for a in trace.attempts] == [503, 503, 200]  # type: ignore[union-attr]


def test_failing_block_fails_the_run_naming_the_block(client: Retab, stack: Stack, http_target: HttpTarget) -> None:
    config = {"method": "POST", "url": f"{http_target.url}/missing", "retry": {"max_attempts": 1}}
    blocks, edges = chain(
        [("in", "start_json", {}), ("call", "api_call", config), ("after", "function", {"expression": "1"})]
    )
    wf_id, ids = build(client, stack.project_id, blocks, edges)
    run = client.workflows.runs.create(workflow_id=wf_id, json_inputs={ids["in"]: {}}, version="draft")
    done = wait_for(client, run.id)
    assert done.lifecycle.status == "error"
    assert done.lifecycle.failing_step_id == ids["call"]  # type: ignore[union-attr]
    assert "404" in done.lifecycle.message  # type: ignore[union-attr]
    steps = {s.block_id: s.lifecycle for s in client.workflows.steps.list(run_id=run.id)}
    assert {k: v.status for k, v in steps.items()} == {
        ids["in"]: "completed",
        ids["call"]: "error",
        ids["after"]: "skipped",
    }
    assert ids["call"] in steps[ids["after"]].reason
    if RECORDING:
        _record_history(stack, run.id, "failed_run")


def test_large_output_is_claim_checked_out_of_history(client: Retab, stack: Stack) -> None:
    blocks, edges = chain(
        [("in", "start_json", {}), ("big", "function", {"expression": "'x' * 50000"}),
         ("size", "function", {"expression": "len(input)"})]
    )  # fmt: skip
    wf_id, ids = build(client, stack.project_id, blocks, edges)
    run = client.workflows.runs.create(workflow_id=wf_id, json_inputs={ids["in"]: {}}, version="draft")
    assert wait_for(client, run.id).lifecycle.status == "completed"
    assert client.workflows.steps.get(ids["size"], run_id=run.id).handle_outputs["output-json-0"].data == 50000  # type: ignore[index]
    assert len(client.workflows.steps.get(ids["big"], run_id=run.id).handle_outputs["output-json-0"].data) == 50000  # type: ignore[index, arg-type]
    history = _history_sizes(stack, run.id)
    assert max(history) < 20000, "a 50 kB output went through the workflow history"


def _history(stack: Stack, run_id: str) -> list[Any]:
    """The run's whole history, once its execution has closed (its state reads final a little before: the
    summary and the webhooks are sent after)."""

    async def fetch() -> list[Any]:
        handle = (await connect(stack.settings)).get_workflow_handle(run_id)
        for _ in range(200):
            if (await handle.describe()).status != WorkflowExecutionStatus.RUNNING:
                break
            await asyncio.sleep(0.05)
        return list((await handle.fetch_history()).events)

    return asyncio.run(fetch())


def _history_sizes(stack: Stack, run_id: str) -> list[int]:
    return [e.ByteSize() for e in _history(stack, run_id)]


def test_cancel_a_running_run(client: Retab, stack: Stack, http_target: HttpTarget) -> None:
    config = {"method": "POST", "url": f"{http_target.url}/slow?seconds=20", "timeout_seconds": 60}
    blocks, edges = chain([("in", "start_json", {}), ("wait", "api_call", config)])
    wf_id, ids = build(client, stack.project_id, blocks, edges)
    run = client.workflows.runs.create(workflow_id=wf_id, json_inputs={ids["in"]: {}}, version="draft")
    _wait_step(client, run.id, ids["wait"], "running")
    answer = client.workflows.runs.cancel(run.id)
    assert answer.cancellation_status is not None and answer.cancellation_status.value == "cancellation_requested"
    done = wait_for(client, run.id, timeout=30)
    assert done.lifecycle.status == "cancelled"
    steps = {s.block_id: s.lifecycle.status for s in client.workflows.steps.list(run_id=run.id)}
    assert steps[ids["wait"]] == "cancelled"
    events = {e.event_type for e in _history(stack, run.id)}
    assert EventType.EVENT_TYPE_ACTIVITY_TASK_CANCELED in events  # the call in flight was stopped, not abandoned
    assert EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED in events
    if RECORDING:
        _record_history(stack, run.id, "cancelled_run")


def _wait_step(client: Retab, run_id: str, block_id: str, status: str, timeout: float = 30) -> None:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        steps = {s.block_id: s.lifecycle.status for s in client.workflows.steps.list(run_id=run_id)}
        if steps.get(block_id) == status:
            return
        time.sleep(0.1)
    raise AssertionError(f"step {block_id} never reached {status}")


def test_list_runs_filters_and_pages(client: Retab, stack: Stack) -> None:
    blocks, edges = chain([("in", "start_json", {}), ("f", "function", {"expression": "input"})])
    wf_id, ids = build(client, stack.project_id, blocks, edges)
    run_ids = []
    for i in range(3):
        run = client.workflows.runs.create(workflow_id=wf_id, json_inputs={ids["in"]: {"i": i}}, version="draft")
        wait_for(client, run.id)
        run_ids.append(run.id)
    listed = _eventually_listed(client, wf_id, 3)
    assert [r.id for r in listed] == list(reversed(run_ids))  # newest first
    first = client.workflows.runs.list(workflow_id=wf_id, limit=2)
    assert [r.id for r in first.data] == list(reversed(run_ids))[:2] and first.has_more
    second = client.workflows.runs.list(workflow_id=wf_id, limit=2, after=first.list_metadata.after)
    assert [r.id for r in second.data] == [run_ids[0]] and not second.has_more
    assert [r.id for r in client.workflows.runs.list(workflow_id=wf_id, status="error").data] == []
    assert len(client.workflows.runs.list(workflow_id=wf_id, status="completed").data) == 3


def _eventually_listed(client: Retab, wf_id: str, n: int) -> list:  # type: ignore[type-arg]
    import time

    deadline = time.monotonic() + 10
    while True:
        runs = client.workflows.runs.list(workflow_id=wf_id, status="completed", limit=50).data
        if len(runs) >= n or time.monotonic() > deadline:
            return runs
        time.sleep(0.2)


def test_idempotency_key_starts_one_run(client: Retab, stack: Stack, http: httpx.Client) -> None:
    blocks, edges = chain([("in", "start_json", {}), ("f", "function", {"expression": "input"})])
    wf_id, ids = build(client, stack.project_id, blocks, edges)
    body = {"workflow_id": wf_id, "json_inputs": {ids["in"]: {}}, "version": "draft"}
    first = http.post("/v1/workflows/runs", json=body, headers={"Idempotency-Key": f"k-{wf_id}"})
    second = http.post("/v1/workflows/runs", json=body, headers={"Idempotency-Key": f"k-{wf_id}"})
    assert first.status_code == second.status_code == 200
    assert first.json()["id"] == second.json()["id"]


def test_run_of_another_project_is_not_found(client: Retab, other_client: Retab, stack: Stack) -> None:
    blocks, edges = chain([("in", "start_json", {}), ("f", "function", {"expression": "input"})])
    wf_id, ids = build(client, stack.project_id, blocks, edges)
    run = client.workflows.runs.create(workflow_id=wf_id, json_inputs={ids["in"]: {}}, version="draft")
    with pytest.raises(Exception) as err:
        other_client.workflows.runs.get(run.id)
    assert getattr(err.value, "status_code", None) == 404
    assert all(r.id != run.id for r in other_client.workflows.runs.list().data)


def test_delete_run(client: Retab, stack: Stack, http: httpx.Client) -> None:
    blocks, edges = chain([("in", "start_json", {}), ("f", "function", {"expression": "input"})])
    wf_id, ids = build(client, stack.project_id, blocks, edges)
    run = client.workflows.runs.create(workflow_id=wf_id, json_inputs={ids["in"]: {}}, version="draft")
    wait_for(client, run.id)
    client.workflows.runs.delete(run.id)
    assert http.get(f"/v1/workflows/runs/{run.id}").status_code == 404


def test_a_long_chain_runs_and_its_steps_page(client: Retab, stack: Stack) -> None:
    specs: list[tuple[str, str, dict]] = [("in", "start_json", {})] + [
        (f"f{i}", "function", {"mapping": {"n": "input['n'] + 1"}}) for i in range(25)
    ]
    blocks, edges = chain(specs)
    wf_id, ids = build(client, stack.project_id, blocks, edges)
    run = client.workflows.runs.create(workflow_id=wf_id, json_inputs={ids["in"]: {"n": 0}}, version="draft")
    assert wait_for(client, run.id).lifecycle.status == "completed"
    first = client.workflows.steps.list(run_id=run.id)
    assert len(first.data) == 20 and first.has_more
    steps = list(client.workflows.steps.list(run_id=run.id))  # the SDK follows `after` cursors
    assert [s.block_id for s in steps] == [ids[b[0]] for b in specs]
    assert steps[-1].handle_outputs["output-json-0"].data == {"n": 25}


EXTRACT_TEXT = {
    "json_schema": {"type": "object", "properties": {"total": {"type": "number", "description": "Total"}}},
    "inputs": [{"name": "text", "type": "json"}],
}


def _extract_chain(client: Retab, stack: Stack) -> tuple[str, dict[str, str]]:
    blocks = [{"id": "in", "type": "start_json"}, {"id": "ex", "type": "extract", "config": EXTRACT_TEXT}]
    edges = [json_edge("in", "ex", "input-json-text")]
    return build(client, stack.project_id, blocks, edges)


def test_a_model_server_error_is_retried(
    client: Retab, stack: Stack, http: httpx.Client, model_server: ChatCompletionsServer
) -> None:
    wf_id, ids = _extract_chain(client, stack)
    # The provider retries once in process (the stack's model_max_retries=1); the third failure is met by
    # the activity's retry, whose provider call then retries once more and succeeds.
    model_server.fail_next(503, times=3)
    run = client.workflows.runs.create(
        workflow_id=wf_id, json_inputs={ids["in"]: {"text": "Total: 12.50"}}, version="draft"
    )
    assert wait_for(client, run.id).lifecycle.status == "completed"
    step = client.workflows.steps.get(ids["ex"], run_id=run.id)
    assert step.handle_outputs["output-json-0"].data == {"total": 12.5}
    assert step.retry_count == 1
    assert step.artifact is not None
    usage = http.get(f"/v1/workflows/artifacts/{step.artifact.id}").json()["usage"]
    # The attempt that succeeded: one completion after one in-process retry, its tokens and wall time.
    assert usage["credits"] == 0.0 and usage["calls"] == 1 and usage["retries"] == 1
    assert usage["prompt_tokens"] == 11 and usage["completion_tokens"] == 7 and usage["wall_time_ms"] >= 25


def test_a_model_refusal_fails_the_run_at_its_block(
    client: Retab, stack: Stack, model_server: ChatCompletionsServer
) -> None:
    wf_id, ids = _extract_chain(client, stack)
    model_server.fail_next(400, times=1)
    run = client.workflows.runs.create(
        workflow_id=wf_id, json_inputs={ids["in"]: {"text": "Total: 1"}}, version="draft"
    )
    done = wait_for(client, run.id)
    assert done.lifecycle.status == "error" and done.lifecycle.failing_step_id == ids["ex"]
    assert "400" in done.lifecycle.message


def test_a_version_that_cannot_be_loaded_ends_the_run_in_error(client: Retab, stack: Stack) -> None:
    from datetime import UTC, datetime

    from temporalio.common import SearchAttributePair, TypedSearchAttributes

    from docflow.runs import RunState, RunWorkflowInput
    from docflow.temporal import SA_PROJECT, SA_STATUS
    from workflows.run import RunWorkflow

    inp = RunWorkflowInput(
        run_id=f"run_missingversion{uuid.uuid4().hex[:12]}",
        project_id=stack.project_id,
        workflow_id="wf_gone",
        version_id="ver_gone",
        created_at=datetime.now(UTC),
    )

    async def start() -> None:
        temporal = await connect(stack.settings)
        attrs = [SearchAttributePair(SA_PROJECT, stack.project_id), SearchAttributePair(SA_STATUS, "pending")]
        await temporal.start_workflow(
            RunWorkflow.run,
            inp,
            id=inp.run_id,
            task_queue=stack.settings.task_queue,
            search_attributes=TypedSearchAttributes(attrs),
            memo={"run": RunState.initial(inp).model_dump(mode="json")},
        )

    asyncio.run(start())
    done = wait_for(client, inp.run_id)
    assert done.lifecycle.status == "error"
    assert done.lifecycle.stage == "registry_lookup"
    assert "ver_gone" in done.lifecycle.message


def test_list_runs_by_date_duration_search_and_trigger(client: Retab, stack: Stack) -> None:
    from datetime import UTC, datetime, timedelta

    blocks, edges = chain([("in", "start_json", {}), ("f", "function", {"expression": "input"})])
    wf_id, ids = build(client, stack.project_id, blocks, edges)
    run = client.workflows.runs.create(workflow_id=wf_id, json_inputs={ids["in"]: {}}, version="draft")
    wait_for(client, run.id)
    _eventually_listed(client, wf_id, 1)
    today = datetime.now(UTC).date()

    def listed(**filters: object) -> list[str]:
        return [r.id for r in client.workflows.runs.list(workflow_id=wf_id, **filters).data]  # type: ignore[arg-type]

    assert listed(from_date=str(today), to_date=str(today)) == [run.id]
    assert listed(from_date=str(today + timedelta(days=1))) == []
    assert listed(to_date=str(today - timedelta(days=1))) == []
    assert listed(search=run.id[:12]) == [run.id]
    assert listed(search="run_nomatch") == []
    # A duration exists once the execution has closed, a moment after the run reads completed (its summary and
    # webhooks are sent after).
    deadline = time.monotonic() + 15
    while listed(min_duration_ms=0, max_duration_ms=600_000) != [run.id]:
        assert time.monotonic() < deadline, "the closed run never matched a duration filter"
        time.sleep(0.1)
    assert listed(min_duration_ms=600_000) == []
    assert listed(trigger_type="api") == [run.id]
    assert listed(trigger_type="schedule") == []
    assert listed(exclude_status="completed") == []


def test_ready_blocks_run_concurrently(client: Retab, stack: Stack, http_target: HttpTarget) -> None:
    path = f"/slow/parallel-{uuid.uuid4().hex[:8]}"
    slow = {"url": f"{http_target.url}{path}?seconds=1.5", "timeout_seconds": 30}
    blocks = [
        {"id": "in", "type": "start_json"},
        {"id": "a", "type": "api_call", "config": slow},
        {"id": "b", "type": "api_call", "config": slow},
        {"id": "m", "type": "merge_dicts"},
    ]
    edges = [
        {"source_block": "in", "target_block": "a", "source_handle": "output-json-0", "target_handle": "input-json-0"},
        {"source_block": "in", "target_block": "b", "source_handle": "output-json-0", "target_handle": "input-json-0"},
        {"source_block": "a", "target_block": "m", "source_handle": "output-json-0", "target_handle": "input-json-0"},
        {"source_block": "b", "target_block": "m", "source_handle": "output-json-0", "target_handle": "input-json-1"},
    ]
    wf_id, ids = build(client, stack.project_id, blocks, edges)
    run = client.workflows.runs.create(workflow_id=wf_id, json_inputs={ids["in"]: {}}, version="draft")
    assert wait_for(client, run.id).lifecycle.status == "completed"
    steps = {s.block_id: s for s in client.workflows.steps.list(run_id=run.id)}
    (a_start, a_end), (b_start, b_end), (m_start, _) = (
        (steps[ids[x]].started_at, steps[ids[x]].completed_at) for x in ("a", "b", "m")
    )
    assert a_start and a_end and b_start and b_end and m_start
    assert http_target.peak[path] == 2  # the two calls were being answered at the same time
    assert m_start >= max(a_end, b_end)  # both on the workflow's clock


def test_an_unknown_cursor_is_a_422_not_a_restart_from_the_top(client: Retab, stack: Stack, http: httpx.Client) -> None:
    blocks, edges = chain([("in", "start_json", {}), ("f", "function", {"expression": "input"})])
    wf_id, ids = build(client, stack.project_id, blocks, edges)
    run = client.workflows.runs.create(workflow_id=wf_id, json_inputs={ids["in"]: {"i": 1}}, version="draft")
    wait_for(client, run.id)
    for path in ("/v1/workflows/steps", "/v1/workflows/artifacts", "/v1/workflows/blocks/executions"):
        answer = http.get(path, params={"run_id": run.id, "after": "nothing-like-this"})
        assert answer.status_code == 422, (path, answer.text)
        assert answer.json()["detail"]["details"]["field"] == "after"


def test_a_failed_run_lists_with_its_error(client: Retab, stack: Stack) -> None:
    """Visibility holds a run's status, not its error: the listing reads the failed run's summary, so the SDK
    (whose error lifecycle requires a message) can read every page."""
    blocks, edges = chain([("in", "start_json", {}), ("f", "function", {"expression": "input['missing']"})])
    wf_id, ids = build(client, stack.project_id, blocks, edges)
    run = client.workflows.runs.create(workflow_id=wf_id, json_inputs={ids["in"]: {}}, version="draft")
    failed = wait_for(client, run.id)
    assert failed.lifecycle.status == "error"
    deadline = time.monotonic() + 20
    while not (listed := client.workflows.runs.list(workflow_id=wf_id, status="error").data):
        assert time.monotonic() < deadline, "the failed run never reached the listing"
        time.sleep(0.2)
    assert [r.id for r in listed] == [run.id]
    assert listed[0].lifecycle.message == failed.lifecycle.message and "no key 'missing'" in listed[0].lifecycle.message
