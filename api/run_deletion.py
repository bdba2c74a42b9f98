"""Deleting a run: stop what it runs, then remove what it wrote; the tombstone hides it throughout.

The order is the rule. The API writes the tombstone first (`keys.deleted_run`), so every read is 404 from
the moment a delete is accepted, and blocks check it before they write (`activities.blocks`). Then the run
is cancelled: its workflow cancels its activities with `WAIT_CANCELLATION_COMPLETED`, they get the
cancellation through their heartbeats, and the workflow closes only once they have stopped, so nothing it
runs writes after its data is gone. A run that does not close in time (no worker, a stuck one) is
terminated. Only then go its artifacts, its reviews (with their versions and queue entries), its records
and its Temporal execution.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode

from docflow import keys
from docflow.runs import RunState, StepRecord
from storage.objects import NotFound, ObjectStore
from storage.reviews import ReviewStore
from workflows import options


async def run_deleted(store: ObjectStore, project_id: str, run_id: str) -> bool:
    """Whether the run was deleted (its tombstone is kept for good)."""
    return await store.exists(keys.deleted_run(project_id, run_id))


async def stop_run(handle: WorkflowHandle[Any, Any], wait_seconds: float) -> None:
    """Cancel the run and wait until it has closed; terminate it if it has not within `wait_seconds`."""
    await _ignore_closed(handle.cancel())
    if await _closed_within(handle, wait_seconds):
        return
    await _ignore_closed(handle.terminate(reason="run deleted"))
    # A terminated run's activities are not waited for: they hear of it at their next heartbeat and stop.
    await asyncio.sleep(options.HEARTBEAT_TIMEOUT.total_seconds())


async def delete_run_data(store: ObjectStore, project_id: str, run_id: str) -> None:
    """Every artifact the run's summary or step records name, then everything under the run's prefix."""
    try:
        summary = await store.get_model(keys.run_summary(project_id, run_id), RunState)
        named = {a.id for s in summary.steps for a in (s.artifact, s.review_evaluation) if a}
    except NotFound:
        named = set()  # a terminated run wrote no summary: its step records still name its artifacts
    found = await store.list_keys(keys.steps_prefix(project_id, run_id))
    records = await asyncio.gather(*(_read_step(store, key) for key in found))
    # A cancelled step's artifact is named by its record only, not by the summary.
    named |= {a.id for r in records if r is not None for a in (r.artifact, r.review_evaluation) if a is not None}
    # Artifacts and reviews first: what names them is under the prefix, so a retried delete finds them again.
    await asyncio.gather(*(store.delete(keys.artifact(project_id, a)) for a in sorted(named)))
    await ReviewStore(store).delete_run_reviews(project_id, run_id)
    await store.delete_prefix(keys.run_prefix(project_id, run_id))


async def delete_execution(client: Client, run_id: str) -> None:
    """Ask Temporal to delete the execution; it does so in the background."""
    from temporalio.api.common.v1 import WorkflowExecution as ProtoExecution
    from temporalio.api.workflowservice.v1 import DeleteWorkflowExecutionRequest

    request = DeleteWorkflowExecutionRequest(
        namespace=client.namespace, workflow_execution=ProtoExecution(workflow_id=run_id)
    )
    await _ignore_closed(client.workflow_service.delete_workflow_execution(request))


async def _read_step(store: ObjectStore, key: str) -> StepRecord | None:
    try:
        return await store.get_model(key, StepRecord)
    except NotFound:
        return None


async def _ignore_closed(call: Awaitable[Any]) -> None:
    """Run a Temporal call that may find the run gone or closed already (NOT_FOUND)."""
    try:
        await call
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise


async def _closed_within(handle: WorkflowHandle[Any, Any], seconds: float) -> bool:
    """Whether the run has closed, polling its description for up to `seconds`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    pause = 0.05
    while (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(pause)
        pause = min(pause * 2, 0.5)
    return True
