"""`config.review` on extract, classifier and split: the ISO 8601 deadline, the deadline's outcome, and
write-time errors located at the field (`review.predicate.threshold`), never at the whole config."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from docflow.blocks import parse_config
from docflow.durations import DurationError, parse_iso_duration
from docflow.review_models import DEFAULT_DEADLINE_REASON, ReviewConfig, review_of

SCHEMA = {"type": "object", "properties": {"total": {"type": "number"}}}
CONFIGS: dict[str, dict[str, Any]] = {
    "extract": {"json_schema": SCHEMA},
    "classifier": {"categories": [{"name": "Invoice"}, {"name": "Receipt"}]},
    "split": {"subdocuments": [{"name": "Invoice"}]},
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("P3D", timedelta(days=3)),
        ("PT12H", timedelta(hours=12)),
        ("P1DT2H30M", timedelta(days=1, hours=2, minutes=30)),
        ("PT90M", timedelta(minutes=90)),
        ("PT1.5S", timedelta(seconds=1.5)),
        ("PT1,5S", timedelta(seconds=1.5)),
        ("P2W", timedelta(weeks=2)),
        ("p1dt1s", timedelta(days=1, seconds=1)),
        ("PT1S", timedelta(seconds=1)),
        ("P366D", timedelta(days=366)),
    ],
)
def test_durations(text: str, expected: timedelta) -> None:
    assert parse_iso_duration(text) == expected


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("P1Y", "years and months have no fixed length"),
        ("P2M", "years and months have no fixed length"),
        ("P1Y2M3D", "years and months have no fixed length"),
        ("P1.5D", "only the seconds may have a fraction"),
        ("-P1D", "cannot be negative"),
        ("PT0.5S", "between 1 second and 366 days"),
        ("PT0S", "between 1 second and 366 days"),
        ("P367D", "between 1 second and 366 days"),
        ("P99999999999999999999999D", "between 1 second and 366 days"),
        ("P99999999999999999999999W", "between 1 second and 366 days"),
        ("PT99999999999999999999999999999999999999H", "between 1 second and 366 days"),
        ("P", "is not an ISO 8601 duration"),
        ("PT", "is not an ISO 8601 duration"),
        ("P1DT", "is not an ISO 8601 duration"),
        ("PT1M2H", "is not an ISO 8601 duration"),
        ("P1W2D", "is not an ISO 8601 duration"),
        ("3 days", "is not an ISO 8601 duration"),
        (" P1D", "is not an ISO 8601 duration"),
        ("P\u0663D", "is not an ISO 8601 duration"),  # an Arabic-Indic 3: digits are ASCII
        ("P" + "1" * 70 + "D", "at most 64 characters"),
    ],
)
def test_refused_durations_say_why(text: str, says: str) -> None:
    with pytest.raises(DurationError, match=says):
        parse_iso_duration(text)


def test_a_deadline_rejects_by_default_with_a_reason() -> None:
    review = ReviewConfig.model_validate({"predicate": {"kind": "always"}, "deadline": "P3D"})
    assert review.on_deadline is not None
    assert (review.on_deadline.action, review.on_deadline.reason) == ("reject", DEFAULT_DEADLINE_REASON)
    assert review.timeout == timedelta(days=3)
    approve = ReviewConfig.model_validate(
        {"predicate": {"kind": "always"}, "deadline": "PT1H", "on_deadline": {"action": "approve"}}
    )
    assert approve.on_deadline is not None and (approve.on_deadline.action, approve.on_deadline.reason) == (
        "approve",
        None,
    )
    forever = ReviewConfig.model_validate({"predicate": {"kind": "always"}})
    assert (forever.deadline, forever.on_deadline, forever.timeout) == (None, None, None)


@pytest.mark.parametrize("block_type", sorted(CONFIGS))
def test_a_valid_review_is_kept_as_written(block_type: str) -> None:
    review = {"predicate": {"kind": "always"}, "deadline": "P3D", "on_deadline": {"action": "approve", "reason": None}}
    config = parse_config(block_type, {**CONFIGS[block_type], "review": review})
    assert config.model_dump()["review"] == review
    parsed = review_of(config)
    assert parsed is not None and parsed.predicate.kind == "always"
    assert review_of(parse_config(block_type, CONFIGS[block_type])) is None


def errors(block_type: str, review: Any, **more: Any) -> list[tuple[str, str]]:
    with pytest.raises(ValidationError) as raised:
        parse_config(block_type, {**CONFIGS[block_type], **more, "review": review})
    return [(".".join(str(p) for p in e["loc"]), e["msg"]) for e in raised.value.errors()]


def p(kind: str, **fields: Any) -> dict[str, Any]:
    return {"kind": kind, **fields}


def gate(predicate: dict[str, Any], **more: Any) -> dict[str, Any]:
    return {"predicate": predicate, **more}


LIKELY_TOTAL = {"sub_conditions": [{"path": "likelihoods.total", "operator": "lt", "expected": 0.5}]}
N3 = {"n_consensus": 3}


@pytest.mark.parametrize(
    ("block_type", "review", "more", "field", "says"),
    [
        ("extract", gate(p("category_in", categories=["a"])), {}, "review.predicate.kind", "applies to classifier"),
        ("extract", gate(p("confidence_lt", threshold=0.5)), {}, "review.predicate.threshold", "n_consensus > 1"),
        ("split", gate(p("top_margin_lt", margin=0.1)), {}, "review.predicate.kind", "applies to classifier"),
        ("classifier", gate(p("confidence_lt", threshold=2)), {}, "review.predicate.threshold", "less than or equal"),
        (
            "extract",
            gate(p("any_of", predicates=[p("always"), p("branch_in", branches=["x"])])),
            N3,
            "review.predicate.predicates.1.kind",
            "applies to classifier, conditional, split",
        ),
        (
            "extract",
            gate(p("all_of", predicates=[p("field_confidence_lt", path="total", threshold=-1)])),
            N3,
            "review.predicate.predicates.0.threshold",
            "greater than or equal to 0",
        ),
        (
            "extract",
            gate(p("json_condition", condition=LIKELY_TOTAL)),
            {},
            "review.predicate.condition.sub_conditions.0.path",
            "n_consensus > 1",
        ),
        ("classifier", gate(p("always"), deadline="P1M"), {}, "review.deadline", "no fixed length"),
        ("classifier", gate(p("always"), deadline=3), {}, "review.deadline", "valid string"),
        ("split", gate(p("always"), on_deadline={"action": "reject"}), {}, "review.on_deadline", "needs a deadline"),
        (
            "split",
            gate(p("always"), deadline="P1D", on_deadline={"action": "wait"}),
            {},
            "review.on_deadline.action",
            "'reject' or 'approve'",
        ),
        ("split", gate(p("always"), when="now"), {}, "review.when", "Extra inputs"),
        ("split", gate(p("nope")), {}, "review.predicate", "does not match any of the expected tags"),
        ("split", {"deadline": "P1D"}, {}, "review.predicate", "Field required"),
        ("split", "always", {}, "review", "valid dictionary"),
    ],
)
def test_refused_reviews_name_the_field(
    block_type: str, review: Any, more: dict[str, Any], field: str, says: str
) -> None:
    found = errors(block_type, review, **more)
    assert [f for f, _ in found] == [field], found
    assert says in found[0][1]
