"""Pure parts of uploads and downloads: Content-Disposition, data-URL sizing, the request body cap."""

from __future__ import annotations

import asyncio
import base64
import json
import re
from urllib.parse import unquote

import pytest
from starlette.types import Message, Receive, Scope, Send

from api.body_limit import BodyLimit
from api.errors import InvalidError, TooLargeError
from api.files_service import content_disposition, decode_data_url


@pytest.mark.parametrize(
    ("name", "fallback"),
    [
        ("請求書.txt", "___.txt"),
        ("facture été.pdf", "facture _t_.pdf"),
        ('a"b\\c.txt', "a_b_c.txt"),
        ("evil\r\nSet-Cookie: x=1.txt", "evil__Set-Cookie: x=1.txt"),
        ("plain.pdf", "plain.pdf"),
    ],
)
def test_content_disposition_has_an_ascii_fallback_and_the_exact_name(name: str, fallback: str) -> None:
    header = content_disposition(name)
    header.encode("latin-1")  # what the server must be able to send
    assert "\r" not in header and "\n" not in header
    assert f'filename="{fallback}"' in header
    extended = re.search(r"filename\*=UTF-8''(\S+)$", header)
    assert extended is not None and unquote(extended.group(1), errors="strict") == name


# -- data URLs are sized before they are decoded -------------------------------------------------------------


def test_a_data_url_over_the_limit_is_refused_from_its_encoded_length() -> None:
    encoded = base64.b64encode(b"x" * 101).decode()
    with pytest.raises(TooLargeError) as refused:
        decode_data_url("data:text/plain;base64," + encoded[:-4] + "!!!!", "documents.doc", limit=100)
    assert refused.value.details["field"] == "documents.doc"
    for size in (98, 99, 100):  # every padding length, exactly at the limit: decoded
        url = "data:text/plain;base64," + base64.b64encode(b"y" * size).decode()
        assert decode_data_url(url, "documents.doc", limit=100) == ("text/plain", b"y" * size)
    with pytest.raises(InvalidError) as invalid:
        decode_data_url("data:text/plain;base64,@@@@", "documents.doc", limit=100)
    assert invalid.value.details["field"] == "documents.doc.url"


# -- the request body cap, driven as an ASGI server would -------------------------------------------------------


async def _echo_length(scope: Scope, receive: Receive, send: Send) -> None:
    """An app that reads its whole body, then answers with its length (or fails if the client left)."""
    body = b""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ConnectionResetError("client left")
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": str(len(body)).encode()})


def _serve(chunks: list[bytes], headers: list[tuple[bytes, bytes]], limit: int) -> tuple[list[Message], int]:
    """Run BodyLimit over `_echo_length`; returns what was sent and how many chunks were pulled."""
    pulled = 0
    sent: list[Message] = []

    async def receive() -> Message:
        nonlocal pulled
        pulled += 1
        if pulled > len(chunks):
            raise AssertionError("the app read past the end of the body")
        return {"type": "http.request", "body": chunks[pulled - 1], "more_body": pulled < len(chunks)}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/", "headers": headers}
    asyncio.run(BodyLimit(_echo_length, limit)(scope, receive, send))
    return sent, pulled


def test_a_chunked_body_is_cut_off_as_soon_as_it_passes_the_limit() -> None:
    sent, pulled = _serve([b"x" * 10] * 1000, [], limit=25)
    assert pulled == 3  # 30 bytes read: past the limit, nothing more
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert sent[0]["status"] == 413 and (b"connection", b"close") in sent[0]["headers"]
    assert json.loads(sent[1]["body"])["detail"]["code"] == "too_large"


def test_a_declared_length_over_the_limit_is_refused_before_reading() -> None:
    sent, pulled = _serve([b"x" * 10], [(b"content-length", b"26")], limit=25)
    assert pulled == 0 and sent[0]["status"] == 413


def test_a_body_within_the_limit_reaches_the_app() -> None:
    sent, pulled = _serve([b"x" * 10, b"y" * 15], [], limit=25)
    assert pulled == 2 and sent[0]["status"] == 200 and sent[1]["body"] == b"25"
