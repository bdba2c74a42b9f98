"""Workflows: metadata, publishing, the draft's reset, and versions (`/v1/workflows…`)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, Query, Response
from pydantic import BaseModel

from api.definitions import Definitions, PublishRequest, WorkflowCreate, WorkflowUpdate
from api.deps import PrincipalDep, StoreDep
from api.errors import NotFoundError
from api.paging import Page, PageQuery, paginate
from docflow.models import Block, Edge, VersionRecord, WorkflowRecord

router = APIRouter(tags=["workflows"])

SortBy = Literal["updated_at", "created_at", "name"]
IfMatch = Annotated[str | None, Header(alias="If-Match", description="The draft's ETag, to refuse a stale edit")]


def _definitions(store: StoreDep) -> Definitions:
    return Definitions(store)


DefinitionsDep = Annotated[Definitions, Depends(_definitions)]
PageDep = Annotated[PageQuery, Query()]


class Position(BaseModel):
    """A block's place on the canvas."""

    x: float
    y: float


class VersionBlock(Block):
    """A block of a version (the SDK's `WorkflowConfigBlock`), with our block fields too."""

    position: Position


class VersionEdge(Edge):
    """An edge of a version (the SDK's `WorkflowConfigEdge`), with our edge fields too."""

    source: str
    target: str
    animated: bool = True


class WorkflowVersion(BaseModel):
    """An immutable version of a workflow's graph (the SDK's `WorkflowGraphVersion`)."""

    id: str
    workflow_id: str
    blocks: list[VersionBlock]
    edges: list[VersionEdge]
    block_version_ids: list[str] = []
    edge_version_ids: list[str] = []
    created_at: datetime
    description: str = ""


def version_public(version: VersionRecord) -> WorkflowVersion:
    """A stored version in the SDK's shape."""
    blocks = [VersionBlock(**b.model_dump(), position=Position(x=b.position_x, y=b.position_y)) for b in version.blocks]
    edges = [VersionEdge(**e.model_dump(), source=e.source_block, target=e.target_block) for e in version.edges]
    return WorkflowVersion(
        id=version.id,
        workflow_id=version.workflow_id,
        blocks=blocks,
        edges=edges,
        created_at=version.created_at,
        description=version.description,
    )


@router.get("", response_model=Page[WorkflowRecord])
async def list_workflows(
    principal: PrincipalDep,
    definitions: DefinitionsDep,
    page: PageDep,
    sort_by: SortBy = "updated_at",
    project_id: str | None = None,
) -> Page[WorkflowRecord]:
    """List the project's workflows, newest change first by default."""
    if project_id is not None and project_id != principal.project_id:
        raise NotFoundError(f"no project '{project_id}'", code="project_not_found", field="project_id")
    records = await definitions.list_workflows(principal.project_id)
    return paginate(records, page, ident=lambda r: r.id, sort_key=lambda r: getattr(r, sort_by))


@router.post("", response_model=WorkflowRecord, status_code=201)
async def create_workflow(
    body: WorkflowCreate,
    principal: PrincipalDep,
    definitions: DefinitionsDep,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> WorkflowRecord:
    """Create a workflow with an empty, unpublished draft in the API key's project (`project_id`, if given, must be it).

    A retried request with the same `Idempotency-Key` returns the workflow the first one created (finishing it
    if the first was interrupted); the same key with a different body is refused (422 `idempotency_key_reused`).
    """
    return await definitions.create_workflow(principal.project_id, body, idempotency_key)


@router.get("/versions", response_model=Page[WorkflowVersion])
async def list_versions(
    workflow_id: str, principal: PrincipalDep, definitions: DefinitionsDep, page: PageDep
) -> Page[WorkflowVersion]:
    """List a workflow's published versions, newest first; draft-run snapshots are not listed."""
    versions = await definitions.list_versions(principal.project_id, workflow_id)
    found = paginate(versions, page, ident=lambda v: v.id, sort_key=lambda v: v.created_at)
    return Page[WorkflowVersion](data=[version_public(v) for v in found.data], list_metadata=found.list_metadata)


@router.get("/versions/{version_id}", response_model=WorkflowVersion)
async def get_version(
    version_id: str, workflow_id: str, principal: PrincipalDep, definitions: DefinitionsDep
) -> WorkflowVersion:
    """Get one version of a workflow: its blocks and edges as published (or as snapshotted by a draft run)."""
    return version_public(await definitions.get_version(principal.project_id, workflow_id, version_id))


@router.post("/versions/{version_id}/restore", response_model=WorkflowRecord)
async def restore_version(
    version_id: str,
    workflow_id: str,
    principal: PrincipalDep,
    definitions: DefinitionsDep,
    response: Response,
    if_match: IfMatch = None,
) -> WorkflowRecord:
    """Copy a version's blocks and edges into the draft (the production pointer does not move)."""
    record, etag = await definitions.restore(principal.project_id, workflow_id, version_id, if_match)
    response.headers["ETag"] = etag
    return record


@router.get("/{workflow_id}", response_model=WorkflowRecord)
async def get_workflow(workflow_id: str, principal: PrincipalDep, definitions: DefinitionsDep) -> WorkflowRecord:
    """Get a workflow's metadata and its production pointer (`published`)."""
    return await definitions.get_workflow(principal.project_id, workflow_id)


@router.patch("/{workflow_id}", response_model=WorkflowRecord)
async def update_workflow(
    workflow_id: str, body: WorkflowUpdate, principal: PrincipalDep, definitions: DefinitionsDep
) -> WorkflowRecord:
    """Change a workflow's name or description; fields left out are unchanged."""
    return await definitions.update_workflow(principal.project_id, workflow_id, body)


@router.delete("/{workflow_id}", status_code=204)
async def delete_workflow(workflow_id: str, principal: PrincipalDep, definitions: DefinitionsDep) -> Response:
    """Delete a workflow with its draft, blocks, edges, versions and tests (its runs and test runs stay)."""
    await definitions.delete_workflow(principal.project_id, workflow_id)
    return Response(status_code=204)


@router.post("/{workflow_id}/publish", response_model=WorkflowRecord)
async def publish_workflow(
    workflow_id: str, principal: PrincipalDep, definitions: DefinitionsDep, body: PublishRequest | None = None
) -> WorkflowRecord:
    """Validate the draft and publish it as an immutable, content-addressed version that runs use by default.

    Publishing an unchanged draft again returns the same version id. 422 names the first problem's block,
    edge, handle or field, with every problem in `details.issues`.
    """
    description = body.description if body is not None and body.description is not None else ""
    return await definitions.publish(principal.project_id, workflow_id, description)


@router.post("/{workflow_id}/discard-draft", response_model=WorkflowRecord)
async def discard_draft(
    workflow_id: str,
    principal: PrincipalDep,
    definitions: DefinitionsDep,
    response: Response,
    if_match: IfMatch = None,
) -> WorkflowRecord:
    """Reset the draft to the published version; 409 if the workflow was never published."""
    record, etag = await definitions.discard_draft(principal.project_id, workflow_id, if_match)
    response.headers["ETag"] = etag
    return record
