"""Bad run inputs are refused with a 4xx naming the field, before any workflow starts; files are stored once."""

from __future__ import annotations

import base64
from pathlib import Path

import httpx
import pytest
from retab import Retab
from retab.types.mime import FileRef

from tests.conftest import Stack
from tests.integration.builders import build, wait_for

PDF_BLOCKS = [
    {"id": "doc", "type": "start_document"},
    {"id": "meta", "type": "start_json", "config": {"json_schema": {"type": "object", "required": ["customer_id"],
     "properties": {"customer_id": {"type": "string"}}}}},
    {"id": "parse", "type": "parse"},
]  # fmt: skip
PDF_EDGES = [
    {"source_block": "doc", "target_block": "parse", "source_handle": "output-file-0", "target_handle": "input-file-0"}
]


@pytest.fixture
def pdf_workflow(client: Retab, stack: Stack) -> tuple[str, dict[str, str]]:
    wf_id, ids = build(client, stack.project_id, PDF_BLOCKS, PDF_EDGES)
    client.workflows.publish(wf_id)
    return wf_id, ids


def _data_url(content: bytes, mime: str = "application/pdf") -> str:
    return f"data:{mime};base64," + base64.b64encode(content).decode()


def _runs_of(http: httpx.Client, wf_id: str) -> list[str]:
    return [r["id"] for r in http.get("/v1/workflows/runs", params={"workflow_id": wf_id}).json()["data"]]


def _post(http: httpx.Client, body: dict) -> httpx.Response:  # type: ignore[type-arg]
    return http.post("/v1/workflows/runs", json=body)


def test_missing_start_input_is_422_naming_the_block(
    http: httpx.Client, pdf_workflow: tuple[str, dict[str, str]], samples: Path
) -> None:
    wf_id, ids = pdf_workflow
    doc = {"filename": "i.pdf", "url": _data_url((samples / "invoice.pdf").read_bytes())}
    answer = _post(http, {"workflow_id": wf_id, "documents": {ids["doc"]: doc}})
    assert answer.status_code == 422
    assert answer.json()["detail"]["details"]["field"] == f"json_inputs.{ids['meta']}"
    assert _runs_of(http, wf_id) == []


def test_json_input_against_schema_is_422(
    http: httpx.Client, pdf_workflow: tuple[str, dict[str, str]], samples: Path
) -> None:
    wf_id, ids = pdf_workflow
    doc = {"filename": "i.pdf", "url": _data_url((samples / "invoice.pdf").read_bytes())}
    answer = _post(
        http, {"workflow_id": wf_id, "documents": {ids["doc"]: doc}, "json_inputs": {ids["meta"]: {"customer_id": 7}}}
    )
    assert answer.status_code == 422
    assert answer.json()["detail"]["details"]["field"] == f"json_inputs.{ids['meta']}.customer_id"


def test_unknown_version_is_422(http: httpx.Client, pdf_workflow: tuple[str, dict[str, str]]) -> None:
    wf_id, _ = pdf_workflow
    answer = _post(http, {"workflow_id": wf_id, "version": "ver_doesnotexist000000000000000000"})
    assert answer.status_code == 422
    assert answer.json()["detail"]["details"]["field"] == "version"


def test_unpublished_workflow_has_no_production_version(client: Retab, http: httpx.Client, stack: Stack) -> None:
    wf_id, _ = build(client, stack.project_id, [{"id": "j", "type": "start_json"}], [])
    answer = _post(http, {"workflow_id": wf_id, "json_inputs": {}})
    assert answer.status_code == 422
    assert answer.json()["detail"]["details"]["field"] == "version"


def test_document_for_a_block_that_is_not_start_document_is_422(
    http: httpx.Client, pdf_workflow: tuple[str, dict[str, str]], samples: Path
) -> None:
    wf_id, ids = pdf_workflow
    doc = {"filename": "i.pdf", "url": _data_url((samples / "invoice.pdf").read_bytes())}
    answer = _post(http, {"workflow_id": wf_id, "documents": {ids["doc"]: doc, ids["parse"]: doc},
                          "json_inputs": {ids["meta"]: {"customer_id": "c"}}})  # fmt: skip
    assert answer.status_code == 422
    detail = answer.json()["detail"]
    assert detail["details"]["field"] == f"documents.{ids['parse']}"
    assert detail["details"]["block_id"] == ids["parse"]


