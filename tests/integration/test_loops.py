"""Loop containers end to end through the SDK: for_each over arrays (order, skips, nesting, concurrency,
errors), while_loop (condition, max_iterations), step ids and loop_containers."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from retab import Retab
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError

from devstack.stack import venv_binary
from docflow.reviews import review_id
from docflow.temporal import connect
from docflow.webhooks import event_id, event_key
from tests.conftest import RECORDING, Stack
from tests.documents import THREE_INVOICES, pdf_of, three_invoices_pdf
from tests.http_target import HttpTarget
from tests.integration.builders import build, wait_for
from tests.integration.test_runs import _record_history as record_history
from tests.webhook_receiver import WebhookReceiver


def _json_edge(source: str, target: str, out: str = "output-json-0", into: str = "input-json-0") -> dict[str, Any]:
    return {"source_block": source, "target_block": target, "source_handle": out, "target_handle": into}


def _for_each(body: list[dict[str, Any]], body_edges: list[dict[str, Any]], **config: Any) -> tuple[list, list]:
    """start_json → loop (body) → out; the body's first block reads the item, `last` feeds fe-right-in."""
    blocks = [
        {"id": "in", "type": "start_json"},
        {"id": "loop", "type": "for_each", "config": {"map_method": "iterate_array", **config}},
        *[{**b, "parent_id": b.get("parent_id", "loop")} for b in body],
        {"id": "out", "type": "function", "config": {"expression": "input"}},
    ]
    edges = [
        _json_edge("in", "loop", into="fe-left-in"),
        *body_edges,
        _json_edge("loop", "out", out="fe-right-out"),
    ]
    return blocks, edges


def _gated_extract_loop(**config: Any) -> tuple[list, list]:
    """A for_each (`config`) of one extract `ex` of each item's `text`, its review gate firing on a total over
    100."""
    schema = {
        "type": "object",
        "properties": {"invoice_number": {"type": "string"}, "total": {"type": "number"}},
        "required": ["invoice_number", "total"],
    }
    condition = {"sub_conditions": [{"path": "data.total", "operator": "gt", "expected": 100}]}
    extract = {
        "json_schema": schema,
        "inputs": [{"name": "text", "type": "json"}],
        "review": {"predicate": {"kind": "json_condition", "condition": condition}},
    }
    return _for_each(
        [{"id": "ex", "type": "extract", "config": extract}],
        [
            _json_edge("loop", "ex", out="fe-left-out", into="input-json-text"),
            _json_edge("ex", "loop", into="fe-right-in"),
        ],
        **config,
    )


def _for_each_calling(client: Retab, stack: Stack, call: dict[str, Any], **config: Any) -> tuple[str, dict[str, str]]:
    """start_json → for_each (`config`) of one api_call block (`call`) → out; (workflow id, block ids)."""
    blocks, edges = _for_each(
        [{"id": "call", "type": "api_call", "config": call}],
        [_json_edge("loop", "call", out="fe-left-out"), _json_edge("call", "loop", into="fe-right-in")],
        **config,
    )
    return build(client, stack.project_id, blocks, edges)


def _document_loop(
    client: Retab, stack: Stack, loop: dict[str, Any], body: dict[str, Any], body_input: str, document: Path
) -> tuple[Any, dict[str, str]]:
    """start_document → for_each(`loop`) over the one block `body` (the item at `body_input`) → out, run to its end
    on `document`; (the finished run, the block ids)."""
    blocks = [
        {"id": "doc", "type": "start_document"},
        {"id": "loop", "type": "for_each", "config": loop},
        {**body, "parent_id": "loop"},
        {"id": "out", "type": "function", "config": {"expression": "input"}},
    ]
    edges = [
        _json_edge("doc", "loop", out="output-file-0", into="fe-left-in"),
        _json_edge("loop", body["id"], out="fe-left-out", into=body_input),
        _json_edge(body["id"], "loop", into="fe-right-in"),
        _json_edge("loop", "out", out="fe-right-out"),
    ]
    wf_id, ids = build(client, stack.project_id, blocks, edges)
    run = client.workflows.runs.create(workflow_id=wf_id, version="draft", documents={ids["doc"]: document})
    done = wait_for(client, run.id, timeout=90)
    assert done.lifecycle.status == "completed", done.lifecycle
    return done, ids


def _steps(http: httpx.Client, run_id: str) -> dict[str, dict[str, Any]]:
    response = http.get("/v1/workflows/steps", params={"run_id": run_id, "limit": 1000})
    assert response.status_code == 200, response.text
    return {s["step_id"]: s for s in response.json()["data"]}


def _output(http: httpx.Client, run_id: str, step_id: str, handle: str = "output-json-0") -> Any:
    return _steps(http, run_id)[step_id]["handle_outputs"][handle]["data"]


def _run(client: Retab, wf_id: str, start: str, data: Any, timeout: float = 90) -> Any:
    run = client.workflows.runs.create(workflow_id=wf_id, json_inputs={start: data}, version="draft")
    return wait_for(client, run.id, timeout=timeout)


