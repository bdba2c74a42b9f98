"""Runs: create, get, list, cancel, delete; and the run-scoped step paths of the get-run page's client."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Request, Response

from api.deps import PrincipalDep
from api.errors import InvalidError, NotFoundError
from api.loop_steps import with_loop_steps
from api.paging import Page
from api.responses import CancelRunView, RunView, StepView
from api.run_inputs import CancelRunRequest, CreateRunRequest
from api.run_views import page, public_run
from api.runs_service import Runs

router = APIRouter(tags=["runs"])

# A day or a datetime (see api.run_queries); documented as both formats so clients and fuzzers know them.
DateFilter = Annotated[
    str | None,
    Query(
        description="A day (YYYY-MM-DD, UTC) or an ISO 8601 datetime; an offset is honoured",
        json_schema_extra={"anyOf": [{"type": "string", "format": "date"}, {"type": "string", "format": "date-time"}]},
        openapi_examples={
            "day": {"value": "2026-11-01"},
            "with an offset": {"value": "2026-11-01T10:00:00+02:00"},
            "no bound": {"value": "9999-12-31"},
        },
    ),
]


def runs_of(request: Request) -> Runs:
    """The run service bound to the app's clients."""
    state = request.app.state
    return Runs(state.store, state.temporal, state.settings)


@router.post("/runs", response_model=RunView, response_model_exclude_unset=True)
async def create_run(
    request: Request,
    body: CreateRunRequest,
    principal: PrincipalDep,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> dict[str, Any]:
    """Start a run of a workflow version over documents and JSON inputs; returns at once (`pending`).

    A retried request with the same `Idempotency-Key` returns the run the first one started; the same key with
    a different body is refused (422 `idempotency_key_reused`) and the first run is left as it was.
    """
    state = await runs_of(request).start(principal.project_id, body, idempotency_key)
    return public_run(state, state.inputs.json_data)


@router.get("/runs", response_model=Page[RunView], response_model_exclude_unset=True)
async def list_runs(
    request: Request,
    principal: PrincipalDep,
    workflow_id: str | None = None,
    status: str | None = None,
    exclude_status: str | None = None,
    trigger_type: str | None = None,
    from_date: DateFilter = None,
    to_date: DateFilter = None,
    min_duration_ms: int | None = None,
    max_duration_ms: int | None = None,
    search: str | None = None,
    before: str | None = None,
    after: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    order: Literal["asc", "desc"] = "desc",
    sort_by: str | None = None,
) -> dict[str, Any]:
    """Runs of the project, newest first, with the SDK's filters and keyset pagination (`after`)."""
    if before is not None:
        raise InvalidError("before: backwards paging is not supported; page with 'after'", field="before")
    if order != "desc":
        raise InvalidError("order: runs are listed newest first only ('desc')", field="order")
    if sort_by not in (None, "timing.created_at", "created_at"):
        raise InvalidError("sort_by: runs are sorted by creation time only ('timing.created_at')", field="sort_by")
    filters = {
        "workflow_id": workflow_id,
        "status": status,
        "exclude_status": exclude_status,
        "trigger_type": trigger_type,
        "from_date": from_date,
        "to_date": to_date,
        "min_duration_ms": min_duration_ms,
        "max_duration_ms": max_duration_ms,
        "search": search,
    }
    states, more = await runs_of(request).list(principal.project_id, filters, after, limit)
    return page([public_run(s) for s in states], "id", limit, more)


@router.get("/runs/{run_id}", response_model=RunView, response_model_exclude_unset=True)
async def get_run(request: Request, run_id: str, principal: PrincipalDep) -> dict[str, Any]:
    """A run: lifecycle (`status`, mirrored as `kind`), timing with durations and waiting time, inputs."""
    runs = runs_of(request)
    state = await runs.state(principal.project_id, run_id)
    return public_run(state, await runs.json_inputs(principal.project_id, run_id))


@router.post("/runs/{run_id}/cancel", response_model=CancelRunView, response_model_exclude_unset=True)
async def cancel_run(
    request: Request, run_id: str, principal: PrincipalDep, body: CancelRunRequest | None = None
) -> dict[str, Any]:
    """Cancel a pending or running run; running blocks are cancelled and the run ends `cancelled`."""
    state, status = await runs_of(request).cancel(principal.project_id, run_id)
    return {"run": public_run(state), "cancellation_status": status, "redis_available": False}


@router.delete("/runs/{run_id}", status_code=204)
async def delete_run(request: Request, run_id: str, principal: PrincipalDep) -> Response:
    """Delete a run, its step records and artifacts; a running run is cancelled and its blocks stopped first.

    From the moment the delete is accepted every read of the run, its steps and artifacts is 404.
    """
    await runs_of(request).delete(principal.project_id, run_id)
    return Response(status_code=204)


@router.get("/runs/{run_id}/steps", response_model=list[StepView], response_model_exclude_unset=True)
async def list_run_steps(request: Request, run_id: str, principal: PrincipalDep) -> list[dict[str, Any]]:
    """The run's steps as a plain list (the run-scoped path of the get-run page's client)."""
    runs = runs_of(request)
    state = await runs.state(principal.project_id, run_id)
    return await runs.public_steps(principal.project_id, run_id, await with_loop_steps(runs.store, state))


@router.get("/runs/{run_id}/steps/{block_id}", response_model=StepView, response_model_exclude_unset=True)
async def get_run_step(request: Request, run_id: str, block_id: str, principal: PrincipalDep) -> dict[str, Any]:
    """One step of a run, by block id (or step id), with its handle inputs and outputs."""
    runs = runs_of(request)
    state = await runs.state(principal.project_id, run_id)
    steps = await with_loop_steps(runs.store, state)
    step = next((s for s in steps if block_id in (s.block_id, s.step_id)), None)
    if step is None:
        raise NotFoundError(f"run '{run_id}' has no step for block '{block_id}'", block_id=block_id)
    return (await runs.public_steps(principal.project_id, run_id, [step]))[0]
