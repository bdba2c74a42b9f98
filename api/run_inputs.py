"""Request models of the run routes.

A document's `id` becomes part of S3 keys (`files/<project>/<id>/…`), so it must be one of our file ids
(`file_` and letters or digits): anything with path characters (`/`, `..`, `\\`) is refused with 422 before it
reaches storage, so no id can name a key outside the caller's project prefix.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

FILE_ID_PATTERN = r"^file_[A-Za-z0-9]{1,64}$"


class DocumentIn(BaseModel):
    """A document given to a run: a `MIMEData` (`filename` + `data:` URL) or a `FileRef` (`id`)."""

    model_config = ConfigDict(extra="ignore")

    id: str | None = Field(default=None, pattern=FILE_ID_PATTERN, description="A stored file's id (`file_…`)")
    filename: str | None = None
    url: str | None = None
    mime_type: str | None = None


class CreateRunRequest(BaseModel):
    """Body of `POST /v1/workflows/runs` (the SDK's `CreateWorkflowRunRequest`)."""

    model_config = ConfigDict(extra="ignore")

    workflow_id: str = Field(min_length=1)
    documents: dict[str, DocumentIn] | None = None
    json_inputs: dict[str, Any] | None = None
    version: str | None = "production"


class CancelRunRequest(BaseModel):
    """Body of the cancel route; `command_id` makes a retried cancel harmless."""

    command_id: str | None = None
