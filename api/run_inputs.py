"""Request models of the run routes."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class DocumentIn(BaseModel):
    """A document given to a run: a `MIMEData` (`filename` + `data:` URL) or a `FileRef` (`id`)."""

    model_config = ConfigDict(extra="ignore")

    id: str | None = None
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
