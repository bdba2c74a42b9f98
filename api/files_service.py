"""Documents: bytes go to S3 once (the id is a hash of the content), with sha256 and size recorded.

Every way in is held to the upload limit before the bytes are held: a data URL by its encoded length before
it is decoded, a multipart file while it is hashed from its spooled temporary file (then streamed to S3 from
that file, so the API never keeps a second copy in memory).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import mimetypes
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import IO
from urllib.parse import quote

from api.errors import InvalidError, NotFoundError, TooLargeError
from docflow import keys
from docflow.ids import FILE
from docflow.models import FileRef, StoredFile
from storage.objects import NotFound, ObjectStore, PreconditionFailed

_DATA_URL = re.compile(
    r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?P<params>(;[\w-]+=[^;,]*)*)(?P<b64>;base64)?,(?P<data>.*)$", re.S
)
_CHUNK = 256 * 1024
# RFC 5987 attr-char besides letters and digits: what `filename*` may carry unencoded.
_ATTR_CHARS = "!#$&+-.^_`|~"


def guess_mime(filename: str, declared: str | None = None) -> str:
    """The declared MIME type unless generic, else one guessed from the file name."""
    if declared and declared != "application/octet-stream":
        return declared
    return mimetypes.guess_type(filename)[0] or declared or "application/octet-stream"


def decode_data_url(url: str, field: str, limit: int) -> tuple[str, bytes]:
    """(mime type, bytes) of the `data:` URL of document `field`.

    413 if its decoded size would pass `limit`, judged from the encoded length before anything is decoded;
    422 naming `<field>.url` if it is not a base64 data URL.
    """
    url_field = f"{field}.url"
    match = _DATA_URL.match(url)
    if match is None:
        raise InvalidError(
            f"{url_field}: not a data: URL (https URLs are not fetched)", code="invalid_data_url", field=url_field
        )
    if not match.group("b64"):
        raise InvalidError(
            f"{url_field}: the data URL must be base64-encoded", code="invalid_data_url", field=url_field
        )
    data = match.group("data")
    decoded_size = len(data) * 3 // 4 - data[-2:].count("=")
    if decoded_size > limit:
        raise TooLargeError(
            f"{field}: {decoded_size} bytes is over the limit of {limit} bytes", field=field, limit=limit
        )
    try:
        content = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidError(
            f"{url_field}: the data URL is not valid base64", code="invalid_base64", field=url_field
        ) from exc
    return match.group("mime") or "application/octet-stream", content


async def store_document(
    store: ObjectStore, project_id: str, filename: str, mime_type: str, content: bytes, limit: int, field: str = "file"
) -> StoredFile:
    """Store a document given as bytes once per project and content; returns its record."""
    if len(content) > limit:
        raise TooLargeError(
            f"{field}: {len(content)} bytes is over the limit of {limit} bytes", field=field, limit=limit
        )
    if not content:
        raise InvalidError(f"{field}: the document is empty", code="empty_document", field=field)
    digest = hashlib.sha256(content).hexdigest()

    async def put(key: str, mime: str) -> None:
        await store.put_bytes(key, content, mime, if_none_match=True)

    return await _record(store, project_id, filename, mime_type, len(content), digest, put)


async def store_upload(
    store: ObjectStore,
    project_id: str,
    filename: str,
    mime_type: str,
    upload: IO[bytes],
    limit: int,
    field: str = "file",
) -> StoredFile:
    """Store a document from a seekable file (a spooled upload): hashed in chunks, then streamed to S3."""
    digest, size = hashlib.sha256(), 0
    upload.seek(0)
    while chunk := await asyncio.to_thread(upload.read, _CHUNK):
        size += len(chunk)
        if size > limit:
            raise TooLargeError(f"{field}: the upload is over the limit of {limit} bytes", field=field, limit=limit)
        digest.update(chunk)
    if not size:
        raise InvalidError(f"{field}: the document is empty", code="empty_document", field=field)

    async def put(key: str, mime: str) -> None:
        await store.put_file(key, upload, mime, if_none_match=True)

    return await _record(store, project_id, filename, mime_type, size, digest.hexdigest(), put)


async def _record(
    store: ObjectStore,
    project_id: str,
    filename: str,
    mime_type: str,
    size: int,
    digest: str,
    put: Callable[[str, str], Awaitable[None]],
) -> StoredFile:
    file_id = FILE + digest[:32]
    record = StoredFile(
        id=file_id,
        filename=filename,
        mime_type=guess_mime(filename, mime_type),
        project_id=project_id,
        size_bytes=size,
        sha256=digest,
        created_at=datetime.now(UTC),
    )
    # The same bytes already stored: keep them, write no second copy.
    with contextlib.suppress(PreconditionFailed):
        await put(keys.file_content(project_id, file_id), record.mime_type)
    try:
        await store.put_json(keys.file_meta(project_id, file_id), record, if_none_match=True)
    except PreconditionFailed:
        existing = await store.get_model(keys.file_meta(project_id, file_id), StoredFile)
        return existing.model_copy(update={"filename": filename, "mime_type": record.mime_type})
    return record


async def get_file(store: ObjectStore, project_id: str, file_id: str, field: str | None = None) -> StoredFile:
    """A stored document's record; 404, or 422 naming `field` when it is referenced from a request body."""
    try:
        return await store.get_model(keys.file_meta(project_id, file_id), StoredFile)
    except NotFound as exc:
        if field is not None:
            raise InvalidError(f"{field}: no file '{file_id}'", code="unknown_file", field=field) from exc
        raise NotFoundError(f"no file '{file_id}'") from exc


def content_disposition(filename: str) -> str:
    """`attachment` with the name as RFC 6266 / 5987 want it: an ASCII fallback plus `filename*` in UTF-8.

    The fallback keeps printable ASCII only (no quote, backslash or control character, so no header
    injection); `filename*` carries the exact name, percent-encoded.
    """
    fallback = "".join(c if " " <= c <= "~" and c not in '"\\' else "_" for c in filename) or "document"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe=_ATTR_CHARS)}"


def public_ref(record: StoredFile) -> FileRef:
    """The public reference of a stored document."""
    return FileRef(id=record.id, filename=record.filename, mime_type=record.mime_type)
