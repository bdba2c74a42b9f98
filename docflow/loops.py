"""Pure parts of loop containers: step ids, iteration context, items, batches, result order, termination.

- Step ids: a body step's id is its iteration's prefix plus its block id, the prefix of iteration `i` of
  container `c` being `{c}_iter_{i}_`; nested loops chain the prefixes (NOTES.md §3), so
  `outer_iter_2_inner_iter_0_fn` is block `fn` in iteration 0 of `inner` in iteration 2 of `outer`.
- A for_each's results come back in item order whatever order its iterations finish in: slot `i` holds
  iteration `i`'s value on `fe-right-in`, or null when that iteration produced none (its block there was
  skipped) or failed under `on_iteration_error: continue`.
- A while_loop stops when one of its termination conditions matches the body's output (the value on
  `loop-termination` when wired, else on `loop-right-in`), or after `max_iterations`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from docflow.blocks import ConditionalConfig, WhileLoopConfig
from docflow.conditions import evaluate_conditional
from docflow.jsonpath import MISSING, PathError, resolve
from docflow.models import Block, Graph
from docflow.runs import ArtifactRef, HandleValue, LoopContainer, RunContext, RunWorkflowInput, StepState

TerminationReason = Literal["max_iterations_reached", "condition_matched", "error"]
# A container's step lists at most this many failed iterations (the rest are counted in its message).
MAX_LISTED_FAILURES = 100


class LoopItemsError(ValueError):
    """The input of a for_each is not something it can iterate."""


def iteration_prefix(prefix: str, container_id: str, iteration: int) -> str:
    """The step-id prefix of one iteration of a container whose own step id has `prefix`."""
    return f"{prefix}{container_id}_iter_{iteration}_"


def iteration_context(
    outer: list[LoopContainer], container_id: str, iteration: int, parallel: bool
) -> list[LoopContainer]:
    """The `loop_containers` of a step in this iteration: the outer ones, then this one."""
    here = LoopContainer(
        container_id=container_id,
        iteration=iteration,
        is_parallel=parallel,
        parallel_item_index=iteration if parallel else None,
    )
    return [*outer, here]


def review_iteration(step_id: str, block_id: str, containers: list[LoopContainer]) -> tuple[str | None, str | None]:
    """A review's `parent_step_id` (its innermost container's step) and `iteration_key` (the iteration indexes
    from the outermost loop in, dot-separated: `"7"`, or `"2.0"` in a nested loop); None outside loops."""
    if not containers:
        return None, None
    inner = containers[-1]
    parent = step_id.removesuffix(f"_iter_{inner.iteration}_{block_id}")
    return parent, ".".join(str(c.iteration) for c in containers)


def iteration_of(step_id: str, iteration_prefix: str) -> int | None:
    """The iteration a step belongs to, by its id under `iteration_prefix` (`"loop_iter_"`): `"loop_iter_7_ex"`
    and `"loop_iter_7_inner_iter_0_ex"` → 7; None for a step not under that prefix."""
    rest = step_id.removeprefix(iteration_prefix)
    head = rest.split("_", 1)[0]
    return int(head) if rest != step_id and head.isdigit() else None


def array_items(data: Any, map_source_path: str | None) -> list[Any]:
    """The array a for_each iterates: the input itself, or the value at `map_source_path` in it."""
    value = data
    if map_source_path:
        try:
            value = resolve(data, map_source_path)
        except PathError as exc:
            raise LoopItemsError(f"config.map_source_path: {exc.message}") from exc
    where = f"the value at map_source_path '{map_source_path}'" if map_source_path else "the input on fe-left-in"
    if value is MISSING:
        raise LoopItemsError(f"{where} does not exist")
    if not isinstance(value, list):
        raise LoopItemsError(f"{where} is {type(value).__name__}, not an array")
    return value


def batches(count: int, size: int) -> list[range]:
    """Iteration indexes 0..count-1 cut into consecutive ranges of at most `size`."""
    return [range(start, min(start + size, count)) for start in range(0, count, max(1, size))]


def in_item_order(results: dict[int, Any], count: int) -> list[Any]:
    """Results keyed by iteration, as a list in item order; a missing iteration is None."""
    return [results.get(i) for i in range(count)]


class Termination(BaseModel):
    """One check of a while_loop's termination conditions (an entry of the `while_loop_termination` artifact)."""

    iteration: int
    matched: bool
    matched_condition_ids: list[str] = Field(default_factory=list)
    evaluations: list[dict[str, Any]] = Field(default_factory=list)


def check_termination(config: WhileLoopConfig, iteration: int, data: Any) -> Termination:
    """Whether the loop stops after `iteration` on `data`: any termination condition matches."""
    if not config.termination_conditions:
        return Termination(iteration=iteration, matched=False)
    result = evaluate_conditional(ConditionalConfig(conditions=config.termination_conditions, else_branch=False), data)
    return Termination(
        iteration=iteration,
        matched=bool(result.matched_condition_ids),
        matched_condition_ids=result.matched_condition_ids,
        evaluations=result.evaluations,
    )


