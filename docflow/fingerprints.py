"""Fingerprints of block executions, and the upstream drift that makes a rerun ineligible.

Every fingerprint is the sha256 hex (64 characters) of `docflow.ids.canonical_json` (sorted keys, no
whitespace, UTF-8) of a payload named below. Pure: no I/O, no clock, so workflow code may import it.
Decisions [I]:

- **Executable content.** Of a block, `type` and `config` (the whole config as stored: a schema's field
  descriptions reach the model, and parsing would tie fingerprints to today's defaults and fail on a draft's
  half-edited config). `label`, `position_x/y`, `width`, `height`, `updated_at`, `workflow_id` and
  `project_id` are cosmetic or bookkeeping. `parent_id` (loop membership) and `id` are wiring, not config:
  they count in the graph fingerprints, not in `block_config_fingerprint`. Of an edge, its two blocks and
  two handles, resolved as a run resolves them (`resolve_edge_handles`, so `None` and the one handle it means
  agree); never its id, which changes when an edge is recreated identically. Notes are cosmetic, and edges
  to a missing block, a note or into a start block never carry data: all are left out.
- **Numbers** fingerprint by JSON value: `1` and `1.0` are the same number (bools stay bools).
- **Handle inputs** fingerprint in their public shape: `{"type": "file", "document": {id, filename,
  mime_type}}` or `{"type": "json", "data": …}`. A document is its file id (a content hash for the documents
  blocks make, an immutable stored file otherwise) plus the name and mime type blocks read (split names its
  outputs after the file; readers go by mime type). A claim-checked value (`data_ref`) must fingerprint as
  its inline data, so the caller loads it first; a `data_ref` left in is a ValueError.
- **Upstream.** A block's ancestors are the blocks with a path to it along data-carrying edges, plus the loop
  container a block sits in (and its ancestors), since the container decides what each iteration sees. All
  edges are followed, a loop's exit edges too: a block inside a loop counts the loop's whole body upstream,
  which may over-report drift inside loops (a forced rerun gets past it) but never misses it. The upstream
  fingerprint covers each ancestor's id, executable content and `parent_id`, the block's own `parent_id`,
  and every edge into an ancestor or the block, but not the block's own config: editing the block is the
  point of a rerun. `drifted_blocks` is non-empty exactly when the two upstream fingerprints differ.
- **Execution** = the handle inputs', block config's and upstream fingerprints plus the effective
  `n_consensus`. The upstream slice, not the whole draft, because editing a block elsewhere changes neither
  this block's inputs nor its output and must not defeat deduplication; `workflow_draft_fingerprint`
  (the whole graph) is recorded beside it. The block's id is not in it: look stored executions up by
  workflow, block and this fingerprint.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from docflow.blocks import START_TYPES
from docflow.graph import blocks_by_id, resolve_edge_handles
from docflow.ids import fingerprint
from docflow.models import Block, Graph
from docflow.runs import HandleValue

# An edge's executable identity: (source block, source handle, target block, target handle).
EdgeKey = tuple[str, str | None, str, str | None]


def block_config_fingerprint(block: Block) -> str:
    """The fingerprint of a block's executable config: its type and config, nothing cosmetic."""
    return fingerprint(_executable(block))


def handle_inputs_fingerprint(handle_inputs: Mapping[str, HandleValue]) -> str:
    """The fingerprint of a block's inputs by handle id; claim-checked values must be loaded first."""
    return fingerprint({handle: _handle_payload(handle, value) for handle, value in handle_inputs.items()})


def workflow_draft_fingerprint(graph: Graph) -> str:
    """The fingerprint of a whole graph's executable content (blocks and wiring, no ids of edges)."""
    graph = resolve_edge_handles(graph)
    blocks = _executable_blocks(graph)
    return fingerprint(
        {
            "blocks": [_placed(blocks[b]) for b in sorted(blocks)],
            "edges": sorted(_edge_keys(graph, blocks), key=_sortable),
        }
    )


def upstream_blocks(graph: Graph, block_id: str) -> list[str]:
    """The ids of the block's ancestors (see the module docstring), sorted; ValueError if it is absent."""
    _, ancestors, _ = _upstream_of(graph, block_id)
    return sorted(ancestors)


def upstream_fingerprint(graph: Graph, block_id: str) -> str:
    """The fingerprint of the block's upstream subgraph: its ancestors' executable content and wiring."""
    blocks, ancestors, edges = _upstream_of(graph, block_id)
    return fingerprint(
        {
            "block": {"id": block_id, "parent_id": blocks[block_id].parent_id},
            "ancestors": [_placed(blocks[b]) for b in sorted(ancestors)],
            "edges": sorted(edges, key=_sortable),
        }
    )


