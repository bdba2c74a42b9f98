"""Readiness of blocks during a run: which pending blocks can run, and which to skip and why.

Pure functions over the graph and the blocks' statuses, so the run workflow stays a thin loop over them.
`next_actions` cascades skips within one call: a block skipped now counts as skipped for the blocks after
it in topological order, so a dead branch is skipped in one pass.

Readiness works on one level at a time (`scope`): the top level (blocks without a parent) or one loop
container's body. A container is one block of the level it sits in (ready when its outer inputs are); its
body is a level of its own, where the container itself is the source of the edges from its inner outputs
(`fe-left-out`, `loop-left-out`): the walker of an iteration counts it as completed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from docflow.blocks import START_TYPES
from docflow.graph import blocks_by_id, topological_order
from docflow.models import Block, Edge, Graph

EdgeState = Literal["waiting", "active", "dead"]
_DEAD_SOURCE = {"skipped": "was skipped", "error": "failed", "cancelled": "was cancelled"}


def scope(graph: Graph, parent_id: str | None) -> Graph:
    """One level of the graph: the blocks whose `parent_id` is `parent_id`, the edges into them from the same
    level, and (for a body) the edges from its container."""
    blocks = [b for b in graph.blocks if b.parent_id == parent_id]
    ids = {b.id for b in blocks}
    sources = ids | ({parent_id} if parent_id is not None else set())
    edges = [e for e in graph.edges if e.target_block in ids and e.source_block in sources]
    return Graph(blocks=blocks, edges=edges)


def edge_state(edge: Edge, block_status: Mapping[str, str], routing: Mapping[str, list[str] | None]) -> EdgeState:
    """Whether an edge (handles resolved) carries a value, never will, or may still."""
    status = block_status.get(edge.source_block, "pending")
    if status == "completed":
        routed = routing.get(edge.source_block)
        return "active" if routed is None or edge.source_handle in routed else "dead"
    return "dead" if status in _DEAD_SOURCE else "waiting"


def next_actions(
    graph: Graph, block_status: Mapping[str, str], routing: Mapping[str, list[str] | None]
) -> tuple[list[str], dict[str, str]]:
    """Among pending blocks: those ready to run, and those to skip with the reason, in topological order.

    A block missing from `block_status` counts as pending. `graph` should have its handles resolved
    (`resolve_edge_handles`) so routed handles match, and be valid: a cycle raises ValueError.
    """
    blocks = blocks_by_id(graph.blocks)
    incoming: dict[str, list[Edge]] = {}
    for edge in sorted(graph.edges, key=lambda e: (e.target_handle or "", e.id)):
        incoming.setdefault(edge.target_block, []).append(edge)
    status = dict(block_status)
    ready: list[str] = []
    skip: dict[str, str] = {}
    for block_id in topological_order(graph):
        if status.get(block_id, "pending") != "pending":
            continue
        verdict, reason = _decide(blocks[block_id], incoming.get(block_id, []), status, routing)
        if verdict == "ready":
            ready.append(block_id)
        elif verdict == "skip":
            skip[block_id] = reason
            status[block_id] = "skipped"
    return ready, skip


def _decide(
    block: Block, edges: list[Edge], status: Mapping[str, str], routing: Mapping[str, list[str] | None]
) -> tuple[Literal["ready", "skip", "wait"], str]:
    if block.type in START_TYPES:
        return "ready", ""
    if not edges:
        return "skip", "no input connected"
    states = [edge_state(e, status, routing) for e in edges]
    if "waiting" in states:
        return "wait", ""
    if all(s == "active" for s in states) or (block.type == "merge_dicts" and "active" in states):
        return "ready", ""
    dead = next(e for e, s in zip(edges, states, strict=True) if s == "dead")
    return "skip", _inactive_reason(dead, status)


def _inactive_reason(edge: Edge, status: Mapping[str, str]) -> str:
    where = f"input '{edge.target_handle}'" if edge.target_handle else f"input from block '{edge.source_block}'"
    source_status = status.get(edge.source_block, "pending")
    if source_status == "completed":
        return f"{where} inactive: branch '{edge.source_handle}' of block '{edge.source_block}' was not taken"
    return f"{where} inactive: upstream block '{edge.source_block}' {_DEAD_SOURCE[source_status]}"
