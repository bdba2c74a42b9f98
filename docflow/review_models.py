"""The review gate predicates (`config.review.predicate`, NOTES.md §8): one pydantic model per `kind`.

Extra keys are refused; thresholds and margins lie in [0, 1]. `any_of` / `all_of` nest at most 8 levels and
hold at most 64 predicates in one tree, measured on the raw input before pydantic recurses into it, so a
hostile config is refused cheaply and with the field named. `json_condition` takes a conditional block's
condition (its id optional) whose paths start with `data` or `likelihoods`. What each kind means is in
`docflow.review_predicates`, which evaluates them.

`ReviewConfig` is the whole `config.review` of a block: the predicate, an optional `deadline` (ISO 8601
duration, `docflow.durations`) and what happens when it passes (`on_deadline`, reject by default).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from docflow.blocks import Condition, SubCondition
from docflow.durations import parse_iso_duration
from docflow.jsonpath import PathError, parse_path

MAX_DEPTH = 8
MAX_PREDICATES = 64
CONDITION_ROOTS = ("data", "likelihoods")

Unit = Annotated[float, Field(ge=0.0, le=1.0)]
Names = Annotated[list[Annotated[str, Field(min_length=1, max_length=256)]], Field(min_length=1, max_length=256)]


class _Predicate(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Always(_Predicate):
    kind: Literal["always"]


class ValidationFailed(_Predicate):
    kind: Literal["validation_failed"]


class AnyRequiredFieldNull(_Predicate):
    kind: Literal["any_required_field_null"]


class ConfidenceLt(_Predicate):
    kind: Literal["confidence_lt"]
    threshold: Unit


class FieldConfidenceLt(_Predicate):
    kind: Literal["field_confidence_lt"]
    path: str = Field(min_length=1, max_length=1000)
    threshold: Unit

    @field_validator("path")
    @classmethod
    def _parses(cls, path: str) -> str:
        try:
            parse_path(path)
        except PathError as exc:
            raise ValueError(exc.message) from exc
        return path


class CategoryIn(_Predicate):
    kind: Literal["category_in"]
    categories: Names


class TopMarginLt(_Predicate):
    kind: Literal["top_margin_lt"]
    margin: Unit


class SplitCountNeq(_Predicate):
    kind: Literal["split_count_neq"]
    expected: int = Field(ge=0, le=10_000)


class AnySplitPagesLt(_Predicate):
    kind: Literal["any_split_pages_lt"]
    min_pages: int = Field(ge=1, le=100_000)


class BoundaryConfidenceLt(_Predicate):
    kind: Literal["boundary_confidence_lt"]
    threshold: Unit


class GateCondition(Condition):
    """A conditional block's condition, its id optional; paths start with `data` or `likelihoods`."""

    id: str = Field(default="review", pattern=r"^[a-zA-Z0-9_-]+$")
    sub_conditions: list[SubCondition] = Field(min_length=1, max_length=MAX_PREDICATES)

    @model_validator(mode="after")
    def _rooted(self) -> GateCondition:
        for i, sub in enumerate(self.sub_conditions):
            try:
                segments = parse_path(sub.path).segments
            except PathError as exc:
                raise ValueError(f"sub_conditions[{i}].path: {exc.message}") from exc
            if not segments or segments[0] not in CONDITION_ROOTS:
                raise ValueError(f"sub_conditions[{i}].path must start with 'data.' or 'likelihoods.'")
        return self


class JsonCondition(_Predicate):
    kind: Literal["json_condition"]
    condition: GateCondition


class BranchIn(_Predicate):
    kind: Literal["branch_in"]
    branches: Names


