"""Workflow tests (block tests) CRUD; api.tests_service says what is checked. Test runs are not built yet."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from api.deps import PrincipalDep
from api.paging import Page, PageQuery
from api.tests_service import WorkflowTests, WorkflowTestView
from docflow.workflow_tests import CreateWorkflowTest, UpdateWorkflowTest

router = APIRouter(tags=["workflow tests"])


def tests_of(request: Request) -> WorkflowTests:
    """The workflow-test service bound to the app's clients."""
    state = request.app.state
    return WorkflowTests(state.store, state.temporal, state.settings)


@router.post("/tests", status_code=201)
async def create_test(request: Request, body: CreateWorkflowTest, principal: PrincipalDep) -> WorkflowTestView:
    """Pin one assertion on one block, with the inputs it replays (given, or snapshotted from a run's step)."""
    return await tests_of(request).create(principal.project_id, body)


@router.get("/tests")
async def list_tests(
    request: Request,
    principal: PrincipalDep,
    workflow_id: Annotated[str, Query(min_length=1, max_length=100)],
    paging: Annotated[PageQuery, Query()],
    target_block_id: Annotated[str | None, Query(max_length=200)] = None,
) -> Page[WorkflowTestView]:
    """A workflow's tests (of one block with `target_block_id`), newest first unless `order=asc`."""
    return await tests_of(request).list(principal.project_id, workflow_id, target_block_id, paging)


@router.get("/tests/{test_id}")
async def get_test(test_id: str, request: Request, principal: PrincipalDep) -> WorkflowTestView:
    """One test, with its validation and drift against the current draft."""
    return await tests_of(request).get(principal.project_id, test_id)


@router.patch("/tests/{test_id}")
async def update_test(
    test_id: str, request: Request, body: UpdateWorkflowTest, principal: PrincipalDep
) -> WorkflowTestView:
    """Change a test's name, assertion or source (omitted fields are left unchanged)."""
    return await tests_of(request).update(principal.project_id, test_id, body)


@router.delete("/tests/{test_id}", status_code=204)
async def delete_test(test_id: str, request: Request, principal: PrincipalDep) -> Response:
    """Delete a test."""
    await tests_of(request).delete(principal.project_id, test_id)
    return Response(status_code=204)
