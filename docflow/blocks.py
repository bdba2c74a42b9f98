"""Block config models, one per block type, and the handles each block exposes.

Config keys and handle ids are Retab's (NOTES.md §1): a handle id reads `input|output-<file|json>-<name>`.
Decisions where Retab's notes are inference [I]:

- `extract` reads `input-file-document` unless `config.inputs` names its inputs; an input
  `{"name": "text", "type": "json"}` becomes the handle `input-json-text` (e.g. the output of a parse block).
- `conditional` has one output handle per condition, `output-json-<condition id>`, plus
  `output-json-else` when no condition matches; the first matching condition wins (if / elif / else).
- `function` runs a safe expression language (`expression` or `mapping`), or Retab's `language: python` +
  `code` in the worker's bubblewrap sandbox (docflow.python_code, activities/sandbox.py, docs/sandbox.md).
- `merge_dicts` reads `input-json-0 … input-json-<n-1>` where n = max(2, len(config.inputs)).
- `classifier` and `split` route: one output handle per category / sub-document, `output-file-<slug>`, where
  the slug of a name (or of a category's `handle_key`) is its lowercase form with every run of characters
  other than a-z and 0-9 turned into one '-', trimmed of '-' (`"Booking Confirmation"` →
  `booking-confirmation`). Two names with the same slug are refused on write. The classifier passes its
  input document through on the chosen category's handle only; the other handles are not taken, so blocks
  reached only through them are skipped with a reason. `split` also outputs `output-json-splits`.
- `split` with `allow_multiple_instances`: each instance is its own PDF (listed in `output-json-splits`);
  the sub-document's handle carries one PDF holding the pages of all its instances, in page order.
- `n_consensus` (1–10) on `extract`, `classifier` and `split`: K calls in parallel, merged by `docflow.consensus`
  (extract field by field; classifier by majority, likelihood = the winner's share of the votes, margin over the
  runner-up; split: the most central vote's splits, each with the share of votes containing it exactly, and
  per page the share of votes that put that page under the same sub-document name).
- `review` on `extract`, `classifier` and `split` (NOTES.md §8) is checked on write by
  `docflow.review_applicability.validate_review`: the predicate, the deadline, and whether this block can
  produce what the predicate reads; its errors name the field under `config.review`.
- `for_each` and `while_loop` are containers (docs/loops.md): their body is the blocks whose `parent_id` is the
  container. Their handles (`fe-*`, `loop-*`) carry either kind: what flows on them is the item or the body's
  output. `for_each` iterates a JSON array (`iterate_array`), a document's pages (`iterate_pages`) or its
  sub-documents (`split_by_key`: the model cuts the document into instances of `key`, like a split block with
  one sub-document that may repeat). A failed iteration fails the container unless
  `on_iteration_error` is `continue`. `while_loop` runs at most `max_iterations` (≤ `MAX_WHILE_ITERATIONS`) and
  stops early when one of its `termination_conditions` matches; `loop-termination` is an optional input.
- `edit` is not built yet: its config is refused on write.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from docflow.python_code import MAX_CODE_CHARS


class BlockConfig(BaseModel):
    """Base of every block config: unknown keys are refused so typos surface on write."""

    model_config = ConfigDict(extra="forbid")


class StartDocumentConfig(BlockConfig):
    """A run's input document; `accepted_mime_types` (exact types, `image/*` families or `*/*`) limits its type."""

    accepted_mime_types: list[Annotated[str, Field(pattern=r"^(\*/\*|[\w.+-]+/([\w.+-]+|\*))$")]] | None = None

    def accepts(self, mime_type: str) -> bool:
        """Whether a document of `mime_type` may start the run (any type when no list is given)."""
        if not self.accepted_mime_types:
            return True
        kind = mime_type.split(";", 1)[0].strip().lower()
        allowed = {a.lower() for a in self.accepted_mime_types}
        return bool({kind, kind.split("/", 1)[0] + "/*", "*/*"} & allowed)


def _check_json_schema(value: dict[str, Any] | None) -> dict[str, Any] | None:
    """Refuse a JSON schema that is not itself valid or holds a pattern RE2 cannot run (docflow.schemas)."""
    if value is not None:
        # Pure; kept local so workflow code importing this module stays light.
        from docflow.schemas import SchemaProblem, check_schema

        try:
            check_schema(value)
        except SchemaProblem as exc:
            raise ValueError(str(exc)) from exc
    return value


