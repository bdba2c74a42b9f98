"""Files: upload a document (multipart, or a presigned PUT to S3), read its record, download it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import ValidationError
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from api.deps import PrincipalDep, SettingsDep, StoreDep
from api.errors import InvalidError, TooLargeError
from api.files_service import content_disposition, get_file, store_upload
from api.uploads import CompleteRequest, UploadRequest, complete, reserve
from docflow import keys
from docflow.models import StoredFile

router = APIRouter(tags=["files"])
_UPLOAD_BODIES = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {"file": {"type": "string", "format": "binary"}},
                }
            },
            "application/json": {"schema": UploadRequest.model_json_schema()},
        },
    }
}


@router.post("/upload", openapi_extra=_UPLOAD_BODIES)
async def upload_file(request: Request, principal: PrincipalDep, store: StoreDep, settings: SettingsDep) -> Any:
    """Upload a document.

    As multipart form data (`file`): stored at once, the same bytes stored once; returns the file record.
    As JSON (`filename`, `size_bytes`, optional `content_type`, `sha256`): returns a presigned `uploadUrl` to
    PUT the bytes to, then call `POST /v1/files/upload/{file_id}/complete`.
    """
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            body = UploadRequest.model_validate_json(await request.body())
        except ValidationError as exc:
            error = exc.errors()[0]
            field = ".".join(str(p) for p in error["loc"])
            raise InvalidError(f"{field}: {error['msg']}", code="invalid_request", field=field) from exc
        return await reserve(store, settings, principal.project_id, body)
    return await _multipart(request, principal.project_id, store, settings.max_upload_bytes)


async def _multipart(request: Request, project_id: str, store: StoreDep, limit: int) -> StoredFile:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit + 64 * 1024:
        raise TooLargeError(f"file: the upload is over the limit of {limit} bytes", field="file", limit=limit)
    # Starlette spools file parts to a temporary file (on disk past 1 MiB); the body as a whole is capped by
    # the BodyLimit middleware while it streams in, and the file is hashed and stored from the spool.
    try:
        form = await request.form(max_files=1, max_fields=16)
    except HTTPException as exc:  # Starlette's answer to a malformed multipart body
        raise InvalidError(f"file: {exc.detail}", code="invalid_multipart", field="file") from exc
    try:
        file = form.get("file")
        if not isinstance(file, UploadFile):
            raise InvalidError(
                "file: send the document as the multipart field 'file'", code="missing_file", field="file"
            )
        filename = file.filename or "document"
        mime = file.content_type or "application/octet-stream"
        return await store_upload(store, project_id, filename, mime, file.file, limit)
    finally:
        await form.close()


@router.post("/upload/{file_id}/complete")
async def complete_upload(
    file_id: str, body: CompleteRequest, principal: PrincipalDep, store: StoreDep, settings: SettingsDep
) -> dict[str, Any]:
    """Finish a presigned upload: checks size and sha256, records the file, returns its durable `MIMEData`."""
    return await complete(store, settings, principal.project_id, file_id, body)


@router.get("/{file_id}", response_model=StoredFile)
async def get_file_record(file_id: str, principal: PrincipalDep, store: StoreDep) -> StoredFile:
    """A document's record: name, type, size, sha256."""
    return await get_file(store, principal.project_id, file_id)


_DOWNLOAD_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The document's bytes, with its own content type and a Content-Disposition naming it",
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}, "*/*": {}},
    }
}


@router.get("/{file_id}/content", response_class=Response, responses=_DOWNLOAD_RESPONSES)
async def download_file(file_id: str, principal: PrincipalDep, store: StoreDep) -> Response:
    """A document's bytes, streamed from storage."""
    record = await get_file(store, principal.project_id, file_id)
    key = keys.file_content(principal.project_id, file_id)
    size = await store.size_of(key)
    headers = {"Content-Disposition": content_disposition(record.filename), "Content-Length": str(size)}
    return StreamingResponse(store.iter_bytes(key), media_type=record.mime_type, headers=headers)
