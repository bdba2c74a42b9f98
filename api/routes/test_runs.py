"""Test runs and their results, at both paths the SDK has used (api.test_runs_service says how they run)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request

from api.deps import PrincipalDep
from api.errors import InvalidError
from api.paging import Page
from api.responses import TestResultView, TestRunView
from api.run_views import page
from api.test_runs_service import BlockScope, CreateTestRun, CreateWorkflowTestRun, SingleScope, TestRuns

router = APIRouter(tags=["test runs"])
Status = Literal["pending", "queued", "running", "completed", "error", "cancelled"]


def test_runs_of(request: Request) -> TestRuns:
    """The test-run service bound to the app's clients."""
    state = request.app.state
    return TestRuns(state.store, state.temporal, state.settings)


@router.post("/tests/runs", status_code=201, response_model=TestRunView, response_model_exclude_unset=True)
async def create_test_run(request: Request, body: CreateTestRun, principal: PrincipalDep) -> dict[str, Any]:
    """Run a workflow's tests (one, one block's, or all) against the current draft."""
    return await test_runs_of(request).create(principal.project_id, body)


@router.post(
    "/{workflow_id}/tests/runs", status_code=201, response_model=TestRunView, response_model_exclude_unset=True
)
async def create_workflow_test_run(
    workflow_id: str, request: Request, body: CreateWorkflowTestRun, principal: PrincipalDep
) -> dict[str, Any]:
    """The earlier path: `test_id`, or `target` (a block), or neither (every test)."""
    if body.test_id is not None and body.target is not None:
        raise InvalidError("give test_id or target, not both", code="invalid_scope", field="target")
    scope: SingleScope | BlockScope | None = None
    if body.test_id is not None:
        scope = SingleScope(type="single", test_id=body.test_id)
    elif body.target is not None:
        scope = BlockScope(type="block", block_id=body.target.block_id)
    flat = CreateTestRun(workflow_id=workflow_id, scope=scope, n_consensus=body.n_consensus)
    return await test_runs_of(request).create(principal.project_id, flat)


@router.get("/tests/runs", response_model=Page[TestRunView], response_model_exclude_unset=True)
async def list_test_runs(
    request: Request,
    principal: PrincipalDep,
    workflow_id: Annotated[str | None, Query(max_length=100)] = None,
    status: Status | None = None,
    exclude_status: Status | None = None,
    test_id: Annotated[str | None, Query(max_length=100)] = None,
    target_block_id: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> dict[str, Any]:
    """Test runs, newest first, filtered by workflow, status, test or block."""
    filters = {
        "status": status,
        "exclude_status": exclude_status,
        "test_id": test_id,
        "target_block_id": target_block_id,
    }
    records = await test_runs_of(request).list_runs(principal.project_id, workflow_id, filters, limit + 1)
    return page([r.public() for r in records[:limit]], "id", limit, len(records) > limit)


@router.get("/tests/runs/{test_run_id}", response_model=TestRunView, response_model_exclude_unset=True)
async def get_test_run(test_run_id: str, request: Request, principal: PrincipalDep) -> dict[str, Any]:
    """One test run, its counts live while it runs."""
    return (await test_runs_of(request).get(principal.project_id, test_run_id)).public()


@router.post("/tests/runs/{test_run_id}/cancel", response_model=TestRunView, response_model_exclude_unset=True)
async def cancel_test_run(test_run_id: str, request: Request, principal: PrincipalDep) -> dict[str, Any]:
    """Stop a test run: its running tests are cancelled and counted so."""
    return (await test_runs_of(request).cancel(principal.project_id, test_run_id)).public()


@router.get("/tests/results", response_model=Page[TestResultView], response_model_exclude_unset=True)
async def list_test_results(
    request: Request,
    principal: PrincipalDep,
    run_id: Annotated[str, Query(min_length=1, max_length=100, description="The test run")],
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """A test run's results, in test order (the tests judged so far)."""
    results = await test_runs_of(request).results(principal.project_id, run_id)
    return page([r.public() for r in results[:limit]], "id", limit, len(results) > limit)


@router.get("/tests/results/{result_id}", response_model=TestResultView, response_model_exclude_unset=True)
async def get_test_result(result_id: str, request: Request, principal: PrincipalDep) -> dict[str, Any]:
    """One test's result."""
    return (await test_runs_of(request).result(principal.project_id, result_id)).public()
