"""Review gate predicates (`config.review.predicate`, NOTES.md §8) and their pure evaluator.

A predicate is discriminated by `kind`; `evaluate(predicate, GateInput)` says whether the gate fires, why
(`reason`, `details`), and for `any_of` / `all_of` the evaluation of each part. Decisions:

- a likelihood predicate with nothing to read fails closed, i.e. fires: when a block gives no likelihood
  (a classifier whose model gave no scores, an extract without consensus, a split without likelihoods),
  nobody can vouch for the output, so a person looks at it;
- `confidence_lt`: the lowest leaf of the likelihood tree < threshold (extract), or the classifier's
  likelihood < threshold. An empty tree (an empty object) has nothing uncertain and does not fire;
- `field_confidence_lt`: `path` in `docflow.jsonpath` syntax (`total`, `data.items[0].qty`, `items.*.qty`)
  names a field of the output; the lowest likelihood at or under it (a leaf or a subtree) < threshold.
  A path that reaches no likelihood fires (the field was named, and nothing vouches for it);
- `boundary_confidence_lt`: the lowest, over the splits, of the first page's likelihood (that a new
  document starts there), or of the split's likelihood when it has no page likelihoods; no splits → no fire;
- `any_required_field_null`: `required` of the schema, walked through objects and arrays of objects;
- `json_condition`: a conditional block's condition over `{data, likelihoods}`; every path starts with
  `data` or `likelihoods`, and the operators are `docflow.conditions`' (regexes on RE2);
- `branch_in`: a branch is an output handle (`output-json-high`) or its key (`high`);
- `any_of` reports the first part that fired, `all_of` the first that did not; every part is evaluated
  so the record shows all of them. Nesting is bounded: at most 8 levels of any_of/all_of and 64
  predicates in one tree (hostile configs are refused on write, before the parts are validated).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, Field

from docflow.conditions import evaluate_sub_condition
from docflow.jsonpath import MISSING, PathError, resolve_all
from docflow.review_inputs import GateInput, min_leaf, null_required_fields
from docflow.review_models import (
    CONDITION_ROOTS,
    AllOf,
    Always,
    AnyOf,
    AnyRequiredFieldNull,
    AnySplitPagesLt,
    BoundaryConfidenceLt,
    BranchIn,
    CategoryIn,
    ConfidenceLt,
    FieldConfidenceLt,
    JsonCondition,
    ReviewPredicate,
    SplitCountNeq,
    TopMarginLt,
    ValidationFailed,
)

__all__ = ["Evaluation", "GateInput", "ReviewPredicate", "evaluate"]


class Evaluation(BaseModel):
    """Whether a predicate fired, why, and (any_of / all_of) each part's evaluation."""

    fired: bool
    kind: str
    reason: str
    details: dict[str, Any] = Field(default_factory=dict)
    children: list[Evaluation] = Field(default_factory=list)


def evaluate(predicate: ReviewPredicate, gate: GateInput) -> Evaluation:
    """Evaluate a predicate over what a block produced; never raises on data."""
    evaluator: Callable[[Any, GateInput], Evaluation] = _EVALUATORS[predicate.kind]
    return evaluator(predicate, gate)


def _result(kind: str, fired: bool, reason: str, **details: Any) -> Evaluation:
    return Evaluation(fired=fired, kind=kind, reason=reason, details=details)


def _below(kind: str, what: str, value: float | None, threshold: float, **details: Any) -> Evaluation:
    if value is None:
        return _result(kind, True, f"no {what} to compare: fails closed", threshold=threshold, **details)
    fired = value < threshold
    sign = "<" if fired else ">="
    return _result(kind, fired, f"{what} {value:g} {sign} {threshold:g}", value=value, threshold=threshold, **details)


def _always(p: Always, gate: GateInput) -> Evaluation:
    return _result(p.kind, True, "always")


def _validation_failed(p: ValidationFailed, gate: GateInput) -> Evaluation:
    n = len(gate.validation_errors)
    reason = f"{n} validation error(s)" if n else "no validation errors"
    return _result(p.kind, n > 0, reason, errors=gate.validation_errors[:20])


def _required_null(p: AnyRequiredFieldNull, gate: GateInput) -> Evaluation:
    paths = null_required_fields(gate.data, gate.json_schema)
    reason = f"required field(s) null: {', '.join(paths[:5])}" if paths else "no required field is null"
    return _result(p.kind, bool(paths), reason, paths=paths)


def _confidence(p: ConfidenceLt, gate: GateInput) -> Evaluation:
    if gate.block_type == "classifier":
        return _below(p.kind, "likelihood", gate.likelihood, p.threshold)
    if gate.likelihoods is None:
        return _below(p.kind, "likelihood", None, p.threshold)
    lowest = min_leaf(gate.likelihoods)
    if lowest is None:
        return _result(p.kind, False, "no field to doubt: empty likelihood tree", threshold=p.threshold)
    return _below(p.kind, f"lowest likelihood ({lowest[0] or '$'})", lowest[1], p.threshold, path=lowest[0])


