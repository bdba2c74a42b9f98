"""Review gates over what real classifier and split executors produce: documents on the test S3, the
offline model, the predicate evaluated in a real isolated executor (`Executors.review_gate`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from activities.executors import Executors
from activities.isolation import IsolatedExecutor
from activities.provider import OfflineProvider
from activities.review_gate import ReviewGate
from activities.stored_files import store_made_document
from docflow.models import Block, FileRef
from docflow.runs import ExecuteBlockInput, HandleValue, RunContext
from storage.objects import ObjectStore
from tests.conftest import Stack
from tests.documents import three_invoices_pdf

SUBDOCUMENTS = [{"name": "Invoice", "allow_multiple_instances": True}, {"name": "Receipt"}]
CATEGORIES = [
    {"name": "Invoice", "description": "A bill from a vendor asking for payment of a total due"},
    {"name": "Booking Confirmation", "description": "A hotel or travel reservation with check-in dates"},
]


@pytest.fixture
async def executors(store: ObjectStore) -> AsyncIterator[Executors]:
    async with IsolatedExecutor(processes=1, memory_bytes=256 * 1024 * 1024, cpu_seconds=10) as isolated:
        yield Executors(store, OfflineProvider(), api=None, isolated=isolated)  # type: ignore[arg-type]


async def _gate(
    executors: Executors, stack: Stack, block_type: str, config: dict[str, Any], handle: str
) -> ReviewGate | None:
    source: FileRef = await store_made_document(
        executors.store, stack.project_id, "bundle.pdf", "application/pdf", three_invoices_pdf()
    )
    block = Block(
        id=f"{block_type}-gated", workflow_id="wf_gate", type=block_type, config=config, updated_at=datetime.now(UTC)
    )
    context = RunContext(run_id="run_gate", project_id=stack.project_id, workflow_id="wf_gate", version_id="v")
    inp = ExecuteBlockInput(run=context, block=block, step_id=block.id)
    inputs = {handle: HandleValue(type="file", document=source)}
    run = executors.split if block_type == "split" else executors.classifier
    return await executors.review_gate(inp, await run(inp, inputs))


async def test_a_split_gate_sees_its_documents_and_the_page_count(executors: Executors, stack: Stack) -> None:
    review = {"predicate": {"kind": "split_count_neq", "expected": 3}}
    gate = await _gate(executors, stack, "split", {"subdocuments": SUBDOCUMENTS, "review": review}, "input-file-0")
    assert gate is not None and not gate.fired, gate and gate.evaluation
    assert gate.snapshot == {
        "documents": [
            {"name": "Invoice", "pages": [1, 2]},
            {"name": "Invoice", "pages": [3, 4]},
            {"name": "Invoice", "pages": [5, 6]},
        ]
    }
    assert (gate.page_count, gate.subdocuments) == (6, ["Invoice", "Receipt"])

    review = {
        "predicate": {
            "kind": "all_of",
            "predicates": [
                {"kind": "any_split_pages_lt", "min_pages": 3},
                {"kind": "branch_in", "branches": ["invoice"]},
            ],
        }
    }
    gate = await _gate(executors, stack, "split", {"subdocuments": SUBDOCUMENTS, "review": review}, "input-file-0")
    assert gate is not None and gate.fired and [c.fired for c in gate.evaluation.children] == [True, True]


async def test_a_classifier_gate_sees_its_category(executors: Executors, stack: Stack) -> None:
    review = {"predicate": {"kind": "category_in", "categories": ["Invoice"]}, "deadline": "P1D"}
    config = {"categories": CATEGORIES, "review": review}
    gate = await _gate(executors, stack, "classifier", config, "input-file-document")
    assert gate is not None and gate.fired and gate.snapshot == {"category": "Invoice"}
    assert gate.categories == ["Invoice", "Booking Confirmation"]
    assert gate.config.on_deadline is not None and gate.config.on_deadline.action == "reject"

    review = {"predicate": {"kind": "top_margin_lt", "margin": 0.0}}
    gate = await _gate(
        executors, stack, "classifier", {"categories": CATEGORIES, "review": review}, "input-file-document"
    )
    assert gate is not None and not gate.fired and gate.evaluation.details["value"] >= 0
