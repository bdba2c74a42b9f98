"""Review gates end to end on the real stack: a gated run waits, a decision (Update or signal) resumes it.

Scratch core test: the reviews API tests are in test_reviews_api.py.
"""

from __future__ import annotations

import time
from typing import Any

from retab import Retab

from docflow.reviews import DecisionOutcome, DecisionRequest
from docflow.temporal import REVIEW_DECISION_UPDATE, connect
from tests.conftest import Stack
from tests.integration.builders import build, wait_for

SCHEMA = {"type": "object", "properties": {"invoice_number": {"type": "string"}, "total": {"type": "number"}}}


def gated(client: Retab, stack: Stack, review: dict[str, Any]) -> tuple[str, dict[str, str]]:
    """start_json → extract (gated) → function doubling the total; plus a block beside the gate."""
    extract = {"json_schema": SCHEMA, "inputs": [{"name": "text", "type": "json"}], "review": review}
    blocks = [
        {"id": "in", "type": "start_json"},
        {"id": "ex", "type": "extract", "config": extract},
        {"id": "double", "type": "function", "config": {"expression": "input['total'] * 2"}},
        {"id": "beside", "type": "function", "config": {"expression": "input['text'] + '!'"}},
    ]
    edges = [
        {
            "source_block": "in",
            "target_block": "ex",
            "source_handle": "output-json-0",
            "target_handle": "input-json-text",
        },
        {
            "source_block": "ex",
            "target_block": "double",
            "source_handle": "output-json-0",
            "target_handle": "input-json-0",
        },
        {
            "source_block": "in",
            "target_block": "beside",
            "source_handle": "output-json-0",
            "target_handle": "input-json-0",
        },
    ]
    return build(client, stack.project_id, blocks, edges)


async def test_an_always_gate_waits_and_an_update_resumes_it(client: Retab, stack: Stack) -> None:
    wf_id, ids = gated(client, stack, {"predicate": {"kind": "always"}})
    text = "Invoice number: G-1\nTotal: 21"
    run = client.workflows.runs.create(workflow_id=wf_id, json_inputs={ids["in"]: {"text": text}}, version="draft")
    waiting = wait_for(client, run.id, {"awaiting_review", "completed", "error"})
    assert waiting.lifecycle.status == "awaiting_review", waiting.lifecycle
    steps = {s.block_id: s.lifecycle.status for s in client.workflows.steps.list(run_id=run.id)}
    assert steps[ids["ex"]] == "awaiting_review"
    assert steps[ids["double"]] == "pending"
    deadline = time.monotonic() + 20
    while steps[ids["beside"]] != "completed":
        assert time.monotonic() < deadline
        steps = {s.block_id: s.lifecycle.status for s in client.workflows.steps.list(run_id=run.id)}
    temporal = await connect(stack.settings)
    state = await temporal.get_workflow_handle(run.id).query("run_state")
    review_id = next(s["review_id"] for s in state["steps"] if s["block_id"] == ids["ex"])
    from activities.review_store import ReviewStore
    from activities.storage import ObjectStore

    reviews = ReviewStore(ObjectStore(stack.settings))
    record = await reviews.get(stack.project_id, review_id)
    answer = await temporal.get_workflow_handle(run.id).execute_update(
        REVIEW_DECISION_UPDATE,
        DecisionRequest(review_id=review_id, verdict="approved", version_id=record.seed_version_id),
        result_type=DecisionOutcome,
    )
    assert answer.submission_status == "accepted"
    done = wait_for(client, run.id)
    assert done.lifecycle.status == "completed", done.lifecycle
    outputs = {s.block_id: s.handle_outputs for s in client.workflows.steps.list(run_id=run.id)}
    assert outputs[ids["double"]]["output-json-0"].data == 42
