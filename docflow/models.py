"""The wire format of definitions and files: one definition each, used by the API, workflows and activities.

Field names follow the `retab==0.0.155` SDK types (`retab/types/workflows/`), so our JSON parses into its models.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

BlockType = Literal[
    "start_document",
    "start_json",
    "note",
    "parse",
    "edit",
    "extract",
    "split",
    "classifier",
    "conditional",
    "api_call",
    "function",
    "while_loop",
    "for_each",
    "merge_dicts",
]


class Model(BaseModel):
    """Base of our wire models: tolerant of extra keys on read, so fields can be added later."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class FileRef(Model):
    """A stored document, as Retab's `FileRef`."""

    id: str
    filename: str
    mime_type: str


class StoredFile(FileRef):
    """A document's metadata record in S3."""

    project_id: str
    size_bytes: int
    sha256: str
    created_at: datetime


class Block(Model):
    """A block of a workflow graph (Retab's `WorkflowBlock`)."""

    id: str
    workflow_id: str
    project_id: str | None = None
    type: BlockType
    label: str = ""
    position_x: float = 0
    position_y: float = 0
    width: float | None = None
    height: float | None = None
    config: dict[str, Any] = Field(default_factory=dict)
    parent_id: str | None = None
    updated_at: datetime


class Edge(Model):
    """An edge from an output handle to an input handle (Retab's `WorkflowEdgeDoc`)."""

    id: str
    workflow_id: str
    project_id: str | None = None
    source_block: str
    target_block: str
    source_handle: str | None = None
    target_handle: str | None = None
    updated_at: datetime


class Graph(Model):
    """Blocks and edges: a draft or the content of a published version."""

    blocks: list[Block] = Field(default_factory=list)
    edges: list[Edge] = Field(default_factory=list)

    def block(self, block_id: str) -> Block | None:
        """The block with this id, if any."""
        return next((b for b in self.blocks if b.id == block_id), None)


class Published(Model):
    """The production pointer of a workflow."""

    version_id: str | None = None
    published_at: datetime | None = None
    description: str = ""


class WorkflowRecord(Model):
    """A workflow's metadata record (Retab's `Workflow` plus its project)."""

    id: str
    project_id: str
    name: str = "Untitled Workflow"
    description: str = ""
    published: Published | None = None
    created_at: datetime
    updated_at: datetime


class VersionRecord(Model):
    """An immutable, content-addressed version of a graph (Retab's `WorkflowGraphVersion`)."""

    id: str
    workflow_id: str
    blocks: list[Block]
    edges: list[Edge]
    created_at: datetime
    description: str = ""

    def graph(self) -> Graph:
        """The version's graph."""
        return Graph(blocks=self.blocks, edges=self.edges)
