"""Presigned uploads through the official SDK: reserve, PUT to S3, complete, run over the file."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
from retab import Retab

from tests.conftest import Stack
from tests.integration.builders import build, wait_for

BLOCKS = [{"id": "doc", "type": "start_document"}, {"id": "parse", "type": "parse"}]
EDGES = [
    {"source_block": "doc", "target_block": "parse", "source_handle": "output-file-0", "target_handle": "input-file-0"}
]


def test_presigned_upload_then_run_over_the_stored_file(
    client: Retab, stack: Stack, http: httpx.Client, samples: Path
) -> None:
    content = (samples / "invoice.pdf").read_bytes()
    digest = hashlib.sha256(content).hexdigest()
    upload = client.files.create_upload(
        filename="invoice.pdf", size_bytes=len(content), content_type="application/pdf", sha256=digest
    )
    put = httpx.put(upload.upload_url, content=content, headers=upload.upload_headers)
    assert put.status_code == 200, put.text
    mime_data = client.files.complete_upload(upload.file_id, sha256=digest)
    assert mime_data.filename == "invoice.pdf"
    record = http.get(f"/v1/files/{upload.file_id}").json()
    assert record["sha256"] == digest and record["size_bytes"] == len(content)
    assert http.get(f"/v1/files/{upload.file_id}/content").content == content

    wf_id, ids = build(client, stack.project_id, BLOCKS, EDGES)
    run = client.workflows.runs.create(workflow_id=wf_id, documents={ids["doc"]: mime_data}, version="draft")
    assert wait_for(client, run.id).lifecycle.status == "completed"
    parsed = client.workflows.steps.get(ids["parse"], run_id=run.id).handle_outputs["output-json-0"].data
    assert "INV-2026-0042" in parsed["text"]


def test_completing_with_other_bytes_than_promised_is_422_and_records_nothing(http: httpx.Client) -> None:
    promised = b"%PDF-1.4 promised"
    reserved = http.post(
        "/v1/files/upload",
        json={"filename": "x.pdf", "size_bytes": len(promised), "sha256": hashlib.sha256(promised).hexdigest()},
    ).json()
    other = b"%PDF-1.4 different"[: len(promised)]
    assert httpx.put(reserved["uploadUrl"], content=other, headers=reserved["uploadHeaders"]).status_code == 200
    answer = http.post(f"/v1/files/upload/{reserved['fileId']}/complete", json={})
    assert answer.status_code == 422
    assert answer.json()["detail"]["details"]["field"] == "sha256"
    assert http.get(f"/v1/files/{reserved['fileId']}").status_code == 404


def test_upload_bad_requests(http: httpx.Client, stack: Stack) -> None:
    too_big = http.post(
        "/v1/files/upload", json={"filename": "x.pdf", "size_bytes": stack.settings.max_upload_bytes + 1}
    )
    assert too_big.status_code == 413 and too_big.json()["detail"]["details"]["field"] == "size_bytes"
    no_size = http.post("/v1/files/upload", json={"filename": "x.pdf"})
    assert no_size.status_code == 422 and no_size.json()["detail"]["details"]["field"] == "size_bytes"
    nothing_put = http.post("/v1/files/upload", json={"filename": "x.pdf", "size_bytes": 10}).json()
    early = http.post(f"/v1/files/upload/{nothing_put['fileId']}/complete", json={})
    assert early.status_code == 422
    assert http.post("/v1/files/upload/file_unknown/complete", json={}).status_code == 404
    no_file = http.post("/v1/files/upload", files={"other": ("a.txt", b"x", "text/plain")})
    assert no_file.status_code == 422 and no_file.json()["detail"]["details"]["field"] == "file"


def test_a_file_named_outside_latin_1_downloads_with_an_rfc_6266_disposition(http: httpx.Client) -> None:
    content = "請求書 2026-0042\n".encode()
    stored = http.post("/v1/files/upload", files={"file": ("請求書.txt", content, "text/plain")})
    assert stored.status_code == 200, stored.text
    download = http.get(f"/v1/files/{stored.json()['id']}/content")
    assert download.status_code == 200, download.text
    assert download.content == content
    disposition = download.headers["content-disposition"]
    assert disposition == "attachment; filename=\"___.txt\"; filename*=UTF-8''%E8%AB%8B%E6%B1%82%E6%9B%B8.txt"
