"""`config.review` through the API with the official SDK: a review gate that is invalid, or asks what the
block cannot produce, is a 422 naming the field under `config.review`; a valid one is stored as written."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from retab import Retab
from retab.exceptions import ValidationError

from tests.conftest import Stack

SCHEMA = {"type": "object", "required": ["total"], "properties": {"total": {"type": "number"}}}
N3 = {"json_schema": SCHEMA, "n_consensus": 3}


def _workflow(client: Retab, stack: Stack) -> str:
    return client.workflows.create(project_id=stack.project_id, name=f"review config {uuid.uuid4().hex[:8]}").id


def _refused(client: Retab, wf: str, block_type: str, config: dict[str, Any]) -> dict[str, Any]:
    with pytest.raises(ValidationError) as raised:
        client.workflows.blocks.create(workflow_id=wf, type=block_type, config=config)
    assert raised.value.status_code == 422
    details: dict[str, Any] = raised.value.details or {}
    return {**details, "message": str(raised.value)}


@pytest.mark.parametrize(
    ("config", "field", "says"),
    [
        (
            {**N3, "review": {"predicate": {"kind": "category_in", "categories": ["a"]}}},
            "config.review.predicate.kind",
            "'category_in' applies to classifier blocks, not extract",
        ),
        (
            {"json_schema": SCHEMA, "review": {"predicate": {"kind": "confidence_lt", "threshold": 0.8}}},
            "config.review.predicate.threshold",
            "only with n_consensus > 1",
        ),
        (
            {"json_schema": SCHEMA, "review": {"predicate": {"kind": "always"}, "deadline": "P1M"}},
            "config.review.deadline",
            "years and months have no fixed length",
        ),
        (
            {"json_schema": SCHEMA, "review": {"predicate": {"kind": "always"}, "deadline": "three days"}},
            "config.review.deadline",
            "not an ISO 8601 duration",
        ),
        (
            {**N3, "review": {"predicate": {"kind": "confidence_lt", "threshold": 1.5}}},
            "config.review.predicate.threshold",
            "less than or equal to 1",
        ),
    ],
)  # fmt: skip
def test_an_extract_gate_it_cannot_answer_is_422_naming_the_field(
    client: Retab, stack: Stack, config: dict[str, Any], field: str, says: str
) -> None:
    wf = _workflow(client, stack)
    refused = _refused(client, wf, "extract", config)
    assert refused["field"] == field
    assert says in refused["message"]
    assert client.workflows.blocks.list(workflow_id=wf).data == []


def test_a_valid_gate_is_accepted_and_read_back_unchanged(client: Retab, stack: Stack) -> None:
    wf = _workflow(client, stack)
    review = {
        "predicate": {
            "kind": "any_of",
            "predicates": [
                {"kind": "confidence_lt", "threshold": 0.8},
                {"kind": "any_required_field_null"},
                {
                    "kind": "json_condition",
                    "condition": {"sub_conditions": [{"path": "data.total", "operator": "gt", "expected": 1000}]},
                },
            ],
        },
        "deadline": "P3D",
        "on_deadline": {"action": "approve", "reason": None},
    }
    config = {"json_schema": SCHEMA, "n_consensus": 3, "review": review}
    block = client.workflows.blocks.create(workflow_id=wf, type="extract", config=config)
    assert block.config == config
    assert client.workflows.blocks.get(block.id).config == config

    gate = {"predicate": {"kind": "category_in", "categories": ["Invoice"]}}
    categories = [{"name": "Invoice"}, {"name": "Receipt"}]
    classifier = client.workflows.blocks.create(
        workflow_id=wf, type="classifier", config={"categories": categories, "review": gate}
    )
    assert client.workflows.blocks.get(classifier.id).config == {"categories": categories, "review": gate}


def test_an_edit_that_breaks_the_gate_is_422_and_changes_nothing(client: Retab, stack: Stack) -> None:
    wf = _workflow(client, stack)
    config = {
        "json_schema": SCHEMA,
        "n_consensus": 3,
        "review": {"predicate": {"kind": "confidence_lt", "threshold": 0.8}},
    }
    block = client.workflows.blocks.create(workflow_id=wf, type="extract", config=config)
    # Dropping consensus leaves the gate with no likelihood to read: refused, naming the gate's field.
    with pytest.raises(ValidationError) as raised:
        client.workflows.blocks.update(block.id, workflow_id=wf, config={"n_consensus": 1})
    assert (raised.value.details or {})["field"] == "config.review.predicate.threshold"
    with pytest.raises(ValidationError) as raised:
        client.workflows.blocks.update(
            block.id, workflow_id=wf, config={"review": {"on_deadline": {"action": "approve"}}}
        )
    assert (raised.value.details or {})["field"] == "config.review.on_deadline"
    assert client.workflows.blocks.get(block.id).config == config