def test_for_each_outputs_come_in_item_order_when_iterations_finish_out_of_order(
    client: Retab, stack: Stack, http: httpx.Client, http_target: HttpTarget
) -> None:
    call = {
        "method": "POST",
        "url": f"{http_target.url}/slow/loop-order",
        "query": {"seconds": "{{ delay }}"},
        "body": {"n": "{{ n }}"},
    }
    wf_id, ids = _for_each_calling(client, stack, call, map_source_path="items")
    items = [{"n": 1, "delay": 2.0}, {"n": 2, "delay": 0.1}, {"n": 3, "delay": 1.0}]
    done = _run(client, wf_id, ids["in"], {"items": items})
    assert done.lifecycle.status == "completed", done.lifecycle
    out = _output(http, done.id, ids["out"])
    assert [r["received"]["n"] for r in out] == [1, 2, 3]
    steps = _steps(http, done.id)
    finished = {
        i: datetime.fromisoformat(steps[f"{ids['loop']}_iter_{i}_{ids['call']}"]["completed_at"]) for i in range(3)
    }
    assert finished[1] < finished[2] < finished[0], "the iterations did not finish out of item order"
    step = steps[f"{ids['loop']}_iter_2_{ids['call']}"]
    assert step["block_id"] == ids["call"]
    assert step["loop_containers"] == [
        {"container_id": ids["loop"], "iteration": 2, "is_parallel": True, "parallel_item_index": 2}
    ]
    assert steps[ids["loop"]]["iterations"] == 3
    assert steps[ids["loop"]]["loop_containers"] == []


def test_a_conditional_in_the_body_skips_some_items(client: Retab, stack: Stack, http: httpx.Client) -> None:
    cond = {"conditions": [{"id": "keep", "sub_conditions": [{"path": "keep", "operator": "is_true"}]}]}
    blocks, edges = _for_each(
        [
            {"id": "gate", "type": "conditional", "config": cond},
            {"id": "fn", "type": "function", "config": {"expression": "input['n'] * 10"}},
        ],
        [
            _json_edge("loop", "gate", out="fe-left-out"),
            _json_edge("gate", "fn", out="output-json-keep"),
            _json_edge("fn", "loop", into="fe-right-in"),
        ],
    )
    wf_id, ids = build(client, stack.project_id, blocks, edges)
    items = [{"n": 1, "keep": True}, {"n": 2, "keep": False}, {"n": 3, "keep": True}]
    done = _run(client, wf_id, ids["in"], items)
    assert done.lifecycle.status == "completed", done.lifecycle
    assert _output(http, done.id, ids["out"]) == [10, None, 30]
    steps = _steps(http, done.id)
    skipped = steps[f"{ids['loop']}_iter_1_{ids['fn']}"]["lifecycle"]
    assert skipped["status"] == "skipped" and "output-json-keep" in skipped["reason"]
    assert steps[f"{ids['loop']}_iter_0_{ids['fn']}"]["lifecycle"]["status"] == "completed"
    if RECORDING:
        record_history(stack, done.id, "for_each_skips_run")


def test_nested_for_each_chains_step_ids_and_nests_results(client: Retab, stack: Stack, http: httpx.Client) -> None:
    blocks, edges = _for_each(
        [
            {"id": "inner", "type": "for_each", "config": {"map_source_path": "lines"}},
            {"id": "fn", "type": "function", "config": {"expression": "input['qty'] * 2"}, "parent_id": "inner"},
        ],
        [
            _json_edge("loop", "inner", out="fe-left-out", into="fe-left-in"),
            _json_edge("inner", "fn", out="fe-left-out"),
            _json_edge("fn", "inner", into="fe-right-in"),
            _json_edge("inner", "loop", out="fe-right-out", into="fe-right-in"),
        ],
    )
    wf_id, ids = build(client, stack.project_id, blocks, edges)
    orders = [{"lines": [{"qty": 1}, {"qty": 2}]}, {"lines": []}, {"lines": [{"qty": 5}]}]
    done = _run(client, wf_id, ids["in"], orders)
    assert done.lifecycle.status == "completed", done.lifecycle
    assert _output(http, done.id, ids["out"]) == [[2, 4], [], [10]]
    step = _steps(http, done.id)[f"{ids['loop']}_iter_2_{ids['inner']}_iter_0_{ids['fn']}"]
    assert [(c["container_id"], c["iteration"]) for c in step["loop_containers"]] == [
        (ids["loop"], 2),
        (ids["inner"], 0),
    ]
    if RECORDING:
        record_history(stack, done.id, "nested_for_each_run")


def test_max_concurrency_bounds_the_iterations_in_flight(
    client: Retab, stack: Stack, http: httpx.Client, http_target: HttpTarget
) -> None:
    call = {"method": "POST", "url": f"{http_target.url}/slow/loop-bound", "query": {"seconds": "0.6"}, "body": {}}
    wf_id, ids = _for_each_calling(client, stack, call, max_concurrency=2)
    done = _run(client, wf_id, ids["in"], list(range(6)))
    assert done.lifecycle.status == "completed", done.lifecycle
    steps = _steps(http, done.id)
    spans = [
        (datetime.fromisoformat(s["started_at"]), datetime.fromisoformat(s["completed_at"]))
        for s in steps.values()
        if s["block_id"] == ids["call"]
    ]
    assert len(spans) == 6
    most = max(sum(1 for a, b in spans if a <= start < b) for start, _ in spans)
    assert most <= 2, f"{most} iterations ran at once"
    assert most == 2, "the iterations never overlapped"


