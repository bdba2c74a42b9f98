"""Pure functions over a workflow graph: validation, handle resolution, version ids, ordering.

Nothing here does I/O or reads the clock, so the API (validation on write, version ids on publish) and the
run workflow (ordering; readiness is in `docflow.readiness`) share one definition. Decisions [I]:

- Validation reports every issue it finds, in a fixed order: block issues by block id, then edge issues by
  edge id, then cycles. An edge to a missing block, a note or into a start block gets that one issue only;
  handles are checked only on blocks whose config is valid (an invalid config's handles are unknown).
- A `None` edge handle is accepted when the block has exactly one handle on that side, and resolves to it.
- Edges between a loop container and its own body (`parent_id`) are internal to the container: they do not
  order execution and do not count as cycles. They use the container's inner handles (`fe-left-out` to the
  body, the body to `fe-right-in`; `loop-left-out`, `loop-right-in`, `loop-termination`); edges from outside
  use its outer ones (`fe-left-in`, `fe-right-out`; `loop-left-in`, `loop-right-out`). Any other edge stays
  within one level: a body block connects only to blocks of the same body and to its own container.
  Edges into start blocks (refused) are ignored by ordering, so they are not also reported as cycles.
- `version_id` hashes the graph as stored (handles not resolved), so an unchanged draft keeps its id.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Iterable
from typing import Any, Literal

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from docflow.blocks import (
    CONFIG_MODELS,
    CONTAINER_TYPES,
    NOT_BUILT,
    OPTIONAL_INPUTS,
    START_TYPES,
    Handles,
    handle_kind,
    handles_of,
    parse_config,
)
from docflow.ids import VERSION, fingerprint
from docflow.models import Block, Edge, Graph, Model

Side = Literal["source", "target"]

__all__ = ["CONTAINER_TYPES", "GraphIssue", "publish_issues", "resolve_edge_handles", "topological_order"]

# A container's handles by side of the container: outer ones face the graph around it, inner ones its body.
INNER_OUTPUTS = frozenset({"fe-left-out", "loop-left-out"})
INNER_INPUTS = frozenset({"fe-right-in", "loop-right-in", "loop-termination"})


class GraphIssue(Model):
    """One problem in a graph, naming the block, edge, handle or config field to fix."""

    code: str
    message: str
    block_id: str | None = None
    edge_id: str | None = None
    handle: str | None = None
    field: str | None = None


# --- validation -------------------------------------------------------------------------------------------


def validate_block(block_type: str, config: dict[str, Any]) -> list[GraphIssue]:
    """The issues of one block's type and config (one per pydantic error, `field` = "config.<loc>")."""
    return _config_issues(block_type, config, None)


def validate_graph(graph: Graph) -> list[GraphIssue]:
    """Every issue of a graph, in a deterministic order; an empty list means the graph can run."""
    blocks = blocks_by_id(graph.blocks)
    return _block_issues(graph, blocks) + _edge_issues(graph, blocks) + _cycle_issues(graph, blocks)


def publish_issues(graph: Graph) -> list[GraphIssue]:
    """The issues that stop a graph from being published or run: `validate_graph`'s, then partial wiring.

    A block with some inputs connected but not all cannot run as drawn (merge_dicts needs only one). A
    block with no input connected at all is allowed: it is parked on the canvas and is skipped at run time.
    Edits are not held to this, so a graph can be wired one edge at a time.
    """
    return validate_graph(graph) or _unconnected_inputs(resolve_edge_handles(graph))


def _unconnected_inputs(graph: Graph) -> list[GraphIssue]:
    blocks = blocks_by_id(graph.blocks)
    connected: dict[str, set[str]] = {}
    for edge in graph.edges:
        if edge.target_handle is not None:
            connected.setdefault(edge.target_block, set()).add(edge.target_handle)
    issues: list[GraphIssue] = []
    for block_id, handles in sorted(_parsed_handles(blocks).items()):
        wired = connected.get(block_id, set())
        if not wired or blocks[block_id].type == "merge_dicts":
            continue
        issues += [
            GraphIssue(
                code="input_not_connected",
                message=f"Block '{block_id}' has input '{handle}' with no edge: connect it, or change the block's "
                "config so it does not expect it.",
                block_id=block_id,
                handle=handle,
            )
            for handle in handles.inputs
            if handle not in wired and handle not in OPTIONAL_INPUTS
        ]
    return issues


