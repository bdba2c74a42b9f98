"""Block executions: rerun one block of a past run with the current draft (api.executions_service says how)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request

from api.deps import PrincipalDep
from api.executions_service import CreateBlockExecution, Executions
from api.paging import Page
from api.responses import ExecutionView
from api.run_views import page

router = APIRouter(tags=["block executions"])


def executions_of(request: Request) -> Executions:
    """The execution service bound to the app's clients."""
    state = request.app.state
    return Executions(state.store, state.temporal, state.settings)


@router.post("/blocks/executions", response_model=ExecutionView, response_model_exclude_unset=True)
async def create_execution(
    request: Request,
    body: CreateBlockExecution,
    principal: PrincipalDep,
    force: Annotated[bool, Query(description="Run again even when an identical execution completed before")] = False,
) -> dict[str, Any]:
    """Rerun a block on a run's recorded step inputs with the draft's config; its record when done (or running)."""
    return await executions_of(request).create(principal.project_id, body, force)


@router.get("/blocks/executions", response_model=Page[ExecutionView], response_model_exclude_unset=True)
async def list_executions(
    request: Request,
    principal: PrincipalDep,
    run_id: Annotated[str, Query(min_length=1, max_length=100)],
    block_id: Annotated[str | None, Query(max_length=200)] = None,
    after: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    order: Literal["asc", "desc"] = "desc",
) -> dict[str, Any]:
    """A run's block executions (of one block with `block_id`), newest first unless `order=asc`."""
    service = executions_of(request)
    records, more = await service.list(principal.project_id, run_id, block_id, after, limit, order == "desc")
    items = [await service.public(r) for r in records]
    return page(items, "id", limit, more)


@router.get("/blocks/executions/{execution_id}", response_model=ExecutionView, response_model_exclude_unset=True)
async def get_execution(execution_id: str, request: Request, principal: PrincipalDep) -> dict[str, Any]:
    """One block execution."""
    service = executions_of(request)
    return await service.public(await service.get(principal.project_id, execution_id))
