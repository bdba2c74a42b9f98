"""Pure evaluation of a workflow test's assertion against a block's output handles (NOTES.md §6).

`evaluate(assertion, outputs, judge=None)` reads `outputs[target.output_handle_id]`, a handle payload
(`{type: "json", data}` → `data`, `{type: "file", document}` → `document`), takes `target.path` inside it
(`docflow.jsonpath`; a wildcard path reads as the list of the values it reaches), and checks the condition.

Outcomes: `passed`; `failed` (the value does not meet the condition, `failure.code` `condition_not_met`, or
`missing_value` when a condition needing a value finds none); `blocked`, the assertion could not be
evaluated, with `failure.code`:

- `type_error`: the value has the wrong type for the condition (a string for `number_compare`, …);
- `invalid_regex`, `schema_invalid`, `invalid_path`: a stored condition we would refuse today;
- `value_too_large`: over a bound below (said in `failure.details`), never a partial answer;
- `not_supported`: `similarity_gte` with `embeddings` (no embedding model in this provider layer; no made-up
  score), or an `llm_*` condition evaluated without a judge;
- `execution_error`: the judge failed, the handle payload has no known shape, the value is nested too deep.

Semantics where the contract leaves room: `exists` is present and not null; `equals` / `not_equals` treat an
absent value as null and compare numbers by value (1 == 1.0) but never a bool with a number;
`not_contains` holds on an absent value; `all_items_match` fails on an empty list (a test of "every line"
should not pass when there are no lines); with blocked items, `all_items_match` is failed if any item
failed and blocked otherwise, `any_item_matches` passes if any item passed and is blocked otherwise.

Bounds (hostile outputs): values are walked recursively to depth `MAX_VALUE_DEPTH` over at most
`MAX_VALUE_NODES` nodes; Levenshtein runs on strings of at most `MAX_SIMILARITY_CHARS` characters each
(rapidfuzz, O(n·m/64)) and one evaluation spends at most `MAX_SIMILARITY_CELLS` n·m cells; lists of more
than `MAX_ITEMS` items, splits of more than `MAX_SPLIT_PAGES` pages and more than `MAX_JUDGE_CALLS` judge
calls are refused as `value_too_large` (`execution_error` past the depth), never answered in part.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from docflow.assertion_checks import Blocked, Verdict, Work, canonical, check_leaf, failed, public
from docflow.assertion_models import (
    AllItemsMatchCondition,
    AnyItemMatchesCondition,
    AssertionFailure,
    AssertionResult,
    AssertionSpec,
    Condition,
    LlmJudgedAsCondition,
    LlmNotJudgedAsCondition,
    OutputTarget,
)
from docflow.jsonpath import MISSING, PathError, parse_path, resolve_all

MAX_ITEMS = 10_000
MAX_JUDGE_CALLS = 20
DEFAULT_JUDGE_LABEL = "pass"


@dataclass(frozen=True)
class JudgeRequest:
    """What a judge model is asked: label `value` by `rubric`; `expected_label` is the label the test wants."""

    rubric: str
    value: Any
    expected_label: str


class JudgeVerdict(BaseModel):
    """A judge's answer: the label it chose and, optionally, why."""

    label: str
    reasoning: str | None = None


Judge = Callable[[JudgeRequest], JudgeVerdict]


class _Context:
    def __init__(self, judge: Judge | None) -> None:
        self.judge = judge
        self.judge_calls = 0
        self.work = Work()


def evaluate(assertion: AssertionSpec, outputs: Mapping[str, Any], judge: Judge | None = None) -> AssertionResult:
    """The result of `assertion` over the block's output handles; never raises on data."""
    condition = assertion.condition
    actual: Any = MISSING
    try:
        actual = target_value(assertion.target, outputs)
        verdict = _check(condition, actual, _Context(judge))
    except Blocked as blocked:
        verdict = Verdict("blocked", failure=blocked.failure())
    except RecursionError:
        verdict = Verdict(
            "blocked", failure=AssertionFailure(code="execution_error", message="value nested too deeply")
        )
    return AssertionResult(
        assertion_id=assertion.id or "",
        condition_kind=condition.kind,
        outcome=verdict.outcome,
        actual_value=public(actual),
        expected_value=expected_value(condition),
        score=verdict.score,
        threshold=verdict.threshold,
        metric_kind=verdict.metric_kind,
        assertion_label=assertion.label,
        failure=verdict.failure,
    )


def target_value(target: OutputTarget, outputs: Mapping[str, Any]) -> Any:
    """The value the assertion reads: MISSING when the handle or path is absent (raises Blocked)."""
    if target.output_handle_id not in outputs:
        return MISSING
    root = _payload(target.output_handle_id, outputs[target.output_handle_id])
    if not target.path:
        return root
    try:
        parsed = parse_path(target.path)
        matches = resolve_all(root, target.path, roots=())
    except PathError as exc:
        raise Blocked("invalid_path", f"target.path: {exc.message}", {"path": target.path}) from exc
    if any(not isinstance(s, str | int) for s in parsed.segments):
        return [m.value for m in matches if m.value is not MISSING]
    return matches[0].value


