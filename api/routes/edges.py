"""Edges of a workflow's draft (`/v1/workflows/edges…`); every response carries the draft's `ETag`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Response

from api.deps import PrincipalDep, StoreDep
from api.draft_edits import EdgeCreate, EdgeUpdate, GraphEditor
from api.paging import Page, PageQuery, paginate
from docflow.models import Edge

router = APIRouter(tags=["edges"])

IfMatch = Annotated[str | None, Header(alias="If-Match", description="The draft's ETag, to refuse a stale edit")]


def _editor(store: StoreDep) -> GraphEditor:
    return GraphEditor(store)


EditorDep = Annotated[GraphEditor, Depends(_editor)]
PageDep = Annotated[PageQuery, Query()]


@router.get("/edges", response_model=Page[Edge])
async def list_edges(
    workflow_id: str,
    principal: PrincipalDep,
    editor: EditorDep,
    page: PageDep,
    response: Response,
    source_block: str | None = None,
    target_block: str | None = None,
) -> Page[Edge]:
    """List the edges of a workflow's draft, optionally from or to one block, most recently changed first."""
    draft = await editor.drafts.read(principal.project_id, workflow_id)
    edges = [
        e
        for e in draft.graph.edges
        if source_block in (None, e.source_block) and target_block in (None, e.target_block)
    ]
    response.headers["ETag"] = draft.etag
    return paginate(edges, page, ident=lambda e: e.id, sort_key=lambda e: e.updated_at)


@router.post("/edges", response_model=Edge, status_code=201)
async def create_edge(
    body: EdgeCreate, principal: PrincipalDep, editor: EditorDep, response: Response, if_match: IfMatch = None
) -> Edge:
    """Connect an output handle to an input handle.

    Refused with 422 (naming the block, edge, handle and field) when a block or handle does not exist, the
    kinds differ (file to json), the input already has an edge, the target is a start block, or the edge
    would close a cycle. A handle may be left out when its block has only one on that side.
    """
    edge, etag = await editor.create_edge(principal.project_id, body, if_match)
    response.headers["ETag"] = etag
    return edge


@router.get("/edges/{edge_id}", response_model=Edge)
async def get_edge(edge_id: str, principal: PrincipalDep, editor: EditorDep, response: Response) -> Edge:
    """Get an edge of a workflow's draft."""
    edge, etag = await editor.get_edge(principal.project_id, edge_id)
    response.headers["ETag"] = etag
    return edge


@router.patch("/edges/{edge_id}", response_model=Edge)
async def update_edge(
    edge_id: str,
    body: EdgeUpdate,
    principal: PrincipalDep,
    editor: EditorDep,
    response: Response,
    if_match: IfMatch = None,
) -> Edge:
    """Move an edge's endpoints or handles; the result is validated as a new edge would be."""
    edge, etag = await editor.update_edge(principal.project_id, edge_id, body, if_match)
    response.headers["ETag"] = etag
    return edge


@router.delete("/edges/{edge_id}", status_code=204)
async def delete_edge(edge_id: str, principal: PrincipalDep, editor: EditorDep, if_match: IfMatch = None) -> Response:
    """Delete an edge."""
    etag = await editor.delete_edge(principal.project_id, edge_id, if_match)
    return Response(status_code=204, headers={"ETag": etag})
