"""Presigned uploads (the SDK's `files.create_upload` / `complete_upload`): the client PUTs bytes to S3 itself.

The rule: bytes a client PUTs never land where a file is read from. A reservation signs a URL for its own
staging key, with the promised size in the signature (S3 refuses a body of another size). Completion streams
the staging object to check its size and sha256, then copies it server-side to the file's content key, only
if that key is absent and only the version that was verified (`If-None-Match: *`,
`x-amz-copy-source-if-match`; on an endpoint whose copies ignore those, the verified bytes are spooled to a
temporary file as they are hashed and put from it with `If-None-Match: *`). Then the staging object and the
session are deleted. So a failed check never touches a stored file, a stored file cannot be overwritten
through any URL we issued (a late PUT to the staging URL writes an object nothing reads), and the API never
holds an upload in memory.

The sha256 promised at reserve is binding: a completion that names another one is refused (422, nothing read),
never taken instead. With a promise the file id is the content address (`file_` + sha256[:32]), so uploading
bytes that are already stored keeps the stored object and its record. Without one the file id is random and
the completion's sha256, if given, is only checked against the bytes; the recorded sha256 is always the one
computed while streaming. Reserving the same content id twice keeps the latest reservation.
Until completion no file record exists, so a half-finished upload is never referenced by a run.
"""

from __future__ import annotations

import contextlib
import re
import secrets
import tempfile
from datetime import UTC, datetime, timedelta
from typing import IO, Any

from pydantic import BaseModel, ConfigDict, Field

from api.errors import ApiError, ConflictError, InvalidError, NotFoundError, TooLargeError
from api.files_service import guess_mime
from docflow import keys
from docflow.config import Settings
from docflow.ids import FILE, new_id
from docflow.models import Model, StoredFile
from storage.objects import Digest, NotFound, ObjectStore, PreconditionFailed, TooLarge

# A completion without server-side copies spools the upload: in memory up to this, on disk past it.
_SPOOL_IN_MEMORY = 1024 * 1024
_FILE_URL = re.compile(r"/v1/files/(?P<id>file_[A-Za-z0-9]+)/content$")


class GoneError(ApiError):
    """410: the upload session expired."""

    status = 410
    code = "upload_expired"


class UploadRequest(BaseModel):
    """Body of `POST /v1/files/upload` as JSON: what the client will upload."""

    model_config = ConfigDict(extra="ignore")
    filename: str = Field(min_length=1, max_length=255)
    content_type: str | None = None
    size_bytes: int = Field(ge=1)
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")


class CompleteRequest(BaseModel):
    """Body of the complete call: optionally the sha256 of what was uploaded."""

    model_config = ConfigDict(extra="ignore")
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")


class UploadSession(Model):
    """A reserved upload."""

    file_id: str
    project_id: str
    filename: str
    mime_type: str
    size_bytes: int
    sha256: str | None = None
    expires_at: datetime
    staging_key: str | None = None


def file_url(settings: Settings, file_id: str) -> str:
    """The durable URL of a stored file; a run given it as a document's `url` uses the stored file."""
    return f"{settings.api_url}/v1/files/{file_id}/content"


def file_id_from_url(url: str) -> str | None:
    """The file id in a URL made by `file_url`, else None."""
    match = _FILE_URL.search(url)
    return match.group("id") if match else None


async def reserve(store: ObjectStore, settings: Settings, project_id: str, body: UploadRequest) -> dict[str, Any]:
    """Reserve a file id and sign a PUT URL, for exactly `size_bytes` bytes, to a staging key of its own."""
    if body.size_bytes > settings.max_upload_bytes:
        limit = settings.max_upload_bytes
        raise TooLargeError(f"size_bytes: {body.size_bytes} is over the limit of {limit} bytes", field="size_bytes")
    file_id = FILE + body.sha256[:32] if body.sha256 else new_id(FILE)
    mime = guess_mime(body.filename, body.content_type)
    expires = datetime.now(UTC) + timedelta(seconds=settings.upload_url_ttl_seconds)
    staging = keys.upload_staging(project_id, file_id, secrets.token_hex(12))
    session = UploadSession(
        file_id=file_id,
        project_id=project_id,
        filename=body.filename,
        mime_type=mime,
        size_bytes=body.size_bytes,
        sha256=body.sha256,
        expires_at=expires,
        staging_key=staging,
    )
    await store.put_json(keys.upload_session(project_id, file_id), session)
    url = store.presigned_put_exact(staging, mime, body.size_bytes, settings.upload_url_ttl_seconds)
    return {
        "fileId": file_id,
        "uploadUrl": url,
        "uploadMethod": "PUT",
        "uploadHeaders": {"Content-Type": mime, "Content-Length": str(body.size_bytes)},
        "mimeData": {"filename": body.filename, "url": file_url(settings, file_id)},
        "expiresAt": expires.isoformat(),
    }