def _config_issues(block_type: str, config: dict[str, Any], block_id: str | None) -> list[GraphIssue]:
    where = f"Block '{block_id}'" if block_id else "The block"
    if block_type in NOT_BUILT:
        message = f"{where} has type '{block_type}', which is not built yet; use another block type."
        return [GraphIssue(code="block_type_not_built", message=message, block_id=block_id, field="type")]
    if block_type not in CONFIG_MODELS:
        message = f"{where} has unknown type '{block_type}'; use one of: {', '.join(sorted(CONFIG_MODELS))}."
        return [GraphIssue(code="unknown_block_type", message=message, block_id=block_id, field="type")]
    try:
        parse_config(block_type, config)
    except ValidationError as exc:
        return [_pydantic_issue(error, where, block_id) for error in exc.errors()]
    return []


def _pydantic_issue(error: ErrorDetails, where: str, block_id: str | None) -> GraphIssue:
    field = ".".join(["config", *(str(part) for part in error["loc"])])
    reason = error["msg"].removeprefix("Value error, ")
    message = f"{where} has an invalid {field}: {reason}."
    return GraphIssue(code="invalid_config", message=message, block_id=block_id, field=field)


def _block_issues(graph: Graph, blocks: dict[str, Block]) -> list[GraphIssue]:
    counts = Counter(b.id for b in graph.blocks)
    issues: list[GraphIssue] = []
    for block_id in sorted(blocks):
        block = blocks[block_id]
        if counts[block_id] > 1:
            message = f"{counts[block_id]} blocks have the id '{block_id}'; give each block its own id."
            issues.append(GraphIssue(code="duplicate_block_id", message=message, block_id=block_id, field="id"))
        issues += _config_issues(block.type, block.config, block_id)
        issues += _parent_issues(block, blocks)
    return issues


def _parent_issues(block: Block, blocks: dict[str, Block]) -> list[GraphIssue]:
    if block.parent_id is None:
        return []
    parent = blocks.get(block.parent_id)
    if parent is None:
        code, problem = "unknown_parent", f"parent_id '{block.parent_id}', which does not exist"
    elif parent.type not in CONTAINER_TYPES:
        code, problem = (
            "invalid_parent",
            f"parent '{parent.id}' of type '{parent.type}', not a loop container",
        )
    elif block.type in START_TYPES:
        code, problem = "start_block_in_loop", f"type '{block.type}' inside loop '{parent.id}': a run's inputs start it"
    else:
        return []
    message = f"Block '{block.id}' has {problem}; fix or clear parent_id."
    return [GraphIssue(code=code, message=message, block_id=block.id, field="parent_id")]


def _edge_issues(graph: Graph, blocks: dict[str, Block]) -> list[GraphIssue]:
    handles = _parsed_handles(blocks)
    issues: list[GraphIssue] = []
    for edge_id, count in sorted(Counter(e.id for e in graph.edges).items()):
        if count > 1:
            message = f"{count} edges have the id '{edge_id}'; give each edge its own id."
            issues.append(GraphIssue(code="duplicate_edge_id", message=message, edge_id=edge_id, field="id"))
    taken: dict[tuple[str, str], str] = {}  # (target block, input handle) -> the first edge into it
    for edge in sorted(graph.edges, key=lambda e: e.id):
        endpoint_issues = _endpoint_issues(edge, blocks) or _level_issues(edge, blocks)
        issues += endpoint_issues or _handle_issues(edge, handles, taken)
    return issues


