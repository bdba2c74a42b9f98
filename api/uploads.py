"""Presigned uploads (the SDK's `files.create_upload` / `complete_upload`): the client PUTs bytes to S3 itself.

The API reserves a file record and signs a URL for the file's content key; on completion it checks the size
and the sha256 against what was promised before the file becomes usable. Until then no metadata exists,
so a half-finished upload is never referenced by a run.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from activities.storage import NotFound, ObjectStore
from api.errors import ApiError, InvalidError, NotFoundError, TooLargeError
from api.files_service import guess_mime
from docflow import keys
from docflow.config import Settings
from docflow.ids import FILE, new_id
from docflow.models import Model, StoredFile

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


def file_url(settings: Settings, file_id: str) -> str:
    """The durable URL of a stored file; a run given it as a document's `url` uses the stored file."""
    return f"{settings.api_url}/v1/files/{file_id}/content"


def file_id_from_url(url: str) -> str | None:
    """The file id in a URL made by `file_url`, else None."""
    match = _FILE_URL.search(url)
    return match.group("id") if match else None


async def reserve(store: ObjectStore, settings: Settings, project_id: str, body: UploadRequest) -> dict[str, Any]:
    """Reserve a file id and sign a PUT URL for its content."""
    if body.size_bytes > settings.max_upload_bytes:
        limit = settings.max_upload_bytes
        raise TooLargeError(f"size_bytes: {body.size_bytes} is over the limit of {limit} bytes", field="size_bytes")
    file_id = FILE + body.sha256[:32] if body.sha256 else new_id(FILE)
    mime = guess_mime(body.filename, body.content_type)
    expires = datetime.now(UTC) + timedelta(seconds=settings.upload_url_ttl_seconds)
    session = UploadSession(
        file_id=file_id,
        project_id=project_id,
        filename=body.filename,
        mime_type=mime,
        size_bytes=body.size_bytes,
        sha256=body.sha256,
        expires_at=expires,
    )
    await store.put_json(keys.upload_session(project_id, file_id), session)
    url = store.presigned_put(keys.file_content(project_id, file_id), mime, settings.upload_url_ttl_seconds)
    return {
        "fileId": file_id,
        "uploadUrl": url,
        "uploadMethod": "PUT",
        "uploadHeaders": {"Content-Type": mime},
        "mimeData": {"filename": body.filename, "url": file_url(settings, file_id)},
        "expiresAt": expires.isoformat(),
    }


async def complete(
    store: ObjectStore, settings: Settings, project_id: str, file_id: str, body: CompleteRequest
) -> dict[str, Any]:
    """Check the uploaded bytes against the session, then record the file."""
    try:
        session = await store.get_model(keys.upload_session(project_id, file_id), UploadSession)
    except NotFound as exc:
        raise NotFoundError(f"no upload session for '{file_id}'", file_id=file_id) from exc
    content_key = keys.file_content(project_id, file_id)
    try:
        content = await store.get_bytes(content_key)
    except NotFound as exc:
        if datetime.now(UTC) > session.expires_at:
            raise GoneError(f"the upload of '{file_id}' expired before any bytes arrived", file_id=file_id) from exc
        raise InvalidError(
            "nothing was uploaded to the upload URL yet", code="upload_missing", field="file_id"
        ) from exc
    digest = hashlib.sha256(content).hexdigest()
    expected = body.sha256 or session.sha256
    if len(content) != session.size_bytes or (expected is not None and digest != expected):
        await store.delete(content_key)
        field = "size_bytes" if len(content) != session.size_bytes else "sha256"
        message = f"{field}: the uploaded bytes do not match what the upload promised; upload again"
        raise InvalidError(message, code="upload_mismatch", field=field)
    record = StoredFile(
        id=file_id,
        filename=session.filename,
        mime_type=session.mime_type,
        project_id=project_id,
        size_bytes=len(content),
        sha256=digest,
        created_at=datetime.now(UTC),
    )
    await store.put_json(keys.file_meta(project_id, file_id), record)
    await store.delete(keys.upload_session(project_id, file_id))
    return {"filename": record.filename, "url": file_url(settings, file_id)}
