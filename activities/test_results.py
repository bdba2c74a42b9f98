"""Test-run activities: judge one test (its execution's outputs against its assertion) and store the result.

The assertion runs in the isolated executor (a user's regex or JSON Schema over a block's output is user
computation). A test that could not run, or whose execution failed, is `blocked` with the reason
(`not_runnable`, `block_execution_failed`). `llm_judged_as` / `llm_not_judged_as` ask the model provider: the
isolated executor lists the questions, each is one structured call (`{label, reasoning}`), and the assertion is
evaluated with those answers; a provider that fails blocks the test (`execution_error`), never a made-up label.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from temporalio import activity

from activities.isolation import IsolatedExecutor, ResourceLimit, TaskError, TaskTimeout
from activities.provider import ExtractionRequest, ModelProvider, ProviderError
from docflow import keys
from docflow.executions import ExecutionRecord
from docflow.runs import StepRecord
from docflow.test_runs import JudgeInput, PersistTestRunInput, ResultRecord, TestRunLifecycle
from storage.objects import NotFound, ObjectStore
from workflows.activity_names import JUDGE_TEST, PERSIST_TEST_RUN

ASSERTION_LIMIT_SECONDS = 30.0
JUDGE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"label": {"type": "string"}, "reasoning": {"type": "string"}},
    "required": ["label"],
}


class TestRunActivities:
    """The activities of test runs, with the store and the isolated executor injected."""

    __test__ = False  # not a pytest test class

    def __init__(self, store: ObjectStore, isolated: IsolatedExecutor, provider: ModelProvider) -> None:
        self.store = store
        self.isolated = isolated
        self.provider = provider

    @activity.defn(name=JUDGE_TEST)
    async def judge(self, inp: JudgeInput) -> str:
        """Evaluate the test's assertion (or record why it is blocked); store the result; its verdict."""
        case = inp.case
        assertion = case.assertion
        result = ResultRecord(
            id=case.result_id,
            project_id=inp.project_id,
            workflow_test_run_id=inp.test_run_id,
            test_id=case.test_id,
            workflow_id=inp.workflow_id,
            block_id=case.block_id,
            block_type=case.block_type,
            lifecycle=TestRunLifecycle(status="completed"),
            created_at=inp.created_at,
            started_at=inp.started_at,
            completed_at=inp.completed_at or datetime.now(UTC),
        )
        if case.execution is None or inp.execution_error is not None:
            code, message = (
                ("not_runnable", case.blocked or "the test cannot run")
                if case.execution is None
                else ("block_execution_failed", f"the block failed: {inp.execution_error}")
            )
            result.assertion_result = _blocked(assertion, code, message)
        else:
            execution = case.execution
            result.execution_id = execution.execution_id
            result.fingerprints = execution.fingerprints.model_dump()
            with_step = await self._step(inp.project_id, execution.execution_id, execution.source_step_id)
            record = await self._execution(inp.project_id, execution.execution_id)
            if record is not None:
                result.artifact = record.artifact
                result.routing_decisions = record.routing_decisions
            outputs = {h: v.public() for h, v in (with_step.handle_outputs if with_step else {}).items()}
            result.handle_inputs = {h: v.public() for h, v in (with_step.handle_inputs if with_step else {}).items()}
            result.handle_outputs = outputs
            result.assertion_result = await self._evaluate(assertion, outputs)
        result.verdict = result.assertion_result["outcome"]
        await self.store.put_json(keys.test_result(inp.project_id, inp.test_run_id, result.id), result)
        await self.store.put_json(keys.test_result_index(inp.project_id, result.id), {"test_run_id": inp.test_run_id})
        verdict: str = result.assertion_result["outcome"]
        return verdict

    @activity.defn(name=PERSIST_TEST_RUN)
    async def persist(self, inp: PersistTestRunInput) -> None:
        """Store a test run's record when it ends."""
        record = inp.record
        await self.store.put_json(keys.test_run(record.project_id, record.id), record)

    def all(self) -> list[Any]:
        """Every activity of this class, for the worker."""
        return [self.judge, self.persist]

    async def _evaluate(self, assertion: dict[str, Any], outputs: dict[str, Any]) -> dict[str, Any]:
        payload: dict[str, Any] = {"assertion": assertion, "outputs": outputs}
        try:
            questions = await self.isolated.run("assertion_questions", payload, timeout=ASSERTION_LIMIT_SECONDS)
            if questions:
                payload["answers"] = [await self._ask(q) for q in questions]
            answer: dict[str, Any] = await self.isolated.run("assertion", payload, timeout=ASSERTION_LIMIT_SECONDS)
        except (TaskError, TaskTimeout, ResourceLimit) as exc:
            return _blocked(assertion, "execution_error", f"the assertion could not be evaluated: {exc}")
        except ProviderError as exc:
            return _blocked(assertion, "execution_error", f"the judge model failed: {exc}")
        return answer

    async def _ask(self, question: dict[str, Any]) -> dict[str, Any]:
        """One judge question to the model provider: the label it gives the value under the rubric."""
        value = json.dumps(question.get("value"), ensure_ascii=False, default=str)
        request = ExtractionRequest(
            text=f"Rubric: {question.get('rubric')}\n\nValue:\n{value[:20_000]}",
            json_schema=JUDGE_SCHEMA,
            instructions=(
                "Judge the value by the rubric. Answer with one short label (for example pass or fail) and why."
            ),
        )
        result = await self.provider.extract(request)
        data = result.data if isinstance(result.data, dict) else {}
        return {"label": str(data.get("label") or ""), "reasoning": data.get("reasoning")}

    async def _step(self, project_id: str, execution_id: str, step_id: str) -> StepRecord | None:
        try:
            return await self.store.get_model(keys.step(project_id, execution_id, step_id), StepRecord)
        except NotFound:
            return None

    async def _execution(self, project_id: str, execution_id: str) -> ExecutionRecord | None:
        try:
            return await self.store.get_model(keys.run_summary(project_id, execution_id), ExecutionRecord)
        except NotFound:
            return None


def _blocked(assertion: dict[str, Any], code: str, message: str) -> dict[str, Any]:
    condition = assertion.get("condition") if isinstance(assertion.get("condition"), dict) else {}
    return {
        "assertion_id": str(assertion.get("id") or ""),
        "condition_kind": str((condition or {}).get("kind") or ""),
        "outcome": "blocked",
        "assertion_label": assertion.get("label"),
        "failure": {"code": code, "message": message, "details": {}},
    }