class StartJsonConfig(BlockConfig):
    """A run's JSON input, validated against `json_schema` when given."""

    json_schema: dict[str, Any] | None = None

    _valid_schema = field_validator("json_schema")(_check_json_schema)


class NoteConfig(BlockConfig):
    """A comment on the canvas; never executes."""

    model_config = ConfigDict(extra="allow")
    text: str = ""


class ParseConfig(BlockConfig):
    """Document → text per page."""

    model: str | None = None
    table_parsing_format: Literal["markdown", "yaml", "html", "json"] = "markdown"
    image_resolution_dpi: int = Field(default=192, ge=72, le=600)


def _check_consensus(value: int) -> int:
    # K independent model calls merged by docflow.consensus (NOTES.md §7 allows 1–10 in a block's config).
    if not 1 <= value <= 10:
        raise ValueError("n_consensus must be between 1 and 10")
    return value


REVIEW_DESCRIPTION = (
    "Human review gate (docflow.review_models.ReviewConfig): "
    '{"predicate": {"kind": ...}, "deadline": "P3D" | null, "on_deadline": {"action": "reject"|"approve", "reason"}}'
)


def _check_review(config: ExtractConfig | ClassifierConfig | SplitConfig, block_type: str) -> None:
    """Refuse a `review` that is invalid or asks what this block cannot produce, naming the field under it."""
    if config.review is not None:
        # Kept local: review_models imports this module (Condition).
        from docflow.review_applicability import validate_review

        validate_review(config.review, block_type, config.n_consensus, title=type(config).__name__)


class ExtractInput(BlockConfig):
    """A named input of an extract block."""

    name: str = Field(pattern=r"^[a-zA-Z0-9_-]+$")
    type: Literal["file", "json"] = "file"
    is_primary: bool = False


class ExtractConfig(BlockConfig):
    """Document or text + JSON schema → data."""

    model: str | None = None
    json_schema: dict[str, Any]
    inputs: list[ExtractInput] | None = None
    instructions: str | None = None
    n_consensus: int = Field(
        default=1, ge=1, le=10, description="Independent model calls merged field by field (docflow.consensus)"
    )
    temperature: float = Field(default=0.0, ge=0, le=2)
    reasoning_effort: Literal["minimal", "low", "medium", "high"] | None = None
    review: dict[str, Any] | None = Field(default=None, description=REVIEW_DESCRIPTION)

    @field_validator("json_schema")
    @classmethod
    def _schema_is_object(cls, value: dict[str, Any]) -> dict[str, Any]:
        if value.get("type", "object") != "object" or not isinstance(value.get("properties", {}), dict):
            raise ValueError("json_schema must be an object schema with 'properties'")
        _check_json_schema(value)
        return value

    @model_validator(mode="after")
    def _review_applies(self) -> ExtractConfig:
        _check_review(self, "extract")
        return self


def slug(name: str) -> str:
    """The handle key of a category or sub-document name: lowercase, non-alphanumeric runs → '-'."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


class Category(BlockConfig):
    """A classifier category; `handle_key` (else the name) names its output handle."""

    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=4000)
    handle_key: str | None = Field(default=None, max_length=200)

    @property
    def key(self) -> str:
        """The slug of its output handle, `output-file-<key>`."""
        return slug(self.handle_key or self.name)


class Subdocument(BlockConfig):
    """A kind of document a split looks for."""

    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=4000)
    allow_multiple_instances: bool = False

    @property
    def key(self) -> str:
        """The slug of its output handle, `output-file-<key>`."""
        return slug(self.name)


def _check_keys(items: list[Any], what: str) -> list[Any]:
    """Names unique (ignoring case) and slugs non-empty and unique, so every output handle is distinct."""
    seen_names: dict[str, str] = {}
    seen_keys: dict[str, str] = {}
    for item in items:
        if not item.key:
            raise ValueError(f"{what} '{item.name}' has no letter or digit to name its output handle")
        folded = item.name.casefold()
        if folded in seen_names:
            raise ValueError(f"{what} names must be unique: '{item.name}' repeats '{seen_names[folded]}'")
        if item.key in seen_keys:
            raise ValueError(
                f"{what} '{seen_keys[item.key]}' and '{item.name}' both make the handle 'output-file-{item.key}'"
            )
        seen_names[folded], seen_keys[item.key] = item.name, item.name
    return items


class ClassifierConfig(BlockConfig):
    """A document → one of `categories`, routed to that category's handle."""

    model: str | None = None
    categories: list[Category] = Field(min_length=1, max_length=100)
    instructions: str | None = Field(default=None, max_length=20000)
    n_consensus: int = Field(default=1)
    review: dict[str, Any] | None = Field(default=None, description=REVIEW_DESCRIPTION)

    _consensus_not_built = field_validator("n_consensus")(_check_consensus)

    @field_validator("categories")
    @classmethod
    def _unique(cls, value: list[Category]) -> list[Category]:
        return _check_keys(value, "category")

    @model_validator(mode="after")
    def _review_applies(self) -> ClassifierConfig:
        _check_review(self, "classifier")
        return self


