"""`Idempotency-Key` on creating requests: bound to the request it first came with, and safe across crashes."""

from __future__ import annotations

import asyncio
import base64
import uuid
from typing import Any

import httpx
from retab import Retab
from retab.types.mime import MIMEData

from api import idempotency
from api.definitions import Definitions, WorkflowCreate
from docflow import keys
from docflow.ids import RUN, WORKFLOW, derived_id
from storage.objects import ObjectStore
from tests.conftest import Stack
from tests.integration.builders import build, wait_for


def _data_url(text: str) -> str:
    return "data:text/plain;base64," + base64.b64encode(text.encode()).decode()


def _run_workflow(client: Retab, stack: Stack) -> tuple[str, dict[str, str]]:
    blocks = [
        {"id": "doc", "type": "start_document"},
        {"id": "in", "type": "start_json"},
        {"id": "f", "type": "function", "config": {"expression": "input"}},
    ]
    edges = [
        {"source_block": "in", "target_block": "f", "source_handle": "output-json-0", "target_handle": "input-json-0"}
    ]
    return build(client, stack.project_id, blocks, edges)


def _run_body(wf_id: str, ids: dict[str, str], amount: int, text: str) -> dict[str, Any]:
    return {
        "workflow_id": wf_id,
        "version": "draft",
        "json_inputs": {ids["in"]: {"amount": amount}},
        "documents": {ids["doc"]: {"filename": f"{text}.txt", "url": _data_url(text)}},
    }


def test_a_reused_key_with_another_body_is_refused_and_the_first_run_is_intact(
    client: Retab, http: httpx.Client, stack: Stack, store: ObjectStore
) -> None:
    wf_id, ids = _run_workflow(client, stack)
    key = {"Idempotency-Key": f"run-{uuid.uuid4().hex}"}
    first = http.post("/v1/workflows/runs", json=_run_body(wf_id, ids, 1, "first"), headers=key)
    assert first.status_code == 200, first.text
    run_id = first.json()["id"]
    wait_for(client, run_id)

    reused = http.post("/v1/workflows/runs", json=_run_body(wf_id, ids, 999, "second"), headers=key)
    assert reused.status_code == 422, reused.text
    detail = reused.json()["detail"]
    assert detail["code"] == "idempotency_key_reused"
    assert detail["details"]["field"] == "Idempotency-Key" and "Idempotency-Key" in detail["message"]
    # Only the JSON inputs changed: still a different request.
    body = _run_body(wf_id, ids, 2, "first")
    assert http.post("/v1/workflows/runs", json=body, headers=key).json()["detail"]["code"] == "idempotency_key_reused"

    run = client.workflows.runs.get(run_id)
    assert run.inputs is not None
    assert run.inputs.json_data == {ids["in"]: {"amount": 1}}
    assert run.inputs.documents[ids["doc"]].filename == "first.txt"
    stored = asyncio.run(store.get_json(keys.run_inputs(stack.project_id, run_id))).data
    assert stored == {ids["in"]: {"amount": 1}}
    step = client.workflows.steps.get(ids["f"], run_id=run_id)
    assert step.handle_outputs["output-json-0"].data == {"amount": 1}  # type: ignore[index]

    again = http.post("/v1/workflows/runs", json=_run_body(wf_id, ids, 1, "first"), headers=key)
    assert again.status_code == 200 and again.json()["id"] == run_id
    assert again.json()["inputs"]["json_data"] == {ids["in"]: {"amount": 1}}


def test_the_sdk_retry_with_the_same_key_gets_the_same_run_and_another_body_is_refused(
    client: Retab, stack: Stack
) -> None:
    wf_id, ids = _run_workflow(client, stack)
    key = f"sdk-{uuid.uuid4().hex}"

    def create(amount: int, text: str) -> Any:
        request = client.workflows.runs.prepare_create(
            workflow_id=wf_id,
            documents={ids["doc"]: MIMEData(filename=f"{text}.txt", url=_data_url(text))},
            json_inputs={ids["in"]: {"amount": amount}},
            version="draft",
        )
        request.idempotency_key = key
        return client._prepared_request(request)

    first, retried = create(5, "doc"), create(5, "doc")
    assert first["id"] == retried["id"] and first["id"] == derived_id(RUN, stack.project_id, key, length=24)
    try:
        create(6, "doc")
    except Exception as exc:  # the SDK raises its own error type for a 4xx
        assert getattr(exc, "status_code", None) == 422 and "idempotency_key_reused" in str(exc)
    else:
        raise AssertionError("a reused key with another body was accepted")
    run = wait_for(client, first["id"])
    assert run.inputs is not None and run.inputs.json_data == {ids["in"]: {"amount": 5}}