def _payload(handle_id: str, payload: Any) -> Any:
    if isinstance(payload, Mapping) and payload.get("type") == "json":
        return payload.get("data")
    if isinstance(payload, Mapping) and payload.get("type") == "file":
        return payload.get("document")
    raise Blocked(
        "execution_error",
        f"output handle {handle_id!r} is not a {{type: json | file}} payload",
        {"output_handle_id": handle_id},
    )


def expected_value(condition: Condition) -> Any:
    """What the condition expects, as shown in the result."""
    data = condition.model_dump(mode="json", by_alias=True, exclude={"kind"})
    if isinstance(condition, LlmJudgedAsCondition | LlmNotJudgedAsCondition):
        data["expected_label"] = condition.expected_label or DEFAULT_JUDGE_LABEL
    if set(data) == {"expected"}:
        return data["expected"]
    return data or None


def _check(condition: Condition, actual: Any, ctx: _Context, depth: int = 0) -> Verdict:
    if isinstance(condition, AllItemsMatchCondition | AnyItemMatchesCondition):
        return _items(condition, actual, ctx, depth)
    if isinstance(condition, LlmJudgedAsCondition | LlmNotJudgedAsCondition):
        return _judged(condition, actual, ctx)
    return check_leaf(condition, actual, ctx.work)


def _items(
    condition: AllItemsMatchCondition | AnyItemMatchesCondition, actual: Any, ctx: _Context, depth: int
) -> Verdict:
    if actual is MISSING or actual is None:
        return failed("missing_value", "no list at the target path")
    if not isinstance(actual, list):
        raise Blocked("type_error", f"{condition.kind} needs a list, got {type(actual).__name__}")
    if len(actual) > MAX_ITEMS:
        raise Blocked("value_too_large", f"lists over {MAX_ITEMS} items are not evaluated", {"items": len(actual)})
    if depth >= 16:  # models refuse deeper nesting; a stored record cannot recurse without bound either
        raise Blocked("execution_error", "conditions nested too deeply")
    # One bounded copy for all items (without reasoning keys), so per-item checks add no walk of their own.
    actual = canonical(actual)
    outcomes: dict[str, list[int]] = {"passed": [], "failed": [], "blocked": []}
    first_block: Blocked | None = None  # why items are blocked, told once
    for i, item in enumerate(actual):
        try:
            outcome = _check(condition.condition, item, ctx, depth + 1).outcome
        except Blocked as exc:
            outcome, first_block = "blocked", first_block or exc
        outcomes[outcome].append(i)
    passed, bad, blocked = outcomes["passed"], outcomes["failed"], outcomes["blocked"]
    score = len(passed) / len(actual) if actual else 0.0
    details: dict[str, Any] = {"items": len(actual), "failed_items": bad[:20], "blocked_items": blocked[:20]}
    if isinstance(condition, AllItemsMatchCondition):
        if not actual:
            outcome, message = "failed", "the list is empty"
        elif bad:
            outcome, message = "failed", f"{len(bad)} of {len(actual)} items do not match"
        elif blocked:
            outcome, message = "blocked", f"{len(blocked)} of {len(actual)} items could not be evaluated"
        else:
            outcome, message = "passed", ""
    elif passed:
        outcome, message = "passed", ""
    elif blocked:
        outcome, message = "blocked", f"no item matches and {len(blocked)} could not be evaluated"
    else:
        outcome, message = "failed", "no item matches" if actual else "the list is empty"
    if first_block is not None:
        details["blocked_reason"] = {"code": first_block.code, "message": first_block.message}
    code = "condition_not_met"
    if outcome == "blocked" and first_block is not None:
        code, message = first_block.code, f"{message}: item {blocked[0]}: {first_block.message}"
    failure = None if outcome == "passed" else AssertionFailure(code=code, message=message, details=details)
    return Verdict(outcome, score=score, metric_kind="item_match_rate", failure=failure)


def _judged(condition: LlmJudgedAsCondition | LlmNotJudgedAsCondition, actual: Any, ctx: _Context) -> Verdict:
    if ctx.judge is None:
        raise Blocked("not_supported", f"{condition.kind} needs a judge model, and none is configured")
    if ctx.judge_calls >= MAX_JUDGE_CALLS:
        raise Blocked("value_too_large", f"an assertion asks the judge at most {MAX_JUDGE_CALLS} times")
    ctx.judge_calls += 1
    expected = condition.expected_label or DEFAULT_JUDGE_LABEL
    value = canonical(public(actual))
    try:
        verdict = ctx.judge(JudgeRequest(rubric=condition.rubric, value=value, expected_label=expected))
    except Exception as exc:  # the judge is a model call: any failure blocks this assertion, not the run
        raise Blocked("execution_error", f"the judge failed: {type(exc).__name__}: {exc}") from exc
    same = verdict.label.strip().casefold() == expected.strip().casefold()
    wanted = same if isinstance(condition, LlmJudgedAsCondition) else not same
    details = {"label": verdict.label, "reasoning": verdict.reasoning}
    if wanted:
        return Verdict("passed", metric_kind="llm_label")
    relation = "is not" if isinstance(condition, LlmJudgedAsCondition) else "is"
    return Verdict(
        "failed",
        metric_kind="llm_label",
        failure=AssertionFailure(
            code="condition_not_met",
            message=f"the judge's label {verdict.label!r} {relation} {expected!r}",
            details=details,
        ),
    )
