"""Test runs (NOTES.md §6): run a workflow's saved tests against the current draft, and read their results.

Create picks the tests (one `test_id`, every test of one block, or every test of the workflow), checks each
against the draft (docflow.workflow_tests): a test whose block is gone or whose inputs no longer fit is
`blocked` with the reason; the others become child block executions of a `TestRunWorkflow`
(workflows/test_run.py) with the draft's config and `n_consensus` (3, 5 or 7) for this run only. It answers at
once, queued; `GET /tests/runs/{id}` shows the counts live.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from temporalio.client import Client
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.service import RPCError, RPCStatusCode

from api.definitions import Definitions
from api.errors import InvalidError, NotFoundError
from api.executions_service import CONSENSUS_BLOCKS, CONSENSUS_OVERRIDES, by_reference, fingerprints_of
from api.tests_service import WorkflowTests
from docflow import keys
from docflow.config import Settings
from docflow.executions import BlockExecutionInput
from docflow.graph import resolve_edge_handles
from docflow.ids import EXECUTION, derived_id, new_id
from docflow.models import Graph
from docflow.temporal import SA_PROJECT, SA_WORKFLOW_ID, TEST_RUN_STATE_QUERY
from docflow.test_runs import TEST_RESULT, TEST_RUN, ResultRecord, TestCase, TestRunInput, TestRunRecord
from docflow.workflow_tests import TestRecord, check_against_draft
from storage.objects import NotFound, ObjectStore
from workflows.test_run import TestRunWorkflow

QUERY_TIMEOUT = timedelta(seconds=3)
TEST_RUN_CONCURRENCY = 4


class SingleScope(BaseModel):
    type: Literal["single"]
    test_id: str = Field(min_length=1, max_length=100)


class BlockScope(BaseModel):
    type: Literal["block"]
    block_id: str = Field(min_length=1, max_length=200)


class WorkflowScope(BaseModel):
    type: Literal["workflow"]


class CreateTestRun(BaseModel):
    """`POST /v1/workflows/tests/runs` (the SDK's `CreateWorkflowTestRunRequest`)."""

    model_config = ConfigDict(extra="ignore")

    workflow_id: str = Field(min_length=1, max_length=100)
    scope: SingleScope | BlockScope | WorkflowScope | None = Field(default=None, discriminator="type")
    n_consensus: int | None = None


class BlockTarget(BaseModel):
    type: Literal["block"] = "block"
    block_id: str = Field(min_length=1, max_length=200)


class CreateWorkflowTestRun(BaseModel):
    """`POST /v1/workflows/{workflow_id}/tests/runs` (the earlier shape): `test_id`, `target`, or neither."""

    model_config = ConfigDict(extra="ignore")

    test_id: str | None = Field(default=None, min_length=1, max_length=100)
    target: BlockTarget | None = None
    n_consensus: int | None = None


class TestRuns:
    """The test-run operations of the API."""

    __test__ = False  # not a pytest test class

    def __init__(self, store: ObjectStore, temporal: Client, settings: Settings) -> None:
        self.store = store
        self.temporal = temporal
        self.settings = settings
        self.tests = WorkflowTests(store, temporal, settings)
        self.definitions = Definitions(store)

    async def create(self, project_id: str, body: CreateTestRun) -> dict[str, Any]:
        """Pick the tests, check them against the draft, start the test run; its record (queued)."""
        await self.definitions.get_workflow(project_id, body.workflow_id)  # 404 naming the workflow
        if body.n_consensus is not None and body.n_consensus not in CONSENSUS_OVERRIDES:
            raise InvalidError(
                f"n_consensus: must be 3, 5 or 7, not {body.n_consensus}",
                code="invalid_n_consensus",
                field="n_consensus",
            )
        tests = await self._chosen(project_id, body)
        draft_version = await self.definitions.resolve_version(project_id, body.workflow_id, "draft")
        draft = resolve_edge_handles(draft_version.graph())
        test_run_id = new_id(TEST_RUN)
        cases = [await self._case(project_id, test_run_id, t, draft, draft_version.id, body.n_consensus) for t in tests]
        now = datetime.now(UTC)
        scope = body.scope
        inp = TestRunInput(
            test_run_id=test_run_id,
            project_id=project_id,
            workflow_id=body.workflow_id,
            workflow_version_id=draft_version.id,
            created_at=now,
            cases=cases,
            test_id=scope.test_id if isinstance(scope, SingleScope) else None,
            target_block_id=scope.block_id if isinstance(scope, BlockScope) else None,
            n_consensus=body.n_consensus,
            concurrency=TEST_RUN_CONCURRENCY,
        )
        marker = keys.workflow_test_run(project_id, body.workflow_id, keys.compact_time(now), test_run_id)
        await self.store.put_json(marker, {})
        await self.temporal.start_workflow(
            TestRunWorkflow.run,
            inp,
            id=test_run_id,
            task_queue=self.settings.task_queue,
            search_attributes=TypedSearchAttributes(
                [SearchAttributePair(SA_PROJECT, project_id), SearchAttributePair(SA_WORKFLOW_ID, body.workflow_id)]
            ),
            memo={"project_id": project_id},
            static_summary=f"{len(cases)} test(s) of {body.workflow_id}",
        )
        return (await self.get(project_id, test_run_id)).public()

    async def _chosen(self, project_id: str, body: CreateTestRun) -> list[TestRecord]:
        scope = body.scope
        if isinstance(scope, SingleScope):
            record, _ = await self.tests._read(project_id, scope.test_id)
            if record.workflow_id != body.workflow_id:
                raise NotFoundError(
                    f"scope.test_id: no test '{scope.test_id}' in workflow '{body.workflow_id}'", field="scope.test_id"
                )
            return [record]
        markers = await self.store.list_keys(keys.workflow_tests_prefix(project_id, body.workflow_id))
        found = await asyncio.gather(*(self.tests._maybe(project_id, m.rsplit("/", 1)[-1]) for m in markers))
        records = sorted((r for r in found if r is not None), key=lambda r: (r.created_at, r.id))
        if isinstance(scope, BlockScope):
            records = [r for r in records if r.target.block_id == scope.block_id]
        return records

    async def _case(
        self, project_id: str, test_run_id: str, test: TestRecord, draft: Graph, version_id: str, n: int | None
    ) -> TestCase:
        block = draft.block(test.target.block_id)
        result_id = derived_id(TEST_RESULT, test_run_id, test.id, length=24)
        case = TestCase(
            test_id=test.id,
            result_id=result_id,
            block_id=test.target.block_id,
            block_type=test.block_type,
            assertion=test.assertion.model_dump(mode="json"),
        )
        check = check_against_draft(test, block)
        if block is None or check.validation_issues:
            case.blocked = check.validation_issues[0].message if check.validation_issues else "the block is gone"
            return case
        if n is not None and block.type in CONSENSUS_BLOCKS:
            block = block.model_copy(update={"config": {**block.config, "n_consensus": n}})
        execution_id = derived_id(EXECUTION, test_run_id, test.id, length=24)
        inputs = {
            h: await by_reference(self.store, self.settings, project_id, execution_id, h, v)
            for h, v in test.handle_inputs.items()
        }
        case.execution = BlockExecutionInput(
            execution_id=execution_id,
            project_id=project_id,
            workflow_id=test.workflow_id,
            workflow_version_id=version_id,
            source_run_id=getattr(test.source, "run_id", "") or "",
            source_step_id=block.id,
            block=block,
            inputs=inputs,
            created_at=datetime.now(UTC),
            fingerprints=fingerprints_of(test.handle_inputs, block, draft, n),
            n_consensus=n,
            inline_output_limit_bytes=self.settings.inline_output_limit_bytes,
            storage_retry_budget_seconds=self.settings.storage_retry_budget_seconds,
        )
        return case

    async def get(self, project_id: str, test_run_id: str) -> TestRunRecord:
        """A test run: its stored record once ended, else its live state (404 if unknown or another project's)."""
        if not test_run_id.startswith(TEST_RUN):
            raise NotFoundError(f"no test run '{test_run_id}'", test_run_id=test_run_id)
        with contextlib.suppress(NotFound):
            return await self.store.get_model(keys.test_run(project_id, test_run_id), TestRunRecord)
        handle = self.temporal.get_workflow_handle(test_run_id)
        try:
            desc = await handle.describe()
            if (await desc.memo()).get("project_id") != project_id:
                raise NotFoundError(f"no test run '{test_run_id}'", test_run_id=test_run_id)
            live: TestRunRecord = await handle.query(
                TEST_RUN_STATE_QUERY, result_type=TestRunRecord, rpc_timeout=QUERY_TIMEOUT
            )
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                raise NotFoundError(f"no test run '{test_run_id}'", test_run_id=test_run_id) from exc
            raise
        return live

    async def cancel(self, project_id: str, test_run_id: str) -> TestRunRecord:
        """Ask the test run to stop; its children are cancelled and counted so."""
        record = await self.get(project_id, test_run_id)
        if record.lifecycle.status in {"queued", "pending", "running"}:
            with contextlib.suppress(RPCError):
                await self.temporal.get_workflow_handle(test_run_id).cancel()
        return record

    async def list_runs(
        self, project_id: str, workflow_id: str | None, filters: dict[str, str | None], limit: int
    ) -> list[TestRunRecord]:
        """Test runs, newest first (of one workflow with `workflow_id`)."""
        prefix = (
            keys.workflow_test_runs_prefix(project_id, workflow_id)
            if workflow_id
            else keys.test_runs_index_prefix(project_id)
        )
        markers = await self.store.list_keys(prefix)
        ids = [m.rsplit("/", 1)[-1] for m in markers]
        ids.sort(reverse=True)  # `<time>_<id>`: newest first
        found: list[TestRunRecord] = []
        for marker in ids:
            with contextlib.suppress(NotFoundError):
                record = await self.get(project_id, marker.split("_", 1)[1])
                if _matches(record, filters):
                    found.append(record)
            if len(found) >= limit:
                break
        return found

    async def results(self, project_id: str, test_run_id: str) -> list[ResultRecord]:
        """A test run's results (the tests judged so far), in test order."""
        record = await self.get(project_id, test_run_id)
        listed = await self.store.list_keys(keys.test_results_prefix(project_id, test_run_id))
        found = await asyncio.gather(*(self._result(key) for key in listed))
        by_id = {r.id: r for r in found if r is not None}
        return [by_id[i] for i in record.result_ids if i in by_id]

    async def result(self, project_id: str, result_id: str) -> ResultRecord:
        """One result by id (404 if unknown)."""
        if not result_id.startswith(TEST_RESULT):
            raise NotFoundError(f"no test result '{result_id}'", result_id=result_id)
        try:
            test_run_id = str(
                (await self.store.get_json(keys.test_result_index(project_id, result_id))).data["test_run_id"]
            )
        except NotFound as exc:
            raise NotFoundError(f"no test result '{result_id}'", result_id=result_id) from exc
        found = await self._result(keys.test_result(project_id, test_run_id, result_id))
        if found is None:
            raise NotFoundError(f"no test result '{result_id}'", result_id=result_id)
        return found

    async def _result(self, key: str) -> ResultRecord | None:
        try:
            return await self.store.get_model(key, ResultRecord)
        except NotFound:
            return None


def _matches(record: TestRunRecord, filters: dict[str, str | None]) -> bool:
    """The SDK's test-run filters: status, exclude_status, test_id, target_block_id."""
    wanted = {
        "status": record.lifecycle.status,
        "test_id": record.test_id,
        "target_block_id": record.target_block_id,
    }
    if any(filters.get(name) is not None and filters[name] != value for name, value in wanted.items()):
        return False
    excluded = filters.get("exclude_status")
    return excluded is None or record.lifecycle.status != excluded
