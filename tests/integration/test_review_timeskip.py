"""Review waiting time on Temporal's time-skipping test server, exact to the millisecond.

A real docflow worker (the stack's S3 and model server, its own task queue) runs against
`WorkflowEnvironment.start_time_skipping`, so hours and days of waiting pass in milliseconds: `env.sleep` skips
while gates are open, and `handle.result()` skips to a gate's deadline timer. Every expected number is computed
from timestamps the workflow itself produced on that clock (the run's `human_waiting_started_at` while a gate is
open, a decision's `created_at`), so the assertions are exact: overlapping gates count once, gates one after
another count each but not the time between them, a 3-day deadline decides with its stated outcome, at exactly
opened + 3 days however late the worker handles its timer.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from retab import Retab
from temporalio.api.enums.v1 import EventType, IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import WorkflowFailureError, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.isolation import IsolatedExecutor
from api.definitions import Definitions
from docflow import keys
from docflow.config import Settings
from docflow.ids import RUN, new_id
from docflow.reviews import DEADLINE_ACTOR, Actor, DecisionOutcome, DecisionRequest, ReviewRecord
from docflow.runs import RunState, RunWorkflowInput, StepRecord
from docflow.temporal import (
    REVIEW_DECISION_SIGNAL,
    REVIEW_DECISION_UPDATE,
    RUN_STATE_QUERY,
    SEARCH_ATTRIBUTE_KEYS,
    data_converter,
)
from storage.objects import ObjectStore
from storage.reviews import ReviewStore
from tests.conftest import Stack
from tests.integration.builders import build
from worker import build_worker, isolated_executor, model_http_client
from workflows.run import RunWorkflow

SCHEMA = {"type": "object", "properties": {"invoice_number": {"type": "string"}, "total": {"type": "number"}}}
TEXT = "Invoice number: G-1\nTotal: 21"
ALWAYS = {"predicate": {"kind": "always"}}
REVIEWER = Actor(kind="human", id="reviewer-1", display_name="Reviewer One")
EDGE = {"source_handle": "output-json-0", "target_handle": "input-json-text"}


@dataclass
class Skipping:
    """The time-skipping server, with a docflow worker polling its task queue."""

    env: WorkflowEnvironment
    stack: Stack
    settings: Settings
    store: ObjectStore
    http: httpx.AsyncClient
    isolated: IsolatedExecutor

    @property
    def reviews(self) -> ReviewStore:
        return ReviewStore(self.store)

    def worker(self, task_queue: str) -> Worker:
        """Another docflow worker on the same server, for a test that stops and restarts its own."""
        # build_worker's worker is registered on its queue when made: this one is only a template, never run.
        unused = self.settings.model_copy(update={"task_queue": f"{task_queue}-template-{uuid.uuid4().hex[:8]}"})
        template = build_worker(self.env.client, unused, self.store, self.http, self.isolated)
        # No cache, so no sticky queue: the next worker gets the run's tasks at once.
        return Worker(**{**template.config(), "task_queue": task_queue, "max_cached_workflows": 0})


@pytest.fixture(scope="module")
async def skipping(stack: Stack) -> AsyncIterator[Skipping]:
    server = Path(sys.executable).parent / "temporal-test-server"
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=data_converter(), test_server_existing_path=str(server)
    )
    try:
        # Without them, the run's first upsert fails its workflow task, retried forever.
        attributes = {
            key.name: IndexedValueType.ValueType(int(key.indexed_value_type)) for key in SEARCH_ATTRIBUTE_KEYS
        }
        await env.client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=env.client.namespace, search_attributes=attributes)
        )
        settings = stack.settings.model_copy(update={"task_queue": f"docflow-timeskip-{uuid.uuid4().hex[:8]}"})
        store = ObjectStore(settings)
        async with (
            model_http_client(settings) as http,
            isolated_executor(settings) as isolated,
            build_worker(env.client, settings, store, http, isolated),
        ):
            yield Skipping(env, stack, settings, store, http, isolated)
    finally:
        await env.shutdown()


# -- building and driving runs ---------------------------------------------------------------------------


def extract(review: dict[str, Any]) -> dict[str, Any]:
    return {"json_schema": SCHEMA, "inputs": [{"name": "text", "type": "json"}], "review": review}


async def start_run(
    skipping: Skipping,
    client: Retab,
    blocks: list[dict[str, Any]],
    edges: list[dict[str, Any]],
    task_queue: str | None = None,
) -> tuple[WorkflowHandle[Any, RunState], dict[str, str]]:
    """Create the workflow through the SDK, pin its draft as the API would, start RunWorkflow on the test server."""
    stack = skipping.stack
    wf_id, ids = build(client, stack.project_id, blocks, [{**EDGE, **e} for e in edges])
    definitions = Definitions(skipping.store)
    workflow = await definitions.get_workflow(stack.project_id, wf_id)
    version = await definitions.resolve_version(stack.project_id, wf_id, "draft")
    run_id = new_id(RUN)
    inputs_key = keys.run_inputs(stack.project_id, run_id)
    await skipping.store.put_json(inputs_key, {ids["in"]: {"text": TEXT}})
    inp = RunWorkflowInput(
        run_id=run_id,
        project_id=stack.project_id,
        workflow_id=wf_id,
        version_id=version.id,
        requested_version="draft",
        workflow_name=workflow.name,
        trigger="api",
        created_at=datetime.now(UTC),
        json_inputs_key=inputs_key,
        json_block_ids=[ids["in"]],
        inline_output_limit_bytes=stack.settings.inline_output_limit_bytes,
        storage_retry_budget_seconds=stack.settings.storage_retry_budget_seconds,
        max_concurrent_blocks=stack.settings.max_concurrent_blocks,
    )
    handle = await skipping.env.client.start_workflow(
        RunWorkflow.run,
        inp,
        id=run_id,
        task_queue=task_queue or skipping.settings.task_queue,
        result_type=RunState,
    )
    return handle, ids


async def state_of(handle: WorkflowHandle[Any, RunState]) -> RunState:
    state: RunState = await handle.query(RUN_STATE_QUERY, result_type=RunState)
    return state


async def until_waiting_for(handle: WorkflowHandle[Any, RunState], block_ids: list[str]) -> RunState:
    """Poll the run's state (no time skipped) until exactly these blocks wait for review."""
    deadline = time.monotonic() + 20
    while True:
        state = await state_of(handle)
        if state.lifecycle.status == "awaiting_review" and state.lifecycle.waiting_for_block_ids == sorted(block_ids):
            return state
        assert state.lifecycle.status in {"pending", "running", "awaiting_review"}, state.lifecycle
        assert time.monotonic() < deadline, f"still {state.lifecycle} after 20 s"
        await asyncio.sleep(0.05)


