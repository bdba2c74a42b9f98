"""Review gates after a block ran: what a predicate reads (gate_input), what a reviewer starts from
(seed_snapshot), and `Executors.review_gate` evaluating the predicate in a real isolated executor."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any, cast

import pytest

from activities.errors import BlockError
from activities.executors import Executors
from activities.isolation import IsolatedExecutor
from activities.produced import Produced
from activities.provider import OfflineProvider
from docflow.blocks import parse_config
from docflow.models import Block
from docflow.review_gate import gate_artifact, gate_input, seed_snapshot
from docflow.runs import ExecuteBlockInput, HandleValue, RunContext

MiB = 1024 * 1024
SCHEMA = {
    "type": "object",
    "required": ["total", "vendor"],
    "properties": {"total": {"type": "number"}, "vendor": {"type": "string", "pattern": "^[A-Z]"}},
}
TEXT = "Total: 12.50\nVendor: acme"
UPPER = "Total: 3\nVendor: Acme"
CATEGORIES = [{"name": "Invoice"}, {"name": "Receipt"}]
SUBDOCUMENTS = [{"name": "Invoice"}, {"name": "Contract"}]


@pytest.fixture
async def executors() -> AsyncIterator[Executors]:
    async with IsolatedExecutor(processes=1, memory_bytes=256 * MiB, cpu_seconds=10) as isolated:
        # Extract on a text input touches neither storage nor api_call.
        yield Executors(cast(Any, None), OfflineProvider(), cast(Any, None), isolated)


def block_input(block_type: str, config: dict[str, Any], text: str = TEXT) -> ExecuteBlockInput:
    block = Block(id="blk_1", workflow_id="wf_1", type=block_type, config=config, updated_at=datetime.now(UTC))
    run = RunContext(run_id="run_1", project_id="proj_1", workflow_id="wf_1", version_id="v1")
    inputs = {"input-json-text": HandleValue(type="json", data={"text": text})}
    return ExecuteBlockInput(run=run, block=block, step_id="blk_1", inputs=inputs)


def extract_config(predicate: dict[str, Any] | None, **more: Any) -> dict[str, Any]:
    config: dict[str, Any] = {"json_schema": SCHEMA, "inputs": [{"name": "text", "type": "json"}], **more}
    if predicate is not None:
        config["review"] = {"predicate": predicate, "deadline": "P3D"}
    return config


async def run_extract(
    executors: Executors, config: dict[str, Any], text: str = TEXT
) -> tuple[ExecuteBlockInput, Produced]:
    inp = block_input("extract", config, text)
    return inp, await executors.extract(inp, inp.inputs)


async def test_always_fires_with_the_output_as_seed_and_the_schema_to_check_against(executors: Executors) -> None:
    inp, produced = await run_extract(executors, extract_config({"kind": "always"}))
    gate = await executors.review_gate(inp, produced)
    assert gate is not None and gate.fired and gate.evaluation.reason == "always"
    assert gate.snapshot == {"total": 12.5, "vendor": "acme"}
    assert gate.output_schema == SCHEMA and gate.categories is None and gate.page_count is None
    assert gate.config.deadline == "P3D" and gate.config.on_deadline is not None
    assert gate.config.on_deadline.action == "reject"


async def test_no_review_config_no_gate(executors: Executors) -> None:
    inp, produced = await run_extract(executors, extract_config(None))
    assert await executors.review_gate(inp, produced) is None


async def test_validation_failed_reads_the_output_against_the_schema_with_re2(executors: Executors) -> None:
    # The offline model reads "acme", which breaks the schema's pattern (^[A-Z]).
    inp, produced = await run_extract(executors, extract_config({"kind": "validation_failed"}))
    gate = await executors.review_gate(inp, produced)
    assert gate is not None and gate.fired
    assert gate.evaluation.details["errors"] == [{"path": "vendor", "message": "'acme' does not match '^[A-Z]'"}]

    upper, produced = await run_extract(executors, extract_config({"kind": "validation_failed"}), UPPER)
    quiet = await executors.review_gate(upper, produced)
    assert quiet is not None and not quiet.fired and quiet.evaluation.reason == "no validation errors"


async def test_consensus_likelihoods_reach_the_predicate(executors: Executors) -> None:
    # Three identical offline votes: every field's likelihood is 1.
    config = extract_config({"kind": "confidence_lt", "threshold": 0.9}, n_consensus=3)
    inp, produced = await run_extract(executors, config, UPPER)
    gate = await executors.review_gate(inp, produced)
    assert gate is not None and not gate.fired and gate.evaluation.details["value"] == 1.0

    condition = {"sub_conditions": [{"path": "likelihoods.total", "operator": "gte", "expected": 1}]}
    config = extract_config({"kind": "json_condition", "condition": condition}, n_consensus=3)
    inp, produced = await run_extract(executors, config, UPPER)
    gate = await executors.review_gate(inp, produced)
    assert gate is not None and gate.fired


async def test_a_predicate_past_its_time_limit_is_a_block_error_naming_review_predicate(
    executors: Executors, monkeypatch: pytest.MonkeyPatch
) -> None:
    inp, produced = await run_extract(executors, extract_config({"kind": "always"}))
    monkeypatch.setattr("activities.executors.REVIEW_GATE_LIMIT_SECONDS", 0.001)
    with pytest.raises(BlockError) as raised:
        await executors.review_gate(inp, produced)
    assert raised.value.code == "review_gate_timeout"
    assert raised.value.details["field"] == "review.predicate"
    assert str(raised.value).startswith("review.predicate:")


# Artifacts in the shapes activities/executors.py writes for a classifier and a split (their documents come
# from storage, which this unit test has none of).
CLASSIFIER_ARTIFACT: dict[str, Any] = {
    "operation": "classification",
    "output": {"reasoning": "it lists amounts due", "category": "Invoice"},
    "consensus": {"choices": [], "likelihoods": 0.6},
    "likelihood": 0.6,
    "top_margin": 0.2,
    "selected_handle": "output-file-invoice",
}
SPLIT_ARTIFACT: dict[str, Any] = {
    "operation": "split",
    "output": [{"name": "Invoice", "pages": [2, 1]}, {"name": "Contract", "pages": [3]}],
    "consensus": {
        "likelihoods": [{"name": 0.9, "pages": [0.7, 1.0]}, {"name": 0.5, "pages": []}],
        "choices": [],
    },
    "page_count": 3,
}


def test_a_classifiers_gate_reads_its_category_likelihood_margin_and_route() -> None:
    config = parse_config("classifier", {"categories": CATEGORIES})
    gate = gate_input("classifier", config, CLASSIFIER_ARTIFACT, ["output-file-invoice"])
    assert (gate.category, gate.likelihood, gate.top_margin) == ("Invoice", 0.6, 0.2)
    assert gate.data == {"category": "Invoice"} and gate.routing == ["output-file-invoice"]
    assert seed_snapshot("classifier", CLASSIFIER_ARTIFACT) == {"category": "Invoice"}


def test_a_splits_gate_reads_its_documents_with_their_likelihoods() -> None:
    config = parse_config("split", {"subdocuments": SUBDOCUMENTS})
    gate = gate_input("split", config, SPLIT_ARTIFACT, ["output-file-invoice", "output-json-splits"])
    assert [(s.name, s.pages, s.likelihood, s.page_likelihoods) for s in gate.splits] == [
        ("Invoice", [1, 2], 0.9, [0.7, 1.0]),
        ("Contract", [3], 0.5, None),
    ]
    snapshot = {"documents": [{"name": "Invoice", "pages": [1, 2]}, {"name": "Contract", "pages": [3]}]}
    assert seed_snapshot("split", SPLIT_ARTIFACT) == snapshot and gate.data == snapshot


def test_an_extracts_gate_reads_output_schema_errors_and_likelihoods() -> None:
    config = parse_config("extract", {"json_schema": SCHEMA, "n_consensus": 3})
    artifact = {"output": {"total": "12", "vendor": None}, "consensus": {"likelihoods": {"total": 0.4}}}
    gate = gate_input("extract", config, artifact, None)
    assert gate.data == artifact["output"] and gate.json_schema == SCHEMA and gate.likelihoods == {"total": 0.4}
    assert [e["path"] for e in gate.validation_errors] == ["total", "vendor"]
    no_consensus = gate_input("extract", config, {"output": {"total": 1, "vendor": "A"}, "consensus": None}, None)
    assert no_consensus.likelihoods is None and no_consensus.validation_errors == []
    assert seed_snapshot("extract", artifact) == {"total": "12", "vendor": None}


def test_odd_artifacts_give_empty_gates_not_errors() -> None:
    config = parse_config("split", {"subdocuments": SUBDOCUMENTS})
    odd = {"output": [3, {"name": "Invoice", "pages": ["x", 2]}], "consensus": {"likelihoods": "?"}}
    gate = gate_input("split", config, odd, None)
    assert [(s.name, s.pages, s.likelihood) for s in gate.splits] == [("Invoice", [2], None)]
    classifier = gate_input("classifier", parse_config("classifier", {"categories": CATEGORIES}), {}, None)
    assert (classifier.category, classifier.likelihood, classifier.data) == (None, None, {"category": None})
    assert seed_snapshot("extract", {"output": None}) == {}


async def test_review_gate_on_a_classifier_and_a_split(executors: Executors) -> None:
    review: dict[str, Any] = {"predicate": {"kind": "category_in", "categories": ["Invoice"]}}
    inp = block_input("classifier", {"categories": CATEGORIES, "review": review})
    produced = Produced(routing=["output-file-invoice"], artifact=CLASSIFIER_ARTIFACT)
    gate = await executors.review_gate(inp, produced)
    assert gate is not None and gate.fired and gate.categories == ["Invoice", "Receipt"]
    assert gate.snapshot == {"category": "Invoice"} and gate.output_schema is None

    review = {"predicate": {"kind": "any_split_pages_lt", "min_pages": 2}, "deadline": "PT12H"}
    inp = block_input("split", {"subdocuments": SUBDOCUMENTS, "review": review})
    gate = await executors.review_gate(inp, Produced(routing=["output-file-invoice"], artifact=SPLIT_ARTIFACT))
    assert gate is not None and gate.fired and gate.evaluation.details["splits"] == [1]
    assert (gate.subdocuments, gate.page_count) == (["Invoice", "Contract"], 3)
    assert gate.snapshot["documents"][0] == {"name": "Invoice", "pages": [1, 2]}


async def test_a_block_type_without_reviews_has_no_gate(executors: Executors) -> None:
    inp = block_input("merge_dicts", {})
    assert await executors.review_gate(inp, Produced()) is None


def test_only_what_the_gate_reads_is_sent_to_the_process() -> None:
    artifact = {**SPLIT_ARTIFACT, "usage": {"calls": 3}, "consensus": {**SPLIT_ARTIFACT["consensus"], "choices": [[1]]}}
    trimmed = gate_artifact(artifact)
    assert set(trimmed) == {"output", "consensus", "page_count"} and set(trimmed["consensus"]) == {"likelihoods"}
    config = parse_config("split", {"subdocuments": SUBDOCUMENTS})
    assert gate_input("split", config, trimmed, None) == gate_input("split", config, artifact, None)