def _level(block: Block, blocks: dict[str, Block]) -> str | None:
    """The container a block runs in; a parent_id that is not a container (reported apart) counts as none."""
    parent = blocks.get(block.parent_id) if block.parent_id else None
    return parent.id if parent is not None and parent.type in CONTAINER_TYPES else None


def _level_issues(edge: Edge, blocks: dict[str, Block]) -> list[GraphIssue]:
    """An edge that crosses a container's boundary, or uses the wrong side of a container's handles."""
    source, target = blocks[edge.source_block], blocks[edge.target_block]
    if _level(target, blocks) == source.id:  # a container into its body
        side, handle, allowed = "source", edge.source_handle, INNER_OUTPUTS
    elif _level(source, blocks) == target.id:  # the body back to its container
        side, handle, allowed = "target", edge.target_handle, INNER_INPUTS
    elif _level(source, blocks) != _level(target, blocks):
        message = (
            f"Edge '{edge.id}' connects block '{source.id}' and block '{target.id}', which are not in the same "
            "loop body; connect a body to the blocks outside through its container's handles."
        )
        return [GraphIssue(code="edge_crosses_container", message=message, edge_id=edge.id, block_id=target.id)]
    else:
        container, side = (source, "source") if source.type in CONTAINER_TYPES else (target, "target")
        if container.type not in CONTAINER_TYPES:
            return []
        handle = edge.source_handle if side == "source" else edge.target_handle
        if handle is None or handle not in INNER_OUTPUTS | INNER_INPUTS:
            return []
        message = (
            f"Edge '{edge.id}' uses handle '{handle}' of container '{container.id}' from outside it; that handle "
            "connects the container to its body (blocks whose parent_id is the container)."
        )
        field = f"{side}_handle"
        return [GraphIssue(code="container_inner_handle", message=message, edge_id=edge.id, handle=handle, field=field)]
    if handle is None or handle in allowed:
        return []
    container = source if side == "source" else target
    choices = ", ".join(f"'{h}'" for h in sorted(allowed))
    message = (
        f"Edge '{edge.id}' between container '{container.id}' and its body uses handle '{handle}'; "
        f"inside a container use one of: {choices}."
    )
    return [
        GraphIssue(
            code="container_outer_handle", message=message, edge_id=edge.id, handle=handle, field=f"{side}_handle"
        )
    ]


def _endpoint_issues(edge: Edge, blocks: dict[str, Block]) -> list[GraphIssue]:
    """An edge's missing blocks, or its note or start-block end: then its handles are not checked."""
    ends = (("source", "starts at", edge.source_block), ("target", "ends at", edge.target_block))
    missing = [
        GraphIssue(
            code="edge_missing_block",
            message=f"Edge '{edge.id}' {verb} block '{block_id}', which does not exist; fix or remove it.",
            block_id=block_id,
            edge_id=edge.id,
            field=f"{side}_block",
        )
        for side, verb, block_id in ends
        if block_id not in blocks
    ]
    if missing:
        return missing
    source, target = blocks[edge.source_block], blocks[edge.target_block]
    note = next((b for b in (source, target) if b.type == "note"), None)
    if note is not None:
        message = f"Block '{note.id}' is a note, which takes no edges; remove edge '{edge.id}'."
        return [GraphIssue(code="note_has_edge", message=message, block_id=note.id, edge_id=edge.id)]
    if target.type in START_TYPES:
        message = f"Block '{target.id}' is a start block, which takes no input; remove edge '{edge.id}'."
        return [GraphIssue(code="start_block_has_input", message=message, block_id=target.id, edge_id=edge.id)]
    return []


