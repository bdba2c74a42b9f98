"""Steps, at the SDK's flat paths: `GET /v1/workflows/steps?run_id=…` and `/v1/workflows/steps/{step_id}`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from api.deps import PrincipalDep
from api.errors import InvalidError, NotFoundError
from api.loop_steps import with_loop_steps
from api.paging import Page
from api.responses import StepView
from api.routes.runs import runs_of
from api.run_views import page

router = APIRouter(tags=["steps"])


@router.get("/steps", response_model=Page[StepView], response_model_exclude_unset=True)
async def list_steps(
    request: Request,
    principal: PrincipalDep,
    run_id: str,
    block_id: str | None = None,
    step_id: str | None = None,
    block_type: str | None = None,
    status: str | None = None,
    before: str | None = None,
    after: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """A run's steps in graph order, with handle payloads; filters by block, step, type, status."""
    runs = runs_of(request)
    state = await runs.state(principal.project_id, run_id)
    steps = [
        s
        for s in await with_loop_steps(runs.store, state)
        if (block_id is None or s.block_id == block_id)
        and (step_id is None or s.step_id == step_id)
        and (block_type is None or s.block_type == block_type)
        and (status is None or s.lifecycle.status == status)
    ]
    ids = [s.step_id for s in steps]
    if after is not None:
        if after not in ids:  # an unknown cursor is an error, not a silent restart from the top
            raise InvalidError(f"after: no item '{after}' in this list", code="invalid_cursor", field="after")
        steps = steps[ids.index(after) + 1 :]
    elif before in ids:
        steps = steps[: ids.index(before)][-limit:]
    chosen = steps[:limit]
    items = await runs.public_steps(principal.project_id, run_id, chosen)
    return page(items, "step_id", limit, len(steps) > limit)


@router.get("/steps/{step_id}", response_model=StepView, response_model_exclude_unset=True)
async def get_step(request: Request, step_id: str, run_id: str, principal: PrincipalDep) -> dict[str, Any]:
    """One step of a run, with its handle inputs and outputs."""
    runs = runs_of(request)
    state = await runs.state(principal.project_id, run_id)
    step = next((s for s in await with_loop_steps(runs.store, state) if s.step_id == step_id), None)
    if step is None:
        raise NotFoundError(f"run '{run_id}' has no step '{step_id}'", step_id=step_id)
    return (await runs.public_steps(principal.project_id, run_id, [step]))[0]
