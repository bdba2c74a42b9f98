"""The OpenAPI schema documents every block type's config model, and every resource's answer with a typed model."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from retab import Retab

from docflow.blocks import CONFIG_MODELS
from tests.conftest import Stack
from tests.integration.builders import build, chain, wait_for


def test_openapi_documents_each_block_config(stack: Stack) -> None:
    schema = httpx.get(f"{stack.api_url}/openapi.json").json()
    schemas = schema["components"]["schemas"]
    for model in CONFIG_MODELS.values():
        assert model.__name__ in schemas
    assert "json_schema" in schemas["ExtractConfig"]["required"]
    config = schemas["BlockCreate"]["properties"]["config"]
    assert config["x-config-model-by-type"]["extract"] == "#/components/schemas/ExtractConfig"
    assert "/v1/workflows/runs" in schema["paths"] and "/v1/workflows/blocks" in schema["paths"]


def test_endpoints_not_built_yet_say_so(stack: Stack) -> None:
    headers = {"Api-Key": stack.api_key}
    for method, path in [
        ("GET", "/v1/workflows/experiments"),
        ("GET", "/v1/workflows/evals"),
        ("GET", "/v1/workflows/versions/diff"),
        ("POST", "/v1/workflows/runs/export"),
    ]:
        answer = httpx.request(method, f"{stack.api_url}{path}", headers=headers)
        assert answer.status_code == 501, (method, path, answer.text)
        assert answer.json()["detail"]["code"] == "not_built"
    assert httpx.get(f"{stack.api_url}/v1/workflows/experiments").status_code == 401


PLAN = ["workflow_id", "action", "summary", "resource_changes", "rendered_plan", "diagnostics"]
RUN = ["id", "workflow_id", "workflow_version_id", "trigger", "lifecycle", "timing", "inputs", "ignored_signals"]
STEP = [
    "run_id", "block_id", "step_id", "block_type", "block_label", "lifecycle", "created_at", "started_at",
    "completed_at", "model", "loop_containers", "handle_inputs", "handle_outputs", "artifact", "retry_count",
    "routing_decisions",
]  # fmt: skip
ARTIFACT = ["operation", "id", "run_id", "step_id", "block_id", "created_at"]
REVIEW = ["id", "run_id", "block_id", "step_id", "block_type", "triggered_by", "created_at", "decision", "status"]
VERSION = ["id", "review_id", "parent_id", "author", "snapshot", "note", "created_at"]
DECISION = ["submission_status", "review", "resume_status", "resume_error"]
EXECUTION = [
    "id", "workflow_id", "workflow_version_id", "source_run_id", "block_id", "block_type", "lifecycle",
    "handle_inputs", "handle_outputs", "artifact", "routing_decisions", "duration_ms", "created_at", "started_at",
    "completed_at", "handle_inputs_fingerprint", "block_config_fingerprint", "workflow_draft_fingerprint",
    "execution_fingerprint", "block_config", "source_step_id", "available_iterations",
]  # fmt: skip
TEST_RUN = ["id", "workflow_id", "workflow_version_id", "trigger", "lifecycle", "timing", "target", "counts"]
RESULT = ["id", "workflow_test_run_id", "test_id", "lifecycle", "timing", "verdict", "assertion_result"]

# (method, path, model of one item, is a list envelope, fields the model names)
TYPED = [
    ("post", "/v1/workflows/runs", "RunView", False, RUN),
    ("get", "/v1/workflows/runs", "RunView", True, RUN),
    ("get", "/v1/workflows/runs/{run_id}", "RunView", False, RUN),
    ("get", "/v1/workflows/runs/{run_id}/steps/{block_id}", "StepView", False, STEP),
    ("get", "/v1/workflows/steps", "StepView", True, STEP),
    ("get", "/v1/workflows/steps/{step_id}", "StepView", False, STEP),
    ("get", "/v1/workflows/artifacts", "ArtifactView", True, ARTIFACT),
    ("get", "/v1/workflows/artifacts/{artifact_id}", "ArtifactView", False, ARTIFACT),
    ("get", "/v1/workflows/reviews", "ReviewView", True, REVIEW),
    ("get", "/v1/workflows/reviews/{review_id}", "ReviewView", False, REVIEW),
    ("get", "/v1/workflows/reviews/versions", "ReviewVersionView", True, VERSION),
    ("post", "/v1/workflows/reviews/versions", "ReviewVersionView", False, VERSION),
    ("get", "/v1/workflows/reviews/versions/{version_id}", "ReviewVersionView", False, VERSION),
    ("post", "/v1/workflows/reviews/{review_id}/approve", "DecisionView", False, DECISION),
    ("post", "/v1/workflows/reviews/{review_id}/reject", "DecisionView", False, DECISION),
    ("post", "/v1/workflows/blocks/executions", "ExecutionView", False, EXECUTION),
    ("get", "/v1/workflows/blocks/executions", "ExecutionView", True, EXECUTION),
    ("get", "/v1/workflows/blocks/executions/{execution_id}", "ExecutionView", False, EXECUTION),
    ("post", "/v1/workflows/tests/runs", "TestRunView", False, TEST_RUN),
    ("post", "/v1/workflows/{workflow_id}/tests/runs", "TestRunView", False, TEST_RUN),
    ("get", "/v1/workflows/tests/runs", "TestRunView", True, TEST_RUN),
    ("get", "/v1/workflows/tests/runs/{test_run_id}", "TestRunView", False, TEST_RUN),
    ("post", "/v1/workflows/tests/runs/{test_run_id}/cancel", "TestRunView", False, TEST_RUN),
    ("get", "/v1/workflows/tests/results", "TestResultView", True, RESULT),
    ("get", "/v1/workflows/tests/results/{result_id}", "TestResultView", False, RESULT),
    ("get", "/v1/workflows/{workflow_id}/spec", "SpecExportView", False, ["workflow_id", "yaml_definition"]),
    ("post", "/v1/workflows/spec/validate", "SpecValidationView", False, ["is_valid", "diagnostics"]),
    ("post", "/v1/workflows/spec/plan", "SpecPlanView", False, PLAN),
    ("post", "/v1/workflows/{workflow_id}/spec/plan", "SpecPlanView", False, PLAN),
    ("post", "/v1/workflows/spec/apply", "SpecApplyView", False, [*PLAN, "created"]),
    ("post", "/v1/workflows/{workflow_id}/spec/apply", "SpecApplyView", False, [*PLAN, "created"]),
]


@pytest.fixture(scope="module")
def openapi(stack: Stack) -> dict[str, Any]:
    schema: dict[str, Any] = httpx.get(f"{stack.api_url}/openapi.json").json()
    return schema


def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    name = node["$ref"].rsplit("/", 1)[-1]
    return name, schema["components"]["schemas"][name]


def _success(schema: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    responses = schema["paths"][path][method]["responses"]
    code = next(c for c in ("200", "201") if c in responses)
    body: dict[str, Any] = responses[code]["content"]["application/json"]["schema"]
    return body


@pytest.mark.parametrize(("method", "path", "model", "listed", "fields"), TYPED, ids=[f"{m} {p}" for m, p, *_ in TYPED])
def test_each_answer_is_a_documented_model(
    openapi: dict[str, Any], method: str, path: str, model: str, listed: bool, fields: list[str]
) -> None:
    name, item = _resolve(openapi, _success(openapi, method, path))
    if listed:  # the one list envelope: {data: [item], list_metadata: {before, after}}
        assert set(item["required"]) == {"data", "list_metadata"}, name
        _, metadata = _resolve(openapi, item["properties"]["list_metadata"])
        assert set(metadata["properties"]) == {"before", "after"}
        name, item = _resolve(openapi, item["properties"]["data"]["items"])
    assert name == model
    assert set(fields) <= set(item["properties"]), set(fields) - set(item["properties"])


def test_run_scoped_steps_are_a_typed_list(openapi: dict[str, Any]) -> None:
    body = _success(openapi, "get", "/v1/workflows/runs/{run_id}/steps")
    assert body["type"] == "array"
    assert _resolve(openapi, body["items"])[0] == "StepView"


def test_lifecycles_and_extras_are_documented(openapi: dict[str, Any]) -> None:
    schemas = openapi["components"]["schemas"]
    run_status = schemas["RunLifecycleView"]["properties"]["status"]["enum"]
    assert {"pending", "running", "awaiting_review", "completed", "error", "cancelled"} == set(run_status)
    assert "kind" in schemas["StepLifecycleView"]["required"]
    assert "ignored_signals" in schemas["RunView"]["required"]
    assert {"forced", "drifted_blocks", "n_consensus"} <= set(schemas["ExecutionView"]["properties"])
    containers = schemas["StepView"]["properties"]["loop_containers"]
    assert "loop_containers" not in schemas["StepView"].get("required", [])
    assert any(o.get("items", {}).get("$ref", "").endswith("LoopContainerView") for o in containers["anyOf"])


def test_typed_answers_keep_the_wire_format(stack: Stack) -> None:
    """A served answer is what the builders made: a lifecycle's unused fields stay absent (not null), the extras
    stay, and the timing's computed fields are there."""
    client = Retab(api_key=stack.api_key, base_url=stack.api_url, max_retries=0)
    blocks, edges = chain([("in", "start_json", {}), ("f", "function", {"expression": "input"})])
    wf_id, ids = build(client, stack.project_id, blocks, edges)
    client.workflows.publish(wf_id)
    run = wait_for(client, client.workflows.runs.create(workflow_id=wf_id, json_inputs={ids["in"]: {"a": 1}}).id)
    with httpx.Client(base_url=stack.api_url, headers={"Api-Key": stack.api_key}) as http:
        got = http.get(f"/v1/workflows/runs/{run.id}").json()
        step = http.get(f"/v1/workflows/runs/{run.id}/steps/{ids['f']}").json()
        listed = http.get("/v1/workflows/steps", params={"run_id": run.id}).json()
    assert got["lifecycle"] == {"status": "completed", "kind": "completed"}
    assert got["ignored_signals"] == [] and got["inputs"]["json_data"] == {ids["in"]: {"a": 1}}
    assert got["timing"]["duration_ms"] is not None and "accumulated_review_waiting_ms" in got["timing"]
    assert step["lifecycle"] == {"status": "completed", "kind": "completed"}
    assert step["loop_containers"] == [] and step["handle_outputs"]["output-json-0"] == {
        "type": "json",
        "data": {"a": 1},
    }
    assert set(listed) == {"data", "list_metadata"} and listed["list_metadata"] == {"before": ids["in"], "after": None}
