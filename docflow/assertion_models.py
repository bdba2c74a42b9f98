"""The wire models of a workflow test's assertion and of its result (NOTES.md §6, the SDK's `tests` types).

An assertion reads one output handle of the tested block (`target.output_handle_id`), optionally a path
inside its payload (`target.path`, `docflow.jsonpath` syntax), and checks it with one `condition`, chosen by
its `kind`. Field names and aliases are the SDK's (`json_schema_valid` carries `schema`, kept as `schema_`
in Python because `schema` shadows a BaseModel attribute; models serialize by alias).

What a condition can never evaluate is refused when it is written (a 422 naming the field), not left to
block every run: a pattern RE2 cannot run, a schema that is not valid for its draft, `lower > upper`, a
threshold outside [0, 1], a path that does not parse, nesting of `all_items_match` / `any_item_matches`
deeper than `MAX_CONDITION_DEPTH`. The evaluator still reports those as `blocked` for a record stored
before a rule existed.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from docflow.jsonpath import PathError, parse_path
from docflow.patterns import PatternError, compile_pattern
from docflow.schemas import SchemaProblem, check_schema

MAX_CONDITION_DEPTH = 8
MAX_PATH_CHARS = 1_000
MAX_TEXT_CHARS = 10_000  # a rubric, pattern or label

CompareOp = Literal["gt", "gte", "lt", "lte", "eq", "neq"]
AssertionOutcome = Literal["passed", "failed", "blocked"]


class _Condition(BaseModel):
    # Unknown keys are refused so a typo (`treshold`) is a 422, not a silently ignored setting.
    model_config = ConfigDict(extra="forbid", populate_by_name=True, serialize_by_alias=True)


class ExistsCondition(_Condition):
    """The value is present and not null."""

    kind: Literal["exists"] = "exists"


class NotExistsCondition(_Condition):
    """The value is absent or null."""

    kind: Literal["not_exists"] = "not_exists"


class EqualsCondition(_Condition):
    """Strict JSON equality (no "1" == 1, no true == 1); `reasoning___*` keys are ignored on both sides."""

    kind: Literal["equals"] = "equals"
    expected: Any = None


class NotEqualsCondition(_Condition):
    kind: Literal["not_equals"] = "not_equals"
    expected: Any = None


class NumberCompareCondition(_Condition):
    kind: Literal["number_compare"] = "number_compare"
    op: CompareOp
    expected: int | float = Field(allow_inf_nan=False)


class LengthCompareCondition(_Condition):
    """The length of a string (characters), a list (items) or an object (keys)."""

    kind: Literal["length_compare"] = "length_compare"
    op: CompareOp
    expected: int


class BetweenCondition(_Condition):
    kind: Literal["between"] = "between"
    lower: int | float = Field(allow_inf_nan=False)
    upper: int | float = Field(allow_inf_nan=False)
    inclusive: bool = True

    @model_validator(mode="after")
    def _ordered(self) -> BetweenCondition:
        if self.lower > self.upper:
            raise ValueError(f"lower ({self.lower}) is greater than upper ({self.upper})")
        return self


class ContainsCondition(_Condition):
    """A substring of a string, an item of a list (strict equality), or a key of an object."""

    kind: Literal["contains"] = "contains"
    expected: Any = None


class NotContainsCondition(_Condition):
    kind: Literal["not_contains"] = "not_contains"
    expected: Any = None


class ObjectContainsCondition(_Condition):
    """Every expected key is present with an equal value (nested objects compared as subsets)."""

    kind: Literal["object_contains"] = "object_contains"
    expected: dict[str, Any]


class ArrayContainsCondition(_Condition):
    """Some item of the list is an object that contains `expected` (as `object_contains`)."""

    kind: Literal["array_contains"] = "array_contains"
    expected: dict[str, Any]


class StartsWithCondition(_Condition):
    kind: Literal["starts_with"] = "starts_with"
    expected: str


class EndsWithCondition(_Condition):
    kind: Literal["ends_with"] = "ends_with"
    expected: str


class MatchesRegexCondition(_Condition):
    """RE2 search anywhere in the string (linear time; see docflow.patterns for what is refused)."""

    kind: Literal["matches_regex"] = "matches_regex"
    pattern: str = Field(max_length=MAX_TEXT_CHARS)

    @field_validator("pattern")
    @classmethod
    def _runs_on_re2(cls, pattern: str) -> str:
        try:
            compile_pattern(pattern)
        except PatternError as exc:
            raise ValueError(str(exc)) from exc
        return pattern


class JsonSchemaValidCondition(_Condition):
    kind: Literal["json_schema_valid"] = "json_schema_valid"
    schema_: dict[str, Any] = Field(alias="schema")

    @field_validator("schema_")
    @classmethod
    def _valid_schema(cls, schema: dict[str, Any]) -> dict[str, Any]:
        try:
            check_schema(schema)
        except SchemaProblem as exc:
            raise ValueError(str(exc)) from exc
        return schema


class SimilarityGteCondition(_Condition):
    """Normalized Levenshtein similarity (0..1) of the value's text to `reference`, at least `threshold`."""

    kind: Literal["similarity_gte"] = "similarity_gte"
    reference: Any = None
    threshold: float = Field(ge=0, le=1)
    method: Literal["levenshtein", "embeddings"] = "levenshtein"