def _handle_issues(edge: Edge, handles: dict[str, Handles], taken: dict[tuple[str, str], str]) -> list[GraphIssue]:
    out, issues = _check_handle(edge, "source", handles.get(edge.source_block))
    into, target_issues = _check_handle(edge, "target", handles.get(edge.target_block))
    issues += target_issues
    known = edge.source_block in handles and edge.target_block in handles
    kinds = {handle_kind(out), handle_kind(into)} if out and into else set()
    if known and out and into and len(kinds) == 2 and "any" not in kinds:
        message = (
            f"Edge '{edge.id}' connects {handle_kind(out)} output '{out}' to {handle_kind(into)} input "
            f"'{into}'; connect file to file and json to json."
        )
        issue = GraphIssue(code="edge_kind_mismatch", message=message, block_id=edge.target_block, edge_id=edge.id)
        issues.append(issue)
    first = taken.setdefault((edge.target_block, into), edge.id) if into else edge.id
    if first != edge.id:
        message = (
            f"Input '{into}' of block '{edge.target_block}' already has edge '{first}'; an input takes one "
            f"edge: remove edge '{edge.id}' or combine the values with a merge_dicts block."
        )
        issue = GraphIssue(
            code="duplicate_input_edge",
            message=message,
            block_id=edge.target_block,
            edge_id=edge.id,
            handle=into,
            field="target_handle",
        )
        issues.append(issue)
    return issues


def _check_handle(edge: Edge, side: Side, handles: Handles | None) -> tuple[str | None, list[GraphIssue]]:
    """The edge's handle on one side, resolved; with an issue if it is not on the block or is ambiguous."""
    handle = edge.source_handle if side == "source" else edge.target_handle
    if handles is None:  # the block's config is invalid: its handles are unknown, already reported
        return handle, []
    block_id = edge.source_block if side == "source" else edge.target_block
    available = handles.outputs if side == "source" else handles.inputs
    what = "output" if side == "source" else "input"
    choices = ", ".join(f"'{h}'" for h in available) or "(none)"
    if handle is None and len(available) == 1:
        return available[0], []
    if handle is not None and handle in available:
        return handle, []
    if handle is None:
        message = (
            f"Edge '{edge.id}' has no {side}_handle and block '{block_id}' has {len(available)} {what} "
            f"handles; set {side}_handle to one of: {choices}."
        )
    else:
        message = f"Edge '{edge.id}': block '{block_id}' has no {what} handle '{handle}'; use one of: {choices}."
    issue = GraphIssue(
        code="edge_missing_handle",
        message=message,
        block_id=block_id,
        edge_id=edge.id,
        handle=handle,
        field=f"{side}_handle",
    )
    return None, [issue]


def _cycle_issues(graph: Graph, blocks: dict[str, Block]) -> list[GraphIssue]:
    successors = _successors(graph, blocks)
    rest = set(successors) - set(_kahn(successors))
    issues: list[GraphIssue] = []
    for cycle in _strongly_connected(successors, rest):
        names = ", ".join(f"'{b}'" for b in cycle)
        message = f"Blocks {names} form a cycle; a workflow graph must be acyclic: remove an edge between them."
        issues.append(GraphIssue(code="cycle", message=message, block_id=cycle[0]))
    return issues


def _strongly_connected(successors: dict[str, set[str]], nodes: set[str]) -> list[list[str]]:
    """The cycles among `nodes` (blocks Kahn's algorithm could not order), each sorted, by first id."""
    predecessors: dict[str, set[str]] = {n: set() for n in successors}
    for node, targets in successors.items():
        for target in targets:
            predecessors[target].add(node)
    seen: set[str] = set()
    cycles: list[list[str]] = []
    for node in sorted(nodes):
        if node in seen:
            continue
        component = _reach(node, successors, nodes) & _reach(node, predecessors, nodes)
        seen |= component
        if len(component) > 1 or node in successors[node]:
            cycles.append(sorted(component))
    return cycles


def _reach(start: str, links: dict[str, set[str]], within: set[str]) -> set[str]:
    found, todo = {start}, [start]
    while todo:
        for nxt in links[todo.pop()]:
            if nxt in within and nxt not in found:
                found.add(nxt)
                todo.append(nxt)
    return found


# --- handles, version ids, order --------------------------------------------------------------------------


