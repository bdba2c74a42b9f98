"""Consensus extraction end to end: K calls to the local chat-completions server, merged field by field.

The model server answers the K votes of a step with scripted contents (`answer_next`), so the test decides
where the votes agree and where they disagree; the step's output, its likelihoods and the artifact (checked by
the SDK's `ExtractionWorkflowArtifact`) must follow NOTES.md §7.
"""

from __future__ import annotations

from typing import Any

import httpx
from retab import Retab
from retab.types.workflows.artifacts import ExtractionWorkflowArtifact

from tests.chat_server import ChatCompletionsServer
from tests.conftest import Stack
from tests.integration.builders import build, wait_for

SCHEMA = {
    "type": "object",
    "properties": {
        "invoice_number": {"type": "string"},
        "total": {"type": "number"},
        "paid": {"type": "boolean"},
        "currency": {"type": "string", "enum": ["EUR", "USD"]},
    },
}


def _workflow(client: Retab, stack: Stack, n: int, schema: dict[str, Any] = SCHEMA) -> tuple[str, dict[str, str]]:
    config = {"json_schema": schema, "inputs": [{"name": "text", "type": "json"}], "n_consensus": n}
    blocks = [{"id": "in", "type": "start_json"}, {"id": "ex", "type": "extract", "config": config}]
    edge = {"source_block": "in", "target_block": "ex", "source_handle": "output-json-0"}
    return build(client, stack.project_id, blocks, [{**edge, "target_handle": "input-json-text"}])


def _run(client: Retab, wf_id: str, ids: dict[str, str]) -> Any:
    run = client.workflows.runs.create(
        workflow_id=wf_id, json_inputs={ids["in"]: {"text": "an invoice"}}, version="draft"
    )
    return wait_for(client, run.id)


def test_five_votes_are_merged_field_by_field_with_likelihoods(
    client: Retab, stack: Stack, http: httpx.Client, model_server: ChatCompletionsServer
) -> None:
    wf_id, ids = _workflow(client, stack, 5)
    model_server.answer_next(
        {"invoice_number": "INV-001", "total": 100.0, "paid": True, "currency": "EUR"},
        {"invoice_number": "inv 001", "total": 101.0, "paid": True, "currency": "EUR"},
        {"invoice_number": "INV-001", "total": 150.0, "paid": False, "currency": "USD"},
        {"invoice_number": "INV-001", "total": 99.0, "paid": True, "currency": "EUR"},
        {"invoice_number": None, "total": None, "paid": None, "currency": "EUR"},
    )
    done = _run(client, wf_id, ids)
    assert done.lifecycle.status == "completed", done.lifecycle
    step = client.workflows.steps.get(ids["ex"], run_id=done.id)
    data = step.handle_outputs["output-json-0"].data  # type: ignore[index]
    assert data["invoice_number"] == "INV-001"
    assert data["total"] == 100.0  # the 99–101 cluster (within 3 %) wins, its mean
    assert data["paid"] is True and data["currency"] == "EUR"
    assert step.artifact is not None
    raw = http.get(f"/v1/workflows/artifacts/{step.artifact.id}").json()
    artifact = ExtractionWorkflowArtifact.model_validate(raw)
    assert artifact.n_consensus == 5 and artifact.consensus is not None
    assert len(artifact.consensus.choices or []) == 5
    likelihoods = artifact.consensus.likelihoods or {}
    assert likelihoods["invoice_number"] == 0.8  # four of five agree ("inv 001" is the same number)
    assert likelihoods["total"] == 0.6  # 100, 101, 99 of five (None counts in the denominator)
    assert likelihoods["paid"] == 0.6
    assert likelihoods["currency"] == 0.8
    assert raw["usage"]["calls"] == 5


def test_votes_that_agree_have_likelihood_one(
    client: Retab, stack: Stack, http: httpx.Client, model_server: ChatCompletionsServer
) -> None:
    wf_id, ids = _workflow(client, stack, 3)
    vote = {"invoice_number": "A-7", "total": 12.5, "paid": False, "currency": "USD"}
    model_server.answer_next(vote, vote, vote)
    done = _run(client, wf_id, ids)
    step = client.workflows.steps.get(ids["ex"], run_id=done.id)
    assert step.handle_outputs["output-json-0"].data == vote  # type: ignore[index]
    assert step.artifact is not None
    consensus = http.get(f"/v1/workflows/artifacts/{step.artifact.id}").json()["consensus"]
    assert consensus["likelihoods"] == {"invoice_number": 1.0, "total": 1.0, "paid": 1.0, "currency": 1.0}


def test_n_consensus_outside_one_to_ten_is_refused_naming_the_field(
    client: Retab, stack: Stack, http: httpx.Client
) -> None:
    wf = client.workflows.create(project_id=stack.project_id, name="bad consensus")
    config = {"json_schema": SCHEMA, "n_consensus": 11}
    response = http.post(
        "/v1/workflows/blocks", json={"workflow_id": wf.id, "id": "ex", "type": "extract", "config": config}
    )
    assert response.status_code == 422, response.text
    assert "n_consensus" in response.text
