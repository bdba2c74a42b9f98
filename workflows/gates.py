"""Review gates inside a run: open gates, decisions arriving by Update or signal, deadlines, waiting time.

A gate opens when a block's activity returns with `review` set (its predicate fired; the activity stored the
review and its first version). The block's task then waits here, on a durable condition: no polling, no
activity held open, nothing added to history while it waits. What ends the wait:

- a decision, by the Update `review_decision` (its validator refuses, before anything reaches history, a
  decision on a review that is not open here, one already taken, or a rejection without a reason) or by the
  signal `review-decision` (the same checks; a signal that fails them is recorded in `ignored_signals` and
  ignored). The decision is applied by an activity (review record, step record, artifact); an approval returns
  the approved version's outputs to the walker, a rejection fails the step with the reason. A decision the
  activity refuses (a version that is not the review's) leaves the gate open;
- the gate's deadline, on a durable timer: its stated outcome is applied as a decision by `DEADLINE_ACTOR`;
- the run failing at another block, or being cancelled: the review is closed as cancelled (a batch's gates by
  the signal `loop-gates-close`, or the batch's cancellation).

Waiting time (docflow.waiting) counts from the gate's opening to the decision's acceptance (a deadline's decision: the
deadline), counted once the decision is applied (a refused one leaves the wait running), on the workflow's
clock. While a gate is open the run's lifecycle is `awaiting_review` with `waiting_for_block_ids`, mirrored in
the `DocflowStatus` and `DocflowAwaitingReview` search attributes and in the UI's current details.

Gates inside a loop batch (workflows.loop_batch) live in the batch's workflow, where their iterations run; the
review record names that workflow, so decisions reach it. `BatchGates` tells the run, by the signal
`loop-gates` (`GateReport`), which of them wait and when each wait started and ended; the run's `Gates`
shows them beside its own and counts their waiting time in the same set, so overlapping waits count once.
A batch that ends without a decision on its gates (cancelled, or stopped by a failed iteration) closes their
reviews itself (`close_reviews`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError
from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from docflow.gates import AppliedDecision, CloseReviewsInput, GateReport, GateTime
    from docflow.loops import BatchParked, Progress, iteration_of
    from docflow.models import Block
    from docflow.reviews import DEADLINE_ACTOR, DecisionOutcome, DecisionRequest
    from docflow.runs import (
        BlockOutcome,
        IgnoredSignal,
        RunContext,
        RunLifecycle,
        RunState,
        StepLifecycle,
        StepState,
    )
    from docflow.temporal import (
        LOOP_BATCH_PARKED_SIGNAL,
        LOOP_GATES_CLOSE_SIGNAL,
        LOOP_GATES_SIGNAL,
        REVIEW_DECISION_SIGNAL,
        REVIEW_DECISION_UPDATE,
        SA_AWAITING_REVIEW,
        SA_STATUS,
    )
    from docflow.waiting import OpenGates, close_gate, open_gate
    from docflow.webhooks import EventType
    from workflows import options
    from workflows.activity_names import CLOSE_REVIEWS
    from workflows.progress import show_progress

MAX_IGNORED_SIGNALS = 20
DEFAULT_DEADLINE_REASON = "no decision before the review deadline"

Apply = Callable[["Gate", Block], Awaitable[AppliedDecision]]
Notify = Callable[[EventType, str | None, dict[str, Any]], None]


class GateClosed(Exception):
    """The gate closed without a decision (the run failed elsewhere); the step ends cancelled with the reason."""


@dataclass
class Gate:
    """One open review gate of a step."""

    review_id: str
    block_id: str
    step_id: str
    seed_version_id: str
    outcome: BlockOutcome
    deadline_at: datetime | None = None
    on_deadline: str | None = None
    deadline_reason: str | None = None
    decision: DecisionRequest | None = None
    decided_at: datetime | None = None
    by_signal: bool = False
    # Set once the decision was applied or refused, for the Update waiting on it.
    result: DecisionOutcome | None = None
    closing: str | None = None


class Gates:
    """The run's review gates; the Update, the signal and the walker's blocks all go through here."""

    def __init__(self, state: RunState, notify: Notify) -> None:
        self.state = state
        self.notify = notify
        self.open: dict[str, Gate] = {}
        self.waiting = OpenGates()  # review gates counted in the waiting time
        # Reviews whose wait ended without a decision (cancellation, the run failing elsewhere): the run closes them.
        self.to_close: list[str] = []
        # Gates waiting in loop batches (GateReport): by batch workflow id, review id → block id.
        self.remote: dict[str, dict[str, str]] = {}
        self.remote_counted: set[str] = set()  # their waits counted in `waiting`, until each ends
        self.closers: list[asyncio.Task[None]] = []  # signals closing batches' gates, awaited before the run ends
        self.told_close: set[str] = set()
        self.closing_reason: str | None = None  # set once the run failed elsewhere: gates opening later close too

    # -- decisions --------------------------------------------------------------------------------

    def check(self, req: DecisionRequest) -> Gate:
        """The open gate a decision is for; ApplicationError (nothing applied) when it cannot be taken."""
        gate = self.open.get(req.review_id)
        if gate is None or gate.closing is not None:
            raise ApplicationError(f"review '{req.review_id}' is not open in this run", type="ReviewNotOpen")
        if gate.decision is not None:
            raise ApplicationError(f"review '{req.review_id}' already has a decision", type="ReviewNotOpen")
        if req.verdict == "rejected" and not (req.reason or "").strip():
            raise ApplicationError("reason: a rejection needs a reason", type="InvalidDecision")
        return gate

    async def decide(self, req: DecisionRequest) -> DecisionOutcome:
        """An accepted Update: hand the decision to the gate, answer once it is applied (or refused)."""
        gate = self.check(req)
        self._accept(gate, req, by_signal=False)
        await workflow.wait_condition(lambda: gate.result is not None)
        assert gate.result is not None
        return gate.result

    def signal(self, payload: Any) -> None:
        """A decision by signal: applied like an Update's when valid, else recorded and ignored."""
        try:
            req = DecisionRequest.model_validate(payload)
            gate = self.check(req)
        except ValidationError as exc:
            self._ignore(payload, f"not a decision: {exc.errors()[0]['msg']} at {_loc(exc)}")
            return
        except ApplicationError as exc:
            self._ignore(payload, str(exc))
            return
        self._accept(gate, req, by_signal=True)

    def _accept(self, gate: Gate, req: DecisionRequest, *, by_signal: bool, at: datetime | None = None) -> None:
        gate.decision, gate.decided_at, gate.by_signal, gate.result = req, at or workflow.now(), by_signal, None
        self.refresh()

    def _ignore(self, payload: Any, reason: str) -> None:
        workflow.logger.warning("review-decision signal ignored: %s", reason)
        kept = payload if len(repr(payload)) <= 2000 else repr(payload)[:2000]
        self.state.ignored_signals.append(IgnoredSignal(received_at=workflow.now(), reason=reason, payload=kept))
        del self.state.ignored_signals[:-MAX_IGNORED_SIGNALS]

    # -- the wait ---------------------------------------------------------------------------------

    async def wait(self, block: Block, step: StepState, outcome: BlockOutcome, apply: Apply) -> BlockOutcome:
        """Hold the step until its review is decided; the approved outcome, or an error for a rejection."""
        opened = outcome.review
        assert opened is not None
        now = workflow.now()
        # Counted on the run's clock from the gate's opening. The review record's `deadline_at` was counted from
        # the activity's clock when it stored the review: normally milliseconds earlier.
        deadline = None if opened.deadline_seconds is None else now + timedelta(seconds=opened.deadline_seconds)
        gate = Gate(
            review_id=opened.review_id,
            block_id=block.id,
            step_id=step.step_id,
            seed_version_id=opened.seed_version_id,
            outcome=outcome,
            deadline_at=deadline,
            on_deadline=opened.on_deadline,
            deadline_reason=opened.deadline_reason,
        )
        step.lifecycle = StepLifecycle(status="awaiting_review")
        step.artifact, step.model = outcome.artifact, outcome.model
        step.review_evaluation, step.review_id = outcome.review_evaluation, opened.review_id
        self.open[gate.review_id] = gate
        if self.closing_reason is not None:
            gate.closing = self.closing_reason  # the run already failed elsewhere: no decision will come
        self._wait_started(gate.review_id, now)
        self.refresh()
        self.notify("workflow.review.opened", gate.review_id, self._event(gate))
        try:
            return await self._until_decided(gate, block, apply)
        except (asyncio.CancelledError, GateClosed):
            self.to_close.append(gate.review_id)
            raise
        finally:
            self.open.pop(gate.review_id, None)
            self._wait_ended(gate.review_id, workflow.now())
            if gate.result is None:
                gate.result = DecisionOutcome(submission_status="conflict", resume_status="skipped")
            self.refresh()

    async def _until_decided(self, gate: Gate, block: Block, apply: Apply) -> BlockOutcome:
        while True:
            await self._next_decision(gate)
            if gate.closing is not None:
                raise GateClosed(gate.closing)
            decision = gate.decision
            assert decision is not None
            applied = await apply(gate, block)
            if applied.refused is not None:
                # Nothing was written: the gate stays open and its waiting time goes on from now.
                if gate.by_signal:
                    self._ignore(decision.model_dump(mode="json"), applied.refused)
                gate.result = DecisionOutcome(
                    submission_status="conflict", resume_status="failed", resume_error=applied.refused
                )
                gate.decision = None
                self.refresh()
                continue
            # The wait ended when the decision was accepted (or at the deadline), not when it was applied.
            assert gate.decided_at is not None
            self._wait_ended(gate.review_id, gate.decided_at)
            gate.result = DecisionOutcome()
            self.notify("workflow.review.decided", gate.review_id, self._event(gate))
            if decision.verdict == "rejected":
                raise ApplicationError(f"review rejected: {decision.reason}", type="ReviewRejected", non_retryable=True)
            assert applied.outcome is not None
            return applied.outcome

    async def _next_decision(self, gate: Gate) -> None:
        """Wait for a decision or a closing; at the deadline, its stated outcome becomes the decision."""

        def arrived() -> bool:
            return gate.decision is not None or gate.closing is not None

        if gate.deadline_at is None:
            await workflow.wait_condition(arrived)
            return
        remaining = (gate.deadline_at - workflow.now()).total_seconds()
        try:
            await workflow.wait_condition(arrived, timeout=max(remaining, 0.001))
        except TimeoutError:
            approve = gate.on_deadline == "approve"
            req = DecisionRequest(
                review_id=gate.review_id,
                verdict="approved" if approve else "rejected",
                version_id=gate.seed_version_id,
                reason=None if approve else (gate.deadline_reason or DEFAULT_DEADLINE_REASON),
                author=DEADLINE_ACTOR,
            )
            # Decided at the deadline itself, not when a (possibly late) worker handled its timer.
            self._accept(gate, req, by_signal=False, at=gate.deadline_at)

    def close_all(self, reason: str) -> None:
        """The run failed elsewhere: gates still waiting for a decision close as cancelled (batches' too)."""
        self.closing_reason = reason
        for gate in self.open.values():
            if gate.decision is None:
                gate.closing = reason
        for source in sorted(set(self.remote) - self.told_close):
            self.told_close.add(source)
            self._tell_close(source, reason)

    def _tell_close(self, source: str, reason: str) -> None:
        async def send() -> None:
            try:
                await workflow.get_external_workflow_handle(source).signal(LOOP_GATES_CLOSE_SIGNAL, reason)
            except Exception as exc:  # noqa: BLE001 - the batch already ended: its gates are closed
                workflow.logger.warning("loop-gates-close not delivered to %s: %s", source, exc)

        self.closers.append(asyncio.create_task(send()))

    # -- waiting time ------------------------------------------------------------------------------

    def _wait_started(self, review_id: str, at: datetime) -> None:
        open_gate(self.state.timing, self.waiting, review_id, at)

    def _wait_ended(self, review_id: str, at: datetime) -> None:
        close_gate(self.state.timing, self.waiting, review_id, at)

    # -- gates of loop batches -------------------------------------------------------------------

    def report(self, report: GateReport) -> None:
        """A loop batch's gates changed: count their waits, show the ones waiting."""
        for started in report.opened:
            self.remote_counted.add(started.review_id)
            open_gate(self.state.timing, self.waiting, started.review_id, started.at)
        for ended in report.closed:
            self.remote_counted.discard(ended.review_id)
            close_gate(self.state.timing, self.waiting, ended.review_id, ended.at)
        if report.waiting:
            self.remote[report.source] = dict(report.waiting)
        else:
            self.remote.pop(report.source, None)
        if self.closing_reason is not None:
            # The run already failed elsewhere: a gate a batch opened since then closes at once.
            self.close_all(self.closing_reason)
        self.refresh()

    def drop_remote(self, at: datetime) -> None:
        """The run ends: waits told by batches that did not report their end stop now (the batches are gone)."""
        for review_id in sorted(self.remote_counted):
            close_gate(self.state.timing, self.waiting, review_id, at)
        self.remote_counted.clear()
        self.remote.clear()
        self.refresh()

    # -- what the run shows ------------------------------------------------------------------------

    def waiting_gates(self) -> dict[str, str]:
        """The gates held here waiting for a decision: review id → block id."""
        return {g.review_id: g.block_id for g in self.open.values() if g.decision is None and g.closing is None}

    def refresh(self) -> None:
        """The run's lifecycle and search attributes follow the gates waiting for a decision (batches' too)."""
        blocks = set(self.waiting_gates().values())
        for remote in self.remote.values():
            blocks.update(remote.values())
        waiting = sorted(blocks)
        current = self.state.lifecycle.status
        if waiting and current in {"running", "awaiting_review"}:
            if self.state.lifecycle.waiting_for_block_ids != waiting:
                self.state.lifecycle = RunLifecycle(status="awaiting_review", waiting_for_block_ids=waiting)
                workflow.upsert_search_attributes(
                    [SA_STATUS.value_set("awaiting_review"), SA_AWAITING_REVIEW.value_set(waiting)]
                )
        elif not waiting and current == "awaiting_review":
            self.state.lifecycle = RunLifecycle(status="running")
            workflow.upsert_search_attributes([SA_STATUS.value_set("running"), SA_AWAITING_REVIEW.value_unset()])
        show_progress(self.state)

    def _event(self, gate: Gate) -> dict[str, Any]:
        data: dict[str, Any] = {
            "review_id": gate.review_id,
            "run_id": self.state.run_id,
            "workflow_id": self.state.workflow_id,
            "block_id": gate.block_id,
            "step_id": gate.step_id,
        }
        if gate.decision is not None:
            data.update(
                verdict=gate.decision.verdict,
                version_id=gate.decision.version_id,
                reason=gate.decision.reason,
                author=gate.decision.author.model_dump(mode="json"),
            )
        return data


