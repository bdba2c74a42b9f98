"""The review gate predicates (`config.review.predicate`, NOTES.md §8): one pydantic model per `kind`.

Extra keys are refused; thresholds and margins lie in [0, 1]. `any_of` / `all_of` nest at most 8 levels and
hold at most 64 predicates in one tree, measured on the raw input before pydantic recurses into it, so a
hostile config is refused cheaply and with the field named. `json_condition` takes a conditional block's
condition (its id optional) whose paths start with `data` or `likelihoods`. What each kind means is in
`docflow.review_predicates`, which evaluates them.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from docflow.blocks import Condition, SubCondition
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