def review_of(state: RunState, block_id: str) -> str:
    review_id = next(s.review_id for s in state.steps if s.block_id == block_id)
    assert review_id is not None
    return review_id


async def approve(
    skipping: Skipping, handle: WorkflowHandle[Any, RunState], review_id: str, *, by_signal: bool = False
) -> ReviewRecord:
    """Approve the model's version by Update (or by signal, as an operator would); the stored record.

    The decision's `created_at` is the run's clock when it accepted the decision.
    """
    project = skipping.stack.project_id
    record = await skipping.reviews.get(project, review_id)
    request = DecisionRequest(
        review_id=review_id, verdict="approved", version_id=record.seed_version_id, author=REVIEWER
    )
    if by_signal:
        await handle.signal(REVIEW_DECISION_SIGNAL, request.model_dump(mode="json"))
        deadline = time.monotonic() + 20
        while (decided := await skipping.reviews.get(project, review_id)).status == "pending":
            assert time.monotonic() < deadline, "the signalled decision was not applied in 20 s"
            await asyncio.sleep(0.05)
    else:
        answer = await handle.execute_update(REVIEW_DECISION_UPDATE, request, result_type=DecisionOutcome)
        assert answer.submission_status == "accepted", answer
        decided = await skipping.reviews.get(project, review_id)
    assert decided.status == "approved" and decided.decision is not None
    assert decided.decision.author == REVIEWER
    return decided


def ms(delta: timedelta) -> int:
    """A duration in whole milliseconds (half up, as docflow.waiting adds them)."""
    return round(delta.total_seconds() * 1000)


def decided_at(record: ReviewRecord) -> datetime:
    assert record.decision is not None
    return record.decision.created_at


def check_durations(state: RunState) -> None:
    """The public timing: active_duration_ms = duration_ms − accumulated_human_waiting_ms."""
    timing = state.timing.model_dump(mode="json")
    assert state.timing.started_at is not None and state.timing.completed_at is not None
    assert timing["duration_ms"] == int((state.timing.completed_at - state.timing.started_at).total_seconds() * 1000)
    assert timing["active_duration_ms"] == timing["duration_ms"] - state.timing.accumulated_human_waiting_ms
    assert timing["accumulated_review_waiting_ms"] == state.timing.accumulated_human_waiting_ms


