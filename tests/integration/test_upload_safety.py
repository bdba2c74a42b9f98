"""Uploads cannot be forged and cannot bypass the limits (issue 5, items 5 and 7).

Each forgery is refused and the original file stays intact: its bytes download unchanged and a run over it
still reads them. Each way a document arrives (multipart, presigned, data URL, any request body) is held to
the limits while the bytes stream in, and an oversized body is refused before it is read whole.
"""

from __future__ import annotations

import hashlib
import secrets
import tracemalloc
from typing import Any

import httpx
import pytest
from retab import Retab
from retab.types.mime import FileRef

from activities.storage import ObjectStore, PreconditionFailed
from tests.conftest import Stack
from tests.integration.builders import build, wait_for

BLOCKS = [{"id": "doc", "type": "start_document"}, {"id": "parse", "type": "parse"}]
EDGES = [
    {"source_block": "doc", "target_block": "parse", "source_handle": "output-file-0", "target_handle": "input-file-0"}
]
MIB = 1024 * 1024


def _text(marker: str) -> bytes:
    return f"Invoice {marker}\nTotal: 42 EUR\n".encode()


def _sha(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def _upload(http: httpx.Client, name: str, content: bytes) -> dict[str, Any]:
    answer = http.post("/v1/files/upload", files={"file": (name, content, "text/plain")})
    assert answer.status_code == 200, answer.text
    record: dict[str, Any] = answer.json()
    return record


def _reserve(http: httpx.Client, size: int, sha256: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"filename": "doc.txt", "content_type": "text/plain", "size_bytes": size}
    if sha256:
        body["sha256"] = sha256
    answer = http.post("/v1/files/upload", json=body)
    assert answer.status_code == 200, answer.text
    reserved: dict[str, Any] = answer.json()
    return reserved


def _put(reserved: dict[str, Any], content: bytes) -> httpx.Response:
    return httpx.put(reserved["uploadUrl"], content=content, headers=reserved["uploadHeaders"])


def _assert_intact(
    http: httpx.Client, file_id: str, content: bytes, client: Retab | None = None, stack: Stack | None = None
) -> None:
    """The file downloads as `content`; with a client, a run over it reads those bytes."""
    download = http.get(f"/v1/files/{file_id}/content")
    assert download.status_code == 200, download.text
    assert download.content == content
    record = http.get(f"/v1/files/{file_id}").json()
    assert record["sha256"] == _sha(content) and record["size_bytes"] == len(content)
    if client is None or stack is None:
        return
    wf_id, ids = build(client, stack.project_id, BLOCKS, EDGES)
    ref = FileRef(id=file_id, filename="doc.txt", mime_type="text/plain")
    run = client.workflows.runs.create(workflow_id=wf_id, documents={ids["doc"]: ref}, version="draft")
    assert wait_for(client, run.id).lifecycle.status == "completed"
    parsed = client.workflows.steps.get(ids["parse"], run_id=run.id).handle_outputs["output-json-0"].data
    assert content.decode().splitlines()[0] in parsed["text"]  # type: ignore[index]


# -- item 5: presigned uploads cannot be forged ------------------------------------------------------------


def test_reserving_an_existing_sha256_and_uploading_other_bytes_leaves_the_original_intact(
    http: httpx.Client, client: Retab, stack: Stack
) -> None:
    original = _text(secrets.token_hex(8))
    stored = _upload(http, "doc.txt", original)
    reserved = _reserve(http, len(original), _sha(original))
    assert reserved["fileId"] == stored["id"]  # the same content id: the upload deduplicates onto it
    forged = _text(secrets.token_hex(8))
    assert len(forged) == len(original)
    assert _put(reserved, forged).status_code == 200
    answer = http.post(f"/v1/files/upload/{reserved['fileId']}/complete", json={})
    assert answer.status_code == 422
    assert answer.json()["detail"]["details"]["field"] == "sha256"
    _assert_intact(http, stored["id"], original, client, stack)


def test_completing_an_existing_file_with_its_real_bytes_keeps_it(http: httpx.Client) -> None:
    original = _text(secrets.token_hex(8))
    stored = _upload(http, "doc.txt", original)
    reserved = _reserve(http, len(original), _sha(original))
    assert _put(reserved, original).status_code == 200
    answer = http.post(f"/v1/files/upload/{reserved['fileId']}/complete", json={"sha256": _sha(original)})
    assert answer.status_code == 200, answer.text
    assert answer.json()["url"].endswith(f"/v1/files/{stored['id']}/content")
    _assert_intact(http, stored["id"], original)


def test_a_completion_sha256_cannot_override_the_promised_one(http: httpx.Client, client: Retab, stack: Stack) -> None:
    real = _text(secrets.token_hex(8))
    forged = _text(secrets.token_hex(8))
    reserved = _reserve(http, len(real), _sha(real))
    assert _put(reserved, forged).status_code == 200
    answer = http.post(f"/v1/files/upload/{reserved['fileId']}/complete", json={"sha256": _sha(forged)})
    assert answer.status_code == 422
    assert answer.json()["detail"]["details"]["field"] == "sha256"
    assert http.get(f"/v1/files/{reserved['fileId']}").status_code == 404
    # The real bytes, uploaded later, land on their own content id, not on a forged object.
    stored = _upload(http, "doc.txt", real)
    assert stored["id"] == reserved["fileId"]
    _assert_intact(http, stored["id"], real, client, stack)


def test_a_completion_sha256_that_differs_from_the_bytes_is_refused_when_none_was_promised(
    http: httpx.Client,
) -> None:
    content = _text(secrets.token_hex(8))
    reserved = _reserve(http, len(content))
    assert _put(reserved, content).status_code == 200
    wrong = http.post(f"/v1/files/upload/{reserved['fileId']}/complete", json={"sha256": "0" * 64})
    assert wrong.status_code == 422 and wrong.json()["detail"]["details"]["field"] == "sha256"
    assert _put(reserved, content).status_code == 200  # a refused upload is deleted: upload again
    right = http.post(f"/v1/files/upload/{reserved['fileId']}/complete", json={})
    assert right.status_code == 200, right.text
    _assert_intact(http, reserved["fileId"], content)


def test_putting_again_to_the_issued_url_after_completion_changes_nothing(
    http: httpx.Client, client: Retab, stack: Stack
) -> None:
    content = _text(secrets.token_hex(8))
    for promised in (_sha(content), None):
        reserved = _reserve(http, len(content), promised)
        assert _put(reserved, content).status_code == 200
        done = http.post(f"/v1/files/upload/{reserved['fileId']}/complete", json={})
        assert done.status_code == 200, done.text
        # The URL may still accept bytes, but nothing we serve reads them.
        _put(reserved, _text(secrets.token_hex(8)))
        _assert_intact(http, reserved["fileId"], content, client if promised else None, stack)
        again = http.post(f"/v1/files/upload/{reserved['fileId']}/complete", json={})
        assert again.status_code == 404
        _assert_intact(http, reserved["fileId"], content)


def test_the_upload_url_is_signed_for_the_reserved_size(http: httpx.Client) -> None:
    content = _text(secrets.token_hex(8))
    reserved = _reserve(http, len(content))
    headers = {"Content-Type": reserved["uploadHeaders"]["Content-Type"]}
    bigger = httpx.put(reserved["uploadUrl"], content=content + b"more bytes than promised", headers=headers)
    assert bigger.status_code == 403
    assert httpx.put(reserved["uploadUrl"], content=content[:-1], headers=headers).status_code == 403
    assert _put(reserved, content).status_code == 200


def test_completion_streams_the_upload_instead_of_loading_it_whole(http: httpx.Client, stack: Stack) -> None:
    size = stack.settings.max_upload_bytes
    content = secrets.token_bytes(size)
    reserved = _reserve(http, size, _sha(content))
    assert _put(reserved, content).status_code == 200
    del content
    # The API runs in this process: tracemalloc sees its allocations.
    tracemalloc.start()
    try:
        answer = http.post(f"/v1/files/upload/{reserved['fileId']}/complete", json={})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert answer.status_code == 200, answer.text
    assert peak < size / 2, f"completion allocated {peak} bytes at peak for a {size}-byte upload"


def test_a_staging_object_replaced_after_verification_is_not_copied(store: ObjectStore) -> None:
    import asyncio

    async def scenario() -> None:
        staging, target = f"_test/{secrets.token_hex(6)}/staging", f"_test/{secrets.token_hex(6)}/content"
        await store.put_bytes(staging, b"verified bytes")
        digest = await store.hash_object(staging, limit=MIB)
        await store.put_bytes(staging, b"swapped bytes!")
        with pytest.raises(PreconditionFailed):
            await store.copy_if_absent(staging, target, source_etag=digest.etag)
        assert not await store.exists(target)
        assert await store.copy_if_absent(staging, target, source_etag=(await store.hash_object(staging, MIB)).etag)
        await store.put_bytes(staging, b"third")
        assert not await store.copy_if_absent(staging, target, source_etag=(await store.hash_object(staging, MIB)).etag)
        assert await store.get_bytes(target) == b"swapped bytes!"

    asyncio.run(scenario())