def _failing_loop(client: Retab, stack: Stack, on_error: str) -> tuple[str, dict[str, str]]:
    blocks, edges = _for_each(
        [{"id": "fn", "type": "function", "config": {"expression": "10 // input"}}],
        [_json_edge("loop", "fn", out="fe-left-out"), _json_edge("fn", "loop", into="fe-right-in")],
        on_iteration_error=on_error,
    )
    return build(client, stack.project_id, blocks, edges)


def test_a_failing_iteration_fails_the_loop_by_default(client: Retab, stack: Stack, http: httpx.Client) -> None:
    wf_id, ids = _failing_loop(client, stack, "fail")
    done = _run(client, wf_id, ids["in"], [5, 0, 2])
    assert done.lifecycle.status == "error"
    assert done.lifecycle.failing_step_id == f"{ids['loop']}_iter_1_{ids['fn']}"  # type: ignore[union-attr]
    steps = _steps(http, done.id)
    assert steps[ids["loop"]]["lifecycle"]["status"] == "error"
    assert "iteration 1 failed" in steps[ids["loop"]]["lifecycle"]["message"]
    assert steps[ids["out"]]["lifecycle"]["status"] == "skipped"
    if RECORDING:
        record_history(stack, done.id, "for_each_failed_run")


def test_continue_collects_failed_iterations_as_null(client: Retab, stack: Stack, http: httpx.Client) -> None:
    wf_id, ids = _failing_loop(client, stack, "continue")
    done = _run(client, wf_id, ids["in"], [5, 0, 2])
    assert done.lifecycle.status == "completed", done.lifecycle
    assert _output(http, done.id, ids["out"]) == [2, None, 5]
    steps = _steps(http, done.id)
    assert steps[ids["loop"]]["failed_iterations"] == [1]
    assert steps[f"{ids['loop']}_iter_1_{ids['fn']}"]["lifecycle"]["status"] == "error"


def _while(client: Retab, stack: Stack, config: dict[str, Any]) -> tuple[str, dict[str, str]]:
    blocks = [
        {"id": "in", "type": "start_json"},
        {"id": "loop", "type": "while_loop", "config": config},
        {"id": "inc", "type": "function", "config": {"mapping": {"n": "n + 1"}}, "parent_id": "loop"},
        {"id": "out", "type": "function", "config": {"expression": "input"}},
    ]
    edges = [
        _json_edge("in", "loop", into="loop-left-in"),
        _json_edge("loop", "inc", out="loop-left-out"),
        _json_edge("inc", "loop", into="loop-right-in"),
        _json_edge("loop", "out", out="loop-right-out"),
    ]
    return build(client, stack.project_id, blocks, edges)


def test_while_loop_stops_when_its_condition_matches(client: Retab, stack: Stack, http: httpx.Client) -> None:
    stop = [{"id": "enough", "sub_conditions": [{"path": "n", "operator": "gte", "expected": 3}]}]
    wf_id, ids = _while(client, stack, {"max_iterations": 10, "termination_conditions": stop})
    done = _run(client, wf_id, ids["in"], {"n": 0})
    assert done.lifecycle.status == "completed", done.lifecycle
    assert _output(http, done.id, ids["out"]) == {"n": 3}
    steps = _steps(http, done.id)
    assert f"{ids['loop']}_iter_2_{ids['inc']}" in steps and f"{ids['loop']}_iter_3_{ids['inc']}" not in steps
    loop = steps[ids["loop"]]
    assert loop["iterations"] == 3
    assert steps[f"{ids['loop']}_iter_1_{ids['inc']}"]["loop_containers"][0]["is_parallel"] is False
    artifact = client.workflows.artifacts.get(loop["artifact"]["id"])
    assert artifact.operation == "while_loop_termination"
    dumped = artifact.model_dump()
    assert dumped["termination_reason"] == "condition_matched"
    assert [e["matched"] for e in dumped["evaluations"]] == [True]
    response = http.get(f"/v1/workflows/artifacts/{artifact.id}")
    assert [c["matched"] for c in response.json()["checks"]] == [False, False, True]
    if RECORDING:
        record_history(stack, done.id, "while_loop_run")


def test_while_loop_stops_at_max_iterations(client: Retab, stack: Stack, http: httpx.Client) -> None:
    never = [{"id": "never", "sub_conditions": [{"path": "n", "operator": "lt", "expected": 0}]}]
    wf_id, ids = _while(client, stack, {"max_iterations": 4, "termination_conditions": never})
    done = _run(client, wf_id, ids["in"], {"n": 0})
    assert done.lifecycle.status == "completed", done.lifecycle
    assert _output(http, done.id, ids["out"]) == {"n": 4}
    loop = _steps(http, done.id)[ids["loop"]]
    artifact = client.workflows.artifacts.get(loop["artifact"]["id"]).model_dump()
    assert artifact["termination_reason"] == "max_iterations_reached"


