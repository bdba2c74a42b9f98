"""Hostile computation: catastrophic regexes, CPU and memory bombs stop their own step, never the worker or the API.

Patterns run on RE2 (linear time) everywhere; expressions and conditions run in a pool of limited processes.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
from retab import Retab

from tests.conftest import Stack
from tests.integration.builders import build, wait_for

EVIL = r"^(a+)+$"
ATTACK = "a" * 40 + "!"


def _workflow(client: Retab, stack: Stack) -> str:
    return client.workflows.create(project_id=stack.project_id, name=f"hostile {uuid.uuid4().hex[:6]}").id


def _block(http: httpx.Client, wf: str, block_type: str, config: dict[str, Any]) -> httpx.Response:
    return http.post("/v1/workflows/blocks", json={"workflow_id": wf, "type": block_type, "config": config})


# -- (a) regexes ---------------------------------------------------------------------------------------------


def test_a_condition_regex_re2_cannot_run_is_422_naming_expected(
    http: httpx.Client, client: Retab, stack: Stack
) -> None:
    wf = _workflow(client, stack)
    sub = {"path": "code", "operator": "matches_regex", "expected": r"(a)\1"}
    answer = _block(http, wf, "conditional", {"conditions": [{"id": "c", "sub_conditions": [sub]}]})
    assert answer.status_code == 422, answer.text
    detail = answer.json()["detail"]
    assert detail["details"]["field"] == "config.conditions.0.sub_conditions.0.expected"
    assert "RE2" in detail["message"]


def test_a_schema_pattern_re2_cannot_run_is_422_naming_its_path(
    http: httpx.Client, client: Retab, stack: Stack
) -> None:
    wf = _workflow(client, stack)
    schema = {"type": "object", "properties": {"code": {"type": "string", "pattern": r"(?<=x)y"}}}
    for block_type in ("start_json", "extract"):
        answer = _block(http, wf, block_type, {"json_schema": schema})
        assert answer.status_code == 422, answer.text
        detail = answer.json()["detail"]
        assert detail["details"]["field"] == "config.json_schema"
        assert "properties.code.pattern" in detail["message"]


def test_a_catastrophic_schema_pattern_is_checked_in_linear_time_by_the_api(
    http: httpx.Client, client: Retab, stack: Stack
) -> None:
    schema = {"type": "object", "properties": {"code": {"type": "string", "pattern": EVIL}}}
    wf_id, ids = build(
        client, stack.project_id, [{"id": "in", "type": "start_json", "config": {"json_schema": schema}}], []
    )
    start = time.monotonic()
    answer = http.post(
        "/v1/workflows/runs",
        json={"workflow_id": wf_id, "version": "draft", "json_inputs": {ids["in"]: {"code": ATTACK}}},
    )
    assert time.monotonic() - start < 1.0
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"]["details"]["field"] == f"json_inputs.{ids['in']}.code"
    run = client.workflows.runs.create(workflow_id=wf_id, json_inputs={ids["in"]: {"code": "aaaa"}}, version="draft")
    assert wait_for(client, run.id).lifecycle.status == "completed"


def test_a_catastrophic_condition_regex_evaluates_at_once(http: httpx.Client, client: Retab, stack: Stack) -> None:
    sub = {"path": "code", "operator": "matches_regex", "expected": EVIL}
    blocks = [
        {"id": "in", "type": "start_json"},
        {"id": "route", "type": "conditional", "config": {"conditions": [{"id": "evil", "sub_conditions": [sub]}]}},
    ]
    edges = [
        {
            "source_block": "in",
            "target_block": "route",
            "source_handle": "output-json-0",
            "target_handle": "input-json-0",
        }
    ]
    wf_id, ids = build(client, stack.project_id, blocks, edges)
    run = client.workflows.runs.create(workflow_id=wf_id, json_inputs={ids["in"]: {"code": ATTACK}}, version="draft")
    done = wait_for(client, run.id, timeout=30)
    assert done.lifecycle.status == "completed", done.lifecycle
    route = http.get(f"/v1/workflows/runs/{run.id}/steps/{ids['route']}").json()
    assert route["routing_decisions"] == ["output-json-else"]