class BatchGates(Gates):
    """A loop batch's gates: held here, told to the run (signal `loop-gates`), which shows them and counts them.

    Reports go one at a time, in order; what changes while one is on its way goes in the next.
    """

    def __init__(
        self,
        state: RunState,
        notify: Notify,
        run_id: str,
        source: str,
        coordinator: str | None = None,
        batch: int = 0,
        iteration_prefix: str = "",
    ) -> None:
        super().__init__(state, notify)
        self.run_id = run_id
        self.source = source
        # Parked: every unfinished iteration only waits for a review; the coordinator may start the next batch.
        self.coordinator = coordinator
        self.batch = batch
        self.iteration_prefix = iteration_prefix  # the step-id prefix of this batch's iterations
        self.progress = Progress()
        self.progress.changed = self._check_parked
        self.held = 0
        self.held_told = 0
        self.told: dict[str, str] = {}
        self.opened: list[GateTime] = []
        self.closed: list[GateTime] = []
        self.dirty = False
        self.sender: asyncio.Task[None] | None = None
        self.last_report: dict[str, str] = {}

    def _wait_started(self, review_id: str, at: datetime) -> None:
        super()._wait_started(review_id, at)
        self.opened.append(GateTime(review_id=review_id, at=at))
        self._kick()

    def _wait_ended(self, review_id: str, at: datetime) -> None:
        if review_id in self.waiting.ids:
            self.closed.append(GateTime(review_id=review_id, at=at))
            self._kick()
        super()._wait_ended(review_id, at)

    def refresh(self) -> None:
        # The batch has no lifecycle or search attributes of its own to show: the run shows its gates.
        if self.waiting_gates() != self.told:
            self._kick()
        self._check_parked()

    def _check_parked(self) -> None:
        progress = self.progress
        waiting = {
            iteration_of(g.step_id, self.iteration_prefix)
            for g in self.open.values()
            if g.decision is None and g.closing is None
        }
        parked = progress.launched_all and progress.running and progress.running <= waiting
        held = len(progress.running) if parked else 0
        if held != self.held:
            self.held = held
            self._kick()

    def _kick(self) -> None:
        self.dirty = True
        if self.sender is None or self.sender.done():
            self.sender = asyncio.create_task(self._send())

    async def _send(self) -> None:
        while self.dirty:
            self.dirty = False
            self.told = self.waiting_gates()
            report = GateReport(source=self.source, waiting=self.told, opened=self.opened, closed=self.closed)
            self.opened, self.closed = [], []
            if report.waiting != self.last_report or report.opened or report.closed:
                self.last_report = report.waiting
                await self._signal(self.run_id, LOOP_GATES_SIGNAL, report)
            if self.coordinator is not None and self.held != self.held_told:
                self.held_told = self.held
                parked = BatchParked(batch=self.batch, held=self.held)
                await self._signal(self.coordinator, LOOP_BATCH_PARKED_SIGNAL, parked)

    async def _signal(self, workflow_id: str, name: str, arg: Any) -> None:
        try:
            await workflow.get_external_workflow_handle(workflow_id).signal(name, arg)
        except Exception as exc:  # noqa: BLE001 - the receiver already ended: nobody is left to tell
            workflow.logger.warning("%s not delivered to %s: %s", name, workflow_id, exc)

    async def flush(self) -> None:
        """Before the batch ends: every report delivered (or given up)."""
        while self.sender is not None and not self.sender.done():
            await self.sender