async def complete(
    store: ObjectStore, settings: Settings, project_id: str, file_id: str, body: CompleteRequest
) -> dict[str, Any]:
    """Verify the staged bytes against the reservation, copy them to the file's key if absent, record the file."""
    try:
        session = await store.get_model(keys.upload_session(project_id, file_id), UploadSession)
    except NotFound as exc:
        raise NotFoundError(f"no upload session for '{file_id}'", file_id=file_id) from exc
    if session.staging_key is None:  # a session of the old layout: its URL wrote the content key directly
        raise GoneError(f"the upload of '{file_id}' must be started again", file_id=file_id)
    if body.sha256 is not None and session.sha256 is not None and body.sha256 != session.sha256:
        await store.delete(session.staging_key)
        raise InvalidError(
            "sha256: differs from the sha256 promised when the upload was reserved; upload again",
            code="upload_mismatch",
            field="sha256",
        )
    digest = await _verify_and_store(store, session, body.sha256, keys.file_content(project_id, file_id))
    record = StoredFile(
        id=file_id,
        filename=session.filename,
        mime_type=session.mime_type,
        project_id=project_id,
        size_bytes=digest.size,
        sha256=digest.sha256,
        created_at=datetime.now(UTC),
    )
    # The same bytes already recorded (a content id): keep that record, as a multipart upload does.
    with contextlib.suppress(PreconditionFailed):
        await store.put_json(keys.file_meta(project_id, file_id), record, if_none_match=True)
    await store.delete(keys.upload_session(project_id, file_id))
    await store.delete(session.staging_key)
    return {"filename": record.filename, "url": file_url(settings, file_id)}


async def _verify_and_store(
    store: ObjectStore, session: UploadSession, completion_sha256: str | None, content_key: str
) -> Digest:
    """Verify the staged bytes, then put exactly those at `content_key` unless something is there already.

    Server-side copy conditioned on the verified ETag where the endpoint honours it; else the bytes are
    spooled to a temporary file while they are hashed and put from it with `If-None-Match: *`.
    """
    staging = session.staging_key or ""
    if store.copies_conditionally:
        digest = await _verify(store, session, completion_sha256, None)
        try:
            await store.copy_if_absent(staging, content_key, source_etag=digest.etag)
        except PreconditionFailed as exc:
            raise ConflictError(
                "the uploaded bytes changed while they were verified; complete again", code="upload_changed"
            ) from exc
        return digest
    with tempfile.SpooledTemporaryFile(max_size=_SPOOL_IN_MEMORY) as spool:
        digest = await _verify(store, session, completion_sha256, spool)
        with contextlib.suppress(PreconditionFailed):  # the same content id stored already: kept
            await store.put_file(content_key, spool, session.mime_type, if_none_match=True)
    return digest


async def _verify(
    store: ObjectStore, session: UploadSession, completion_sha256: str | None, sink: IO[bytes] | None
) -> Digest:
    """Stream the staged bytes; 422 (and the staged object deleted) unless size and sha256 are as promised."""
    staging = session.staging_key or ""
    try:
        digest = await store.hash_object(staging, limit=session.size_bytes, sink=sink)
    except NotFound as exc:
        if datetime.now(UTC) > session.expires_at:
            message = f"the upload of '{session.file_id}' expired before any bytes arrived"
            raise GoneError(message, file_id=session.file_id) from exc
        raise InvalidError(
            "nothing was uploaded to the upload URL yet", code="upload_missing", field="file_id"
        ) from exc
    except TooLarge:
        digest = None
    expected = session.sha256 or completion_sha256
    if digest is not None and digest.size == session.size_bytes and expected in (None, digest.sha256):
        return digest
    await store.delete(staging)
    field = "sha256" if digest is not None and digest.size == session.size_bytes else "size_bytes"
    raise InvalidError(
        f"{field}: the uploaded bytes do not match what the upload promised; upload again",
        code="upload_mismatch",
        field=field,
    )
