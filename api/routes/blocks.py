"""Blocks of a workflow's draft (`/v1/workflows/blocks…`); every response carries the draft's `ETag`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Response
from pydantic import BaseModel

from api.deps import PrincipalDep, SettingsDep, StoreDep
from api.draft_edits import BlockCreate, BlockUpdate, ConfigCheck, GraphEditor
from api.paging import Page, PageQuery, paginate
from docflow.ids import fingerprint
from docflow.models import Block

router = APIRouter(tags=["blocks"])

IfMatch = Annotated[str | None, Header(alias="If-Match", description="The draft's ETag, to refuse a stale edit")]
WorkflowQuery = Annotated[str | None, Query(description="The block's workflow (found from the block id if left out)")]


def _editor(store: StoreDep, settings: SettingsDep) -> GraphEditor:
    return GraphEditor(store, max_blocks=settings.max_blocks_per_workflow)


EditorDep = Annotated[GraphEditor, Depends(_editor)]
PageDep = Annotated[PageQuery, Query()]


class ConfigValidation(BaseModel):
    """A config that passed its block type's model (the SDK's `ValidateWorkflowBlockConfigResponse`)."""

    ok: bool = True
    workflow_id: str
    block_id: str
    block_type: str
    config_hash: str


@router.get("/blocks", response_model=Page[Block])
async def list_blocks(
    workflow_id: str, principal: PrincipalDep, editor: EditorDep, page: PageDep, response: Response
) -> Page[Block]:
    """List the blocks of a workflow's draft, most recently changed first (id breaks ties)."""
    draft = await editor.drafts.read(principal.project_id, workflow_id)
    response.headers["ETag"] = draft.etag
    return paginate(draft.graph.blocks, page, ident=lambda b: b.id, sort_key=lambda b: b.updated_at)


@router.post("/blocks", response_model=Block, status_code=201)
async def create_block(
    body: BlockCreate, principal: PrincipalDep, editor: EditorDep, response: Response, if_match: IfMatch = None
) -> Block:
    """Add a block to the draft; its config is validated against its type (422 names the field).

    Block ids are unique in the project: a custom id already in use is refused with 409.
    """
    block, etag = await editor.create_block(principal.project_id, body, if_match)
    response.headers["ETag"] = etag
    return block


@router.get("/blocks/{block_id}", response_model=Block)
async def get_block(
    block_id: str, principal: PrincipalDep, editor: EditorDep, response: Response, workflow_id: WorkflowQuery = None
) -> Block:
    """Get a block of a workflow's draft."""
    block, etag = await editor.get_block(principal.project_id, block_id, workflow_id)
    response.headers["ETag"] = etag
    return block


@router.patch("/blocks/{block_id}", response_model=Block)
async def update_block(
    block_id: str,
    body: BlockUpdate,
    principal: PrincipalDep,
    editor: EditorDep,
    response: Response,
    workflow_id: WorkflowQuery = None,
    if_match: IfMatch = None,
) -> Block:
    """Update a block's fields; `config_mode` merge (default: deep merge, null deletes a key) or replace.

    The resulting config is validated (422 names the field). With `If-Match`, an edit of a draft that has
    changed since it was read is refused with 409.
    """
    block, etag = await editor.update_block(principal.project_id, block_id, workflow_id, body, if_match)
    response.headers["ETag"] = etag
    return block


@router.delete("/blocks/{block_id}", status_code=204)
async def delete_block(
    block_id: str,
    principal: PrincipalDep,
    editor: EditorDep,
    workflow_id: WorkflowQuery = None,
    if_match: IfMatch = None,
) -> Response:
    """Delete a block and every edge connected to it."""
    etag = await editor.delete_block(principal.project_id, block_id, workflow_id, if_match)
    return Response(status_code=204, headers={"ETag": etag})


@router.post("/blocks/{block_id}/validate-config", response_model=ConfigValidation)
async def validate_block_config(
    block_id: str, body: ConfigCheck, principal: PrincipalDep, editor: EditorDep, workflow_id: WorkflowQuery = None
) -> ConfigValidation:
    """Check a config against the block's type without changing the draft; 422 names the failing field.

    `config_hash` is the sha256 of the canonical JSON of the config (merged first with `config_mode=merge`).
    """
    block, config = await editor.check_config(principal.project_id, block_id, workflow_id, body)
    return ConfigValidation(
        workflow_id=block.workflow_id, block_id=block.id, block_type=block.type, config_hash=fingerprint(config)
    )
