"""Review gates end to end, through the official SDK, on the real Temporal dev server, S3 and worker.

A gated run waits (its lifecycle, its timing's open interval, its step); the review is found in the queue,
corrected as a new version, approved or rejected; downstream blocks run on the approved data. Second decisions,
unknown reviews, a missing worker and cancellation each get their answer with nothing changed. Signals from the
`temporal` CLI decide too, and an invalid one is recorded and ignored. Webhooks are signed and verified.
"""

from __future__ import annotations

import io
import json
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from pypdf import PdfReader
from retab import Retab
from retab.types.workflows import WorkflowRun
from temporalio.api.enums.v1 import EventType
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from devstack.stack import venv_binary
from docflow.reviews import DecisionOutcome, DecisionRequest
from docflow.sample_invoice import INVOICE_LINES, invoice_pdf_bytes
from docflow.temporal import REVIEW_DECISION_UPDATE, SA_AWAITING_REVIEW, SA_STATUS, connect
from docflow.webhooks import event_id, event_key, verify
from tests.conftest import RECORDING, WEBHOOK_SECRET, Stack
from tests.documents import three_invoices_pdf
from tests.integration.builders import build, json_edge, wait_for
from tests.integration.test_document_blocks import CATEGORIES, SUBDOCUMENTS
from tests.integration.test_runs import _record_history as record_history
from tests.webhook_receiver import WebhookReceiver

SCHEMA = {
    "type": "object",
    "properties": {"invoice_number": {"type": "string"}, "total": {"type": "number"}},
    "required": ["invoice_number", "total"],
}
ALWAYS = {"predicate": {"kind": "always"}}
WAITING = {"awaiting_review", "completed", "error", "cancelled"}


def gated(client: Retab, stack: Stack, review: dict[str, Any]) -> tuple[str, dict[str, str]]:
    """start_json → extract (gated) → function doubling the total; a function beside the gate."""
    extract = {"json_schema": SCHEMA, "inputs": [{"name": "text", "type": "json"}], "review": review}
    blocks = [
        {"id": "in", "type": "start_json"},
        {"id": "ex", "type": "extract", "config": extract},
        {"id": "double", "type": "function", "config": {"expression": "input['total'] * 2"}},
        {"id": "beside", "type": "function", "config": {"expression": "input['text'] + '!'"}},
    ]
    edges = [json_edge("in", "ex", "input-json-text"), json_edge("ex", "double"), json_edge("in", "beside")]
    return build(client, stack.project_id, blocks, edges)


def start(client: Retab, wf_id: str, ids: dict[str, str], total: float = 21, number: str = "G-1") -> WorkflowRun:
    text = f"Invoice number: {number}\nTotal: {total}"
    return client.workflows.runs.create(workflow_id=wf_id, json_inputs={ids["in"]: {"text": text}}, version="draft")


def steps_of(client: Retab, run_id: str) -> dict[str, Any]:
    return {s.block_id: s for s in client.workflows.steps.list(run_id=run_id)}


def waiting_review(client: Retab, run_id: str) -> Any:
    """The run's one open review, once the run waits for it."""
    run = wait_for(client, run_id, WAITING)
    assert run.lifecycle.status == "awaiting_review", run.lifecycle
    reviews = list(client.workflows.reviews.list(run_id=run_id))
    assert len(reviews) == 1, reviews
    return reviews[0]


