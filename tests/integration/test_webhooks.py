"""Webhooks through a real Temporal worker: signed events reach a real receiver, retried, refused, recorded.

A tiny workflow (here, on its own task queue, in this process) calls the SendWebhook activity on the test
stack's task queue, where the stack's worker process runs it with the webhook settings of tests/conftest.py:
the test project's events go to a receiver on 127.0.0.2; a project of no key points at 127.0.0.1, which the
egress rule refuses.
"""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

import pytest
from pydantic import BaseModel
from temporalio import workflow
from temporalio.api.history.v1 import History
from temporalio.client import Client, WorkflowFailureError
from temporalio.common import RetryPolicy
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from docflow import keys
from docflow.temporal import connect
from docflow.webhooks import (
    REVIEW_OPENED,
    RUN_COMPLETED,
    RUN_FAILED,
    DeliveryRecord,
    WebhookInput,
    event_id,
    event_key,
    verify,
)
from storage.objects import NotFound, ObjectStore
from tests.conftest import DENIED_WEBHOOK_PROJECT, WEBHOOK_SECRET, Stack
from tests.webhook_receiver import WebhookReceiver
from workflows.activity_names import SEND_WEBHOOK
from workflows.options import WEBHOOK_RETRY, WEBHOOK_TIMEOUT


class SendOneInput(BaseModel):
    """The test workflow's input: the event, the stack's task queue, and a shorter retry policy if given."""

    webhook: WebhookInput
    task_queue: str
    max_attempts: int | None = None


@workflow.defn(name="WebhookTestWorkflow")
class SendOne:
    """Calls SendWebhook as the run workflow will: named activity, WEBHOOK_TIMEOUT, WEBHOOK_RETRY."""

    @workflow.run
    async def run(self, inp: SendOneInput) -> str:
        retry = WEBHOOK_RETRY
        if inp.max_attempts is not None:
            retry = RetryPolicy(initial_interval=timedelta(milliseconds=200), maximum_attempts=inp.max_attempts)
        result: str = await workflow.execute_activity(
            SEND_WEBHOOK,
            inp.webhook,
            task_queue=inp.task_queue,
            start_to_close_timeout=WEBHOOK_TIMEOUT,
            retry_policy=retry,
            result_type=str,
        )
        return result


async def _send(stack: Stack, inp: WebhookInput, max_attempts: int | None = None) -> tuple[str, bytes]:
    """Run the test workflow to its end: SendWebhook's result, and the workflow's history as bytes."""
    client: Client = await connect(stack.settings)
    queue = f"webhooks-{uuid.uuid4().hex[:8]}"
    async with Worker(client, task_queue=queue, workflows=[SendOne], workflow_runner=UnsandboxedWorkflowRunner()):
        handle = await client.start_workflow(
            SendOne.run,
            SendOneInput(webhook=inp, task_queue=stack.settings.task_queue, max_attempts=max_attempts),
            id=f"webhook-test-{uuid.uuid4().hex}",
            task_queue=queue,
            execution_timeout=timedelta(seconds=120),
        )
        try:
            result = await handle.result()
        finally:
            history = await handle.fetch_history()
    return result, bytes(History(events=history.events).SerializeToString())


async def _record(store: ObjectStore, project: str, evt: str) -> DeliveryRecord:
    return await store.get_model(keys.webhook_delivery(project, evt), DeliveryRecord)


def _run() -> str:
    return f"run_{uuid.uuid4().hex[:12]}"


async def test_a_review_event_arrives_signed_and_the_receiver_verifies_it(
    stack: Stack, store: ObjectStore, webhook_receivers: tuple[WebhookReceiver, WebhookReceiver]
) -> None:
    receiver, _ = webhook_receivers
    run, review = _run(), f"rev_{uuid.uuid4().hex[:8]}"
    inp = WebhookInput(
        project_id=stack.project_id,
        event_type=REVIEW_OPENED,
        event_key=event_key(run, review),
        data={"review_id": review, "run_id": run, "block_id": "extract-1"},
    )
    evt = event_id(stack.project_id, REVIEW_OPENED, event_key(run, review))

    result, history = await _send(stack, inp)

    assert result == "delivered"
    [delivery] = receiver.received(evt)
    assert verify(WEBHOOK_SECRET, delivery.headers["X-Retab-Signature"], delivery.body, tolerance_s=60)
    assert not verify("whsec-not-the-secret-000", delivery.headers["X-Retab-Signature"], delivery.body)
    assert not verify(WEBHOOK_SECRET, delivery.headers["X-Retab-Signature"], delivery.body + b" ")
    assert delivery.headers["X-Retab-Environment"] == stack.settings.environment
    assert delivery.headers["Content-Type"] == "application/json"
    event = delivery.event
    assert event["id"] == evt and event["type"] == "workflow.review.opened"
    assert event["organization_id"] == stack.project_id
    assert event["environment"] == stack.settings.environment
    # A review's opening event carries a reviewer link to it (issue 11), signed by the worker.
    assert event["data"].pop("review_url").startswith(f"{stack.settings.api_url}/review/l/")
    assert event["data"] == {"review_id": review, "run_id": run, "block_id": "extract-1"}
    assert abs(int(delivery.headers["X-Retab-Signature"].split(",")[0][2:]) - time.time()) < 60
    record = await _record(store, stack.project_id, evt)
    assert record.outcome == "delivered" and [(a.attempt, a.status) for a in record.attempts] == [(1, 200)]
    # The secret is the worker's: it is not in the workflow's history, the delivery record or any server's log.
    assert WEBHOOK_SECRET.encode() not in history
    assert WEBHOOK_SECRET not in record.model_dump_json()
    for log in (stack.settings.data_dir / "logs").glob("*.log"):
        assert WEBHOOK_SECRET.encode() not in log.read_bytes(), log.name

    # The same notification sent again (same id) is not delivered a second time.
    again, _ = await _send(stack, inp)
    assert again == "delivered" and len(receiver.received(evt)) == 1


