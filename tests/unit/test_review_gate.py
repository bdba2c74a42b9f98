"""Review gates after a block ran: what a predicate reads (gate_input), what a reviewer starts from
(seed_snapshot), and `Executors.review_gate` evaluating the predicate in a real isolated executor."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any, cast

import pytest

from activities.executors import Executors
from activities.isolation import IsolatedExecutor
from activities.produced import Produced
from activities.provider import OfflineProvider
from docflow.models import Block
from docflow.runs import ExecuteBlockInput, HandleValue, RunContext

MiB = 1024 * 1024
SCHEMA = {
    "type": "object",
    "required": ["total", "vendor"],
    "properties": {"total": {"type": "number"}, "vendor": {"type": "string", "pattern": "^[A-Z]"}},
}
TEXT = "Total: 12.50\nVendor: acme"
CATEGORIES = [{"name": "Invoice"}, {"name": "Receipt"}]
SUBDOCUMENTS = [{"name": "Invoice"}, {"name": "Contract"}]


@pytest.fixture
async def executors() -> AsyncIterator[Executors]:
    async with IsolatedExecutor(processes=1, memory_bytes=256 * MiB, cpu_seconds=10) as isolated:
        # Extract on a text input touches neither storage nor api_call.
        yield Executors(cast(Any, None), OfflineProvider(), cast(Any, None), isolated)


def block_input(block_type: str, config: dict[str, Any]) -> ExecuteBlockInput:
    block = Block(id="blk_1", workflow_id="wf_1", type=block_type, config=config, updated_at=datetime.now(UTC))
    run = RunContext(run_id="run_1", project_id="proj_1", workflow_id="wf_1", version_id="v1")
    inputs = {"input-json-text": HandleValue(type="json", data={"text": TEXT})}
    return ExecuteBlockInput(run=run, block=block, step_id="blk_1", inputs=inputs)


def extract_config(predicate: dict[str, Any] | None, **more: Any) -> dict[str, Any]:
    config: dict[str, Any] = {"json_schema": SCHEMA, "inputs": [{"name": "text", "type": "json"}], **more}
    if predicate is not None:
        config["review"] = {"predicate": predicate, "deadline": "P3D"}
    return config


async def run_extract(executors: Executors, config: dict[str, Any]) -> tuple[ExecuteBlockInput, Produced]:
    inp = block_input("extract", config)
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