# -- tests -----------------------------------------------------------------------------------------------


async def test_overlapping_gates_count_their_union_once(skipping: Skipping, client: Retab) -> None:
    blocks = [
        {"id": "in", "type": "start_json"},
        {"id": "a", "type": "extract", "config": extract(ALWAYS)},
        {"id": "b", "type": "extract", "config": extract(ALWAYS)},
    ]
    handle, ids = await start_run(
        skipping,
        client,
        blocks,
        [{"source_block": "in", "target_block": "a"}, {"source_block": "in", "target_block": "b"}],
    )
    both = await until_waiting_for(handle, [ids["a"], ids["b"]])
    since = both.timing.human_waiting_started_at
    assert since is not None and both.timing.accumulated_human_waiting_ms == 0

    await skipping.env.sleep(timedelta(hours=2))
    first = await approve(skipping, handle, review_of(both, ids["a"]))
    one_left = await until_waiting_for(handle, [ids["b"]])
    # The interval is still open: nothing added yet, and it still starts at the first gate's opening.
    assert one_left.timing.human_waiting_started_at == since
    assert one_left.timing.accumulated_human_waiting_ms == 0
    assert decided_at(first) - since >= timedelta(hours=2)

    await skipping.env.sleep(timedelta(hours=3))
    second = await approve(skipping, handle, review_of(both, ids["b"]))
    done = await handle.result()
    assert done.lifecycle.status == "completed", done.lifecycle
    assert done.timing.human_waiting_started_at is None
    # The union: from the first opening to the last decision, the two hours both were open counted once.
    assert done.timing.accumulated_human_waiting_ms == ms(decided_at(second) - since)
    assert timedelta(hours=5) <= decided_at(second) - since < timedelta(hours=5, minutes=1)
    check_durations(done)


async def test_gates_one_after_another_count_each_wait_not_the_time_between(skipping: Skipping, client: Retab) -> None:
    blocks = [
        {"id": "in", "type": "start_json"},
        {"id": "a", "type": "extract", "config": extract(ALWAYS)},
        {"id": "b", "type": "extract", "config": extract(ALWAYS)},
    ]
    handle, ids = await start_run(
        skipping,
        client,
        blocks,
        [{"source_block": "in", "target_block": "a"}, {"source_block": "a", "target_block": "b"}],
    )
    at_a = await until_waiting_for(handle, [ids["a"]])
    a_opened = at_a.timing.human_waiting_started_at
    assert a_opened is not None
    await skipping.env.sleep(timedelta(hours=2))
    a_decided = decided_at(await approve(skipping, handle, review_of(at_a, ids["a"])))
    first_wait = ms(a_decided - a_opened)

    at_b = await until_waiting_for(handle, [ids["b"]])
    b_opened = at_b.timing.human_waiting_started_at
    assert b_opened is not None
    # Between the two waits the run worked (B's block ran): that time is not waiting.
    assert b_opened > a_decided
    assert at_b.timing.accumulated_human_waiting_ms == first_wait

    await skipping.env.sleep(timedelta(hours=4))
    # The second decision comes by signal (web UI, `temporal workflow signal`): its waiting counts the same.
    b_decided = decided_at(await approve(skipping, handle, review_of(at_b, ids["b"]), by_signal=True))
    done = await handle.result()
    assert done.lifecycle.status == "completed", done.lifecycle
    assert done.timing.human_waiting_started_at is None
    assert done.timing.accumulated_human_waiting_ms == first_wait + ms(b_decided - b_opened)
    assert done.timing.accumulated_human_waiting_ms < ms(b_decided - a_opened)
    assert timedelta(hours=6) <= (a_decided - a_opened) + (b_decided - b_opened) < timedelta(hours=6, minutes=1)
    check_durations(done)


THREE_DAYS = timedelta(days=3)


async def deadline_run(
    skipping: Skipping, client: Retab, on_deadline: dict[str, Any], task_queue: str | None = None
) -> tuple[WorkflowHandle[Any, RunState], dict[str, str], ReviewRecord, datetime]:
    """A run whose only gate has a 3-day deadline, waiting; (handle, ids, its review, when the wait started)."""
    review = {**ALWAYS, "deadline": "P3D", "on_deadline": on_deadline}
    blocks = [{"id": "in", "type": "start_json"}, {"id": "ex", "type": "extract", "config": extract(review)}]
    handle, ids = await start_run(skipping, client, blocks, [{"source_block": "in", "target_block": "ex"}], task_queue)
    waiting = await until_waiting_for(handle, [ids["ex"]])
    since = waiting.timing.human_waiting_started_at
    assert since is not None
    record = await skipping.reviews.get(skipping.stack.project_id, review_of(waiting, ids["ex"]))
    assert record.status == "pending"
    return handle, ids, record, since