def test_a_gated_run_waits_and_the_approved_correction_flows_downstream(
    client: Retab, stack: Stack, http: httpx.Client
) -> None:
    wf_id, ids = gated(client, stack, ALWAYS)
    run = start(client, wf_id, ids)
    review = waiting_review(client, run.id)
    assert review.block_id == ids["ex"] and review.step_id == ids["ex"] and review.decision is None
    assert review.triggered_by.kind == "always"
    raw = http.get(f"/v1/workflows/runs/{run.id}").json()
    assert raw["lifecycle"] == {
        "status": "awaiting_review",
        "kind": "awaiting_review",
        "waiting_for_block_ids": [ids["ex"]],
    }
    assert raw["timing"]["human_waiting_started_at"] is not None and raw["timing"]["completed_at"] is None
    listed = http.get("/v1/workflows/runs", params={"status": "awaiting_review", "workflow_id": wf_id}).json()["data"]
    assert [r["id"] for r in listed] == [run.id]
    steps = steps_of(client, run.id)
    assert steps[ids["ex"]].lifecycle.status == "awaiting_review"
    assert steps[ids["double"]].lifecycle.status == "pending"  # depends on the gate: waits
    deadline = time.monotonic() + 20
    while steps_of(client, run.id)[ids["beside"]].lifecycle.status != "completed":  # does not: runs on
        assert time.monotonic() < deadline, "the block beside the gate did not run"
        time.sleep(0.1)

    versions = list(client.workflows.reviews.versions.list(review_id=review.id))
    assert len(versions) == 1 and versions[0].author.kind == "model"
    seed = versions[0]
    assert seed.snapshot == {"invoice_number": "G-1", "total": 21}
    bad = http.post(
        "/v1/workflows/reviews/versions",
        json={"review_id": review.id, "parent_id": seed.id, "snapshot": {"invoice_number": "G-1", "total": "lots"}},
    )
    assert bad.status_code == 422, bad.text
    assert bad.json()["detail"]["details"]["field"] == "snapshot.total"
    corrected = client.workflows.reviews.versions.create(
        review_id=review.id, parent_id=seed.id, snapshot={"invoice_number": "G-1", "total": 50}, reviewer="Ada"
    )
    assert corrected.author.kind == "human" and corrected.author.display_name == "Ada"
    time.sleep(0.3)  # a wait the timing must count

    answer = client.workflows.reviews.approve(review.id, version_id=corrected.id, reviewer="Ada")
    assert (answer.submission_status, answer.resume_status) == ("accepted", "resumed")
    assert answer.review.decision is not None and answer.review.decision.version_id == corrected.id
    assert answer.review.decision.author.display_name == "Ada"
    done = wait_for(client, run.id)
    assert done.lifecycle.status == "completed", done.lifecycle
    steps = steps_of(client, run.id)
    assert steps[ids["ex"]].handle_outputs["output-json-0"].data == {"invoice_number": "G-1", "total": 50}
    assert steps[ids["double"]].handle_outputs["output-json-0"].data == 100  # the corrected total, doubled
    timing = http.get(f"/v1/workflows/runs/{run.id}").json()["timing"]
    assert timing["human_waiting_started_at"] is None
    assert timing["accumulated_human_waiting_ms"] >= 300
    assert timing["active_duration_ms"] == timing["duration_ms"] - timing["accumulated_human_waiting_ms"]
    evaluation = http.get(
        "/v1/workflows/artifacts", params={"run_id": run.id, "operation": "review_trigger_evaluation"}
    )
    [record] = evaluation.json()["data"]
    assert record["requires_human_review"] is True and record["review_decision"] == "approved"
    assert record["reviewer"]["display_name"] == "Ada" and record["review_version_id"] == corrected.id
    if RECORDING:
        record_history(stack, run.id, "review_approved_run")


def test_a_json_condition_gate_fires_only_when_its_condition_holds(
    client: Retab, stack: Stack, http: httpx.Client
) -> None:
    condition = {"sub_conditions": [{"path": "data.total", "operator": "gt", "expected": 100}]}
    wf_id, ids = gated(client, stack, {"predicate": {"kind": "json_condition", "condition": condition}})
    small = wait_for(client, start(client, wf_id, ids, total=20, number="JC-1").id)
    assert small.lifecycle.status == "completed"
    [record] = http.get(
        "/v1/workflows/artifacts", params={"run_id": small.id, "operation": "review_trigger_evaluation"}
    ).json()["data"]
    assert record["requires_human_review"] is False
    big = start(client, wf_id, ids, total=500, number="JC-2")
    review = waiting_review(client, big.id)
    assert review.triggered_by.kind == "json_condition"
    client.workflows.reviews.approve(review.id, version_id=_seed(client, review.id))
    assert wait_for(client, big.id).lifecycle.status == "completed"


