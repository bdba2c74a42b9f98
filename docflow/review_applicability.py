"""Which review predicates a block can answer: checked on write, so a gate never waits on what cannot exist.

Rules (decisions where NOTES.md §8 says only "consensus predicates need n_consensus>1"):

- `validation_failed`, `any_required_field_null` and `field_confidence_lt` read an extract's output and schema:
  extract only;
- `confidence_lt` on an extract reads the consensus likelihood tree, so it needs n_consensus > 1; on a
  classifier it reads the category's likelihood, which the provider's scores give even at n_consensus = 1;
- `category_in`, `top_margin_lt`: classifier only (the margin, like the likelihood, exists at n = 1);
- `split_count_neq`, `any_split_pages_lt`, `boundary_confidence_lt`: split only (at n = 1 the boundary
  reads the provider's likelihoods; when it gives none the predicate fails closed, see review_predicates);
- `json_condition`: `data.*` anywhere; `likelihoods.*` only on an extract with n_consensus > 1;
- `branch_in`: blocks that route (classifier, split, conditional);
- `always` anywhere; `any_of` / `all_of` check every part.

Each problem names the field, from `review.predicate` down (`review.predicate.predicates[1].threshold`).
`validate_review` checks a block's whole `config.review` on write and reports every problem as a pydantic
error located at its field (`review.predicate.predicates.1.threshold`, without the `kind` tag pydantic puts
in the location of a tagged union's member), so the API's 422 names it like any other config field.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

from docflow.jsonpath import PathError, parse_path
from docflow.review_models import KINDS, AllOf, AnyOf, JsonCondition, ReviewConfig, ReviewPredicate

ROOT = "review.predicate"
ROUTING_BLOCKS = frozenset({"classifier", "split", "conditional"})

_BLOCKS: dict[str, frozenset[str]] = {
    "validation_failed": frozenset({"extract"}),
    "any_required_field_null": frozenset({"extract"}),
    "field_confidence_lt": frozenset({"extract"}),
    "confidence_lt": frozenset({"extract", "classifier"}),
    "category_in": frozenset({"classifier"}),
    "top_margin_lt": frozenset({"classifier"}),
    "split_count_neq": frozenset({"split"}),
    "any_split_pages_lt": frozenset({"split"}),
    "boundary_confidence_lt": frozenset({"split"}),
    "branch_in": ROUTING_BLOCKS,
}
_CONSENSUS_ON_EXTRACT = {"confidence_lt": "threshold", "field_confidence_lt": "threshold"}


def check_applicable(predicate: ReviewPredicate, block_type: str, n_consensus: int, path: str = ROOT) -> list[str]:
    """Problems (`field path: message`) for the parts of a predicate this block cannot produce."""
    if isinstance(predicate, AnyOf | AllOf):
        problems: list[str] = []
        for i, part in enumerate(predicate.predicates):
            problems += check_applicable(part, block_type, n_consensus, f"{path}.predicates[{i}]")
        return problems
    blocks = _BLOCKS.get(predicate.kind)
    if blocks is not None and block_type not in blocks:
        allowed = ", ".join(sorted(blocks))
        return [f"{path}.kind: '{predicate.kind}' applies to {allowed} blocks, not {block_type}"]
    consensus = block_type == "extract" and n_consensus <= 1
    field = _CONSENSUS_ON_EXTRACT.get(predicate.kind)
    if consensus and field is not None:
        return [f"{path}.{field}: '{predicate.kind}' needs likelihoods, which an extract has only with n_consensus > 1"]
    if isinstance(predicate, JsonCondition):
        return _condition_problems(predicate, block_type, n_consensus, path)
    return []


def _condition_problems(predicate: JsonCondition, block_type: str, n_consensus: int, path: str) -> list[str]:
    if block_type == "extract" and n_consensus > 1:
        return []
    problems = []
    for i, sub in enumerate(predicate.condition.sub_conditions):
        try:
            first = parse_path(sub.path).segments[0]
        except (PathError, IndexError):
            continue  # refused when the predicate was validated
        if first == "likelihoods":
            problems.append(
                f"{path}.condition.sub_conditions[{i}].path: likelihoods exist only on an extract with n_consensus > 1"
            )
    return problems


def validate_review(raw: Any, block_type: str, n_consensus: int, title: str = "config") -> ReviewConfig:
    """A block's `config.review` validated for this block; a pydantic ValidationError located under `review`."""
    try:
        review = ReviewConfig.model_validate(raw)
    except ValidationError as exc:
        errors = [_error(("review", *_untagged(e["loc"])), e["type"], e["msg"], e["input"]) for e in exc.errors()]
        raise ValidationError.from_exception_data(title, errors) from None
    problems = check_applicable(review.predicate, block_type, n_consensus)
    if problems:
        located = map(_split, problems)
        errors = [_error(_location(path), "review_not_applicable", message, raw) for path, message in located]
        raise ValidationError.from_exception_data(title, errors)
    return review


def _error(loc: tuple[str | int, ...], kind: str, message: str, value: Any) -> InitErrorDetails:
    return InitErrorDetails(type=PydanticCustomError(kind, message), loc=loc, input=value)


def _untagged(loc: tuple[str | int, ...]) -> tuple[str | int, ...]:
    # `predicate.confidence_lt.threshold` → `predicate.threshold`: the kind is a tag, not a field.
    kept: list[str | int] = []
    for part in loc:
        last, before = (kept[-1] if kept else None), (kept[-2] if len(kept) > 1 else None)
        tagged = last == "predicate" or (isinstance(last, int) and before == "predicates")
        if not (tagged and part in KINDS):
            kept.append(part)
    return tuple(kept)


def _split(problem: str) -> tuple[str, str]:
    path, _, message = problem.partition(": ")
    return path, message


def _location(path: str) -> tuple[str | int, ...]:
    """`review.predicate.predicates[1].threshold` → ('review', 'predicate', 'predicates', 1, 'threshold')."""
    return tuple(int(index) if index else name for name, index in re.findall(r"([^.\[\]]+)|\[(\d+)\]", path))
