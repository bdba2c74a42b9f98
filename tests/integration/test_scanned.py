"""Scanned documents end to end: an image-only PDF and images through the API, OCR in the worker, the model after."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from retab import Retab
from retab.types.workflows.artifacts import ExtractionWorkflowArtifact, ParseWorkflowArtifact

from docflow import keys
from docflow.sample_invoice import INVOICE_LINES
from storage.objects import ObjectStore
from tests.conftest import Stack
from tests.integration.builders import build, wait_for
from tests.scans import encoded, page_image, require_tesseract, scanned_invoice_pdf

EXAMPLE = json.loads((Path(__file__).resolve().parents[2] / "docflow/examples/invoice_workflow.json").read_text())
INVOICE_SCHEMA = next(b for b in EXAMPLE["blocks"] if b["id"] == "extract")["config"]["json_schema"]


@pytest.fixture(autouse=True)
def _tesseract() -> None:
    require_tesseract()


def _document_to(client: Retab, stack: Stack, block: dict[str, Any], handle: str) -> tuple[str, dict[str, str]]:
    blocks = [{"id": "doc", "type": "start_document"}, block]
    edges = [{"source_block": "doc", "target_block": block["id"], "source_handle": "output-file-0",
              "target_handle": handle}]  # fmt: skip
    return build(client, stack.project_id, blocks, edges)


def test_extract_reads_the_fields_of_an_image_only_pdf(
    client: Retab, stack: Stack, http: httpx.Client, tmp_path: Path
) -> None:
    scan = tmp_path / "scanned-invoice.pdf"
    # Its own invoice number: other tests count the model calls that carry the sample's.
    scan.write_bytes(scanned_invoice_pdf(tuple(line.replace("0042", "0917") for line in INVOICE_LINES)))
    extract = {"id": "extract", "type": "extract", "config": {"json_schema": INVOICE_SCHEMA}}
    wf_id, ids = _document_to(client, stack, extract, "input-file-document")
    run = client.workflows.runs.create(workflow_id=wf_id, documents={ids["doc"]: scan}, version="draft")
    assert wait_for(client, run.id).lifecycle.status == "completed"
    step = client.workflows.steps.get(ids["extract"], run_id=run.id)
    assert step.handle_outputs["output-json-0"].data == {
        "invoice_number": "INV-2026-0917",
        "invoice_date": "2026-11-02",
        "vendor_name": "Acme Supplies Ltd",
        "customer_name": "Globex Corporation",
        "total_amount": 1440.0,
        "currency": "EUR",
    }
    artifact = http.get(f"/v1/workflows/artifacts/{step.artifact.id}").json()
    ExtractionWorkflowArtifact.model_validate(artifact)


def test_parse_of_a_png_gives_its_text_and_a_valid_artifact(
    client: Retab, stack: Stack, http: httpx.Client, tmp_path: Path
) -> None:
    scan = tmp_path / "invoice.png"
    scan.write_bytes(encoded([page_image()], "PNG"))
    parse = {"id": "parse", "type": "parse", "config": {"table_parsing_format": "html", "image_resolution_dpi": 150}}
    wf_id, ids = _document_to(client, stack, parse, "input-file-0")
    run = client.workflows.runs.create(workflow_id=wf_id, documents={ids["doc"]: scan}, version="draft")
    assert wait_for(client, run.id).lifecycle.status == "completed"
    step = client.workflows.steps.get(ids["parse"], run_id=run.id)
    output = step.handle_outputs["output-json-0"].data
    assert len(output["pages"]) == 1
    assert "Invoice Number: INV-2026-0042" in output["text"] and "Total Due: EUR 1,440.00" in output["text"]
    artifact = ParseWorkflowArtifact.model_validate(http.get(f"/v1/workflows/artifacts/{step.artifact.id}").json())
    assert artifact.table_parsing_format.value == "html" and artifact.image_resolution_dpi == 150
    assert artifact.file.filename == "invoice.png"


def test_a_corrupt_scan_fails_the_step_naming_the_page(
    client: Retab, stack: Stack, store: ObjectStore, tmp_path: Path
) -> None:
    png = encoded([page_image()], "PNG")
    scan = tmp_path / "torn.png"
    scan.write_bytes(png[: len(png) // 3])
    wf_id, ids = _document_to(client, stack, {"id": "parse", "type": "parse"}, "input-file-0")
    run = client.workflows.runs.create(workflow_id=wf_id, documents={ids["doc"]: scan}, version="draft")
    assert wait_for(client, run.id).lifecycle.status == "error"
    record = asyncio.run(store.get_json(keys.step(stack.project_id, run.id, ids["parse"]))).data
    assert record["error"]["error_code"] == "unreadable_page"
    assert record["error"]["context"] == {"page": 1}
    assert "torn.png: page 1" in record["error"]["message"]


@pytest.mark.parametrize("accepted", [["application/pdf"], ["text/*", "application/json"]])
def test_a_start_block_refuses_types_outside_its_accepted_mime_types(
    client: Retab, stack: Stack, http: httpx.Client, accepted: list[str]
) -> None:
    start = {"id": "doc", "type": "start_document", "config": {"accepted_mime_types": accepted}}
    wf_id, ids = build(client, stack.project_id, [start], [])
    png = base64.b64encode(encoded([page_image(("x",), dpi=72)], "PNG")).decode()
    doc = {"filename": "scan.png", "url": f"data:image/png;base64,{png}"}
    answer = http.post(
        "/v1/workflows/runs", json={"workflow_id": wf_id, "version": "draft", "documents": {ids["doc"]: doc}}
    )
    assert answer.status_code == 422, answer.text
    detail = answer.json()["detail"]
    assert detail["code"] == "unaccepted_mime_type"
    assert detail["details"]["field"] == f"documents.{ids['doc']}" and detail["details"]["mime_type"] == "image/png"


@pytest.mark.parametrize("accepted", [None, ["image/png"], ["application/pdf", "image/*"], ["*/*"]])
def test_a_start_block_takes_an_image_its_accepted_mime_types_cover(
    client: Retab, stack: Stack, http: httpx.Client, accepted: list[str] | None
) -> None:
    start = {"id": "doc", "type": "start_document", "config": {"accepted_mime_types": accepted}}
    wf_id, ids = build(client, stack.project_id, [start], [])
    png = base64.b64encode(encoded([page_image(("x",), dpi=72)], "PNG")).decode()
    doc = {"filename": "scan.png", "url": f"data:image/png;base64,{png}"}
    answer = http.post(
        "/v1/workflows/runs", json={"workflow_id": wf_id, "version": "draft", "documents": {ids["doc"]: doc}}
    )
    assert answer.status_code == 200, answer.text
    assert wait_for(client, answer.json()["id"]).lifecycle.status == "completed"


def test_an_accepted_mime_type_that_is_no_type_is_refused_on_write(
    client: Retab, stack: Stack, http: httpx.Client
) -> None:
    wf = client.workflows.create(project_id=stack.project_id, name="bad types")
    config = {"accepted_mime_types": ["application/pdf", "png"]}
    answer = http.post("/v1/workflows/blocks", json={"workflow_id": wf.id, "type": "start_document", "config": config})
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"]["details"]["field"] == "config.accepted_mime_types.1"