def test_data_url_that_is_not_base64_is_422(http: httpx.Client, pdf_workflow: tuple[str, dict[str, str]]) -> None:
    wf_id, ids = pdf_workflow
    doc = {"filename": "i.pdf", "url": "data:application/pdf;base64,@@not-base64@@"}
    answer = _post(
        http, {"workflow_id": wf_id, "documents": {ids["doc"]: doc}, "json_inputs": {ids["meta"]: {"customer_id": "c"}}}
    )
    assert answer.status_code == 422
    assert answer.json()["detail"]["details"]["field"] == f"documents.{ids['doc']}.url"


def test_document_over_the_size_limit_is_413(
    http: httpx.Client, pdf_workflow: tuple[str, dict[str, str]], stack: Stack
) -> None:
    wf_id, ids = pdf_workflow
    big = b"%PDF-1.4\n" + b"0" * (stack.settings.max_upload_bytes + 1)
    doc = {"filename": "big.pdf", "url": _data_url(big)}
    answer = _post(
        http, {"workflow_id": wf_id, "documents": {ids["doc"]: doc}, "json_inputs": {ids["meta"]: {"customer_id": "c"}}}
    )
    assert answer.status_code == 413
    assert answer.json()["detail"]["details"]["field"] == f"documents.{ids['doc']}"
    upload = http.post("/v1/files/upload", files={"file": ("big.pdf", big, "application/pdf")})
    assert upload.status_code == 413


def test_unknown_workflow_is_404(http: httpx.Client) -> None:
    assert _post(http, {"workflow_id": "wf_nope"}).status_code == 404


def test_uploaded_file_runs_by_reference_and_is_stored_once(
    client: Retab, http: httpx.Client, pdf_workflow: tuple[str, dict[str, str]], samples: Path
) -> None:
    wf_id, ids = pdf_workflow
    content = (samples / "invoice.pdf").read_bytes()
    first = http.post("/v1/files/upload", files={"file": ("invoice.pdf", content, "application/pdf")}).json()
    second = http.post("/v1/files/upload", files={"file": ("copy.pdf", content, "application/pdf")}).json()
    assert first["id"] == second["id"] and first["size_bytes"] == len(content)
    import hashlib

    assert first["sha256"] == hashlib.sha256(content).hexdigest()
    ref = FileRef(id=first["id"], filename="invoice.pdf", mime_type="application/pdf")
    run = client.workflows.runs.create(workflow_id=wf_id, documents={ids["doc"]: ref},
                                       json_inputs={ids["meta"]: {"customer_id": "c"}})  # fmt: skip
    assert wait_for(client, run.id).lifecycle.status == "completed"
    parsed = client.workflows.steps.get(ids["parse"], run_id=run.id).handle_outputs["output-json-0"].data  # type: ignore[index]
    assert "INV-2026-0042" in parsed["text"]


def test_unknown_file_reference_is_422(http: httpx.Client, pdf_workflow: tuple[str, dict[str, str]]) -> None:
    wf_id, ids = pdf_workflow
    ref = {"id": "file_0000", "filename": "x.pdf", "mime_type": "application/pdf"}
    answer = _post(
        http, {"workflow_id": wf_id, "documents": {ids["doc"]: ref}, "json_inputs": {ids["meta"]: {"customer_id": "c"}}}
    )
    assert answer.status_code == 422
    assert answer.json()["detail"]["details"]["field"] == f"documents.{ids['doc']}.id"


@pytest.mark.parametrize("headers", [{}, {"Api-Key": "wrong"}, {"Authorization": "Bearer wrong"}])
def test_missing_or_wrong_key_is_401(stack: Stack, headers: dict[str, str]) -> None:
    answer = httpx.get(f"{stack.api_url}/v1/workflows/runs", headers=headers)
    assert answer.status_code == 401


def test_bearer_key_is_accepted(stack: Stack) -> None:
    answer = httpx.get(f"{stack.api_url}/v1/workflows/runs", headers={"Authorization": f"Bearer {stack.api_key}"})
    assert answer.status_code == 200


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"after": "run_doesnotexist"}, "after"),
        ({"from_date": "yesterday"}, "from_date"),
        ({"limit": 0}, "limit"),
        ({"order": "asc"}, "order"),
        ({"sort_by": "name"}, "sort_by"),
    ],
)
def test_bad_list_parameters_are_422(http: httpx.Client, params: dict, field: str) -> None:
    answer = http.get("/v1/workflows/runs", params=params)
    assert answer.status_code == 422
    assert answer.json()["detail"]["details"]["field"] == field


def test_a_quote_in_a_filter_value_cannot_widen_the_query(http: httpx.Client, stack: Stack) -> None:
    answer = http.get("/v1/workflows/runs", params={"workflow_id": "x' OR DocflowProject != 'none"})
    assert answer.status_code == 200
    assert answer.json()["data"] == []
