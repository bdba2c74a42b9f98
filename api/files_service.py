"""Documents: bytes go to S3 once (the id is a hash of the content), with sha256 and size recorded."""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import mimetypes
import re
from datetime import UTC, datetime
from urllib.parse import quote

from activities.storage import NotFound, ObjectStore, PreconditionFailed
from api.errors import InvalidError, NotFoundError, TooLargeError
from docflow import keys
from docflow.ids import FILE
from docflow.models import FileRef, StoredFile

_DATA_URL = re.compile(
    r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?P<params>(;[\w-]+=[^;,]*)*)(?P<b64>;base64)?,(?P<data>.*)$", re.S
)
# RFC 5987 attr-char besides letters and digits: what `filename*` may carry unencoded.
_ATTR_CHARS = "!#$&+-.^_`|~"


def guess_mime(filename: str, declared: str | None = None) -> str:
    """The declared MIME type unless generic, else one guessed from the file name."""
    if declared and declared != "application/octet-stream":
        return declared
    return mimetypes.guess_type(filename)[0] or declared or "application/octet-stream"


def decode_data_url(url: str, field: str) -> tuple[str, bytes]:
    """(mime type, bytes) of a `data:` URL; 422 naming `field` if it is not valid base64."""
    match = _DATA_URL.match(url)
    if match is None:
        raise InvalidError(
            f"{field}: not a data: URL (https URLs are not fetched)", code="invalid_data_url", field=field
        )
    if not match.group("b64"):
        raise InvalidError(f"{field}: the data URL must be base64-encoded", code="invalid_data_url", field=field)
    try:
        content = base64.b64decode(match.group("data"), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidError(f"{field}: the data URL is not valid base64", code="invalid_base64", field=field) from exc
    return match.group("mime") or "application/octet-stream", content


async def store_document(
    store: ObjectStore, project_id: str, filename: str, mime_type: str, content: bytes, limit: int, field: str = "file"
) -> StoredFile:
    """Store a document once per project and content; returns its record."""
    if len(content) > limit:
        raise TooLargeError(
            f"{field}: {len(content)} bytes is over the limit of {limit} bytes", field=field, limit=limit
        )
    if not content:
        raise InvalidError(f"{field}: the document is empty", code="empty_document", field=field)
    digest = hashlib.sha256(content).hexdigest()
    file_id = FILE + digest[:32]
    record = StoredFile(
        id=file_id,
        filename=filename,
        mime_type=guess_mime(filename, mime_type),
        project_id=project_id,
        size_bytes=len(content),
        sha256=digest,
        created_at=datetime.now(UTC),
    )
    # The same bytes already stored: keep them, write no second copy.
    with contextlib.suppress(PreconditionFailed):
        await store.put_bytes(keys.file_content(project_id, file_id), content, record.mime_type, if_none_match=True)
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
