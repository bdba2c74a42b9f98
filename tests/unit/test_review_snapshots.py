"""Review snapshots: each block type's shape is accepted when right and refused naming the JSON path when wrong."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pytest

from docflow.review_snapshots import MAX_DEPTH, SnapshotError, check_snapshot
from docflow.reviews import ReviewRecord

SCHEMA = {
    "type": "object",
    "required": ["total", "lines"],
    "properties": {
        "total": {"type": "number"},
        "lines": {
            "type": "array",
            "items": {"type": "object", "required": ["sku"], "properties": {"qty": {"type": "integer"}}},
        },
        "code": {"type": "string", "pattern": "^(a+)+$"},
    },
}


def record(block_type: str, **fields: Any) -> ReviewRecord:
    return ReviewRecord(
        id="rev_1",
        project_id="proj_1",
        workflow_id="wf_1",
        workflow_version_id="ver_1",
        run_id="run_1",
        block_id="blk_1",
        step_id="step_1",
        block_type=block_type,  # type: ignore[arg-type]
        triggered_by={"kind": "always"},
        created_at=datetime.now(UTC),
        seed_version_id="rvr_1",
        **fields,
    )


EXTRACT = record("extract", output_schema=SCHEMA)
CLASSIFIER = record("classifier", categories=["invoice", "receipt"])
SPLIT = record("split", subdocuments=["invoice", "annex"], page_count=4)
FOR_EACH = record("for_each", page_count=3)


def refused(review: ReviewRecord, snapshot: dict[str, Any]) -> str:
    with pytest.raises(SnapshotError) as caught:
        check_snapshot(review, snapshot)
    return caught.value.field


@pytest.mark.parametrize(
    ("review", "snapshot"),
    [
        (EXTRACT, {"total": 12.5, "lines": [{"sku": "A", "qty": 2}], "code": "aaa"}),
        (record("extract"), {"anything": ["goes", 1]}),
        (CLASSIFIER, {"category": "receipt"}),
        (SPLIT, {"documents": [{"name": "invoice", "pages": [1, 2]}, {"name": "annex", "pages": [4]}]}),
        (SPLIT, {"documents": []}),
        (record("split", subdocuments=["a"]), {"documents": [{"name": "a", "pages": [99]}]}),
        (FOR_EACH, {"partitions": [{"key": "INV-1", "pages": [1, 3]}]}),
    ],
)
def test_a_snapshot_of_the_blocks_shape_is_accepted(review: ReviewRecord, snapshot: dict[str, Any]) -> None:
    check_snapshot(review, snapshot)


@pytest.mark.parametrize(
    ("snapshot", "field"),
    [
        ({"total": "12", "lines": []}, "snapshot.total"),
        ({"total": 1, "lines": [{"sku": "A", "qty": 1.5}]}, "snapshot.lines.0.qty"),
        ({"total": 1, "lines": [{"qty": 1}]}, "snapshot.lines.0.sku"),
        ({"lines": []}, "snapshot.total"),
        ({"total": 1, "lines": "none"}, "snapshot.lines"),
        ({"total": 1, "lines": [], "code": "b"}, "snapshot.code"),
    ],
)
def test_an_extract_snapshot_is_checked_against_the_output_schema(snapshot: dict[str, Any], field: str) -> None:
    assert refused(EXTRACT, snapshot) == field


def test_a_backtracking_pattern_is_checked_in_linear_time() -> None:
    started = time.monotonic()
    assert refused(EXTRACT, {"total": 1, "lines": [], "code": "a" * 40 + "!"}) == "snapshot.code"
    assert time.monotonic() - started < 1.0


@pytest.mark.parametrize(
    ("snapshot", "field"),
    [
        ({"category": "fraud"}, "snapshot.category"),
        ({"category": ""}, "snapshot.category"),
        ({"category": 3}, "snapshot.category"),
        ({}, "snapshot.category"),
        ({"category": "invoice", "score": 1}, "snapshot.score"),
    ],
)
def test_a_classifier_snapshot_names_one_of_the_categories(snapshot: dict[str, Any], field: str) -> None:
    assert refused(CLASSIFIER, snapshot) == field


@pytest.mark.parametrize(
    ("snapshot", "field"),
    [
        ({}, "snapshot.documents"),
        ({"documents": {}}, "snapshot.documents"),
        ({"documents": ["invoice"]}, "snapshot.documents.0"),
        ({"documents": [{"name": "memo", "pages": [1]}]}, "snapshot.documents.0.name"),
        ({"documents": [{"name": "invoice"}]}, "snapshot.documents.0.pages"),
        ({"documents": [{"name": "invoice", "pages": [1], "x": 1}]}, "snapshot.documents.0.x"),
        ({"documents": [{"name": "invoice", "pages": "1-2"}]}, "snapshot.documents.0.pages"),
        ({"documents": [{"name": "annex", "pages": [0]}]}, "snapshot.documents.0.pages.0"),
        ({"documents": [{"name": "annex", "pages": [True]}]}, "snapshot.documents.0.pages.0"),
        ({"documents": [{"name": "annex", "pages": [1.0]}]}, "snapshot.documents.0.pages.0"),
        ({"documents": [{"name": "annex", "pages": [2, 1]}]}, "snapshot.documents.0.pages.1"),
        ({"documents": [{"name": "annex", "pages": [1, 1]}]}, "snapshot.documents.0.pages.1"),
        (
            {"documents": [{"name": "invoice", "pages": [1]}, {"name": "annex", "pages": [5]}]},
            "snapshot.documents.1.pages.0",
        ),
    ],
)
def test_a_split_snapshot_names_sub_documents_and_valid_pages(snapshot: dict[str, Any], field: str) -> None:
    assert refused(SPLIT, snapshot) == field


def test_a_for_each_snapshot_has_keys_and_pages() -> None:
    assert refused(FOR_EACH, {"partitions": [{"key": "", "pages": [1]}]}) == "snapshot.partitions.0.key"
    assert refused(FOR_EACH, {"partitions": [{"key": "a", "pages": [4]}]}) == "snapshot.partitions.0.pages.0"


def test_nesting_past_the_limit_is_refused_before_anything_recurses() -> None:
    deep: dict[str, Any] = {}
    inner = deep
    for _ in range(MAX_DEPTH + 5):
        inner["a"] = {}
        inner = inner["a"]
    field = refused(record("extract"), deep)
    assert field.startswith("snapshot.a.a.") and field.count(".") == MAX_DEPTH + 1
    # 100 000 levels: neither the check nor the error overflows the stack.
    deeper: list[Any] = []
    for _ in range(100_000):
        deeper = [deeper]
    assert refused(record("extract"), {"x": deeper}).startswith("snapshot.x.0.0")
