"""Workflow tests (block tests) CRUD end to end through the SDK: sources, paging, refusals, drift vs the draft."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from typing import Any

import httpx
import pytest
from retab import Retab

from docflow import keys
from storage.objects import ObjectStore
from tests.conftest import Stack
from tests.integration.builders import INVOICE_FIELDS, INVOICE_SCHEMA, build, extract_chain


def _manual_double(wf_id: str, block_id: str, name: str = "doubles") -> dict[str, Any]:
    return {
        "workflow_id": wf_id,
        "target": {"type": "block", "block_id": block_id},
        "source": {"type": "manual", "handle_inputs": {"input-json-0": {"type": "json", "data": {"total": 5}}}},
        "name": name,
        "assertion": {
            "target": {"output_handle_id": "output-json-0"},
            "condition": {"kind": "number_compare", "op": "eq", "expected": 10},
        },
    }


def _from_step(wf_id: str, block_id: str, run_id: str, path: str = "invoice_number") -> dict[str, Any]:
    return {
        "workflow_id": wf_id,
        "target": {"type": "block", "block_id": block_id},
        "source": {"type": "run_step", "run_id": run_id},
        "assertion": {
            "target": {"output_handle_id": "output-json-0", "path": path},
            "condition": {"kind": "matches_regex", "pattern": "^TEST-[0-9]+$"},
        },
    }


def _refusal(answer: httpx.Response, status: int = 422) -> tuple[str, str]:
    assert answer.status_code == status, answer.text
    detail = answer.json()["detail"]
    return detail["code"], str(detail["details"].get("field"))


def test_create_read_list_page_update_delete(
    client: Retab, other_client: Retab, stack: Stack, http: httpx.Client, store: ObjectStore
) -> None:
    wf_id, ids, run_id = extract_chain(client, stack.project_id, "TEST-1")
    manual = client.workflows.tests.create(**_manual_double(wf_id, ids["double"]))
    assert manual.id.startswith("wfnodetest_") and manual.workflow_id == wf_id
    assert manual.source.type == "manual" and manual.source.handle_inputs["input-json-0"].data == {"total": 5}
    assert manual.assertion is not None and manual.assertion.id  # given one, so results can name it
    assert manual.validation_status == "valid" and manual.validation_issues == []
    assert manual.assertion_drift_status == "valid" and manual.schema_drift == "unknown"  # a function has no schema
    assert manual.latest_run_summary is None

    stepped = client.workflows.tests.create(**_from_step(wf_id, ids["ex"], run_id))
    assert stepped.source.type == "run_step" and stepped.source.run_id == run_id
    assert stepped.assertion_schema_dep is not None and stepped.assertion_schema_dep.schema_path == "invoice_number"
    assert stepped.schema_drift == "none" and stepped.assertion_drift_status == "valid"
    # The step's inputs were snapshotted into the test when it was created.
    record = asyncio.run(store.get_json(keys.workflow_test(stack.project_id, stepped.id))).data
    assert record["handle_inputs"]["input-json-text"]["data"]["text"].startswith("Invoice number: TEST-1")

    third = client.workflows.tests.create(**_manual_double(wf_id, ids["double"], name="third"))
    assert client.workflows.tests.get(stepped.id).id == stepped.id

    # Paging: one per page, newest first, through the SDK's cursor; then the block filter.
    everything = list(client.workflows.tests.list(workflow_id=wf_id, limit=1).auto_paging_iter())
    assert [t.id for t in everything] == [third.id, stepped.id, manual.id]
    first = http.get("/v1/workflows/tests", params={"workflow_id": wf_id, "limit": 2}).json()
    assert [t["id"] for t in first["data"]] == [third.id, stepped.id] and first["list_metadata"]["after"] == stepped.id
    ascending = client.workflows.tests.list(workflow_id=wf_id, order="asc")
    assert [t.id for t in ascending.data] == [manual.id, stepped.id, third.id]
    by_block = client.workflows.tests.list(workflow_id=wf_id, target_block_id=ids["double"])
    assert {t.id for t in by_block.data} == {manual.id, third.id}
    unknown = http.get("/v1/workflows/tests", params={"workflow_id": wf_id, "after": "wfnodetest_gone"})
    assert _refusal(unknown) == ("invalid_cursor", "after")

    changed = client.workflows.tests.update(
        manual.id,
        name="doubles five",
        assertion={
            "target": {"output_handle_id": "output-json-0"},
            "condition": {"kind": "between", "lower": 9, "upper": 11},
        },
    )
    assert changed.name == "doubles five" and changed.assertion is not None
    assert changed.assertion.condition.kind == "between"
    assert changed.updated_at is not None and manual.updated_at is not None and changed.updated_at > manual.updated_at
    assert client.workflows.tests.get(manual.id).name == "doubles five"
    resourced = client.workflows.tests.update(
        stepped.id,
        source={"type": "manual", "handle_inputs": {"input-json-text": {"type": "json", "data": {"text": "x"}}}},
    )
    assert resourced.source.type == "manual" and resourced.assertion_schema_dep is not None

    # Another project sees none of it.
    assert http.get(f"/v1/workflows/tests/{manual.id}", headers={"Api-Key": stack.other_api_key}).status_code == 404
    with pytest.raises(Exception, match="404|not found|Not Found"):
        other_client.workflows.tests.get(manual.id)
    with pytest.raises(Exception, match="404|not found|Not Found"):
        other_client.workflows.tests.list(workflow_id=wf_id)
    other_patch = http.patch(
        f"/v1/workflows/tests/{manual.id}", json={"name": "x"}, headers={"Api-Key": stack.other_api_key}
    )
    assert other_patch.status_code == 404
    other_delete = http.delete(f"/v1/workflows/tests/{manual.id}", headers={"Api-Key": stack.other_api_key})
    assert other_delete.status_code == 404
    assert client.workflows.tests.get(manual.id).name == "doubles five"

    client.workflows.tests.delete(manual.id)
    assert http.get(f"/v1/workflows/tests/{manual.id}").status_code == 404
    assert http.delete(f"/v1/workflows/tests/{manual.id}").status_code == 404
    assert [t.id for t in client.workflows.tests.list(workflow_id=wf_id).data] == [third.id, stepped.id]


def test_deleting_a_workflow_deletes_its_tests_and_keeps_another_workflows(
    client: Retab, stack: Stack, http: httpx.Client, store: ObjectStore
) -> None:
    blocks = [{"id": "double", "type": "function", "config": {"expression": "input['total'] * 2"}}]
    wf_id, ids = build(client, stack.project_id, blocks, [])
    kept_wf, kept_ids = build(client, stack.project_id, blocks, [])
    gone = [client.workflows.tests.create(**_manual_double(wf_id, ids["double"], name=n)).id for n in ("a", "b")]
    kept = client.workflows.tests.create(**_manual_double(kept_wf, kept_ids["double"])).id

    client.workflows.delete(wf_id)
    for test_id in gone:
        assert http.get(f"/v1/workflows/tests/{test_id}").status_code == 404
        assert asyncio.run(store.list_keys(keys.workflow_test(stack.project_id, test_id))) == []
    assert asyncio.run(store.list_keys(keys.workflow_tests_prefix(stack.project_id, wf_id))) == []
    assert client.workflows.tests.get(kept).workflow_id == kept_wf
    assert [t.id for t in client.workflows.tests.list(workflow_id=kept_wf).data] == [kept]


def test_a_manual_test_keeps_its_document_by_reference(
    client: Retab, stack: Stack, http: httpx.Client, samples: Path
) -> None:
    content = (samples / "invoice.pdf").read_bytes()
    digest = hashlib.sha256(content).hexdigest()
    upload = client.files.create_upload(
        filename="invoice.pdf", size_bytes=len(content), content_type="application/pdf", sha256=digest
    )
    assert httpx.put(upload.upload_url, content=content, headers=upload.upload_headers).status_code == 200
    client.files.complete_upload(upload.file_id, sha256=digest)
    wf_id, ids = build(
        client, stack.project_id, [{"id": "ex", "type": "extract", "config": {"json_schema": INVOICE_SCHEMA}}], []
    )

    def body(file_id: str, filename: str) -> dict[str, Any]:
        document = {"id": file_id, "filename": filename, "mime_type": "application/pdf"}
        return {
            "workflow_id": wf_id,
            "target": {"type": "block", "block_id": ids["ex"]},
            "source": {
                "type": "manual",
                "handle_inputs": {"input-file-document": {"type": "file", "document": document}},
            },
            "assertion": {
                "target": {"output_handle_id": "output-json-0", "path": "total"},
                "condition": {"kind": "exists"},
            },
        }

    # The stored record names the document, whatever name the caller gave it.
    created = http.post("/v1/workflows/tests", json=body(upload.file_id, "renamed.pdf"))
    assert created.status_code == 201, created.text
    document = created.json()["source"]["handle_inputs"]["input-file-document"]["document"]
    assert document == {"id": upload.file_id, "filename": "invoice.pdf", "mime_type": "application/pdf"}
    assert created.json()["schema_drift"] == "none"
    unknown = http.post("/v1/workflows/tests", json=body("file_unknown", "x.pdf"))
    assert _refusal(unknown) == ("unknown_file", "source.handle_inputs.input-file-document.document.id")
    other = http.post(
        "/v1/workflows/tests", json=body(upload.file_id, "x.pdf"), headers={"Api-Key": stack.other_api_key}
    )
    assert other.status_code == 404, other.text  # the workflow is not the other project's


def test_refusals_name_their_field(client: Retab, stack: Stack, http: httpx.Client) -> None:
    wf_id, ids, run_id = extract_chain(client, stack.project_id, "TEST-2")
    other_wf, other_ids, other_run = extract_chain(client, stack.project_id, "TEST-3")

    def post(body: dict[str, Any]) -> httpx.Response:
        return http.post("/v1/workflows/tests", json=body)

    def with_condition(condition: dict[str, Any]) -> dict[str, Any]:
        body = _manual_double(wf_id, ids["double"])
        body["assertion"]["condition"] = condition
        return body

    code, field = _refusal(post(with_condition({"kind": "matches_regex", "pattern": "(unclosed"})))
    assert field.startswith("assertion.condition") and field.endswith("pattern"), field
    code, field = _refusal(post(with_condition({"kind": "json_schema_valid", "schema": {"type": "nonsense"}})))
    assert field.startswith("assertion.condition") and field.endswith("schema"), field
    code, field = _refusal(post(with_condition({"kind": "no_such_kind"})))
    assert field.startswith("assertion.condition"), field

    body = _manual_double(wf_id, ids["double"])
    body["assertion"]["target"]["output_handle_id"] = "output-json-9"
    assert _refusal(post(body)) == ("unknown_output_handle", "assertion.target.output_handle_id")
    assert _refusal(post(_manual_double(wf_id, "blk_absent"))) == ("block_not_in_draft", "target.block_id")
    assert _refusal(post(_manual_double(wf_id, ids["in"]))) == ("block_not_testable", "target.block_id")
    body = _manual_double(wf_id, ids["double"])
    body["source"]["handle_inputs"] = {"input-json-7": {"type": "json", "data": 1}}
    assert _refusal(post(body)) == ("unknown_input_handle", "source.handle_inputs.input-json-7")
    body["source"]["handle_inputs"] = {}
    assert _refusal(post(body)) == ("missing_input_handle", "source.handle_inputs.input-json-0")
    assert _refusal(post(_manual_double("wf_absent", ids["double"])), 404)[0] == "not_found"

    assert _refusal(post(_from_step(wf_id, ids["ex"], "run_absent"))) == ("unknown_run", "source.run_id")
    assert _refusal(post(_from_step(wf_id, ids["ex"], other_run))) == ("run_of_other_workflow", "source.run_id")
    body = _from_step(wf_id, ids["ex"], run_id)
    body["source"]["step_id"] = "no-such-step"
    assert _refusal(post(body)) == ("unknown_step", "source.step_id")
    body = _from_step(wf_id, ids["ex"], run_id)
    body["source"]["run_ident"] = run_id
    assert _refusal(post(body))[1] == "source.run_step.run_ident"

    test = client.workflows.tests.create(**_manual_double(wf_id, ids["double"]))
    patched = http.patch(
        f"/v1/workflows/tests/{test.id}",
        json={
            "assertion": {
                "target": {"output_handle_id": "output-json-0"},
                "condition": {"kind": "between", "lower": 3, "upper": 1},
            }
        },
    )
    code, field = _refusal(patched)
    assert field.startswith("assertion.condition"), field
    assert http.get("/v1/workflows/tests/wfnodetest_absent").status_code == 404
    assert http.get("/v1/workflows/tests/not-a-test").status_code == 404
    # Test runs and results are their own routes, never read as a test id.
    assert http.get("/v1/workflows/tests/runs/x").status_code == 404
    assert http.get("/v1/workflows/tests/results").status_code == 422  # run_id is required
    assert other_ids and other_wf


def test_drift_against_the_draft(client: Retab, stack: Stack, http: httpx.Client) -> None:
    wf_id, ids, run_id = extract_chain(client, stack.project_id, "TEST-4")
    test = client.workflows.tests.create(**_from_step(wf_id, ids["ex"], run_id))
    double = client.workflows.tests.create(**_manual_double(wf_id, ids["double"]))
    assert test.schema_drift == "none"

    def update_schema(properties: dict[str, Any]) -> None:
        config = {
            "json_schema": {"type": "object", "properties": properties},
            "inputs": [{"name": "text", "type": "json"}],
        }
        client.workflows.blocks.update(ids["ex"], config=config, workflow_id=wf_id)

    update_schema({**INVOICE_FIELDS, "vendor": {"type": "string"}})  # elsewhere than the path the assertion reads
    now = client.workflows.tests.get(test.id)
    assert (now.schema_drift, now.assertion_drift_status) == ("partial", "valid")
    update_schema({**INVOICE_FIELDS, "invoice_number": {"type": "integer"}})
    now = client.workflows.tests.get(test.id)
    assert (now.schema_drift, now.assertion_drift_status) == ("drifted", "drifted")
    update_schema({"invoice_number": None})  # block updates are merge patches: null deletes the key
    now = client.workflows.tests.get(test.id)
    assert (now.schema_drift, now.assertion_drift_status) == ("drifted", "broken")

    client.workflows.blocks.delete(ids["ex"], workflow_id=wf_id)
    gone = client.workflows.tests.get(test.id)
    assert gone.validation_status == "invalid" and gone.assertion_drift_status == "broken"
    assert [i["code"] for i in gone.validation_issues] == ["block_not_in_draft"]
    listed = {t.id: t for t in client.workflows.tests.list(workflow_id=wf_id).data}
    assert listed[test.id].validation_status == "invalid" and listed[double.id].validation_status == "valid"
    # A test of a block gone from the draft can be renamed, not re-pointed.
    assert client.workflows.tests.update(test.id, name="orphan").name == "orphan"
    refused = http.patch(f"/v1/workflows/tests/{test.id}", json={"source": {"type": "manual", "handle_inputs": {}}})
    assert _refusal(refused) == ("block_not_in_draft", "target.block_id")