async def test_an_endpoint_failing_twice_gets_the_event_once_on_the_third_attempt(
    stack: Stack, store: ObjectStore, webhook_receivers: tuple[WebhookReceiver, WebhookReceiver]
) -> None:
    receiver, _ = webhook_receivers
    run = _run()
    evt = event_id(stack.project_id, RUN_COMPLETED, event_key(run))
    receiver.fail(evt, 2)
    inp = WebhookInput(project_id=stack.project_id, event_type=RUN_COMPLETED, event_key=event_key(run))

    result, _ = await _send(stack, inp)

    assert result == "delivered"
    deliveries = receiver.received(evt)
    assert len(deliveries) == 3  # two answered 500, the third 200: delivered once
    assert {d.event["id"] for d in deliveries} == {evt}  # every retry carries the same id, for dedup
    assert {d.event["created_at"] for d in deliveries} == {deliveries[0].event["created_at"]}
    assert all(verify(WEBHOOK_SECRET, d.headers["X-Retab-Signature"], d.body, tolerance_s=60) for d in deliveries)
    record = await _record(store, stack.project_id, evt)
    assert record.outcome == "delivered"
    assert [(a.attempt, a.status) for a in record.attempts] == [(1, 500), (2, 500), (3, 200)]
    assert record.attempts[0].error is None and all(a.duration_ms >= 0 for a in record.attempts)
    assert record.attempts[0].at < record.attempts[1].at < record.attempts[2].at


async def test_an_endpoint_failing_past_the_last_attempt_is_recorded_as_failed(
    stack: Stack, store: ObjectStore, webhook_receivers: tuple[WebhookReceiver, WebhookReceiver]
) -> None:
    receiver, _ = webhook_receivers
    run = _run()
    evt = event_id(stack.project_id, RUN_FAILED, event_key(run))
    receiver.fail(evt, 10)
    inp = WebhookInput(project_id=stack.project_id, event_type=RUN_FAILED, event_key=event_key(run))

    with pytest.raises(WorkflowFailureError):
        await _send(stack, inp, max_attempts=2)

    assert len(receiver.received(evt)) == 2
    record = await _record(store, stack.project_id, evt)
    assert record.outcome == "failed"
    assert [(a.attempt, a.status) for a in record.attempts] == [(1, 500), (2, 500)]


async def test_a_redirect_is_not_a_delivery(
    stack: Stack, store: ObjectStore, webhook_receivers: tuple[WebhookReceiver, WebhookReceiver]
) -> None:
    receiver, _ = webhook_receivers
    run = _run()
    evt = event_id(stack.project_id, RUN_COMPLETED, event_key(run))
    receiver.redirect(evt, f"{receiver.url}/moved-{run}")
    inp = WebhookInput(project_id=stack.project_id, event_type=RUN_COMPLETED, event_key=event_key(run))

    with pytest.raises(WorkflowFailureError):
        await _send(stack, inp, max_attempts=1)

    # The egress client followed the 302 (as a GET, without the event); the endpoint did not take the event.
    assert [d.method for d in receiver.received(evt)] == ["POST"]
    record = await _record(store, stack.project_id, evt)
    assert record.outcome == "failed"
    [attempt] = record.attempts
    assert attempt.error is not None and "redirected" in attempt.error


async def test_an_endpoint_on_a_denied_address_is_refused_recorded_and_receives_nothing(
    stack: Stack, store: ObjectStore, webhook_receivers: tuple[WebhookReceiver, WebhookReceiver]
) -> None:
    _, denied = webhook_receivers
    run = _run()
    evt = event_id(DENIED_WEBHOOK_PROJECT, RUN_COMPLETED, event_key(run))
    inp = WebhookInput(project_id=DENIED_WEBHOOK_PROJECT, event_type=RUN_COMPLETED, event_key=event_key(run))

    result, _ = await _send(stack, inp)

    assert result == "refused"
    assert denied.deliveries == []
    record = await _record(store, DENIED_WEBHOOK_PROJECT, evt)
    assert record.outcome == "refused"
    [attempt] = record.attempts
    assert attempt.status is None and attempt.error is not None and "refused" in attempt.error


async def test_a_project_without_an_endpoint_gets_nothing_and_no_record(
    stack: Stack, store: ObjectStore, webhook_receivers: tuple[WebhookReceiver, WebhookReceiver]
) -> None:
    receiver, denied = webhook_receivers
    run = _run()
    evt = event_id(stack.other_project_id, RUN_COMPLETED, event_key(run))
    inp = WebhookInput(project_id=stack.other_project_id, event_type=RUN_COMPLETED, event_key=event_key(run))

    result, _ = await _send(stack, inp)

    assert result == "not_configured"
    assert receiver.received(evt) == [] and denied.received(evt) == []
    with pytest.raises(NotFound):
        await _record(store, stack.other_project_id, evt)