def _seed(client: Retab, review_id: str) -> str:
    return next(iter(client.workflows.reviews.versions.list(review_id=review_id))).id


def test_reject_ends_the_step_in_error_and_nothing_downstream_runs(
    client: Retab, stack: Stack, http: httpx.Client
) -> None:
    wf_id, ids = gated(client, stack, ALWAYS)
    run = start(client, wf_id, ids, number="R-1")
    review = waiting_review(client, run.id)
    seed = _seed(client, review.id)
    missing_reason = http.post(f"/v1/workflows/reviews/{review.id}/reject", json={"version_id": seed})
    assert missing_reason.status_code == 422 and missing_reason.json()["detail"]["details"]["field"] == "reason"
    answer = client.workflows.reviews.reject(review.id, version_id=seed, reason="wrong vendor")
    assert answer.submission_status == "accepted" and answer.review.decision.verdict == "rejected"
    done = wait_for(client, run.id)
    assert done.lifecycle.status == "error"
    steps = steps_of(client, run.id)
    assert steps[ids["ex"]].lifecycle.status == "error"
    assert "wrong vendor" in steps[ids["ex"]].lifecycle.message
    assert steps[ids["double"]].lifecycle.status == "skipped"
    assert client.workflows.reviews.get(review.id).decision.reason == "wrong vendor"
    if RECORDING:
        record_history(stack, run.id, "review_rejected_run")


def test_a_second_decision_changes_nothing_and_unknown_reviews_are_404(
    client: Retab, stack: Stack, http: httpx.Client
) -> None:
    wf_id, ids = gated(client, stack, ALWAYS)
    run = start(client, wf_id, ids, number="S-1")
    review = waiting_review(client, run.id)
    seed = _seed(client, review.id)
    assert client.workflows.reviews.approve(review.id, version_id=seed).submission_status == "accepted"
    again = client.workflows.reviews.approve(review.id, version_id=seed)
    assert again.submission_status == "already_applied"
    other = http.post(f"/v1/workflows/reviews/{review.id}/reject", json={"version_id": seed, "reason": "late"})
    assert other.status_code == 409, other.text
    assert client.workflows.reviews.get(review.id).decision.verdict == "approved"
    assert wait_for(client, run.id).lifecycle.status == "completed"
    unknown = http.post("/v1/workflows/reviews/rev_000000000000000000000000/approve", json={"version_id": seed})
    assert unknown.status_code == 404


def test_a_decision_with_no_worker_is_503_and_the_review_stays_open(
    client: Retab, stack: Stack, http: httpx.Client
) -> None:
    wf_id, ids = gated(client, stack, ALWAYS)
    run = start(client, wf_id, ids, number="W-1")
    review = waiting_review(client, run.id)
    seed = _seed(client, review.id)
    stack.worker.stop()
    try:
        answer = http.post(f"/v1/workflows/reviews/{review.id}/approve", json={"version_id": seed})
        assert answer.status_code == 503, answer.text
        assert client.workflows.reviews.get(review.id).decision is None
    finally:
        stack.restart_worker(kill=False)
    # The admitted Update may still be delivered to the new worker: then a retry finds it applied.
    deadline = time.monotonic() + 60
    while (
        retried := http.post(f"/v1/workflows/reviews/{review.id}/approve", json={"version_id": seed})
    ).status_code == 503:
        assert time.monotonic() < deadline, "the restarted worker never took the decision"
    assert retried.status_code == 200, retried.text
    assert retried.json()["submission_status"] in {"accepted", "already_applied"}
    assert wait_for(client, run.id, timeout=60).lifecycle.status == "completed"