def _field_confidence(p: FieldConfidenceLt, gate: GateInput) -> Evaluation:
    lowest = None
    try:
        matches = resolve_all(gate.likelihoods, p.path, CONDITION_ROOTS)
    except PathError:
        matches = []
    for match in matches:
        if match.value is not MISSING:
            found = min_leaf(match.value)
            lowest = found if lowest is None or (found is not None and found[1] < lowest[1]) else lowest
    value = None if lowest is None else lowest[1]
    return _below(p.kind, f"likelihood at {p.path}", value, p.threshold, path=p.path)


def _category_in(p: CategoryIn, gate: GateInput) -> Evaluation:
    fired = gate.category in p.categories
    reason = f"category {gate.category!r} {'in' if fired else 'not in'} {p.categories}"
    return _result(p.kind, fired, reason, category=gate.category)


def _top_margin(p: TopMarginLt, gate: GateInput) -> Evaluation:
    return _below(p.kind, "top margin", gate.top_margin, p.margin)


def _split_count(p: SplitCountNeq, gate: GateInput) -> Evaluation:
    n = len(gate.splits)
    fired = n != p.expected
    return _result(p.kind, fired, f"{n} split(s) {'!=' if fired else '=='} {p.expected}", count=n)


def _split_pages(p: AnySplitPagesLt, gate: GateInput) -> Evaluation:
    short = [i for i, s in enumerate(gate.splits) if len(s.pages) < p.min_pages]
    reason = f"split(s) {short} have fewer than {p.min_pages} page(s)" if short else f"every split has ≥ {p.min_pages}"
    return _result(p.kind, bool(short), reason, splits=short)


def _boundary(p: BoundaryConfidenceLt, gate: GateInput) -> Evaluation:
    if not gate.splits:
        return _result(p.kind, False, "no splits: no boundary", threshold=p.threshold)
    scores = [s.page_likelihoods[0] if s.page_likelihoods else s.likelihood for s in gate.splits]
    if any(score is None for score in scores):
        index = scores.index(None)
        return _below(p.kind, f"boundary likelihood of split {index}", None, p.threshold, split=index)
    known = [score for score in scores if score is not None]
    index = known.index(min(known))
    return _below(p.kind, f"boundary likelihood of split {index}", known[index], p.threshold, split=index)


def _json_condition(p: JsonCondition, gate: GateInput) -> Evaluation:
    root = {"data": gate.data, "likelihoods": gate.likelihoods}
    results = [evaluate_sub_condition(sub, root) for sub in p.condition.sub_conditions]
    combine = all if p.condition.logical_operator == "and" else any
    fired = combine(r.matched for r in results)
    subs = [
        {"path": sub.path, "operator": sub.operator, "expected": sub.expected, "actual": r.actual, "matched": r.matched}
        for sub, r in zip(p.condition.sub_conditions, results, strict=True)
    ]
    reason = f"condition {'matched' if fired else 'did not match'}"
    return _result(p.kind, fired, reason, logical_operator=p.condition.logical_operator, sub_conditions=subs)


def _branch_in(p: BranchIn, gate: GateInput) -> Evaluation:
    handles = gate.routing or []
    # `output-file-<key>` / `output-json-<key>`: the key is everything after the second '-'.
    hits = [h for h in handles if h in p.branches or h.split("-", 2)[-1] in p.branches]
    reason = f"selected {hits}" if hits else f"none of {p.branches} selected"
    return _result(p.kind, bool(hits), reason, selected=handles)


def _group(p: AnyOf | AllOf, gate: GateInput) -> Evaluation:
    children = [evaluate(child, gate) for child in p.predicates]
    want = p.kind == "any_of"
    pick = next((i for i, c in enumerate(children) if c.fired is want), None)
    fired = (pick is not None) if want else (pick is None)
    if pick is None:
        reason = "no part fired" if want else "every part fired"
    else:
        verb = "fired" if want else "did not fire"
        reason = f"predicates[{pick}] ({children[pick].kind}) {verb}: {children[pick].reason}"
    evaluation = _result(p.kind, fired, reason, index=pick)
    evaluation.children = children
    return evaluation


_EVALUATORS: dict[str, Callable[[Any, GateInput], Evaluation]] = {
    "always": _always,
    "validation_failed": _validation_failed,
    "any_required_field_null": _required_null,
    "confidence_lt": _confidence,
    "field_confidence_lt": _field_confidence,
    "category_in": _category_in,
    "top_margin_lt": _top_margin,
    "split_count_neq": _split_count,
    "any_split_pages_lt": _split_pages,
    "boundary_confidence_lt": _boundary,
    "json_condition": _json_condition,
    "branch_in": _branch_in,
    "any_of": _group,
    "all_of": _group,
}
