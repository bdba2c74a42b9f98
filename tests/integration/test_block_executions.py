"""Block executions end to end through the SDK: rerun a block of a past run with the draft's config.

The model server counts calls, so an identical rerun can be shown to return the stored execution without one.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from retab import Retab

from tests.chat_server import ChatCompletionsServer
from tests.conftest import Stack
from tests.integration.builders import INVOICE_FIELDS, build, extract_chain, json_edge, wait_for

WIDER = {"type": "object", "properties": {**INVOICE_FIELDS, "vendor": {"type": "string"}}}


def _calls(model_server: ChatCompletionsServer, tag: str) -> int:
    return sum(tag in json.dumps(r.body) for r in model_server.requests)


def test_a_rerun_uses_the_draft_and_an_identical_one_is_not_run_again(
    client: Retab, stack: Stack, model_server: ChatCompletionsServer
) -> None:
    tag = "RERUN-1"
    wf_id, ids, run_id = extract_chain(client, stack.project_id, tag)
    assert _calls(model_server, tag) == 1
    client.workflows.blocks.update(ids["ex"], config={"json_schema": WIDER}, workflow_id=wf_id)

    rerun = client.workflows.blocks.executions.create(run_id=run_id, block_id=ids["ex"])
    assert rerun.lifecycle.status == "completed", rerun.lifecycle
    assert rerun.source_run_id == run_id and rerun.source_step_id == ids["ex"] and rerun.block_type == "extract"
    assert rerun.handle_outputs["output-json-0"].data == {"invoice_number": tag, "total": 12, "vendor": "ACME"}
    assert rerun.handle_inputs["input-json-text"].data["text"].startswith("Invoice number")
    assert rerun.block_config["json_schema"] == WIDER
    assert rerun.duration_ms is not None and rerun.artifact is not None
    assert all(len(f) == 64 for f in (rerun.handle_inputs_fingerprint, rerun.execution_fingerprint))
    assert _calls(model_server, tag) == 2

    again = client.workflows.blocks.executions.create(run_id=run_id, block_id=ids["ex"])
    assert again.id == rerun.id and _calls(model_server, tag) == 2  # the stored execution, no model call
    listed = list(client.workflows.blocks.executions.list(run_id=run_id, block_id=ids["ex"]))
    assert [e.id for e in listed] == [rerun.id]


def test_an_upstream_change_is_refused_naming_the_block_unless_forced(
    client: Retab, stack: Stack, http: httpx.Client
) -> None:
    wf_id, ids, run_id = extract_chain(client, stack.project_id, "RERUN-2")
    client.workflows.blocks.update(ids["ex"], config={"instructions": "Read carefully."}, workflow_id=wf_id)
    drifted = http.post("/v1/workflows/blocks/executions", json={"run_id": run_id, "block_id": ids["double"]})
    assert drifted.status_code == 409, drifted.text
    assert drifted.json()["detail"]["details"]["drifted_blocks"] == [ids["ex"]]
    forced = http.post(
        "/v1/workflows/blocks/executions",
        json={"run_id": run_id, "block_id": ids["double"], "check_eligibility": False},
    ).json()
    assert forced["lifecycle"]["status"] == "completed" and forced["forced"] is True
    assert forced["handle_outputs"]["output-json-0"]["data"] == 24


def test_a_step_that_failed_in_its_run_can_be_rerun_once_fixed(client: Retab, stack: Stack) -> None:
    blocks = [
        {"id": "in", "type": "start_json"},
        {"id": "broken", "type": "function", "config": {"expression": "input['missing'] + 1"}},
    ]
    wf_id, ids = build(client, stack.project_id, blocks, [json_edge("in", "broken")])
    run = client.workflows.runs.create(workflow_id=wf_id, json_inputs={ids["in"]: {"n": 41}}, version="draft")
    assert wait_for(client, run.id).lifecycle.status == "error"
    client.workflows.blocks.update(ids["broken"], config={"expression": "input['n'] + 1"}, workflow_id=wf_id)
    fixed = client.workflows.blocks.executions.create(run_id=run.id, block_id=ids["broken"])
    assert fixed.lifecycle.status == "completed", fixed.lifecycle
    assert fixed.handle_outputs["output-json-0"].data == 42


@pytest.mark.parametrize(
    ("change", "status", "field"),
    [
        ({"n_consensus": 4}, 422, "n_consensus"),
        ({"step_id": "no-such-step"}, 404, "step_id"),
        ({"block_id": "no-such-block", "step_id": None}, 404, "step_id"),
        ({"run_id": "run_000000000000000000000000"}, 404, None),
    ],
)
def test_bad_requests_name_the_field(
    client: Retab, stack: Stack, http: httpx.Client, change: dict[str, Any], status: int, field: str | None
) -> None:
    _, ids, run_id = extract_chain(client, stack.project_id, "RERUN-3")
    body = {"run_id": run_id, "block_id": ids["ex"], **change}
    answer = http.post("/v1/workflows/blocks/executions", json={k: v for k, v in body.items() if v is not None})
    assert answer.status_code == status, answer.text
    if field is not None:
        assert answer.json()["detail"]["details"]["field"] == field


def test_n_consensus_applies_to_consensus_blocks_only(client: Retab, stack: Stack, http: httpx.Client) -> None:
    _, ids, run_id = extract_chain(client, stack.project_id, "RERUN-4")
    answer = http.post(
        "/v1/workflows/blocks/executions", json={"run_id": run_id, "block_id": ids["double"], "n_consensus": 3}
    )
    assert answer.status_code == 422 and answer.json()["detail"]["details"]["field"] == "n_consensus"
    five = client.workflows.blocks.executions.create(run_id=run_id, block_id=ids["ex"], n_consensus=5)
    assert five.lifecycle.status == "completed", five.lifecycle
    assert five.block_config["n_consensus"] == 5


def test_a_block_gone_from_the_draft_or_skipped_in_its_run_cannot_be_rerun(
    client: Retab, stack: Stack, http: httpx.Client
) -> None:
    condition = {"id": "big", "sub_conditions": [{"path": "n", "operator": "gt", "expected": 100}]}
    blocks = [
        {"id": "in", "type": "start_json"},
        {"id": "cond", "type": "conditional", "config": {"conditions": [condition]}},
        {"id": "on_big", "type": "function", "config": {"expression": "input['n']"}},
        {"id": "echo", "type": "function", "config": {"expression": "input['n']"}},
    ]
    edges = [
        json_edge("in", "cond"),
        {**json_edge("cond", "on_big"), "source_handle": "output-json-big"},
        json_edge("in", "echo"),
    ]
    wf_id, ids = build(client, stack.project_id, blocks, edges)
    run = client.workflows.runs.create(workflow_id=wf_id, json_inputs={ids["in"]: {"n": 1}}, version="draft")
    assert wait_for(client, run.id).lifecycle.status == "completed"
    skipped = http.post("/v1/workflows/blocks/executions", json={"run_id": run.id, "block_id": ids["on_big"]})
    assert skipped.status_code == 409 and skipped.json()["detail"]["code"] == "step_skipped", skipped.text
    client.workflows.blocks.delete(ids["echo"], workflow_id=wf_id)
    gone = http.post("/v1/workflows/blocks/executions", json={"run_id": run.id, "block_id": ids["echo"]})
    assert gone.status_code == 404 and gone.json()["detail"]["details"]["field"] == "block_id", gone.text
