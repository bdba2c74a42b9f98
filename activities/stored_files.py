"""Documents a block makes (a split's parts) stored like uploaded ones: the same keys and record.

A document's id is `file_` + the first 32 hex digits of its SHA-256, its bytes at `keys.file_content` and
its `StoredFile` record at `keys.file_meta`, both written only if absent; the API's upload path
(api/files_service.py) uses the same layout, so a made document downloads like an uploaded one.
"""

from __future__ import annotations

import contextlib
import hashlib
from datetime import UTC, datetime

from docflow import keys
from docflow.ids import FILE
from docflow.models import FileRef, StoredFile
from storage.objects import ObjectStore, PreconditionFailed


async def store_made_document(
    store: ObjectStore, project_id: str, filename: str, mime_type: str, content: bytes
) -> FileRef:
    """Store the bytes once per project and content; the reference carries this name and type."""
    digest = hashlib.sha256(content).hexdigest()
    file_id = FILE + digest[:32]
    record = StoredFile(
        id=file_id,
        filename=filename,
        mime_type=mime_type,
        project_id=project_id,
        size_bytes=len(content),
        sha256=digest,
        created_at=datetime.now(UTC),
    )
    # The same bytes already stored (a retry, or the same pages split before): keep them.
    with contextlib.suppress(PreconditionFailed):
        await store.put_bytes(keys.file_content(project_id, file_id), content, mime_type, if_none_match=True)
    with contextlib.suppress(PreconditionFailed):
        await store.put_json(keys.file_meta(project_id, file_id), record, if_none_match=True)
    return FileRef(id=file_id, filename=filename, mime_type=mime_type)
