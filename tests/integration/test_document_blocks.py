"""Classifier and split blocks end to end: real runs, the test model server, S3, artifacts checked by the SDK."""

from __future__ import annotations

import asyncio
import io
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from pypdf import PdfReader
from retab import Retab
from retab.types.workflows.artifacts import ClassificationWorkflowArtifact, SplitWorkflowArtifact

from activities.executors import Executors
from activities.produced import Produced
from activities.provider import OfflineProvider
from activities.stored_files import store_made_document
from docflow.models import Block
from docflow.runs import ExecuteBlockInput, HandleValue, RunContext
from docflow.sample_invoice import INVOICE_LINES, invoice_pdf_bytes
from storage.objects import ObjectStore
from tests.conftest import Stack
from tests.documents import THREE_INVOICES, three_invoices_pdf
from tests.integration.builders import build, wait_for

SUBDOCUMENTS = [
    {"name": "Invoice", "description": "A bill from a vendor with a total due", "allow_multiple_instances": True},
    {"name": "Receipt", "description": "Proof that a payment was received"},
]
CATEGORIES = [
    {"name": "Invoice", "description": "A bill from a vendor asking for payment of a total due"},
    {"name": "Booking Confirmation", "description": "A hotel or travel reservation with check-in dates"},
]


def _edge(source: str, handle: str, target: str, target_handle: str) -> dict[str, str]:
    return {"source_block": source, "source_handle": handle, "target_block": target, "target_handle": target_handle}