class SplitConfig(BlockConfig):
    """A multi-page document → page ranges per sub-document, each stored as its own PDF."""

    model: str | None = None
    subdocuments: list[Subdocument] = Field(min_length=1, max_length=100)
    instructions: str | None = Field(default=None, max_length=20000)
    n_consensus: int = Field(default=1)
    review: dict[str, Any] | None = Field(default=None, description=REVIEW_DESCRIPTION)

    _consensus_not_built = field_validator("n_consensus")(_check_consensus)

    @field_validator("subdocuments")
    @classmethod
    def _unique(cls, value: list[Subdocument]) -> list[Subdocument]:
        return _check_keys(value, "subdocument")

    @model_validator(mode="after")
    def _review_applies(self) -> SplitConfig:
        _check_review(self, "split")
        return self


Operator = Literal[
    "equals",
    "not_equals",
    "gt",
    "gte",
    "lt",
    "lte",
    "contains",
    "not_contains",
    "starts_with",
    "ends_with",
    "matches_regex",
    "exists",
    "not_exists",
    "is_empty",
    "is_not_empty",
    "is_true",
    "is_false",
    "in",
    "not_in",
]


class SubCondition(BlockConfig):
    """One comparison: the value at `path` against `expected`."""

    id: str | None = None
    path: str = Field(min_length=1)
    operator: Operator
    expected: Any = None

    @field_validator("expected")
    @classmethod
    def _regex_runs_on_re2(cls, value: Any, info: ValidationInfo) -> Any:
        # `operator` is declared before `expected`, so it is validated first and readable here.
        if info.data.get("operator") == "matches_regex":
            from docflow.patterns import PatternError, compile_pattern  # RE2: kept local, like jsonschema

            try:
                compile_pattern(str(value))
            except PatternError as exc:
                raise ValueError(f"{exc}") from exc
        return value


class Condition(BlockConfig):
    """A branch: its sub-conditions combined with `logical_operator`."""

    id: str = Field(pattern=r"^[a-zA-Z0-9_-]+$")
    name: str | None = None
    sub_conditions: list[SubCondition] = Field(min_length=1)
    logical_operator: Literal["and", "or"] = "and"


class ConditionalConfig(BlockConfig):
    """Conditions on JSON → the active branch handle."""

    conditions: list[Condition] = Field(min_length=1)
    else_branch: bool = True

    @model_validator(mode="after")
    def _unique_ids(self) -> ConditionalConfig:
        ids = [c.id for c in self.conditions]
        if len(set(ids)) != len(ids) or "else" in ids:
            raise ValueError("condition ids must be unique and not 'else'")
        return self


class FunctionConfig(BlockConfig):
    """A safe expression (`expression`), a field mapping (`mapping`), or Retab's user Python (`language: python`,
    `code` defining `transform(input_data)`, run in the worker's sandbox: docflow.python_code, docs/sandbox.md)."""

    expression: str | None = None
    mapping: dict[str, str] | None = None
    language: Literal["python"] | None = None
    code: str | None = Field(default=None, max_length=MAX_CODE_CHARS)
    output_schema: dict[str, Any] | None = None
    timeout_seconds: int = Field(
        default=60,
        ge=1,
        le=300,
        description="Time limit; expressions run as local activities, capped at 4 s; Python code gets all of it",
    )
    table_refs: list[Any] | None = Field(default=None, description="Retab's table references; only empty is accepted")

    _valid_output_schema = field_validator("output_schema")(_check_json_schema)

    @model_validator(mode="after")
    def _one_body(self) -> FunctionConfig:
        if self.table_refs:
            raise ValueError("table_refs are not supported: pass the data through the block's input instead")
        if self.language is not None and self.code is None:
            raise ValueError("language: python needs 'code' defining transform(input_data)")
        bodies = [self.expression is not None, self.mapping is not None, self.code is not None]
        if sum(bodies) != 1:
            raise ValueError("give exactly one of 'expression', 'mapping' or 'code' (with language: python)")
        if self.code is not None:
            return self  # its parse check (docflow.python_code) runs in the API, off the event loop
        from docflow.expressions import ExpressionError, check_expressions  # expressions imports this module

        try:
            check_expressions(self)
        except ExpressionError as exc:
            raise ValueError(f"{exc.field}: {exc}") from exc
        return self