class _Group(_Predicate):
    predicates: list[ReviewPredicate] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _bounded(cls, raw: Any) -> Any:
        # Measured on the raw input, before pydantic validates (and recurses into) the parts.
        stack: list[tuple[Any, int, str]] = [(raw, 1, "")]
        count = 0
        while stack:
            node, depth, path = stack.pop()
            count += 1
            if count > MAX_PREDICATES:
                raise ValueError(f"predicates: more than {MAX_PREDICATES} predicates in one tree")
            parts = node.get("predicates") if isinstance(node, dict) else None
            if isinstance(parts, list):
                if depth > MAX_DEPTH:
                    raise ValueError(f"{path[1:] or 'predicates'}: any_of/all_of nested deeper than {MAX_DEPTH}")
                stack.extend((p, depth + 1, f"{path}.predicates[{i}]") for i, p in enumerate(parts))
        return raw


class AnyOf(_Group):
    kind: Literal["any_of"]


class AllOf(_Group):
    kind: Literal["all_of"]


ReviewPredicate = Annotated[
    Always
    | ValidationFailed
    | AnyRequiredFieldNull
    | ConfidenceLt
    | FieldConfidenceLt
    | CategoryIn
    | TopMarginLt
    | SplitCountNeq
    | AnySplitPagesLt
    | BoundaryConfidenceLt
    | JsonCondition
    | BranchIn
    | AnyOf
    | AllOf,
    Field(discriminator="kind"),
]
AnyOf.model_rebuild()
AllOf.model_rebuild()

DEFAULT_DEADLINE_REASON = "no decision before the review deadline"
# Every `kind` a predicate may have: pydantic puts the kind of a tagged union's member in an error's location.
KINDS: frozenset[str] = frozenset(
    get_args(member.model_fields["kind"].annotation)[0] for member in get_args(get_args(ReviewPredicate)[0])
)


class OnDeadline(BaseModel):
    """What happens when a gate's deadline passes with no decision: reject (with `reason`) or approve."""

    model_config = ConfigDict(extra="forbid")

    action: Literal["reject", "approve"]
    reason: str | None = Field(default=None, min_length=1, max_length=2000)


class ReviewConfig(BaseModel):
    """A block's `config.review`: when its output waits for a person, and for how long (Retab's shape).

    `deadline` is an ISO 8601 duration (`docflow.durations`: days, hours, minutes, seconds or weeks, 1 s ..
    366 days). With a deadline and no `on_deadline`, the gate rejects with "no decision before the review
    deadline"; a reject without a reason gets that reason too. `on_deadline` without a deadline is refused.
    """

    model_config = ConfigDict(extra="forbid")

    predicate: ReviewPredicate
    deadline: str | None = Field(default=None, description="ISO 8601 duration, e.g. 'P3D', 'PT12H', 'P2W'")
    on_deadline: OnDeadline | None = None

    @field_validator("deadline")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is not None:
            parse_iso_duration(value)
        return value

    @field_validator("on_deadline")
    @classmethod
    def _needs_deadline(cls, value: OnDeadline | None, info: ValidationInfo) -> OnDeadline | None:
        # `deadline` is declared first; absent from info.data only when it failed (and was reported) itself.
        if value is not None and "deadline" in info.data and info.data["deadline"] is None:
            raise ValueError("on_deadline needs a deadline (an ISO 8601 duration such as 'P3D')")
        return value

    @model_validator(mode="after")
    def _outcome(self) -> ReviewConfig:
        if self.deadline is None:
            return self
        if self.on_deadline is None:
            self.on_deadline = OnDeadline(action="reject")
        if self.on_deadline.action == "reject" and self.on_deadline.reason is None:
            self.on_deadline.reason = DEFAULT_DEADLINE_REASON
        return self

    @property
    def timeout(self) -> timedelta | None:
        """How long the gate waits for a decision, or None to wait for ever."""
        return None if self.deadline is None else parse_iso_duration(self.deadline)


def review_of(config: BaseModel) -> ReviewConfig | None:
    """A validated block config's review gate, or None when it has none (or its type has no `review`)."""
    raw = getattr(config, "review", None)
    return None if raw is None else ReviewConfig.model_validate(raw)