def drifted_blocks(source_graph: Graph, draft_graph: Graph, block_id: str) -> list[str]:
    """The blocks whose change makes the block's upstream differ between the two graphs, sorted.

    Named: an ancestor in one graph only (added upstream, removed, or wired in or out), an ancestor whose
    executable content or `parent_id` changed, both ends of an edge into the upstream that only one graph
    has, and the block itself if it moved in or out of a loop. Empty exactly when the upstream fingerprints
    are equal. ValueError if the block is absent from either graph.
    """
    source, draft = _upstream_of(source_graph, block_id), _upstream_of(draft_graph, block_id)
    (old_blocks, old_ancestors, old_edges), (new_blocks, new_ancestors, new_edges) = source, draft
    drifted = old_ancestors ^ new_ancestors
    # Compared as fingerprints, not dicts: Python holds True == 1, JSON does not.
    drifted |= {b for b in old_ancestors & new_ancestors if _changed(old_blocks[b], new_blocks[b])}
    for src, _, dst, _ in old_edges ^ new_edges:
        drifted |= {src, dst}
    if old_blocks[block_id].parent_id != new_blocks[block_id].parent_id:
        drifted.add(block_id)
    return sorted(drifted)


def execution_fingerprint(
    handle_inputs_fp: str, block_config_fp: str, upstream_fp: str, n_consensus: int | None
) -> str:
    """The fingerprint of one execution: its inputs, config, upstream and effective `n_consensus`.

    `n_consensus` is the count that runs (the override, else the config's; None for a block without one), so
    an override equal to the config's value is the same execution.
    """
    return fingerprint(
        {
            "handle_inputs": handle_inputs_fp,
            "block_config": block_config_fp,
            "upstream": upstream_fp,
            "n_consensus": n_consensus,
        }
    )


# --- helpers ----------------------------------------------------------------------------------------------


def _json_value(value: Any) -> Any:
    """A JSON value with integral floats as ints, so equal JSON numbers fingerprint alike."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    return value


def _executable(block: Block) -> dict[str, Any]:
    return {"type": block.type, "config": _json_value(block.config)}


def _placed(block: Block) -> dict[str, Any]:
    """A block's executable content with its place in the graph (id, loop container)."""
    return {"id": block.id, "parent_id": block.parent_id, **_executable(block)}


def _changed(old: Block, new: Block) -> bool:
    return fingerprint(_placed(old)) != fingerprint(_placed(new))


def _handle_payload(handle: str, value: HandleValue) -> dict[str, Any]:
    if value.data_ref is not None:
        raise ValueError(f"handle '{handle}' holds a claim check ({value.data_ref}): load its data first")
    if value.type == "file":
        document = None if value.document is None else value.document.model_dump(mode="json")
        return {"type": "file", "document": document}
    return {"type": "json", "data": _json_value(value.data)}


def _executable_blocks(graph: Graph) -> dict[str, Block]:
    return {b: block for b, block in blocks_by_id(graph.blocks).items() if block.type != "note"}


def _edge_keys(graph: Graph, blocks: Mapping[str, Block]) -> set[EdgeKey]:
    """The graph's data-carrying edges, without ids (identical duplicates fold into one)."""
    return {
        (e.source_block, e.source_handle, e.target_block, e.target_handle)
        for e in graph.edges
        if e.source_block in blocks and e.target_block in blocks and blocks[e.target_block].type not in START_TYPES
    }


def _ancestors(blocks: Mapping[str, Block], edges: set[EdgeKey], block_id: str) -> set[str]:
    sources: dict[str, set[str]] = {}
    for src, _, dst, _ in edges:
        sources.setdefault(dst, set()).add(src)
    found: set[str] = set()
    todo = [block_id]
    while todo:
        current = todo.pop()
        parent = blocks[current].parent_id
        links = sources.get(current, set()) | ({parent} if parent is not None and parent in blocks else set())
        for nxt in links - found:
            found.add(nxt)
            todo.append(nxt)
    found.discard(block_id)  # reached back through a loop: the block's own config is not upstream
    return found


def _upstream(blocks: Mapping[str, Block], edges: set[EdgeKey], block_id: str) -> tuple[set[str], set[EdgeKey]]:
    ancestors = _ancestors(blocks, edges, block_id)
    return ancestors, {e for e in edges if e[2] in ancestors or e[2] == block_id}


def _upstream_of(graph: Graph, block_id: str) -> tuple[dict[str, Block], set[str], set[EdgeKey]]:
    graph = resolve_edge_handles(graph)
    blocks = _executable_blocks(graph)
    if block_id not in blocks:
        raise ValueError(f"block '{block_id}' is not in the graph")
    ancestors, edges = _upstream(blocks, _edge_keys(graph, blocks), block_id)
    return blocks, ancestors, edges


def _sortable(edge: EdgeKey) -> tuple[tuple[bool, str], ...]:
    """A total order on edges: `None` handles sort first, apart from any string."""
    return tuple((part is not None, part or "") for part in edge)