# A wait between api_call attempts never exceeds this, so the activity's time limit stays bounded.
MAX_BACKOFF_SECONDS = 60.0


class RetryPolicy(BlockConfig):
    """How an api_call retries 5xx answers and timeouts (each wait capped at 60 s)."""

    max_attempts: int = Field(default=3, ge=1, le=10)
    initial_backoff_seconds: float = Field(default=0.5, ge=0, le=60)
    backoff_multiplier: float = Field(default=2.0, ge=1, le=10)


class ApiCallConfig(BlockConfig):
    """An HTTP request templated from the JSON input (`{{ path }}` placeholders, `{{ secrets.NAME }}`).

    The scheme, host and port of `url` are literal text; values are percent-encoded into its path and query.
    """

    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    url: str = Field(pattern=r"^https?://")
    headers: dict[str, str] = Field(default_factory=dict)
    query: dict[str, str] = Field(default_factory=dict)
    body: Any = None
    timeout_seconds: float = Field(default=30, gt=0, le=600, description="Limit of one attempt, redirects included")
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    output_schema: dict[str, Any] | None = None

    _valid_output_schema = field_validator("output_schema")(_check_json_schema)

    @field_validator("url")
    @classmethod
    def _literal_origin(cls, value: str) -> str:
        from docflow.egress import literal_origin_error

        problem = literal_origin_error(value)
        if problem is not None:
            raise ValueError(problem)
        return value


def api_call_time_budget(config: dict[str, Any]) -> float:
    """Seconds an api_call may take: every attempt at its timeout plus the (capped) waits between them.

    Reads the raw config with the model's defaults, so a config stored under older rules still gets a limit.
    """
    retry = config.get("retry") or {}
    attempts = int(retry.get("max_attempts", 3))
    backoff = float(retry.get("initial_backoff_seconds", 0.5))
    multiplier = float(retry.get("backoff_multiplier", 2.0))
    waits = 0.0
    for _ in range(attempts - 1):
        waits += min(backoff, MAX_BACKOFF_SECONDS)
        backoff *= multiplier
    return float(config.get("timeout_seconds", 30)) * attempts + waits


class MergeDictsConfig(BlockConfig):
    """Merge several JSON inputs, later inputs winning."""

    inputs: list[str] | None = None
    strategy: Literal["deep", "shallow"] = "deep"


# A while_loop runs its iterations one after the other in the run's own history: this bound keeps it bounded.
MAX_WHILE_ITERATIONS = 100
MAX_LOOP_CONCURRENCY = 50


class ForEachConfig(BlockConfig):
    """Runs its body once per item: the items of a JSON array, or the pages of a document."""

    map_method: Literal["iterate_array", "split_by_key", "iterate_pages"] = "iterate_array"
    map_source_path: str | None = Field(
        default=None, description="Path of the array in the input (iterate_array); none: the input is the array"
    )
    key: str | None = None
    instructions: str | None = None
    allow_overlap: bool = False
    n_consensus: int = Field(default=1, ge=1, le=10)
    model: str | None = None
    max_concurrency: int = Field(default=10, ge=1, le=MAX_LOOP_CONCURRENCY)
    on_iteration_error: Literal["fail", "continue"] = Field(
        default="fail", description="fail: a failed iteration fails the loop; continue: its result is null"
    )

    @model_validator(mode="after")
    def _key_for_split(self) -> ForEachConfig:
        if self.map_method == "split_by_key" and not (self.key or "").strip():
            raise ValueError("split_by_key needs 'key': what each sub-document is (e.g. 'invoice')")
        return self

    @field_validator("map_source_path")
    @classmethod
    def _path_parses(cls, value: str | None) -> str | None:
        if value:
            from docflow.jsonpath import PathError, parse_path

            try:
                parse_path(value)
            except PathError as exc:
                raise ValueError(exc.message) from exc
        return value