def check_deadline_wait(state: RunState, decided: ReviewRecord, since: datetime) -> None:
    """The deadline's decision ended the wait, dated at the deadline: exactly three days after the opening."""
    assert decided.decision is not None
    assert state.timing.human_waiting_started_at is None
    assert decided.decision.created_at == since + THREE_DAYS
    assert state.timing.accumulated_human_waiting_ms == ms(THREE_DAYS)
    check_durations(state)


async def test_a_deadline_that_rejects_ends_the_run_in_error_with_its_reason(skipping: Skipping, client: Retab) -> None:
    reason = "nobody checked the invoice in time"
    handle, ids, review, since = await deadline_run(skipping, client, {"action": "reject", "reason": reason})
    with pytest.raises(WorkflowFailureError):
        await handle.result()  # skips the three days to the deadline's timer
    state = await skipping.store.get_model(keys.run_summary(skipping.stack.project_id, handle.id), RunState)
    assert state.lifecycle.status == "error", state.lifecycle
    assert reason in (state.lifecycle.message or "")
    step = next(s for s in state.steps if s.block_id == ids["ex"])
    assert step.lifecycle.status == "error" and reason in (step.lifecycle.message or ""), step.lifecycle

    decided = await skipping.reviews.get(skipping.stack.project_id, review.id)
    assert decided.status == "rejected" and decided.decision is not None
    assert decided.decision.author == DEADLINE_ACTOR
    assert decided.decision.reason == reason
    assert decided.decision.version_id == review.seed_version_id
    check_deadline_wait(state, decided, since)


async def test_a_deadline_that_approves_completes_the_run_with_the_models_output(
    skipping: Skipping, client: Retab
) -> None:
    handle, ids, review, since = await deadline_run(skipping, client, {"action": "approve"})
    done = await handle.result()  # skips the three days to the deadline's timer
    assert done.lifecycle.status == "completed", done.lifecycle

    decided = await skipping.reviews.get(skipping.stack.project_id, review.id)
    assert decided.status == "approved" and decided.decision is not None
    assert decided.decision.author == DEADLINE_ACTOR
    assert decided.decision.version_id == review.seed_version_id
    step = await skipping.store.get_model(keys.step(skipping.stack.project_id, handle.id, ids["ex"]), StepRecord)
    assert step.lifecycle.status == "completed"
    assert step.handle_outputs["output-json-0"].data == {"invoice_number": "G-1", "total": 21}
    check_deadline_wait(done, decided, since)


async def test_a_deadline_decides_at_the_deadline_even_when_the_worker_is_late(
    skipping: Skipping, client: Retab
) -> None:
    # The run has its own task queue, so its worker can be away when the deadline passes.
    queue = f"docflow-timeskip-late-{uuid.uuid4().hex[:8]}"
    async with skipping.worker(queue):
        handle, ids, review, since = await deadline_run(skipping, client, {"action": "approve"}, queue)
    await skipping.env.sleep(THREE_DAYS)  # the timer fires; no worker handles it yet
    await asyncio.sleep(0.5)
    async with skipping.worker(queue):
        done = await handle.result()
    assert done.lifecycle.status == "completed", done.lifecycle
    decided = await skipping.reviews.get(skipping.stack.project_id, review.id)
    assert decided.decision is not None and decided.decision.author == DEADLINE_ACTOR
    assert decided.decision.created_at == since + THREE_DAYS
    assert done.timing.accumulated_human_waiting_ms == ms(THREE_DAYS)
    check_durations(done)