def termination_reason(last: Termination | None, failed: bool) -> TerminationReason:
    """Why a while_loop stopped, from its last check."""
    if failed:
        return "error"
    return "condition_matched" if last is not None and last.matched else "max_iterations_reached"


# --- what the workflow and the loop activities exchange ---------------------------------------------------


class LoopItemsInput(BaseModel):
    """Input of the activity that lists a for_each's items from its `fe-left-in` value."""

    run: RunContext
    block: Block
    step_id: str
    value: HandleValue
    inline_output_limit_bytes: int = 128 * 1024


class LoopItems(BaseModel):
    """A for_each's items: inline when small, else stored at `items_ref` (read in slices by `LoadItemsInput`)."""

    count: int
    items: list[HandleValue] | None = None
    items_ref: str | None = None
    # split_by_key: the `partition` artifact (the sub-documents found and their pages).
    artifact: ArtifactRef | None = None


class LoadItemsInput(BaseModel):
    """Input of the activity that reads items `start` to `stop` (excluded) of stored items."""

    items_ref: str
    start: int
    stop: int


class TerminationInput(BaseModel):
    """Input of the activity that checks a while_loop's termination conditions after one iteration."""

    run: RunContext
    block: Block
    iteration: int
    value: HandleValue | None = None


class RecordLoopInput(BaseModel):
    """Input of the activity that writes a container's step record (and a while_loop's artifact) when it ends."""

    run: RunContext
    block: Block
    step_id: str
    loop_containers: list[LoopContainer] = Field(default_factory=list)
    inputs: dict[str, HandleValue] = Field(default_factory=dict)
    # A for_each's results in item order (None: no value); a while_loop's last output.
    results: list[HandleValue | None] | None = None
    # Or, for a for_each run in batches: each batch's stored record (`keys.loop_batch`), in item order.
    batch_refs: list[str] | None = None
    output: HandleValue | None = None
    iterations: int = 0
    failed_iterations: list[int] = Field(default_factory=list)
    terminations: list[Termination] | None = None
    error: str | None = None
    started_at: datetime
    inline_output_limit_bytes: int = 128 * 1024
    artifact: ArtifactRef | None = None


class LoopBatchInput(BaseModel):
    """The input of `LoopBatchWorkflow`: iterations `start` to `stop` (excluded) of one for_each."""

    run: RunWorkflowInput
    graph: Graph
    container: Block
    prefix: str
    containers: list[LoopContainer] = Field(default_factory=list)
    batch: int
    start: int
    stop: int
    # The batch's items inline (index 0 = item `start`), or the for_each's stored items.
    items: list[HandleValue] | None = None
    items_ref: str | None = None
    # The batch's share of the for_each's max_concurrency, when earlier batches still hold iterations waiting
    # for a review (None: the for_each's own).
    max_concurrency: int | None = None


@dataclass
class Progress:
    """The iterations of a batch in flight and whether every one has started (what its gates read to tell the
    coordinator the batch is parked on reviews); `changed` is called after each change."""

    running: set[int] = field(default_factory=set)
    launched_all: bool = False
    changed: Callable[[], None] = lambda: None


class BatchParked(BaseModel):
    """A batch tells its coordinator how many of its iterations are in flight while each only waits for a
    review and every other iteration of the batch has finished (0: not so, any more)."""

    batch: int
    held: int


class LoopBatchResult(BaseModel):
    """What a batch did: where its results and steps are stored, which iterations failed, the first failure."""

    ref: str
    failed: list[int] = Field(default_factory=list)
    failure_step_id: str | None = None
    failure_message: str | None = None
    failure_details: dict[str, Any] = Field(default_factory=dict)


class StoreBatchInput(BaseModel):
    """Input of the activity that stores a batch's results (in item order) and its steps."""

    run: RunContext
    key: str
    results: list[HandleValue | None]
    steps: list[StepState]


class LoopBatchRecord(BaseModel):
    """A batch's stored record (`keys.loop_batch`)."""

    results: list[HandleValue | None]
    steps: list[StepState]


class LoopRunInput(BaseModel):
    """Input of `LoopWorkflow`: a for_each's batches from `next_batch` on, carried over continue-as-new."""

    template: LoopBatchInput  # its batch, start, stop and items are set per batch
    count: int
    items: list[HandleValue] | None = None  # every item, when they travel inline
    next_batch: int = 0
    batches_per_history: int = 100
    refs: list[str] = Field(default_factory=list)
    failed: list[int] = Field(default_factory=list)


class LoopRunResult(BaseModel):
    """What all the batches did: each batch's record in item order, failed iterations, the first failure."""

    refs: list[str] = Field(default_factory=list)
    failed: list[int] = Field(default_factory=list)
    failure_step_id: str | None = None
    failure_message: str | None = None
    failure_details: dict[str, Any] = Field(default_factory=dict)