def test_bad_loop_configs_are_422_naming_the_field(client: Retab, stack: Stack, http: httpx.Client) -> None:
    wf = client.workflows.create(project_id=stack.project_id, name="loops 422").id
    cases = [
        ("for_each", {"map_method": "sideways"}, "config.map_method"),
        ("for_each", {"map_method": "split_by_key"}, "config"),
        ("for_each", {"max_concurrency": 0}, "config.max_concurrency"),
        ("for_each", {"map_source_path": "a[["}, "config.map_source_path"),
        ("for_each", {"on_iteration_error": "ignore"}, "config.on_iteration_error"),
        ("while_loop", {"max_iterations": 100000}, "config.max_iterations"),
        (
            "while_loop",
            {"termination_conditions": [{"id": "x", "sub_conditions": []}]},
            "config.termination_conditions.0.sub_conditions",
        ),
    ]
    for block_type, config, field in cases:
        response = http.post("/v1/workflows/blocks", json={"workflow_id": wf, "type": block_type, "config": config})
        assert response.status_code == 422, (config, response.text)
        assert response.json()["detail"]["details"]["field"] == field, response.text


def _histories(stack: Stack, run_id: str) -> dict[str, list[int]]:
    """Event counts of the run's history and of every workflow under it, by workflow type; a workflow that
    continued as new counts each of its runs."""

    async def read() -> dict[str, list[int]]:
        temporal = await connect(stack.settings)
        sizes: dict[str, list[int]] = {}
        todo: list[tuple[str, str | None]] = [(run_id, None)]
        while todo:
            workflow_id, first_run = todo.pop()
            run: str | None = first_run
            while True:
                handle = temporal.get_workflow_handle(workflow_id, run_id=run)
                events = [e async for e in handle.fetch_history_events()]
                kind = events[0].workflow_execution_started_event_attributes.workflow_type.name
                sizes.setdefault(kind, []).append(len(events))
                for e in events:
                    if e.event_type == EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED:
                        child = e.child_workflow_execution_started_event_attributes.workflow_execution
                        todo.append((child.workflow_id, child.run_id))
                last = events[-1]
                if last.event_type != EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
                    break
                run = last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
        return sizes

    return asyncio.run(read())