def resolve_edge_handles(graph: Graph) -> Graph:
    """A copy of the graph with each `None` edge handle set when its block has exactly one handle there."""
    handles = _parsed_handles(blocks_by_id(graph.blocks))
    edges: list[Edge] = []
    for edge in graph.edges:
        update: dict[str, str] = {}
        outputs, inputs = handles.get(edge.source_block), handles.get(edge.target_block)
        if edge.source_handle is None and outputs is not None and len(outputs.outputs) == 1:
            update["source_handle"] = outputs.outputs[0]
        if edge.target_handle is None and inputs is not None and len(inputs.inputs) == 1:
            update["target_handle"] = inputs.inputs[0]
        edges.append(edge.model_copy(update=update, deep=True))
    return Graph(blocks=[b.model_copy(deep=True) for b in graph.blocks], edges=edges)


def version_id(graph: Graph) -> str:
    """The content address of a graph's executable content: `ver_` + 32 hex of its canonical JSON's sha256."""
    content = {
        "blocks": [
            {
                "id": b.id,
                "type": b.type,
                "label": b.label,
                "config": b.config,
                "parent_id": b.parent_id,
                # floats, so 0 (a default) and 0.0 (read back from JSON) hash alike
                "position_x": float(b.position_x),
                "position_y": float(b.position_y),
                "width": None if b.width is None else float(b.width),
                "height": None if b.height is None else float(b.height),
            }
            for b in sorted(graph.blocks, key=lambda b: b.id)
        ],
        "edges": [
            e.model_dump(mode="json", include={"id", "source_block", "target_block", "source_handle", "target_handle"})
            for e in sorted(graph.edges, key=lambda e: e.id)
        ],
    }
    return VERSION + fingerprint(content)[:32]


def topological_order(graph: Graph) -> list[str]:
    """Block ids in dependency order, ties broken by id, notes left out; raises ValueError on a cycle."""
    successors = _successors(graph, blocks_by_id(graph.blocks))
    order = _kahn(successors)
    if len(order) < len(successors):
        stuck = ", ".join(sorted(set(successors) - set(order)))
        raise ValueError(f"the graph has a cycle; blocks not ordered: {stuck}")
    return order


def blocks_by_id(blocks: Iterable[Block]) -> dict[str, Block]:
    found: dict[str, Block] = {}
    for block in blocks:
        found.setdefault(block.id, block)
    return found


def _parsed_handles(blocks: dict[str, Block]) -> dict[str, Handles]:
    """The handles of each block whose config is valid."""
    handles: dict[str, Handles] = {}
    for block_id, block in blocks.items():
        try:
            handles[block_id] = handles_of(block.type, parse_config(block.type, block.config))
        except ValueError:  # pydantic's ValidationError is a ValueError too
            continue
    return handles


def _successors(graph: Graph, blocks: dict[str, Block]) -> dict[str, set[str]]:
    """Each non-note block's successors along the edges that order execution."""
    successors: dict[str, set[str]] = {b: set() for b, block in blocks.items() if block.type != "note"}
    for edge in graph.edges:
        source, target = edge.source_block, edge.target_block
        if source not in successors or target not in successors:
            continue
        if blocks[target].parent_id == source or blocks[source].parent_id == target:
            continue  # internal to a loop container
        if blocks[target].type in START_TYPES:
            continue  # refused by validation; ignored here so it is not also reported as a cycle
        successors[source].add(target)
    return successors


def _kahn(successors: dict[str, set[str]]) -> list[str]:
    indegree = dict.fromkeys(successors, 0)
    for targets in successors.values():
        for target in targets:
            indegree[target] += 1
    ready = sorted(node for node, degree in indegree.items() if degree == 0)
    order: list[str] = []
    while ready:
        node = heapq.heappop(ready)
        order.append(node)
        for target in successors[node]:
            indegree[target] -= 1
            if indegree[target] == 0:
                heapq.heappush(ready, target)
    return order
