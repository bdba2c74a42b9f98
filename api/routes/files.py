"""Files: upload a document (multipart) and read its record."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Request, UploadFile

from api.deps import PrincipalDep, SettingsDep, StoreDep
from api.errors import TooLargeError
from api.files_service import get_file, store_document
from docflow.models import StoredFile

router = APIRouter(tags=["files"])
_CHUNK = 1024 * 1024


@router.post("/upload", response_model=StoredFile)
async def upload_file(
    request: Request,
    file: Annotated[UploadFile, File(description="The document")],
    principal: PrincipalDep,
    store: StoreDep,
    settings: SettingsDep,
) -> StoredFile:
    """Upload a document as multipart form data; the same bytes uploaded twice are stored once."""
    limit = settings.max_upload_bytes
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit + 64 * 1024:
        raise TooLargeError(f"file: the upload is over the limit of {limit} bytes", field="file", limit=limit)
    content = bytearray()
    while chunk := await file.read(_CHUNK):
        content.extend(chunk)
        if len(content) > limit:
            raise TooLargeError(f"file: the upload is over the limit of {limit} bytes", field="file", limit=limit)
    return await store_document(
        store,
        principal.project_id,
        file.filename or "document",
        file.content_type or "application/octet-stream",
        bytes(content),
        limit,
    )


@router.get("/{file_id}", response_model=StoredFile)
async def get_file_record(file_id: str, principal: PrincipalDep, store: StoreDep) -> StoredFile:
    """A document's record: name, type, size, sha256."""
    return await get_file(store, principal.project_id, file_id)