def test_a_thousand_items_run_in_child_batches_with_bounded_histories(
    client: Retab, stack: Stack, http: httpx.Client
) -> None:
    blocks, edges = _for_each(
        [{"id": "plus", "type": "function", "config": {"expression": "input * 2 + 1"}}],
        [_json_edge("loop", "plus", out="fe-left-out"), _json_edge("plus", "loop", into="fe-right-in")],
        max_concurrency=50,
    )
    wf_id, ids = build(client, stack.project_id, blocks, edges)
    count = 1000
    done = _run(client, wf_id, ids["in"], list(range(count)), timeout=300)
    assert done.lifecycle.status == "completed", done.lifecycle
    sizes = _histories(stack, done.id)
    settings = stack.settings
    batches = -(-count // settings.loop_batch_size)
    assert len(sizes["LoopBatchWorkflow"]) == batches  # one child workflow per batch
    # The coordinator continued as new every loop_batches_per_history batches.
    assert len(sizes["LoopWorkflow"]) == -(-batches // settings.loop_batches_per_history) > 1
    assert sizes["RunWorkflow"][0] < 100, f"the run's history has {sizes['RunWorkflow'][0]} events"
    assert max(sizes["LoopWorkflow"]) < 100, sizes
    assert max(sizes["LoopBatchWorkflow"]) < 5000, sizes
    # Every step is listed, a page at a time, in item order within the loop.
    seen: list[dict[str, Any]] = []
    after = None
    while True:
        params: dict[str, Any] = {"run_id": done.id, "limit": 500, **({"after": after} if after else {})}
        body = http.get("/v1/workflows/steps", params=params).json()
        seen += body["data"]
        after = body["list_metadata"]["after"]
        if after is None:
            break
    assert len(seen) == 3 + count
    plus = [s for s in seen if s["block_id"] == ids["plus"]]
    assert [s["loop_containers"][0]["iteration"] for s in plus] == list(range(count))
    params = {"run_id": done.id, "block_id": ids["plus"], "limit": 2}
    artifacts = http.get("/v1/workflows/artifacts", params=params).json()
    assert [a["step_id"] for a in artifacts["data"]] == [f"{ids['loop']}_iter_{i}_{ids['plus']}" for i in range(2)]
    assert artifacts["list_metadata"]["after"] is not None
    out = http.get("/v1/workflows/steps", params={"run_id": done.id, "step_id": ids["out"]}).json()["data"][0]
    assert out["handle_outputs"]["output-json-0"]["data"] == [2 * i + 1 for i in range(count)]
    if RECORDING:
        record_history(stack, done.id, "for_each_batches_run")
        record_history(stack, f"{done.id}/{ids['loop']}", "for_each_loop_coordinator")
        record_history(stack, f"{done.id}/{ids['loop']}/batch-9", "for_each_batch_child")


def test_a_review_inside_iteration_one_waits_only_that_iteration(
    client: Retab, stack: Stack, http: httpx.Client
) -> None:
    blocks, edges = _gated_extract_loop()
    wf_id, ids = build(client, stack.project_id, blocks, edges)
    items = [{"text": f"Invoice number: L-{i}\nTotal: {total}"} for i, total in enumerate([10, 500, 30])]
    run = client.workflows.runs.create(workflow_id=wf_id, json_inputs={ids["in"]: items}, version="draft")
    waiting = wait_for(client, run.id, {"awaiting_review", "completed", "error"})
    assert waiting.lifecycle.status == "awaiting_review", waiting.lifecycle
    [review] = list(client.workflows.reviews.list(run_id=run.id))
    assert review.step_id == f"{ids['loop']}_iter_1_{ids['ex']}"
    raw = http.get(f"/v1/workflows/reviews/{review.id}").json()
    assert (raw["parent_step_id"], raw["iteration_key"]) == (ids["loop"], "1")
    steps = _steps(http, run.id)
    status = {i: steps[f"{ids['loop']}_iter_{i}_{ids['ex']}"]["lifecycle"]["status"] for i in range(3)}
    assert status == {0: "completed", 1: "awaiting_review", 2: "completed"}  # only iteration 1 waits
    [seed] = list(client.workflows.reviews.versions.list(review_id=review.id))
    client.workflows.reviews.approve(review.id, version_id=seed.id, reviewer="Ada")
    done = wait_for(client, run.id)
    assert done.lifecycle.status == "completed", done.lifecycle
    out = _output(http, done.id, ids["out"])
    assert [r["invoice_number"] for r in out] == ["L-0", "L-1", "L-2"]
    if RECORDING:
        record_history(stack, done.id, "review_in_iteration_run")


def test_a_block_execution_on_a_loop_step_needs_its_step_id(client: Retab, stack: Stack, http: httpx.Client) -> None:
    blocks, edges = _for_each(
        [{"id": "fn", "type": "function", "config": {"expression": "input * 2"}}],
        [_json_edge("loop", "fn", out="fe-left-out"), _json_edge("fn", "loop", into="fe-right-in")],
    )
    wf_id, ids = build(client, stack.project_id, blocks, edges)
    done = _run(client, wf_id, ids["in"], [1, 2, 3])
    assert done.lifecycle.status == "completed", done.lifecycle
    body = {"run_id": done.id, "block_id": ids["fn"]}
    response = http.post("/v1/workflows/blocks/executions", json=body)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert detail["details"]["field"] == "step_id"
    listed = detail["details"]["available_iterations"]
    assert [(i["step_id"], i["iteration_index"]) for i in listed] == [
        (f"{ids['loop']}_iter_{i}_{ids['fn']}", i) for i in range(3)
    ]
    chosen = http.post("/v1/workflows/blocks/executions", json={**body, "step_id": listed[1]["step_id"]})
    assert chosen.status_code in {200, 201}, chosen.text
    record = chosen.json()
    assert record["source_step_id"] == listed[1]["step_id"]
    assert record["handle_inputs"]["input-json-0"]["data"] == 2


def test_for_each_over_pages_runs_the_body_once_per_page(
    client: Retab, stack: Stack, http: httpx.Client, tmp_path: Path
) -> None:
    path = tmp_path / "pages.pdf"
    path.write_bytes(pdf_of([("First page PX-1",), ("Second page PX-2",), ("Third page PX-3",)]))
    loop = {"map_method": "iterate_pages", "max_concurrency": 2}
    done, ids = _document_loop(client, stack, loop, {"id": "read", "type": "parse"}, "input-file-0", path)
    texts = [r["text"] for r in _output(http, done.id, ids["out"])]
    assert len(texts) == 3
    for i, text in enumerate(texts, start=1):
        assert f"PX-{i}" in text and all(f"PX-{j}" not in text for j in range(1, 4) if j != i)
    step = _steps(http, done.id)[f"{ids['loop']}_iter_1_{ids['read']}"]
    assert step["handle_inputs"]["input-file-0"]["document"]["filename"] == "pages-page-2.pdf"


def test_split_by_key_runs_extract_once_per_sub_document(
    client: Retab, stack: Stack, http: httpx.Client, tmp_path: Path
) -> None:
    schema = {"type": "object", "properties": {"invoice_number": {"type": "string"}, "vendor": {"type": "string"}}}
    loop = {"map_method": "split_by_key", "key": "Invoice", "instructions": "One invoice per sub-document"}
    path = tmp_path / "bundle.pdf"
    path.write_bytes(three_invoices_pdf())
    extract = {"id": "ex", "type": "extract", "config": {"json_schema": schema}}
    done, ids = _document_loop(client, stack, loop, extract, "input-file-document", path)
    out = _output(http, done.id, ids["out"])
    assert [(r["invoice_number"], r["vendor"]) for r in out] == [(n, v) for n, v, _ in THREE_INVOICES]
    steps = _steps(http, done.id)
    loop_step = steps[ids["loop"]]
    assert loop_step["artifact"]["operation"] == "partition"
    partition = http.get(f"/v1/workflows/artifacts/{loop_step['artifact']['id']}").json()
    assert [p["pages"] for p in partition["output"]] == [[1, 2], [3, 4], [5, 6]]
    doc = steps[f"{ids['loop']}_iter_2_{ids['ex']}"]["handle_inputs"]["input-file-document"]["document"]
    assert doc["filename"] == "bundle-invoice-3.pdf"


def test_a_running_loop_shows_its_finished_batches_and_cancelling_the_run_cancels_the_rest(
    client: Retab, stack: Stack, http: httpx.Client, http_target: HttpTarget
) -> None:
    call = {"method": "POST", "url": f"{http_target.url}/slow/loop-cancel", "query": {"seconds": "0.5"}, "body": {}}
    wf_id, ids = _for_each_calling(client, stack, call, max_concurrency=25)
    size = stack.settings.loop_batch_size
    count = 2 * size + 20
    run = client.workflows.runs.create(workflow_id=wf_id, json_inputs={ids["in"]: list(range(count))}, version="draft")
    coordinator, batch = f"{run.id}/{ids['loop']}", f"{run.id}/{ids['loop']}/batch-1"

    async def status(workflow_id: str) -> WorkflowExecutionStatus | None:
        temporal = await connect(stack.settings)
        try:
            return (await temporal.get_workflow_handle(workflow_id).describe()).status
        except RPCError:
            return None

    deadline = time.monotonic() + 60
    while asyncio.run(status(batch)) != WorkflowExecutionStatus.RUNNING:
        assert time.monotonic() < deadline, "the second batch never started"
        time.sleep(0.2)
    # While the loop runs, the steps of its finished batch are listed.
    steps = _steps(http, run.id)
    assert steps[ids["loop"]]["lifecycle"]["status"] == "running"
    calls = [s for s in steps.values() if s["block_id"] == ids["call"]]
    assert len(calls) >= size and {s["lifecycle"]["status"] for s in calls[:size]} == {"completed"}
    client.workflows.runs.cancel(run.id)
    done = wait_for(client, run.id)
    assert done.lifecycle.status == "cancelled", done.lifecycle
    for workflow_id in (coordinator, batch):
        deadline = time.monotonic() + 30
        while asyncio.run(status(workflow_id)) == WorkflowExecutionStatus.RUNNING:
            assert time.monotonic() < deadline, f"{workflow_id} still runs after its run was cancelled"
            time.sleep(0.2)
        assert asyncio.run(status(workflow_id)) == WorkflowExecutionStatus.CANCELED
    assert not asyncio.run(status(f"{coordinator}/batch-2")), "a batch started after the run was cancelled"


def _gated_batch_loop(
    client: Retab, stack: Stack, prefix: str, failing: bool = False, gated: int | None = None, count: int = 10
) -> tuple[Any, dict[str, str], int]:
    """A for_each over more items than a batch holds, its extract gated for the one item of total 500
    (iteration `size + 3`, in the second batch); returns the run, the block ids and that iteration."""
    blocks, edges = _gated_extract_loop(max_concurrency=20)
    if failing:  # a block beside the loop that fails at once, before the gate opens
        blocks.append({"id": "boom", "type": "function", "config": {"expression": "1 / 0"}})
        edges.append(_json_edge("in", "boom"))
    wf_id, ids = build(client, stack.project_id, blocks, edges)
    size = stack.settings.loop_batch_size
    gated = size + 3 if gated is None else gated
    items = [{"text": f"Invoice number: {prefix}-{i}\nTotal: {500 if i == gated else 10}"} for i in range(size + count)]
    run = client.workflows.runs.create(workflow_id=wf_id, json_inputs={ids["in"]: items}, version="draft")
    return run, ids, gated


def _batch_review(client: Retab, http: httpx.Client, run_id: str, ids: dict[str, str], gated: int) -> Any:
    """The one review of a gated batch loop, once the run waits for it; its gate is held by batch 1."""
    waiting = wait_for(client, run_id, {"awaiting_review", "completed", "error", "cancelled"}, timeout=180)
    assert waiting.lifecycle.status == "awaiting_review", waiting.lifecycle
    raw_run = http.get(f"/v1/workflows/runs/{run_id}").json()
    assert raw_run["lifecycle"]["waiting_for_block_ids"] == [ids["ex"]]
    assert raw_run["timing"]["human_waiting_started_at"] is not None
    [review] = list(client.workflows.reviews.list(run_id=run_id))
    assert review.step_id == f"{ids['loop']}_iter_{gated}_{ids['ex']}"
    raw = http.get(f"/v1/workflows/reviews/{review.id}").json()
    assert (raw["parent_step_id"], raw["iteration_key"]) == (ids["loop"], str(gated))
    assert raw["gate_workflow_id"] == f"{run_id}/{ids['loop']}/batch-1"
    return review


def test_a_review_inside_a_loop_run_in_batches_waits_only_its_iteration_and_takes_a_correction(
    client: Retab, stack: Stack, http: httpx.Client
) -> None:
    run, ids, gated = _gated_batch_loop(client, stack, "B")
    review = _batch_review(client, http, run.id, ids, gated)
    listed = http.get("/v1/workflows/runs", params={"status": "awaiting_review"}).json()["data"]
    assert run.id in [r["id"] for r in listed]  # the run's search attributes follow the batch's gate
    # Only iteration `gated` waits: every other iteration of its batch finishes while the review is open.
    batch = f"{run.id}/{ids['loop']}/batch-1"

    async def extracts_done() -> int:
        temporal = await connect(stack.settings)
        handle = temporal.get_workflow_handle(batch)
        assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING
        history = await handle.fetch_history()
        scheduled = {
            e.event_id
            for e in history.events
            if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
            and e.activity_task_scheduled_event_attributes.activity_type.name == "ExtractData"
        }
        return sum(
            1
            for e in history.events
            if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED
            and e.activity_task_completed_event_attributes.scheduled_event_id in scheduled
        )

    deadline = time.monotonic() + 120
    while asyncio.run(extracts_done()) < 10:  # the batch's 10 items, the gated one's extract included
        assert time.monotonic() < deadline, "the batch's other iterations did not finish while the review waited"
        time.sleep(0.3)
    assert wait_for(client, run.id, {"awaiting_review", "completed", "error"}).lifecycle.status == "awaiting_review"
    [seed] = list(client.workflows.reviews.versions.list(review_id=review.id))
    assert seed.snapshot == {"invoice_number": f"B-{gated}", "total": 500}
    corrected = client.workflows.reviews.versions.create(
        review_id=review.id, parent_id=seed.id, snapshot={"invoice_number": f"B-{gated}", "total": 50}, reviewer="Ada"
    )
    time.sleep(0.3)  # a wait the run's timing must count
    answer = client.workflows.reviews.approve(review.id, version_id=corrected.id, reviewer="Ada")
    assert (answer.submission_status, answer.resume_status) == ("accepted", "resumed")
    done = wait_for(client, run.id, timeout=180)
    assert done.lifecycle.status == "completed", done.lifecycle
    out = _output(http, done.id, ids["out"])
    assert len(out) == stack.settings.loop_batch_size + 10
    assert out[gated] == {"invoice_number": f"B-{gated}", "total": 50}  # the correction, in its item's slot
    assert out[gated - 1] == {"invoice_number": f"B-{gated - 1}", "total": 10}
    timing = http.get(f"/v1/workflows/runs/{done.id}").json()["timing"]
    assert timing["human_waiting_started_at"] is None
    assert timing["accumulated_human_waiting_ms"] >= 300
    assert client.workflows.reviews.get(review.id).decision.version_id == corrected.id
    if RECORDING:
        record_history(stack, done.id, "review_in_batch_run")
        record_history(stack, f"{done.id}/{ids['loop']}/batch-1", "review_in_batch_child")


def test_a_rejected_review_inside_a_batch_ends_the_run_in_error(
    client: Retab, stack: Stack, http: httpx.Client, webhook_receivers: tuple[WebhookReceiver, WebhookReceiver]
) -> None:
    run, ids, gated = _gated_batch_loop(client, stack, "BR")
    review = _batch_review(client, http, run.id, ids, gated)
    [seed] = list(client.workflows.reviews.versions.list(review_id=review.id))
    answer = client.workflows.reviews.reject(review.id, version_id=seed.id, reason="wrong vendor")
    assert answer.submission_status == "accepted"
    done = wait_for(client, run.id, timeout=180)
    assert done.lifecycle.status == "error", done.lifecycle
    assert "wrong vendor" in (done.lifecycle.message or "")  # type: ignore[union-attr]
    assert client.workflows.reviews.get(review.id).decision.verdict == "rejected"
    # The batch sends the review's events itself.
    receiver, _ = webhook_receivers
    for event_type in ("workflow.review.opened", "workflow.review.decided"):
        wanted = event_id(stack.project_id, event_type, event_key(run.id, review.id))
        deadline = time.monotonic() + 30
        while not receiver.received(wanted):
            assert time.monotonic() < deadline, f"no {event_type} event"
            time.sleep(0.1)
        assert receiver.received(wanted)[0].event["data"]["step_id"] == review.step_id


def test_an_operator_signal_to_the_batch_decides_a_review_inside_it(
    client: Retab, stack: Stack, http: httpx.Client
) -> None:
    run, ids, gated = _gated_batch_loop(client, stack, "BS")
    review = _batch_review(client, http, run.id, ids, gated)
    [seed] = list(client.workflows.reviews.versions.list(review_id=review.id))
    payload = {"review_id": review.id, "verdict": "approved", "version_id": seed.id}
    subprocess.run(
        [
            venv_binary("temporal"), "workflow", "signal",
            "--address", stack.settings.temporal_address, "--namespace", stack.settings.temporal_namespace,
            "--workflow-id", f"{run.id}/{ids['loop']}/batch-1", "--name", "review-decision",
            "--input", json.dumps(payload),
        ],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    done = wait_for(client, run.id, timeout=180)
    assert done.lifecycle.status == "completed", done.lifecycle
    assert _output(http, done.id, ids["out"])[gated] == {"invoice_number": f"BS-{gated}", "total": 500}
    decided = client.workflows.reviews.get(review.id)
    assert decided.decision.verdict == "approved" and decided.decision.author.id == "temporal"


def test_cancelling_a_run_closes_the_open_review_of_its_batch(client: Retab, stack: Stack, http: httpx.Client) -> None:
    run, ids, gated = _gated_batch_loop(client, stack, "BC")
    review = _batch_review(client, http, run.id, ids, gated)
    client.workflows.runs.cancel(run.id)
    assert wait_for(client, run.id, timeout=120).lifecycle.status == "cancelled"
    deadline = time.monotonic() + 60
    while (closed := http.get(f"/v1/workflows/reviews/{review.id}").json())["status"] == "pending":
        assert time.monotonic() < deadline, "the batch's review was not closed"
        time.sleep(0.2)
    assert closed["decision"] is None
    assert (closed["status"], closed["closed_reason"]) == ("cancelled", "the run was cancelled")
    timing = http.get(f"/v1/workflows/runs/{run.id}").json()["timing"]
    assert timing["human_waiting_started_at"] is None


def test_a_run_failing_elsewhere_closes_a_review_its_batch_opens(
    client: Retab, stack: Stack, http: httpx.Client
) -> None:
    run, ids, gated = _gated_batch_loop(client, stack, "BF", failing=True)
    failed = wait_for(client, run.id, timeout=180)
    assert failed.lifecycle.status == "error", failed.lifecycle
    assert "block 'boom' failed" in (failed.lifecycle.message or "")  # type: ignore[union-attr]
    # The run fails at once but ends only after its loop: the gate its batch opens later closes without a decision.
    step_id = f"{ids['loop']}_iter_{gated}_{ids['ex']}"
    deadline = time.monotonic() + 180
    while http.get(f"/v1/workflows/runs/{run.id}").json()["timing"]["completed_at"] is None:
        assert time.monotonic() < deadline, "the failed run did not end: its batch's gate still waits"
        time.sleep(0.5)
    review = http.get(f"/v1/workflows/reviews/{review_id(run.id, step_id)}").json()
    assert review["status"] == "cancelled" and review["decision"] is None, review
    assert review["closed_reason"] == f"the run failed at block '{ids['boom']}'"
    assert _steps(http, run.id)[step_id]["lifecycle"]["status"] == "cancelled"


def test_later_batches_run_while_an_earlier_batch_waits_for_a_review(
    client: Retab, stack: Stack, http: httpx.Client
) -> None:
    size = stack.settings.loop_batch_size
    # Iteration 3 (batch 0) is gated; batches 1 and 2 run to their end while its review waits.
    run, ids, gated = _gated_batch_loop(client, stack, "BP", gated=3, count=size + 10)
    waiting = wait_for(client, run.id, {"awaiting_review", "completed", "error", "cancelled"}, timeout=180)
    assert waiting.lifecycle.status == "awaiting_review", waiting.lifecycle
    [review] = list(client.workflows.reviews.list(run_id=run.id))
    raw = http.get(f"/v1/workflows/reviews/{review.id}").json()
    assert raw["gate_workflow_id"] == f"{run.id}/{ids['loop']}/batch-0"

    async def status(workflow_id: str) -> WorkflowExecutionStatus | None:
        temporal = await connect(stack.settings)
        try:
            return (await temporal.get_workflow_handle(workflow_id).describe()).status
        except RPCError:
            return None

    for later in (1, 2):
        batch = f"{run.id}/{ids['loop']}/batch-{later}"
        deadline = time.monotonic() + 180
        while asyncio.run(status(batch)) != WorkflowExecutionStatus.COMPLETED:
            assert time.monotonic() < deadline, f"batch {later} did not run while batch 0 waited for its review"
            time.sleep(0.5)
    assert asyncio.run(status(f"{run.id}/{ids['loop']}/batch-0")) == WorkflowExecutionStatus.RUNNING
    assert wait_for(client, run.id, {"awaiting_review", "completed", "error"}).lifecycle.status == "awaiting_review"
    [seed] = list(client.workflows.reviews.versions.list(review_id=review.id))
    client.workflows.reviews.approve(review.id, version_id=seed.id)
    done = wait_for(client, run.id, timeout=180)
    assert done.lifecycle.status == "completed", done.lifecycle
    out = _output(http, done.id, ids["out"])
    assert len(out) == 2 * size + 10
    assert [r["invoice_number"] for r in out] == [f"BP-{i}" for i in range(2 * size + 10)]  # in item order
    assert out[gated]["total"] == 500
    if RECORDING:
        record_history(stack, f"{done.id}/{ids['loop']}", "review_parked_loop_coordinator")
