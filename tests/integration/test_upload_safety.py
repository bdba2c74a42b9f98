"""Uploads cannot be forged and cannot bypass the limits (issue 5, items 5 and 7).

Each forgery is refused and the original file stays intact: its bytes download unchanged and a run over it
still reads them. Each way a document arrives (multipart, presigned, data URL, any request body) is held to
the limits while the bytes stream in, and an oversized body is refused before it is read whole.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import secrets
import socket
import threading
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from retab import Retab
from retab.types.mime import FileRef

from api.errors import InvalidError
from api.uploads import CompleteRequest, complete
from devstack.processes import ThreadedApi
from devstack.stack import free_port
from storage.objects import ObjectStore, PreconditionFailed
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


def _upload(http: httpx.Client, name: str, content: bytes, mime: str = "text/plain") -> dict[str, Any]:
    answer = http.post("/v1/files/upload", files={"file": (name, content, mime)})
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
    http: httpx.Client, store: ObjectStore, stack: Stack
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
    # Completion leaves no staged bytes behind.
    assert asyncio.run(store.list_keys(f"uploads/{stack.project_id}/{reserved['fileId']}/")) == []


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


def test_a_staging_object_replaced_after_verification_is_not_copied(store: ObjectStore) -> None:
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


def test_without_conditional_copies_completion_puts_the_verified_bytes_only_if_absent(
    http: httpx.Client, stack: Stack
) -> None:
    """An endpoint whose CopyObject ignores conditions: completion streams through a conditional put."""
    plain = ObjectStore(stack.settings)  # never probed: takes the path that needs no conditional copy
    assert not plain.copies_conditionally

    def finish(file_id: str, sha256: str | None = None) -> dict[str, Any]:
        body = CompleteRequest(sha256=sha256)
        return asyncio.run(complete(plain, stack.settings, stack.project_id, file_id, body))

    original = _text(secrets.token_hex(8))
    stored = _upload(http, "doc.txt", original)
    reserved = _reserve(http, len(original), _sha(original))
    assert _put(reserved, _text(secrets.token_hex(8))).status_code == 200
    with pytest.raises(InvalidError) as refused:
        finish(reserved["fileId"])
    assert refused.value.details["field"] == "sha256"
    _assert_intact(http, stored["id"], original)
    assert _put(reserved, original).status_code == 200
    assert finish(reserved["fileId"])["url"].endswith(f"/{stored['id']}/content")
    _assert_intact(http, stored["id"], original)

    content = secrets.token_bytes(3 * MIB // 2)  # past the in-memory spool: goes through disk
    fresh = _reserve(http, len(content))
    assert _put(fresh, content).status_code == 200
    finish(fresh["fileId"], _sha(content))
    _put(fresh, secrets.token_bytes(len(content)))
    assert http.get(f"/v1/files/{fresh['fileId']}/content").content == content


# -- item 7: limits hold while the bytes stream in ---------------------------------------------------------


def _rss_bytes() -> int:
    for line in open("/proc/self/status").read().splitlines():  # noqa: SIM115
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def _raw_post(stack: Stack, path: str, content_type: str, parts: Iterator[bytes], length: int | None = None) -> bytes:
    """POST `parts` over a raw socket, chunked unless `length` is declared; returns the raw response.

    Stops sending as soon as the server has answered (as browsers and curl do), so the test can tell how much
    of the body the server wanted before it refused.
    """
    host, port = stack.api_url.removeprefix("http://").rsplit(":", 1)
    framing = f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked"
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nApi-Key: {stack.api_key}\r\n"
        f"Content-Type: {content_type}\r\n{framing}\r\n\r\n"
    )
    answer = bytearray()
    done = threading.Event()
    with socket.create_connection((host, int(port)), timeout=30) as sock:

        def read() -> None:
            try:
                while chunk := sock.recv(65536):
                    answer.extend(chunk)
                    head, _, body = bytes(answer).partition(b"\r\n\r\n")
                    declared = [x for x in head.lower().split(b"\r\n") if x.startswith(b"content-length:")]
                    if declared and len(body) >= int(declared[0].split(b":")[1]):
                        break
            except OSError:
                pass
            done.set()

        sock.sendall(head.encode())
        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        for part in parts:
            if done.is_set():
                break
            try:
                sock.sendall(part if length is not None else f"{len(part):x}\r\n".encode() + part + b"\r\n")
            except OSError:
                break
        else:
            if length is None:
                with contextlib.suppress(OSError):
                    sock.sendall(b"0\r\n\r\n")
        done.wait(30)
    return bytes(answer)


def _status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/") else 0


def test_a_chunked_multipart_upload_over_the_limit_is_413_before_it_is_read_whole(stack: Stack) -> None:
    total, sent = 200 * MIB, [0]
    boundary = "docflowboundary"

    def body() -> Iterator[bytes]:
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.txt"\r\n'
            "Content-Type: text/plain\r\n\r\n"
        ).encode()
        block = b"x" * (256 * 1024)
        while sent[0] < total:
            sent[0] += len(block)
            yield block
        yield f"\r\n--{boundary}--\r\n".encode()

    before = _rss_bytes()
    answer = _raw_post(stack, "/v1/files/upload", f"multipart/form-data; boundary={boundary}", body())
    grown = _rss_bytes() - before
    assert _status(answer) == 413, answer[:500]
    assert b'"too_large"' in answer
    assert sent[0] < 32 * MIB, f"the client sent {sent[0]} bytes before the 413"
    assert grown < 64 * MIB, f"the process grew by {grown} bytes"


def test_a_request_body_over_the_limit_is_413_whatever_the_route(stack: Stack) -> None:
    limit, sent = stack.settings.request_body_limit, [0]

    def body() -> Iterator[bytes]:
        yield b'{"workflow_id": "wf_x", "json_inputs": {"a": "'
        while sent[0] < 200 * MIB:
            sent[0] += 64 * 1024
            yield b"y" * (64 * 1024)
        yield b'"}}'

    answer = _raw_post(stack, "/v1/workflows/runs", "application/json", body())
    assert _status(answer) == 413, answer[:500]
    assert b'"too_large"' in answer
    assert sent[0] < 32 * MIB, f"the client sent {sent[0]} bytes before the 413"
    declared = _raw_post(stack, "/v1/workflows/runs", "application/json", iter([b"{}"]), length=limit + 1)
    assert _status(declared) == 413, declared[:500]


def test_a_data_url_over_the_limit_is_413_without_being_decoded(
    http: httpx.Client, client: Retab, stack: Stack
) -> None:
    wf_id, ids = build(client, stack.project_id, BLOCKS, EDGES)
    encoded = base64.b64encode(b"x" * (stack.settings.max_upload_bytes + 3)).decode()
    # Not valid base64 at the very end: a server that decodes before it checks the size answers 422.
    doc = {"filename": "big.txt", "url": "data:text/plain;base64," + encoded[:-4] + "@@@@"}
    answer = http.post(
        "/v1/workflows/runs", json={"workflow_id": wf_id, "version": "draft", "documents": {ids["doc"]: doc}}
    )
    assert answer.status_code == 413, answer.text
    assert answer.json()["detail"]["details"]["field"] == f"documents.{ids['doc']}"


def test_a_multipart_file_over_the_limit_within_the_request_limit_is_413(http: httpx.Client, stack: Stack) -> None:
    content = b"z" * (stack.settings.max_upload_bytes + 1)
    answer = http.post("/v1/files/upload", files={"file": ("big.txt", content, "text/plain")})
    assert answer.status_code == 413 and answer.json()["detail"]["details"]["field"] == "file"


@pytest.fixture(scope="module")
def big_api(stack: Stack) -> Iterator[str]:
    """A second API on the same servers with a 32 MiB upload limit, so memory use can be told from noise."""
    settings = stack.settings.model_copy(update={"api_port": free_port(), "max_upload_bytes": 32 * MIB})
    api = ThreadedApi(settings).start()
    try:
        yield api.url
    finally:
        api.stop()


def _peak_of(call: Callable[[], httpx.Response]) -> tuple[httpx.Response, int]:
    """The answer and the peak of Python allocations in this process (the API's among them) during `call`."""
    tracemalloc.start()
    try:
        answer = call()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return answer, peak


def test_a_completion_streams_the_upload_instead_of_loading_it_whole(big_api: str, stack: Stack) -> None:
    size = 24 * MIB
    content = secrets.token_bytes(size)
    with httpx.Client(base_url=big_api, headers={"Api-Key": stack.api_key}, timeout=60) as http:
        reserved = _reserve(http, size, _sha(content))
        assert _put(reserved, content).status_code == 200
        answer, peak = _peak_of(lambda: http.post(f"/v1/files/upload/{reserved['fileId']}/complete", json={}))
        assert answer.status_code == 200, answer.text
        assert peak < size / 4, f"completing a {size}-byte upload allocated {peak} bytes at peak"
        _assert_intact(http, reserved["fileId"], content)


def test_an_accepted_multipart_upload_is_not_held_in_memory_whole(big_api: str, stack: Stack, tmp_path: Path) -> None:
    size = 24 * MIB
    path = tmp_path / "random.bin"
    path.write_bytes(secrets.token_bytes(size))
    with httpx.Client(base_url=big_api, headers={"Api-Key": stack.api_key}, timeout=60) as http, path.open("rb") as f:
        # The client streams from the file, so what tracemalloc sees is the API's.
        files = {"file": ("random.bin", f, "application/octet-stream")}
        answer, peak = _peak_of(lambda: http.post("/v1/files/upload", files=files))
        assert answer.status_code == 200, answer.text
        assert peak < size / 4, f"storing a {size}-byte upload allocated {peak} bytes at peak"
        digest = hashlib.sha256()

        def download() -> httpx.Response:
            with http.stream("GET", f"/v1/files/{answer.json()['id']}/content") as streamed:
                for chunk in streamed.iter_bytes():
                    digest.update(chunk)
            return streamed

        downloaded, peak = _peak_of(download)
        assert downloaded.status_code == 200
        assert peak < size / 4, f"downloading a {size}-byte file allocated {peak} bytes at peak"
    assert answer.json()["sha256"] == _sha(path.read_bytes()) == digest.hexdigest()
    assert answer.json()["size_bytes"] == size


def test_a_malformed_or_many_file_multipart_body_is_422_naming_the_field(http: httpx.Client) -> None:
    two = [("file", ("a.txt", b"a", "text/plain")), ("file", ("b.txt", b"b", "text/plain"))]
    answer = http.post("/v1/files/upload", files=two)
    assert answer.status_code == 422 and answer.json()["detail"]["details"]["field"] == "file"
    broken = http.post("/v1/files/upload", content=b"no boundary here", headers={"Content-Type": "multipart/form-data"})
    assert broken.status_code == 422 and broken.json()["detail"]["details"]["field"] == "file"