async def close_reviews(gates: Gates, run: RunContext, reason: str) -> None:
    """Reviews whose wait ended without a decision are closed as cancelled, with the reason."""
    review_ids, gates.to_close = gates.to_close, []
    if not review_ids:
        return
    await workflow.execute_activity(
        CLOSE_REVIEWS,
        CloseReviewsInput(run=run, review_ids=review_ids, reason=reason, closed_at=workflow.now()),
        start_to_close_timeout=options.PERSIST_TIMEOUT,
        retry_policy=options.STORAGE_RETRY,
        summary=f"close {len(review_ids)} review(s): {reason}",
    )


def _loc(exc: ValidationError) -> str:
    return ".".join(str(p) for p in exc.errors()[0]["loc"]) or "the payload"


class DecisionHandlers:
    """The decision handlers of a workflow that holds gates in `self._gates` (the run, and a loop batch).

    The Update `review_decision`, whose validator refuses a decision on a gate that is not open before it
    reaches history, and the signal `review-decision` for operators (the web UI, `temporal workflow signal`),
    invalid ones recorded in `ignored_signals`. Temporal collects handlers a workflow class inherits.
    """

    _gates: Gates

    @workflow.update(name=REVIEW_DECISION_UPDATE)
    async def review_decision(self, decision: DecisionRequest) -> DecisionOutcome:
        """A reviewer's decision (the API): answered once the workflow has applied it."""
        return await self._gates.decide(decision)

    @review_decision.validator
    def _check_decision(self, decision: DecisionRequest) -> None:
        self._gates.check(decision)

    @workflow.signal(name=REVIEW_DECISION_SIGNAL)
    def review_decision_signal(self, payload: Any) -> None:
        """The same decision from an operator; one that is not valid is recorded and ignored."""
        self._gates.signal(payload)