def test_cancelling_a_waiting_run_closes_its_review(client: Retab, stack: Stack, http: httpx.Client) -> None:
    wf_id, ids = gated(client, stack, ALWAYS)
    run = start(client, wf_id, ids, number="C-1")
    review = waiting_review(client, run.id)
    client.workflows.runs.cancel(run.id)
    assert wait_for(client, run.id).lifecycle.status == "cancelled"
    closed = http.get(f"/v1/workflows/reviews/{review.id}").json()
    assert closed["decision"] is None
    assert (closed["status"], closed["closed_reason"]) == ("cancelled", "the run was cancelled")
    assert not list(client.workflows.reviews.list(run_id=run.id))  # the pending queue no longer lists it
    with pytest.raises(Exception, match="409|not open|cancelled"):
        client.workflows.reviews.approve(review.id, version_id=_seed(client, review.id))


def _signal(stack: Stack, run_id: str, payload: dict[str, Any]) -> None:
    subprocess.run(
        [
            venv_binary("temporal"), "workflow", "signal",
            "--address", stack.settings.temporal_address, "--namespace", stack.settings.temporal_namespace,
            "--workflow-id", run_id, "--name", "review-decision", "--input", json.dumps(payload),
        ],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip


def test_an_operator_decides_with_temporal_workflow_signal(client: Retab, stack: Stack, http: httpx.Client) -> None:
    wf_id, ids = gated(client, stack, ALWAYS)
    run = start(client, wf_id, ids, number="SIG-1")
    review = waiting_review(client, run.id)
    seed = _seed(client, review.id)
    _signal(stack, run.id, {"review_id": review.id, "verdict": "approved", "version_id": "rvr_not_a_version"})
    _signal(stack, run.id, {"review_id": review.id, "verdict": "maybe"})
    deadline = time.monotonic() + 10
    while len(http.get(f"/v1/workflows/runs/{run.id}").json().get("ignored_signals", [])) < 2:
        assert time.monotonic() < deadline, "the invalid signals were not recorded"
        time.sleep(0.1)
    assert client.workflows.reviews.get(review.id).decision is None  # nothing half-applied
    assert wait_for(client, run.id, WAITING).lifecycle.status == "awaiting_review"
    _signal(stack, run.id, {"review_id": review.id, "verdict": "approved", "version_id": seed})
    assert wait_for(client, run.id).lifecycle.status == "completed"
    decided = client.workflows.reviews.get(review.id)
    assert decided.decision.verdict == "approved" and decided.decision.author.id == "temporal"
    ignored = http.get(f"/v1/workflows/runs/{run.id}").json()["ignored_signals"]
    # Two signals sent one after the other may be handled in one workflow task in either order.
    reasons = sorted(entry["reason"] for entry in ignored)
    assert len(reasons) == 2
    assert reasons[0].startswith("not a decision") and "at verdict" in reasons[0]
    assert "is not a version of review" in reasons[1]
    if RECORDING:
        record_history(stack, run.id, "review_signals_run")


def test_review_and_run_events_reach_the_webhook_signed(
    client: Retab, stack: Stack, webhook_receivers: tuple[WebhookReceiver, WebhookReceiver]
) -> None:
    receiver, _ = webhook_receivers
    wf_id, ids = gated(client, stack, ALWAYS)
    run = start(client, wf_id, ids, number="HOOK-1")
    review = waiting_review(client, run.id)
    client.workflows.reviews.approve(review.id, version_id=_seed(client, review.id))
    assert wait_for(client, run.id).lifecycle.status == "completed"
    expected = {
        "workflow.review.opened": event_key(run.id, review.id),
        "workflow.review.decided": event_key(run.id, review.id),
        "workflow.run.completed": event_key(run.id),
    }
    for event_type, key in expected.items():
        wanted = event_id(stack.project_id, event_type, key)
        deadline = time.monotonic() + 20
        while not receiver.received(wanted):
            assert time.monotonic() < deadline, f"no {event_type} event"
            time.sleep(0.1)
        delivery = receiver.received(wanted)[0]
        headers = {k.lower(): v for k, v in delivery.headers.items()}
        assert verify(WEBHOOK_SECRET, headers["x-retab-signature"], delivery.body)
        assert not verify(WEBHOOK_SECRET, headers["x-retab-signature"], delivery.body + b" ")
        event = delivery.event
        assert event["type"] == event_type and event["organization_id"] == stack.project_id
        assert event["data"]["run_id"] == run.id
    decided = receiver.received(event_id(stack.project_id, "workflow.review.decided", event_key(run.id, review.id)))
    assert decided[0].event["data"]["verdict"] == "approved"


def test_a_classifier_corrected_by_its_reviewer_routes_to_the_corrected_category(
    client: Retab, stack: Stack, http: httpx.Client, tmp_path: Path
) -> None:
    review = {"predicate": {"kind": "category_in", "categories": ["Invoice"]}}
    blocks = [
        {"id": "doc", "type": "start_document"},
        {"id": "kind", "type": "classifier", "config": {"categories": CATEGORIES, "review": review}},
        {"id": "read_invoice", "type": "parse"},
        {"id": "read_booking", "type": "parse"},
    ]
    edges = [
        _file_edge("doc", "output-file-0", "kind", "input-file-document"),
        _file_edge("kind", "output-file-invoice", "read_invoice", "input-file-0"),
        _file_edge("kind", "output-file-booking-confirmation", "read_booking", "input-file-0"),
    ]
    wf_id, ids = build(client, stack.project_id, blocks, edges)
    path = tmp_path / "invoice.pdf"
    # Its own invoice number: test_runs counts the model calls that carry the sample's.
    path.write_bytes(invoice_pdf_bytes(tuple(line.replace("INV-2026-0042", "INV-REVIEW-9") for line in INVOICE_LINES)))
    run = client.workflows.runs.create(workflow_id=wf_id, version="draft", documents={ids["doc"]: path})
    gate = waiting_review(client, run.id)
    seed = next(iter(client.workflows.reviews.versions.list(review_id=gate.id)))
    assert seed.snapshot == {"category": "Invoice"}
    unknown = http.post(
        "/v1/workflows/reviews/versions",
        json={"review_id": gate.id, "parent_id": seed.id, "snapshot": {"category": "Menu"}},
    )
    assert unknown.status_code == 422 and unknown.json()["detail"]["details"]["field"] == "snapshot.category"
    booking = client.workflows.reviews.versions.create(
        review_id=gate.id, parent_id=seed.id, snapshot={"category": "Booking Confirmation"}
    )
    client.workflows.reviews.approve(gate.id, version_id=booking.id)
    assert wait_for(client, run.id).lifecycle.status == "completed"
    steps = steps_of(client, run.id)
    assert steps[ids["read_booking"]].lifecycle.status == "completed"
    assert steps[ids["read_invoice"]].lifecycle.status == "skipped"
    routed = http.get(f"/v1/workflows/steps/{ids['kind']}", params={"run_id": run.id}).json()["routing_decisions"]
    assert routed == ["output-file-booking-confirmation"]


def test_a_split_corrected_by_its_reviewer_cuts_the_corrected_pages(
    client: Retab, stack: Stack, http: httpx.Client, tmp_path: Path
) -> None:
    review = {"predicate": {"kind": "split_count_neq", "expected": 2}}
    blocks = [
        {"id": "doc", "type": "start_document"},
        {"id": "split", "type": "split", "config": {"subdocuments": SUBDOCUMENTS, "review": review}},
        {"id": "read_invoices", "type": "parse"},
        {"id": "read_receipt", "type": "parse"},
    ]
    edges = [
        _file_edge("doc", "output-file-0", "split", "input-file-0"),
        _file_edge("split", "output-file-invoice", "read_invoices", "input-file-0"),
        _file_edge("split", "output-file-receipt", "read_receipt", "input-file-0"),
    ]
    wf_id, ids = build(client, stack.project_id, blocks, edges)
    path = tmp_path / "three.pdf"
    path.write_bytes(three_invoices_pdf())
    run = client.workflows.runs.create(workflow_id=wf_id, version="draft", documents={ids["doc"]: path})
    gate = waiting_review(client, run.id)  # three invoices found, two expected: a person looks
    seed = next(iter(client.workflows.reviews.versions.list(review_id=gate.id)))
    assert [d["pages"] for d in seed.snapshot["documents"]] == [[1, 2], [3, 4], [5, 6]]
    fixed = {"documents": [{"name": "Invoice", "pages": [1, 2, 3, 4]}, {"name": "Receipt", "pages": [5, 6]}]}
    version = client.workflows.reviews.versions.create(review_id=gate.id, parent_id=seed.id, snapshot=fixed)
    client.workflows.reviews.approve(gate.id, version_id=version.id)
    assert wait_for(client, run.id).lifecycle.status == "completed"
    split = http.get(f"/v1/workflows/steps/{ids['split']}", params={"run_id": run.id}).json()
    splits = split["handle_outputs"]["output-json-splits"]["data"]
    assert [(s["name"], s["pages"]) for s in splits] == [("Invoice", [1, 2, 3, 4]), ("Receipt", [5, 6])]
    receipt = split["handle_outputs"]["output-file-receipt"]["document"]["id"]
    content = http.get(f"/v1/files/{receipt}/content").content
    assert len(PdfReader(io.BytesIO(content)).pages) == 2
    steps = steps_of(client, run.id)
    assert steps[ids["read_receipt"]].lifecycle.status == "completed"
    assert steps[ids["read_invoices"]].lifecycle.status == "completed"


def _file_edge(source: str, handle: str, target: str, target_handle: str) -> dict[str, str]:
    return {"source_block": source, "source_handle": handle, "target_block": target, "target_handle": target_handle}


async def test_the_validator_refuses_a_decision_before_it_reaches_history(client: Retab, stack: Stack) -> None:
    wf_id, ids = gated(client, stack, ALWAYS)
    run = start(client, wf_id, ids, number="V-1")
    review = waiting_review(client, run.id)
    handle = (await connect(stack.settings)).get_workflow_handle(run.id)
    refused = [
        DecisionRequest(review_id="rev_elsewhere", verdict="approved", version_id="rvr_x"),  # not open in this run
        DecisionRequest(review_id=review.id, verdict="rejected", version_id=_seed(client, review.id)),  # no reason
    ]
    for decision in refused:
        with pytest.raises(WorkflowUpdateFailedError) as failed:
            await handle.execute_update(REVIEW_DECISION_UPDATE, decision, result_type=DecisionOutcome)
        assert isinstance(failed.value.cause, ApplicationError)
        assert failed.value.cause.type in {"ReviewNotOpen", "InvalidDecision"}
    events = [e.event_type for e in (await handle.fetch_history()).events]
    assert not [e for e in events if e in _UPDATE_EVENTS], "a refused decision reached history"
    # What the Temporal UI shows: the search attributes, and the current details naming the block and since when.
    described = await handle.describe()
    assert described.typed_search_attributes.get(SA_STATUS) == "awaiting_review"
    assert described.typed_search_attributes.get(SA_AWAITING_REVIEW) == [ids["ex"]]
    metadata = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
    assert f"awaiting review: {ids['ex']} since" in metadata.current_details
    assert wait_for(client, run.id, WAITING).lifecycle.status == "awaiting_review"
    client.workflows.reviews.approve(review.id, version_id=_seed(client, review.id))
    assert wait_for(client, run.id).lifecycle.status == "completed"


_UPDATE_EVENTS = {
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_REJECTED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED,
}