class WhileLoopConfig(BlockConfig):
    """Runs its body again on its own output until a termination condition matches or `max_iterations` ran."""

    max_iterations: int = Field(default=10, ge=1, le=MAX_WHILE_ITERATIONS)
    termination_conditions: list[Condition] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_ids(self) -> WhileLoopConfig:
        ids = [c.id for c in self.termination_conditions]
        if len(set(ids)) != len(ids):
            raise ValueError("termination condition ids must be unique")
        return self


CONFIG_MODELS: dict[str, type[BlockConfig]] = {
    "start_document": StartDocumentConfig,
    "start_json": StartJsonConfig,
    "note": NoteConfig,
    "parse": ParseConfig,
    "extract": ExtractConfig,
    "conditional": ConditionalConfig,
    "function": FunctionConfig,
    "api_call": ApiCallConfig,
    "merge_dicts": MergeDictsConfig,
    "classifier": ClassifierConfig,
    "split": SplitConfig,
    "for_each": ForEachConfig,
    "while_loop": WhileLoopConfig,
}

NOT_BUILT = {"edit"}
CONTAINER_TYPES = frozenset({"for_each", "while_loop"})
# Inputs a block may leave unwired (publish does not ask for them).
OPTIONAL_INPUTS = frozenset({"loop-termination"})
START_TYPES = {"start_document", "start_json"}
# Pure, cheap blocks run as local activities.
LOCAL_TYPES = {"start_document", "start_json", "conditional", "function", "merge_dicts"}
ROUTING_TYPES = {"conditional", "classifier", "split"}


@dataclass(frozen=True)
class Handles:
    """The input and output handle ids of a block."""

    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


def handle_kind(handle_id: str) -> str:
    """'file' or 'json', read from a handle id; 'any' for a container's handles (an item may be either)."""
    if handle_id.startswith(("fe-", "loop-")):
        return "any"
    match = re.match(r"^(?:input|output)-(file|json)-", handle_id)
    return match.group(1) if match else "unknown"


def parse_config(block_type: str, config: dict[str, Any]) -> BlockConfig:
    """Validate a config for its block type (raises ValueError or pydantic's ValidationError)."""
    if block_type in NOT_BUILT:
        raise ValueError(f"block type '{block_type}' is not built yet")
    model = CONFIG_MODELS.get(block_type)
    if model is None:
        raise ValueError(f"unknown block type '{block_type}'")
    return model.model_validate(config)


def handles_of(block_type: str, config: BlockConfig) -> Handles:
    """The handles a block with this validated config exposes."""
    if isinstance(config, StartDocumentConfig):
        return Handles((), ("output-file-0",))
    if isinstance(config, StartJsonConfig):
        return Handles((), ("output-json-0",))
    if isinstance(config, ParseConfig):
        return Handles(("input-file-0",), ("output-json-0",))
    if isinstance(config, ExtractConfig):
        inputs = tuple(f"input-{i.type}-{i.name}" for i in config.inputs) if config.inputs else ("input-file-document",)
        return Handles(inputs, ("output-json-0",))
    if isinstance(config, ConditionalConfig):
        outs = tuple(f"output-json-{c.id}" for c in config.conditions)
        return Handles(("input-json-0",), outs + (("output-json-else",) if config.else_branch else ()))
    if isinstance(config, FunctionConfig | ApiCallConfig):
        return Handles(("input-json-0",), ("output-json-0",))
    if isinstance(config, ClassifierConfig):
        return Handles(("input-file-document",), tuple(f"output-file-{c.key}" for c in config.categories))
    if isinstance(config, SplitConfig):
        outs = tuple(f"output-file-{d.key}" for d in config.subdocuments)
        return Handles(("input-file-0",), outs + ("output-json-splits",))
    if isinstance(config, ForEachConfig):
        return Handles(("fe-left-in", "fe-right-in"), ("fe-left-out", "fe-right-out"))
    if isinstance(config, WhileLoopConfig):
        return Handles(("loop-left-in", "loop-right-in", "loop-termination"), ("loop-left-out", "loop-right-out"))
    if isinstance(config, MergeDictsConfig):
        n = max(2, len(config.inputs or []))
        return Handles(tuple(f"input-json-{i}" for i in range(n)), ("output-json-0",))
    return Handles((), ())
