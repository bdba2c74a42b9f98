"""What the Temporal UI shows of a run: findable by run id, search attributes, activities named for their blocks."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from retab import Retab
from temporalio.api.enums.v1 import EventType

from docflow.temporal import SA_PROJECT, SA_STATUS, SA_TRIGGER, SA_WORKFLOW_ID, connect
from tests.conftest import Stack
from tests.integration.builders import build, chain, wait_for


def _describe_and_history(stack: Stack, run_id: str) -> tuple[Any, Any]:
    async def fetch() -> tuple[Any, Any]:
        client = await connect(stack.settings)
        handle = client.get_workflow_handle(run_id)
        return await handle.describe(), await handle.fetch_history()

    return asyncio.run(fetch())


def test_run_is_findable_in_the_ui_with_search_attributes_and_block_summaries(
    client: Retab, stack: Stack, http_target: Any
) -> None:
    blocks, edges = chain(
        [("in", "start_json", {}), ("fn", "function", {"expression": "input"}),
         ("call", "api_call", {"url": f"{http_target.url}/echo/ui"})]
    )  # fmt: skip
    wf_id, ids = build(client, stack.project_id, blocks, edges)
    run = client.workflows.runs.create(workflow_id=wf_id, json_inputs={ids["in"]: {"a": 1}}, version="draft")
    assert wait_for(client, run.id).lifecycle.status == "completed"

    ui = f"http://127.0.0.1:{stack.settings.temporal_ui_port}/api/v1/namespaces/default/workflows/{run.id}"
    answer = httpx.get(ui, timeout=10)
    assert answer.status_code == 200 and run.id in answer.text

    desc, history = _describe_and_history(stack, run.id)
    attrs = desc.typed_search_attributes
    assert attrs.get(SA_PROJECT) == stack.project_id
    assert attrs.get(SA_WORKFLOW_ID) == wf_id
    assert attrs.get(SA_STATUS) == "completed"
    assert attrs.get(SA_TRIGGER) == "api"
    assert desc.workflow_type == "RunWorkflow"

    kinds = (EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED, EventType.EVENT_TYPE_MARKER_RECORDED)
    summaries = [
        e.user_metadata.summary.data.decode()
        for e in history.events
        if e.event_type in kinds and e.user_metadata.HasField("summary")
    ]
    joined = " ".join(summaries)
    for block in ("fn", "call"):
        assert ids[block] in joined, f"no activity summary names block {ids[block]}: {summaries}"
    scheduled = [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]
    assert "CallApi" in scheduled and "LoadWorkflowVersion" in scheduled