async def test_a_decision_before_the_deadline_stops_its_timer(skipping: Skipping, client: Retab) -> None:
    handle, _, review, since = await deadline_run(skipping, client, {"action": "reject", "reason": "too late"})
    await skipping.env.sleep(timedelta(days=1))
    decided = await approve(skipping, handle, review.id)
    done = await handle.result()  # would skip to the deadline if its timer still held the run
    assert done.lifecycle.status == "completed", done.lifecycle
    assert decided.decision is not None and decided.decision.author == REVIEWER
    assert done.timing.accumulated_human_waiting_ms == ms(decided_at(decided) - since)
    assert timedelta(days=1) <= decided_at(decided) - since < timedelta(days=1, minutes=1)
    assert done.timing.completed_at is not None and done.timing.completed_at < since + THREE_DAYS
    history = await handle.fetch_history()
    kinds = [e.event_type for e in history.events]
    assert kinds.count(EventType.EVENT_TYPE_TIMER_STARTED) == 1
    assert kinds.count(EventType.EVENT_TYPE_TIMER_CANCELED) == 1
    assert EventType.EVENT_TYPE_TIMER_FIRED not in kinds
    check_durations(done)


async def test_a_deadline_that_fails_the_run_closes_the_other_gate_and_its_wait(
    skipping: Skipping, client: Retab
) -> None:
    reason = "the first review expired"
    blocks = [
        {"id": "in", "type": "start_json"},
        {
            "id": "a",
            "type": "extract",
            "config": extract({**ALWAYS, "deadline": "P1D", "on_deadline": {"action": "reject", "reason": reason}}),
        },
        {"id": "b", "type": "extract", "config": extract(ALWAYS)},
    ]
    edges = [{"source_block": "in", "target_block": "a"}, {"source_block": "in", "target_block": "b"}]
    handle, ids = await start_run(skipping, client, blocks, edges)
    both = await until_waiting_for(handle, [ids["a"], ids["b"]])
    since = both.timing.human_waiting_started_at
    assert since is not None
    with pytest.raises(WorkflowFailureError):
        await handle.result()  # skips the day to the first gate's deadline
    state = await skipping.store.get_model(keys.run_summary(skipping.stack.project_id, handle.id), RunState)
    assert state.lifecycle.status == "error" and reason in (state.lifecycle.message or ""), state.lifecycle
    project = skipping.stack.project_id
    rejected = await skipping.reviews.get(project, review_of(both, ids["a"]))
    closed = await skipping.reviews.get(project, review_of(both, ids["b"]))
    assert rejected.status == "rejected" and rejected.decision is not None
    assert closed.status == "cancelled" and closed.closed_at is not None and closed.decision is None
    steps = {s.block_id: s.lifecycle.status for s in state.steps}
    assert steps == {ids["in"]: "completed", ids["a"]: "error", ids["b"]: "cancelled"}
    # B waited on after A's deadline, until the run closed it: one interval, from the first opening to then.
    assert decided_at(rejected) <= closed.closed_at
    assert state.timing.human_waiting_started_at is None
    assert state.timing.accumulated_human_waiting_ms == ms(closed.closed_at - since)
    assert timedelta(days=1) <= closed.closed_at - since < timedelta(days=1, minutes=1)
    check_durations(state)


async def test_cancelling_a_waiting_run_ends_its_wait_and_closes_its_review(skipping: Skipping, client: Retab) -> None:
    blocks = [{"id": "in", "type": "start_json"}, {"id": "ex", "type": "extract", "config": extract(ALWAYS)}]
    handle, ids = await start_run(skipping, client, blocks, [{"source_block": "in", "target_block": "ex"}])
    waiting = await until_waiting_for(handle, [ids["ex"]])
    since = waiting.timing.human_waiting_started_at
    assert since is not None
    await skipping.env.sleep(timedelta(hours=10))
    await handle.cancel()
    with pytest.raises(WorkflowFailureError):
        await handle.result()
    state = await skipping.store.get_model(keys.run_summary(skipping.stack.project_id, handle.id), RunState)
    assert state.lifecycle.status == "cancelled", state.lifecycle
    closed = await skipping.reviews.get(skipping.stack.project_id, review_of(waiting, ids["ex"]))
    assert closed.status == "cancelled" and closed.closed_at is not None
    assert state.timing.human_waiting_started_at is None
    assert state.timing.accumulated_human_waiting_ms == ms(closed.closed_at - since)
    assert timedelta(hours=10) <= closed.closed_at - since < timedelta(hours=10, minutes=1)
    check_durations(state)


