"""Consensus end to end: K calls to the local chat-completions server, merged (extract, classifier, split).

The model server answers the K votes of a step with scripted contents (`answer_next`), so the test decides
where the votes agree and where they disagree; the step's output, its likelihoods and the artifact (checked by
the SDK's `ExtractionWorkflowArtifact`) must follow NOTES.md §7.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from retab import Retab
from retab.types.workflows.artifacts import (
    ClassificationWorkflowArtifact,
    ExtractionWorkflowArtifact,
    SplitWorkflowArtifact,
)

from tests.chat_server import ChatCompletionsServer
from tests.conftest import Stack
from tests.documents import three_invoices_pdf
from tests.integration.builders import build, wait_for
from tests.integration.test_document_blocks import CATEGORIES, SUBDOCUMENTS

SCHEMA = {
    "type": "object",
    "properties": {
        "invoice_number": {"type": "string"},
        "total": {"type": "number"},
        "paid": {"type": "boolean"},
        "currency": {"type": "string", "enum": ["EUR", "USD"]},
    },
}


def _workflow(client: Retab, stack: Stack, n: int, schema: dict[str, Any] = SCHEMA) -> tuple[str, dict[str, str]]:
    config = {"json_schema": schema, "inputs": [{"name": "text", "type": "json"}], "n_consensus": n}
    blocks = [{"id": "in", "type": "start_json"}, {"id": "ex", "type": "extract", "config": config}]
    edge = {"source_block": "in", "target_block": "ex", "source_handle": "output-json-0"}
    return build(client, stack.project_id, blocks, [{**edge, "target_handle": "input-json-text"}])


def _run(client: Retab, wf_id: str, ids: dict[str, str]) -> Any:
    run = client.workflows.runs.create(
        workflow_id=wf_id, json_inputs={ids["in"]: {"text": "an invoice"}}, version="draft"
    )
    return wait_for(client, run.id)


def test_five_votes_are_merged_field_by_field_with_likelihoods(
    client: Retab, stack: Stack, http: httpx.Client, model_server: ChatCompletionsServer
) -> None:
    wf_id, ids = _workflow(client, stack, 5)
    model_server.answer_next(
        {"invoice_number": "INV-001", "total": 100.0, "paid": True, "currency": "EUR"},
        {"invoice_number": "inv 001", "total": 101.0, "paid": True, "currency": "EUR"},
        {"invoice_number": "INV-001", "total": 150.0, "paid": False, "currency": "USD"},
        {"invoice_number": "INV-001", "total": 99.0, "paid": True, "currency": "EUR"},
        {"invoice_number": None, "total": None, "paid": None, "currency": "EUR"},
    )
    done = _run(client, wf_id, ids)
    assert done.lifecycle.status == "completed", done.lifecycle
    step = client.workflows.steps.get(ids["ex"], run_id=done.id)
    data = step.handle_outputs["output-json-0"].data  # type: ignore[index]
    assert data["invoice_number"] == "INV-001"
    assert data["total"] == 100.0  # the 99–101 cluster (within 3 %) wins, its mean
    assert data["paid"] is True and data["currency"] == "EUR"
    assert step.artifact is not None
    raw = http.get(f"/v1/workflows/artifacts/{step.artifact.id}").json()
    artifact = ExtractionWorkflowArtifact.model_validate(raw)
    assert artifact.n_consensus == 5 and artifact.consensus is not None
    assert len(artifact.consensus.choices or []) == 5
    likelihoods = artifact.consensus.likelihoods or {}
    assert likelihoods["invoice_number"] == 0.8  # four of five agree ("inv 001" is the same number)
    assert likelihoods["total"] == 0.6  # 100, 101, 99 of five (None counts in the denominator)
    assert likelihoods["paid"] == 0.6
    assert likelihoods["currency"] == 0.8
    assert raw["usage"]["calls"] == 5


def test_votes_that_agree_have_likelihood_one(
    client: Retab, stack: Stack, http: httpx.Client, model_server: ChatCompletionsServer
) -> None:
    wf_id, ids = _workflow(client, stack, 3)
    vote = {"invoice_number": "A-7", "total": 12.5, "paid": False, "currency": "USD"}
    model_server.answer_next(vote, vote, vote)
    done = _run(client, wf_id, ids)
    step = client.workflows.steps.get(ids["ex"], run_id=done.id)
    assert step.handle_outputs["output-json-0"].data == vote  # type: ignore[index]
    assert step.artifact is not None
    consensus = http.get(f"/v1/workflows/artifacts/{step.artifact.id}").json()["consensus"]
    assert consensus["likelihoods"] == {"invoice_number": 1.0, "total": 1.0, "paid": 1.0, "currency": 1.0}


def test_n_consensus_outside_one_to_ten_is_refused_naming_the_field(
    client: Retab, stack: Stack, http: httpx.Client
) -> None:
    wf = client.workflows.create(project_id=stack.project_id, name="bad consensus")
    config = {"json_schema": SCHEMA, "n_consensus": 11}
    response = http.post(
        "/v1/workflows/blocks", json={"workflow_id": wf.id, "id": "ex", "type": "extract", "config": config}
    )
    assert response.status_code == 422, response.text
    assert "n_consensus" in response.text


def _document_workflow(client: Retab, stack: Stack, block: dict[str, Any], handle: str) -> tuple[str, dict[str, str]]:
    blocks = [{"id": "doc", "type": "start_document"}, block]
    edge = {
        "source_block": "doc",
        "source_handle": "output-file-0",
        "target_block": block["id"],
        "target_handle": handle,
    }
    return build(client, stack.project_id, blocks, [edge])


def test_three_classifier_votes_pick_the_majority_with_its_share_and_margin(
    client: Retab, stack: Stack, http: httpx.Client, model_server: ChatCompletionsServer, tmp_path: Path
) -> None:
    config = {"categories": CATEGORIES, "n_consensus": 3}
    wf_id, ids = _document_workflow(
        client, stack, {"id": "cls", "type": "classifier", "config": config}, "input-file-document"
    )
    model_server.answer_next(
        {"reasoning": "a bill", "category": "Invoice", "scores": {"Invoice": 0.9, "Booking Confirmation": 0.1}},
        {
            "reasoning": "a stay",
            "category": "Booking Confirmation",
            "scores": {"Invoice": 0.4, "Booking Confirmation": 0.6},
        },
        {"reasoning": "total due", "category": "Invoice", "scores": {"Invoice": 0.8, "Booking Confirmation": 0.2}},
    )
    path = tmp_path / "note.txt"
    path.write_text("Consensus classifier document CONS-CLS-1")
    run = client.workflows.runs.create(workflow_id=wf_id, version="draft", documents={ids["doc"]: path})
    done = wait_for(client, run.id)
    assert done.lifecycle.status == "completed", done.lifecycle
    step = client.workflows.steps.get(ids["cls"], run_id=run.id)
    assert list(step.handle_outputs) == ["output-file-invoice"]
    assert step.artifact is not None
    record = http.get(f"/v1/workflows/artifacts/{step.artifact.id}").json()
    artifact = ClassificationWorkflowArtifact.model_validate(record)
    assert artifact.output is not None and artifact.output.category == "Invoice"
    assert artifact.consensus is not None and len(artifact.consensus.choices or []) == 3
    assert abs(record["likelihood"] - 2 / 3) < 1e-9 and abs(record["top_margin"] - 1 / 3) < 1e-9
    assert record["usage"]["calls"] == 3


def test_three_split_votes_keep_the_central_vote_with_likelihoods_per_split_and_page(
    client: Retab, stack: Stack, http: httpx.Client, model_server: ChatCompletionsServer, tmp_path: Path
) -> None:
    config = {"subdocuments": SUBDOCUMENTS, "n_consensus": 3}
    wf_id, ids = _document_workflow(client, stack, {"id": "spl", "type": "split", "config": config}, "input-file-0")
    three = {"splits": [{"name": "Invoice", "pages": [1, 2]}, {"name": "Invoice", "pages": [3, 4]},
                        {"name": "Invoice", "pages": [5, 6]}]}  # fmt: skip
    two = {"splits": [{"name": "Invoice", "pages": [1, 2, 3, 4]}, {"name": "Invoice", "pages": [5, 6]}]}
    model_server.answer_next(three, two, three)
    path = tmp_path / "three.pdf"
    path.write_bytes(three_invoices_pdf())
    run = client.workflows.runs.create(workflow_id=wf_id, version="draft", documents={ids["doc"]: path})
    done = wait_for(client, run.id)
    assert done.lifecycle.status == "completed", done.lifecycle
    step = client.workflows.steps.get(ids["spl"], run_id=run.id)
    splits = step.handle_outputs["output-json-splits"].data  # type: ignore[index]
    assert [s["pages"] for s in splits] == [[1, 2], [3, 4], [5, 6]]
    assert step.artifact is not None
    record = http.get(f"/v1/workflows/artifacts/{step.artifact.id}").json()
    artifact = SplitWorkflowArtifact.model_validate(record)
    assert artifact.consensus is not None and len(artifact.consensus.choices or []) == 3
    likelihoods = record["consensus"]["likelihoods"]
    assert [round(x["name"], 3) for x in likelihoods] == [0.667, 0.667, 1.0]
    # Every vote puts pages 1–4 under an invoice: each page agrees fully even where the splits differ.
    assert [x["pages"] for x in likelihoods] == [[1.0, 1.0], [1.0, 1.0], [1.0, 1.0]]