class LlmJudgedAsCondition(_Condition):
    """A judge model labels the value by `rubric`; passes when the label is `expected_label` ("pass" if unset)."""

    kind: Literal["llm_judged_as"] = "llm_judged_as"
    rubric: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)
    expected_label: str | None = Field(default=None, max_length=MAX_TEXT_CHARS)


class LlmNotJudgedAsCondition(_Condition):
    kind: Literal["llm_not_judged_as"] = "llm_not_judged_as"
    rubric: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)
    expected_label: str | None = Field(default=None, max_length=MAX_TEXT_CHARS)


class SplitIouCondition(_Condition):
    """IoU of the (split name, page) pairs of the value and of `expected{splits[{name, pages}]}`."""

    kind: Literal["split_iou_gte"] = "split_iou_gte"
    expected: dict[str, Any]
    threshold: float = Field(default=1, ge=0, le=1)


class AllItemsMatchCondition(_Condition):
    """Every item of a non-empty list meets `condition`."""

    kind: Literal["all_items_match"] = "all_items_match"
    condition: Condition


class AnyItemMatchesCondition(_Condition):
    kind: Literal["any_item_matches"] = "any_item_matches"
    condition: Condition


Condition = Annotated[
    ExistsCondition
    | NotExistsCondition
    | EqualsCondition
    | NotEqualsCondition
    | NumberCompareCondition
    | LengthCompareCondition
    | BetweenCondition
    | ContainsCondition
    | NotContainsCondition
    | ObjectContainsCondition
    | ArrayContainsCondition
    | StartsWithCondition
    | EndsWithCondition
    | MatchesRegexCondition
    | JsonSchemaValidCondition
    | SimilarityGteCondition
    | LlmJudgedAsCondition
    | LlmNotJudgedAsCondition
    | SplitIouCondition
    | AllItemsMatchCondition
    | AnyItemMatchesCondition,
    Field(discriminator="kind"),
]

AllItemsMatchCondition.model_rebuild()
AnyItemMatchesCondition.model_rebuild()


class OutputTarget(_Condition):
    """One declared output handle of the tested block and a path inside its payload (none = all of it)."""

    output_handle_id: str = Field(min_length=1, max_length=200)
    path: str | None = Field(default=None, max_length=MAX_PATH_CHARS)

    @field_validator("path")
    @classmethod
    def _parses(cls, path: str | None) -> str | None:
        if path:
            try:
                parse_path(path)
            except PathError as exc:
                raise ValueError(exc.message) from exc
        return path


class AssertionSpec(_Condition):
    """A test's one assertion (the SDK's `AssertionSpec`)."""

    id: str | None = Field(default=None, max_length=200)
    target: OutputTarget
    condition: Condition
    label: str | None = Field(default=None, max_length=MAX_TEXT_CHARS)

    @model_validator(mode="after")
    def _bounded_nesting(self) -> AssertionSpec:
        if condition_depth(self.condition) > MAX_CONDITION_DEPTH:
            raise ValueError(f"conditions are nested deeper than {MAX_CONDITION_DEPTH} levels")
        return self


def condition_depth(condition: Any) -> int:
    """How many conditions deep `condition` goes (1 for a leaf); iterative, so any depth is safe to measure."""
    depth = 0
    node = condition
    while node is not None:
        depth += 1
        node = getattr(node, "condition", None)
    return depth


class AssertionFailure(BaseModel):
    """Why an assertion failed or was blocked: `code` is stable, `message` is for people."""

    code: str
    message: str
    details: dict[str, Any] = Field(default_factory=dict)


class AssertionResult(BaseModel):
    """The result of one assertion (the SDK's `AssertionResult`)."""

    assertion_id: str
    condition_kind: str
    outcome: AssertionOutcome
    actual_value: Any = None
    expected_value: Any = None
    score: float | None = None
    threshold: float | None = None
    metric_kind: str | None = None
    assertion_label: str | None = None
    failure: AssertionFailure | None = None
