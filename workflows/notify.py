"""Webhook events of a run, sent by activities from the workflow that sees them (the run, or a loop batch for
its review gates); each workflow waits for its deliveries (or their give-up) before it ends.

Only a project with an endpoint sends events (`RunWorkflowInput.webhooks`). The event key is derived from the
run (and the review), so a retried delivery carries the same event id.
"""

from __future__ import annotations

import asyncio
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from docflow.runs import RunWorkflowInput
    from docflow.webhooks import EventType, WebhookInput, event_key
    from workflows import options
    from workflows.activity_names import SEND_WEBHOOK


class Notifier:
    """Starts one delivery activity per event; `settle` waits for them all."""

    def __init__(self, inp: RunWorkflowInput) -> None:
        self.inp = inp
        self.tasks: list[asyncio.Task[Any]] = []

    def __call__(self, event_type: EventType, review_id: str | None, data: dict[str, Any]) -> None:
        if not self.inp.webhooks:
            return
        parts = [self.inp.run_id] if review_id is None else [self.inp.run_id, review_id]
        arg = WebhookInput(
            project_id=self.inp.project_id,
            event_type=event_type,
            event_key=event_key(*parts),
            data=data,
            occurred_at=workflow.now(),
        )
        task = workflow.start_activity(
            SEND_WEBHOOK,
            arg,
            start_to_close_timeout=options.WEBHOOK_TIMEOUT,
            retry_policy=options.WEBHOOK_RETRY,
            summary=f"webhook {event_type}",
        )
        self.tasks.append(task)

    async def settle(self) -> None:
        """Every delivery done (or given up)."""
        if self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)
