"""User-chosen ids cannot leave their project's S3 prefix, and a workflow's block count is bounded."""

from __future__ import annotations

import httpx
import pytest
from retab import Retab

from api.definitions import Definitions, WorkflowCreate
from api.draft_edits import BlockCreate, GraphEditor
from api.errors import InvalidError
from devstack.processes import ThreadedApi
from devstack.stack import free_port
from docflow.config import Settings
from storage.objects import ObjectStore
from tests.conftest import Stack
from tests.integration.builders import build

BLOCKS = [{"id": "doc", "type": "start_document"}, {"id": "parse", "type": "parse"}]
EDGES = [
    {"source_block": "doc", "target_block": "parse", "source_handle": "output-file-0", "target_handle": "input-file-0"}
]


@pytest.mark.parametrize(
    "file_id",
    ["../other/file_abc", "file_abc/../../x", "file_a/b", "..", "file_abc%2F..", "file_ab\\c", "file_a b"],
)
def test_a_document_id_with_path_characters_is_refused(
    client: Retab, stack: Stack, http: httpx.Client, file_id: str
) -> None:
    wf_id, ids = build(client, stack.project_id, BLOCKS, EDGES)
    body = {"workflow_id": wf_id, "version": "draft", "documents": {ids["doc"]: {"id": file_id}}}
    answer = http.post("/v1/workflows/runs", json=body)
    assert answer.status_code == 422, answer.text
    detail = answer.json()["detail"]
    assert detail["code"] == "invalid_request"  # refused as malformed, never looked up
    assert detail["details"]["field"] == f"documents.{ids['doc']}.id"


async def test_a_workflow_refuses_blocks_past_its_limit(store: ObjectStore, stack: Stack) -> None:
    workflow = await Definitions(store).create_workflow(stack.project_id, WorkflowCreate(project_id=stack.project_id))
    editor = GraphEditor(store, max_blocks=3)
    for _ in range(3):
        await editor.create_block(stack.project_id, BlockCreate(workflow_id=workflow.id, type="note"), None)
    with pytest.raises(InvalidError) as info:
        await editor.create_block(stack.project_id, BlockCreate(workflow_id=workflow.id, type="note"), None)
    assert info.value.status == 422
    assert info.value.code == "too_many_blocks"
    assert info.value.details["field"] == "workflow_id"
    assert "3" in info.value.message


def test_the_block_limit_is_a_setting_of_500_by_default() -> None:
    assert Settings().max_blocks_per_workflow == 500


def test_the_api_applies_the_block_limit_setting(stack: Stack) -> None:
    settings = stack.settings.model_copy(update={"api_port": free_port(), "max_blocks_per_workflow": 2})
    api = ThreadedApi(settings).start()
    try:
        client = Retab(api_key=stack.api_key, base_url=api.url, max_retries=0)
        workflow = client.workflows.create(project_id=stack.project_id, name="limited")
        with httpx.Client(base_url=api.url, headers={"Api-Key": stack.api_key}) as http:
            answers = [
                http.post("/v1/workflows/blocks", json={"workflow_id": workflow.id, "type": "note"}) for _ in range(3)
            ]
    finally:
        api.stop()
    assert [a.status_code for a in answers] == [201, 201, 422]
    detail = answers[2].json()["detail"]
    assert detail["code"] == "too_many_blocks" and detail["details"]["field"] == "workflow_id"