async def test_a_decision_that_meets_the_deadline_in_one_task_is_applied_as_answered(
    skipping: Skipping, client: Retab
) -> None:
    """A decision and the deadline handled in one workflow task: the decision applied is the one answered."""
    queue = f"docflow-timeskip-race-{uuid.uuid4().hex[:8]}"
    async with skipping.worker(queue):
        handle, _, review, _ = await deadline_run(skipping, client, {"action": "reject", "reason": "expired"}, queue)
    await skipping.env.sleep(THREE_DAYS)  # the deadline's timer fires; no worker handles it yet
    request = DecisionRequest(
        review_id=review.id, verdict="approved", version_id=review.seed_version_id, author=REVIEWER
    )
    update = asyncio.create_task(handle.execute_update(REVIEW_DECISION_UPDATE, request, result_type=DecisionOutcome))
    await asyncio.sleep(0.5)  # the Update waits beside the timer, for the same workflow task
    async with skipping.worker(queue):
        try:
            answer: DecisionOutcome | None = await update
        except WorkflowUpdateFailedError:
            answer = None
        with contextlib.suppress(WorkflowFailureError):
            await handle.result()
    decided = await skipping.reviews.get(skipping.stack.project_id, review.id)
    assert decided.decision is not None
    # The case meant: the timer's firing and the Update reached the run in one workflow task.
    kinds = [e.event_type for e in (await handle.fetch_history()).events]
    fired = kinds.index(EventType.EVENT_TYPE_TIMER_FIRED)
    task_done = kinds.index(EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED, fired)
    assert kinds[fired + 1 : task_done] == [
        EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
        EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED,
    ]
    assert kinds[task_done + 1] == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED
    if answer is not None and answer.submission_status == "accepted":
        # The reviewer was told the approval was taken: it must be the one applied.
        assert decided.decision.author == REVIEWER and decided.status == "approved", decided.decision
    else:
        assert decided.decision.author == DEADLINE_ACTOR and decided.status == "rejected", decided.decision


async def test_a_refused_decision_leaves_the_gate_and_its_deadline_as_they_were(
    skipping: Skipping, client: Retab
) -> None:
    handle, _, review, since = await deadline_run(skipping, client, {"action": "reject", "reason": "expired"})
    await skipping.env.sleep(timedelta(hours=10))
    # Not a version of this review: the run accepts the Update, its activity refuses it, nothing is written.
    request = DecisionRequest(review_id=review.id, verdict="approved", version_id="rvr_notaversion", author=REVIEWER)
    answer = await handle.execute_update(REVIEW_DECISION_UPDATE, request, result_type=DecisionOutcome)
    assert (answer.submission_status, answer.resume_status) == ("conflict", "failed"), answer
    assert "version_id" in (answer.resume_error or "")
    still = await state_of(handle)
    assert still.lifecycle.status == "awaiting_review"
    # The wait never stopped: the same interval, nothing added yet.
    assert still.timing.human_waiting_started_at == since
    assert still.timing.accumulated_human_waiting_ms == 0
    assert (await skipping.reviews.get(skipping.stack.project_id, review.id)).status == "pending"

    with pytest.raises(WorkflowFailureError):
        await handle.result()  # skips to the deadline, which the refused decision did not move
    decided = await skipping.reviews.get(skipping.stack.project_id, review.id)
    assert decided.status == "rejected" and decided.decision is not None
    assert decided.decision.author == DEADLINE_ACTOR
    assert decided.decision.created_at == since + THREE_DAYS
    state = await skipping.store.get_model(keys.run_summary(skipping.stack.project_id, handle.id), RunState)
    assert state.timing.accumulated_human_waiting_ms == ms(THREE_DAYS)
    check_durations(state)


async def test_a_month_long_wait_adds_nothing_to_history_and_holds_no_worker(skipping: Skipping, client: Retab) -> None:
    blocks = [{"id": "in", "type": "start_json"}, {"id": "ex", "type": "extract", "config": extract(ALWAYS)}]
    queue = f"docflow-timeskip-month-{uuid.uuid4().hex[:8]}"
    async with skipping.worker(queue):
        handle, ids = await start_run(skipping, client, blocks, [{"source_block": "in", "target_block": "ex"}], queue)
        waiting = await until_waiting_for(handle, [ids["ex"]])
    before = len((await handle.fetch_history()).events)
    # No worker at all for the month: the wait is the server's, in its database, not a worker's slot or memory.
    await skipping.env.sleep(timedelta(days=30))
    assert len((await handle.fetch_history()).events) == before
    async with skipping.worker(queue):
        decided = await approve(skipping, handle, review_of(waiting, ids["ex"]))
        done = await handle.result()
    assert done.lifecycle.status == "completed", done.lifecycle
    since = waiting.timing.human_waiting_started_at
    assert since is not None and decided_at(decided) - since >= timedelta(days=30)
    assert done.timing.accumulated_human_waiting_ms == ms(decided_at(decided) - since)
    check_durations(done)