def _artifact(http: httpx.Client, artifact_id: str) -> dict[str, Any]:
    response = http.get(f"/v1/workflows/artifacts/{artifact_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _routing(http: httpx.Client, run_id: str, step_id: str) -> list[str]:
    response = http.get(f"/v1/workflows/steps/{step_id}", params={"run_id": run_id})
    assert response.status_code == 200, response.text
    decisions: list[str] = response.json()["routing_decisions"]
    return decisions


def _pdf(http: httpx.Client, file_id: str) -> PdfReader:
    response = http.get(f"/v1/files/{file_id}/content")
    assert response.status_code == 200, response.text
    return PdfReader(io.BytesIO(response.content))


def test_split_cuts_three_invoices_into_three_pdfs(
    client: Retab, stack: Stack, http: httpx.Client, tmp_path: Path
) -> None:
    blocks = [
        {"id": "doc", "type": "start_document"},
        {"id": "split", "type": "split", "config": {"subdocuments": SUBDOCUMENTS}},
        {"id": "read_invoices", "type": "parse"},
        {"id": "read_receipt", "type": "parse"},
    ]
    edges = [
        _edge("doc", "output-file-0", "split", "input-file-0"),
        _edge("split", "output-file-invoice", "read_invoices", "input-file-0"),
        _edge("split", "output-file-receipt", "read_receipt", "input-file-0"),
    ]
    wf_id, ids = build(client, stack.project_id, blocks, edges)
    path = tmp_path / "three-invoices.pdf"
    path.write_bytes(three_invoices_pdf())
    run = client.workflows.runs.create(workflow_id=wf_id, version="draft", documents={ids["doc"]: path})
    done = wait_for(client, run.id)
    assert done.lifecycle.status == "completed", done.lifecycle

    steps = {s.block_id: s for s in client.workflows.steps.list(run_id=run.id)}
    split = client.workflows.steps.get(ids["split"], run_id=run.id)
    splits = split.handle_outputs["output-json-splits"].data  # type: ignore[index]
    assert [(s["name"], s["pages"]) for s in splits] == [("Invoice", [1, 2]), ("Invoice", [3, 4]), ("Invoice", [5, 6])]
    for entry, (number, vendor, total) in zip(splits, THREE_INVOICES, strict=True):
        pdf = _pdf(http, entry["file"]["id"])
        assert len(pdf.pages) == 2
        first, second = (page.extract_text() for page in pdf.pages)
        assert f"Invoice Number: {number}" in first and vendor in first
        assert f"Total Due: EUR {total}" in second
        assert entry["file"]["mime_type"] == "application/pdf"
    assert sorted(_routing(http, run.id, ids["split"])) == ["output-file-invoice", "output-json-splits"]

    # The invoice handle carries one PDF of all three instances; the receipt branch was not taken.
    parsed = client.workflows.steps.get(ids["read_invoices"], run_id=run.id)
    text = parsed.handle_outputs["output-json-0"].data["text"]  # type: ignore[index]
    assert all(number in text for number, _, _ in THREE_INVOICES)
    skipped = steps[ids["read_receipt"]].lifecycle
    assert skipped.status == "skipped"
    assert "output-file-receipt" in skipped.reason and "not taken" in skipped.reason  # type: ignore[union-attr]

    assert split.artifact is not None and split.artifact.operation == "split"
    record = _artifact(http, split.artifact.id)
    artifact = SplitWorkflowArtifact.model_validate(record)
    assert [(s.name, s.pages) for s in artifact.output or []] == [(s["name"], s["pages"]) for s in splits]
    assert artifact.model == "test-model" and artifact.n_consensus == 1
    assert artifact.consensus is not None and artifact.consensus.choices == [artifact.output]
    assert record["usage"]["calls"] == 1 and record["usage"]["prompt_tokens"] > 0


def test_classifier_routes_to_the_category_and_skips_the_other_branch(
    client: Retab, stack: Stack, http: httpx.Client, tmp_path: Path
) -> None:
    blocks = [
        {"id": "doc", "type": "start_document"},
        {"id": "classify", "type": "classifier", "config": {"categories": CATEGORIES}},
        {"id": "invoice_text", "type": "parse"},
        {"id": "booking_text", "type": "parse"},
    ]
    edges = [
        _edge("doc", "output-file-0", "classify", "input-file-document"),
        _edge("classify", "output-file-invoice", "invoice_text", "input-file-0"),
        _edge("classify", "output-file-booking-confirmation", "booking_text", "input-file-0"),
    ]
    wf_id, ids = build(client, stack.project_id, blocks, edges)
    path = tmp_path / "invoice.pdf"
    # Its own invoice number: the model server is shared, and other tests count the calls about the sample's.
    lines = tuple(line.replace("INV-2026-0042", "INV-CLASSIFY-7") for line in INVOICE_LINES)
    path.write_bytes(invoice_pdf_bytes(lines))
    run = client.workflows.runs.create(workflow_id=wf_id, version="draft", documents={ids["doc"]: path})
    done = wait_for(client, run.id)
    assert done.lifecycle.status == "completed", done.lifecycle

    steps = {s.block_id: s for s in client.workflows.steps.list(run_id=run.id)}
    assert steps[ids["invoice_text"]].lifecycle.status == "completed"
    skipped = steps[ids["booking_text"]].lifecycle
    assert skipped.status == "skipped"
    assert "output-file-booking-confirmation" in skipped.reason  # type: ignore[union-attr]
    classify = client.workflows.steps.get(ids["classify"], run_id=run.id)
    assert _routing(http, run.id, ids["classify"]) == ["output-file-invoice"]
    passed = classify.handle_outputs["output-file-invoice"].document  # type: ignore[index]
    assert passed is not None and passed.filename == "invoice.pdf"

    assert classify.artifact is not None and classify.artifact.operation == "classification"
    record = _artifact(http, classify.artifact.id)
    artifact = ClassificationWorkflowArtifact.model_validate(record)
    assert artifact.output is not None and artifact.output.category == "Invoice"
    assert artifact.consensus is not None and artifact.consensus.likelihoods == record["likelihood"]
    assert 0.5 < record["likelihood"] < 1 and 0 < record["top_margin"] < 1
    assert abs(sum(record["scores"].values()) - 1) < 1e-5
    assert [c.handle_key for c in artifact.categories] == ["invoice", "booking-confirmation"]


def test_document_block_configs_are_422_naming_the_field(client: Retab, stack: Stack, http: httpx.Client) -> None:
    wf = client.workflows.create(project_id=stack.project_id, name="bad document blocks").id
    cases = [
        ("classifier", {"categories": []}, "config.categories"),
        ("classifier", {"categories": [{"name": "A b"}, {"name": "a-b"}]}, "config.categories"),
        ("classifier", {"categories": [{"name": "a"}], "n_consensus": 11}, "config.n_consensus"),
        ("split", {"subdocuments": [{"name": "x"}, {"name": "X"}]}, "config.subdocuments"),
        ("split", {"subdocuments": [{"name": "x"}], "n_consensus": 0}, "config.n_consensus"),
    ]
    for block_type, config, field in cases:
        response = http.post("/v1/workflows/blocks", json={"workflow_id": wf, "type": block_type, "config": config})
        assert response.status_code == 422, response.text
        detail = response.json()["detail"]
        assert detail["details"]["field"] == field, detail
    assert client.workflows.blocks.list(workflow_id=wf).data == []


def test_offline_provider_split_stores_each_part_as_a_downloadable_pdf(
    stack: Stack, store: ObjectStore, http: httpx.Client
) -> None:
    """The default (offline) provider through the split executor, against the stack's real S3."""

    async def run() -> Produced:
        source = await store_made_document(
            store, stack.project_id, "bundle.pdf", "application/pdf", three_invoices_pdf()
        )
        block = Block(
            id="split-offline",
            workflow_id="wf_offline",
            type="split",
            config={"subdocuments": SUBDOCUMENTS},
            updated_at=datetime.now(UTC),
        )
        inp = ExecuteBlockInput(
            run=RunContext(run_id="run_offline", project_id=stack.project_id, workflow_id="wf_offline", version_id="v"),
            block=block,
            step_id=block.id,
        )
        executors = Executors(store, OfflineProvider(), api=None, isolated=None)  # type: ignore[arg-type]
        return await executors.split(inp, {"input-file-0": HandleValue(type="file", document=source)})

    produced = asyncio.run(run())
    splits = produced.outputs["output-json-splits"].data
    assert [s["pages"] for s in splits] == [[1, 2], [3, 4], [5, 6]]
    for entry, (number, _, _) in zip(splits, THREE_INVOICES, strict=True):
        pdf = _pdf(http, entry["file"]["id"])
        assert len(pdf.pages) == 2 and number in (pdf.pages[0].extract_text() or "")
        assert entry["file"]["filename"].startswith("bundle-invoice-")
    combined = produced.outputs["output-file-invoice"].document
    assert combined is not None and len(_pdf(http, combined.id).pages) == 6
    assert produced.routing == ["output-file-invoice", "output-json-splits"]
    assert produced.artifact is not None
    artifact = SplitWorkflowArtifact.model_validate(
        {**produced.artifact, "id": "splt_x", "created_at": "2026-11-26T00:00:00Z"}
    )
    assert artifact.model == "offline" and artifact.consensus is not None
    likelihoods = artifact.consensus.likelihoods or []
    assert all(lk.name is not None and 0.5 < lk.name < 1 for lk in likelihoods)
    assert all(0.5 < p <= 1 for lk in likelihoods for p in lk.pages or [])


def test_a_one_page_text_document_splits_into_itself(stack: Stack, store: ObjectStore) -> None:
    """Only PDFs are cut; a document that is one part as a whole passes through as it is."""

    async def run() -> Produced:
        text = b"INVOICE\nInvoice Number: T-1\nTotal Due: EUR 5.00\n"
        source = await store_made_document(store, stack.project_id, "note.txt", "text/plain", text)
        block = Block(
            id="split-text",
            workflow_id="wf_text",
            type="split",
            config={"subdocuments": SUBDOCUMENTS},
            updated_at=datetime.now(UTC),
        )
        context = RunContext(run_id="run_text", project_id=stack.project_id, workflow_id="wf_text", version_id="v")
        inp = ExecuteBlockInput(run=context, block=block, step_id=block.id)
        executors = Executors(store, OfflineProvider(), api=None, isolated=None)  # type: ignore[arg-type]
        return await executors.split(inp, {"input-file-0": HandleValue(type="file", document=source)})

    produced = asyncio.run(run())
    [entry] = produced.outputs["output-json-splits"].data
    assert entry["name"] == "Invoice" and entry["pages"] == [1]
    assert entry["file"]["filename"] == "note.txt" and entry["file"]["mime_type"] == "text/plain"