def test_a_reused_workflow_key_with_another_body_is_refused(http: httpx.Client, stack: Stack) -> None:
    key = {"Idempotency-Key": f"wf-{uuid.uuid4().hex}"}
    first = http.post("/v1/workflows", json={"name": "one", "project_id": stack.project_id}, headers=key)
    assert first.status_code == 201
    other = http.post("/v1/workflows", json={"name": "two", "project_id": stack.project_id}, headers=key)
    assert other.status_code == 422 and other.json()["detail"]["code"] == "idempotency_key_reused"
    assert http.get(f"/v1/workflows/{first.json()['id']}").json()["name"] == "one"
    too_long = http.post(
        "/v1/workflows", json={"name": "x", "project_id": stack.project_id}, headers={"Idempotency-Key": "k" * 256}
    )
    assert too_long.status_code == 422 and too_long.json()["detail"]["details"]["field"] == "Idempotency-Key"


def _crash_after(stack: Stack, store: ObjectStore, key: str, body: dict[str, Any], *, record: bool, draft: bool) -> str:
    """What a create that died part way left behind: its key record if `record`, the draft if `draft`."""
    workflow_id = derived_id(WORKFLOW, stack.project_id, key, length=24)

    async def write() -> None:
        definitions = Definitions(store)
        if draft:
            await definitions.drafts.create(stack.project_id, workflow_id)
        if not record:
            return  # the state the code before key records left: a draft and no workflow record
        intent = definitions.new_record(stack.project_id, WorkflowCreate.model_validate(body), workflow_id)
        await idempotency.claim(
            store,
            stack.project_id,
            idempotency.WORKFLOWS,
            key,
            WorkflowCreate.model_validate(body).model_dump(mode="json"),
            intent.model_dump(mode="json"),
        )

    asyncio.run(write())
    return workflow_id


def test_a_workflow_create_that_crashed_between_its_writes_is_finished_by_the_retry(
    client: Retab, http: httpx.Client, stack: Stack, store: ObjectStore
) -> None:
    for record, draft in ((False, True), (True, False), (True, True)):
        key = f"crash-{uuid.uuid4().hex}"
        body = {"name": "survivor", "description": "", "project_id": stack.project_id}
        workflow_id = _crash_after(stack, store, key, body, record=record, draft=draft)
        assert http.get(f"/v1/workflows/{workflow_id}").status_code == 404  # the crash left no workflow

        retried = http.post("/v1/workflows", json=body, headers={"Idempotency-Key": key})
        assert retried.status_code == 201, retried.text
        assert retried.json()["id"] == workflow_id and retried.json()["name"] == "survivor"
        block = f"in-{uuid.uuid4().hex[:8]}"
        client.workflows.blocks.create(workflow_id=workflow_id, id=block, type="start_json")
        assert client.workflows.publish(workflow_id).published is not None
        assert client.workflows.get(workflow_id).name == "survivor"
        again = http.post("/v1/workflows", json=body, headers={"Idempotency-Key": key})
        assert again.status_code == 201 and again.json()["id"] == workflow_id


def test_a_deleted_workflow_is_not_brought_back_by_its_key(http: httpx.Client, stack: Stack) -> None:
    key = {"Idempotency-Key": f"wf-{uuid.uuid4().hex}"}
    body = {"name": "gone", "project_id": stack.project_id}
    workflow_id = http.post("/v1/workflows", json=body, headers=key).json()["id"]
    assert http.delete(f"/v1/workflows/{workflow_id}").status_code == 204
    assert http.post("/v1/workflows", json=body, headers=key).status_code == 404
    assert http.get(f"/v1/workflows/{workflow_id}").status_code == 404


def test_the_key_of_a_deleted_run_does_not_start_it_again(client: Retab, http: httpx.Client, stack: Stack) -> None:
    wf_id, ids = _run_workflow(client, stack)
    key = {"Idempotency-Key": f"run-{uuid.uuid4().hex}"}
    body = _run_body(wf_id, ids, 1, "doc")
    run_id = http.post("/v1/workflows/runs", json=body, headers=key).json()["id"]
    wait_for(client, run_id)
    assert http.delete(f"/v1/workflows/runs/{run_id}").status_code == 204
    again = http.post("/v1/workflows/runs", json=body, headers=key)
    assert again.status_code == 409 and again.json()["detail"]["code"] == "idempotent_run_deleted"
    assert http.get(f"/v1/workflows/runs/{run_id}").status_code == 404
