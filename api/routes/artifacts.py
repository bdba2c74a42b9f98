"""Artifacts: the records a step leaves (extraction, parse, conditional evaluation, API call trace…)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from api.deps import PrincipalDep, StoreDep
from api.errors import InvalidError, NotFoundError
from api.loop_steps import with_loop_steps
from api.paging import Page
from api.responses import ArtifactView
from api.routes.runs import runs_of
from api.run_deletion import run_deleted
from api.run_views import page
from docflow import keys
from storage.objects import NotFound

router = APIRouter(tags=["artifacts"])


@router.get("/artifacts", response_model=Page[ArtifactView], response_model_exclude_unset=True)
async def list_artifacts(
    request: Request,
    principal: PrincipalDep,
    store: StoreDep,
    run_id: str | None = None,
    step_id: str | None = None,
    operation: str | None = None,
    block_id: str | None = None,
    before: str | None = None,
    after: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """Artifacts of a run in step order; `step_id` (with `run_id`) returns the single attached one."""
    if run_id is None:
        raise InvalidError("run_id: required", field="run_id")
    state = await runs_of(request).state(principal.project_id, run_id)
    # Each step's own artifact, then (reviewable blocks) its review_trigger_evaluation.
    refs = [
        ref
        for s in await with_loop_steps(store, state)
        for ref in (s.artifact, s.review_evaluation)
        if ref is not None
        and (step_id is None or s.step_id == step_id)
        and (block_id is None or s.block_id == block_id)
        and (operation is None or ref.operation == operation)
    ]
    ids = [r.id for r in refs]
    if after is not None:
        if after not in ids:  # an unknown cursor is an error, not a silent restart from the top
            raise InvalidError(f"after: no item '{after}' in this list", code="invalid_cursor", field="after")
        refs = refs[ids.index(after) + 1 :]
    found = await asyncio.gather(*(store.get_json(keys.artifact(principal.project_id, r.id)) for r in refs[:limit]))
    items = [f.data for f in found]
    return page(items, "id", limit, len(refs) > limit)


@router.get("/artifacts/{artifact_id}", response_model=ArtifactView, response_model_exclude_unset=True)
async def get_artifact(artifact_id: str, principal: PrincipalDep, store: StoreDep) -> dict[str, Any]:
    """One artifact by id, flattened with its `operation`; 404 once its run is deleted."""
    try:
        data: dict[str, Any] = (await store.get_json(keys.artifact(principal.project_id, artifact_id))).data
    except NotFound as exc:
        raise NotFoundError(f"no artifact '{artifact_id}'", artifact_id=artifact_id) from exc
    # The route carries no run id, so the record names its run: a write that raced the run's delete stays hidden.
    run_id = data.get("run_id")
    if not isinstance(run_id, str) or await run_deleted(store, principal.project_id, run_id):
        raise NotFoundError(f"no artifact '{artifact_id}'", artifact_id=artifact_id)
    return data
