"""The declarative workflow spec (NOTES.md §1, the SDK's YAML shape) and the plan that brings a draft to it.

    apiVersion: workflows.retab.com/v1alpha2
    kind: Workflow
    metadata: {id: wf_…, name: …, description: …}
    spec:
      blocks:                      # keyed by block id; a container's blocks nest under `children:`
        start: {type: start_document, label: Invoice, position: {x: 0, y: 0}, config: {}}
      edges:
        - from: {block: start, handle: output-file-0}
          to: {block: parse, handle: input-file-0}

The file is user input (the CLI's, or the body of the API's spec endpoints): it is read with PyYAML's
`safe_load` (never `yaml.load`, whose full loader builds arbitrary Python objects), capped in size, and must
hold plain JSON values only (a YAML date, a cycle made of anchors, or an alias bomb is refused naming where).
Pure code: parsing, export, planning and the graph a spec makes (`to_graph`) read and write nothing; every
problem is a `SpecError` naming its place.

A plan compares the spec with the draft: blocks by id (fields type, label, position, size, config, parent;
a new type is a replace), edges by their endpoints and handles (no edge is updated: one goes, one comes),
and the workflow's name and description. An empty plan is "no changes", so applying a file twice changes
nothing the second time, and an exported file (docflow.spec_export) applies as no change.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import yaml

from docflow.models import Block, Edge, Graph

API_VERSION = "workflows.retab.com/v1alpha2"
MAX_SPEC_BYTES = 4 * 1024 * 1024
MAX_NODES = 200_000  # values in a spec after aliases are followed: a bound on alias bombs
MAX_DEPTH = 64  # mappings and lists inside each other; PyYAML's parser recurses once per level
BLOCK_FIELDS = ("type", "label", "position_x", "position_y", "width", "height", "config", "parent_id")
Action = Literal["create", "update", "delete", "replace"]
EdgeKey = tuple[str, str | None, str, str | None]


class SpecError(ValueError):
    """A spec that cannot be read: the message, and the place (`spec.blocks.x.type`) as `field`."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass
class Spec:
    """A parsed spec: the workflow's metadata, blocks (by id, flat, with parent_id) and edges."""

    workflow_id: str | None
    name: str
    description: str
    blocks: dict[str, dict[str, Any]]
    edges: list[EdgeKey]


@dataclass
class Change:
    """One resource the plan creates, updates, deletes or replaces."""

    action: Action
    target: Literal["workflow", "block", "edge"]
    target_id: str
    kind: str
    fields: list[str] = field(default_factory=list)
    before: dict[str, Any] | None = None  # the resource's spec fields now (None: it does not exist)
    after: dict[str, Any] | None = None  # and once applied (None: it goes)

    @property
    def address(self) -> str:
        """`block.extract`, `edge.a:out→b:in`, `workflow.wf_…`."""
        return f"{self.target}.{self.target_id}"


# -- reading -------------------------------------------------------------------------------------------


def load_yaml(text: str, source: str) -> Any:
    """The YAML document as plain JSON values; a SpecError naming the line, or the path of a non-JSON value."""
    if len(text.encode()) > MAX_SPEC_BYTES:
        raise SpecError(f"{source}: larger than {MAX_SPEC_BYTES // (1024 * 1024)} MiB", "yaml_definition")
    try:
        document = yaml.safe_load(text)
    except RecursionError as exc:  # thousands of `[` deep: PyYAML's recursive composer gave out, nothing else
        raise SpecError(f"{source}: nested more than {MAX_DEPTH} levels deep", "yaml_definition") from exc
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise SpecError(f"{source}: not valid YAML: {exc.problem or exc.context}{where}", "yaml_definition") from exc
    except yaml.YAMLError as exc:
        raise SpecError(f"{source}: not valid YAML: {exc}", "yaml_definition") from exc
    _check_json(document, source, [0], set())
    return document


def _check_json(value: Any, path: str, count: list[int], parents: set[int]) -> None:
    count[0] += 1
    if len(parents) > MAX_DEPTH:
        raise SpecError(f"{path}: nested more than {MAX_DEPTH} levels deep", path)
    if count[0] > MAX_NODES:
        raise SpecError(f"{path}: the spec expands to more than {MAX_NODES} values (aliases included)", path)
    if isinstance(value, dict | list):
        if id(value) in parents:
            raise SpecError(f"{path}: refers to itself (a YAML anchor cycle)", path)
        parents.add(id(value))
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            if isinstance(value, dict) and not isinstance(key, str):
                raise SpecError(f"{path}: key {key!r} is not a string; quote it", path)
            _check_json(item, f"{path}.{key}" if isinstance(value, dict) else f"{path}[{key}]", count, parents)
        parents.discard(id(value))
    elif not isinstance(value, str | int | float | bool) and value is not None:
        raise SpecError(f"{path}: a YAML {type(value).__name__} is not a JSON value; quote it", path)


def _mapping(value: Any, path: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise SpecError(f"{path}: must be a mapping", path)
    return value


def _text(value: Any, path: str, default: str = "") -> str:
    if value is None:
        return default
    if not isinstance(value, str):
        raise SpecError(f"{path}: must be a string", path)
    return value


def parse_spec(text: str, source: str) -> Spec:
    """A spec from YAML text; every problem is one SpecError naming its place (`spec.blocks.x.type`)."""
    document = _mapping(load_yaml(text, source), source)
    if document.get("apiVersion") != API_VERSION:
        raise SpecError(
            f"{source}: apiVersion must be {API_VERSION} (found {document.get('apiVersion')!r})", "apiVersion"
        )
    if document.get("kind", "Workflow") != "Workflow":
        raise SpecError(f"{source}: kind must be Workflow", "kind")
    metadata = _mapping(document.get("metadata"), "metadata")
    body = _mapping(document.get("spec"), "spec")
    blocks: dict[str, dict[str, Any]] = {}
    _read_blocks(_mapping(body.get("blocks"), "spec.blocks"), None, "spec.blocks", blocks)
    edges = _read_edges(body.get("edges"), blocks)
    workflow_id = metadata.get("id")
    return Spec(
        workflow_id=_text(workflow_id, "metadata.id") or None,
        name=_text(metadata.get("name"), "metadata.name", "Untitled Workflow"),
        description=_text(metadata.get("description"), "metadata.description"),
        blocks=blocks,
        edges=edges,
    )


def _number(value: Any, path: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SpecError(f"{path}: must be a number", path)
    return float(value) if isinstance(value, float) else int(value)


def _read_blocks(found: dict[str, Any], parent: str | None, path: str, into: dict[str, dict[str, Any]]) -> None:
    for block_id, raw in found.items():
        where = f"{path}.{block_id}"
        item = _mapping(raw, where)
        if block_id in into:
            raise SpecError(f"{where}: block id used twice", where)
        if not isinstance(item.get("type"), str) or not item["type"]:
            raise SpecError(f"{where}.type: required (a block type such as extract)", f"{where}.type")
        position = _mapping(item.get("position"), f"{where}.position")
        config = _mapping(item.get("config"), f"{where}.config")
        into[block_id] = {
            "type": item["type"],
            "label": _text(item.get("label"), f"{where}.label"),
            "position_x": _number(position.get("x"), f"{where}.position.x") or 0,
            "position_y": _number(position.get("y"), f"{where}.position.y") or 0,
            "width": _number(item.get("width"), f"{where}.width"),
            "height": _number(item.get("height"), f"{where}.height"),
            "config": config,
            "parent_id": parent,
        }
        _read_blocks(_mapping(item.get("children"), f"{where}.children"), block_id, f"{where}.children", into)


def _read_edges(raw: Any, blocks: dict[str, dict[str, Any]]) -> list[EdgeKey]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise SpecError("spec.edges: must be a list", "spec.edges")
    edges: list[EdgeKey] = []
    seen: set[EdgeKey] = set()  # a set, not the list: 20,000 edges are checked in linear time
    for index, item in enumerate(raw):
        where = f"spec.edges[{index}]"
        ends = []
        for side in ("from", "to"):
            end = _mapping(_mapping(item, where).get(side), f"{where}.{side}")
            block = end.get("block")
            if not isinstance(block, str) or block not in blocks:
                raise SpecError(f"{where}.{side}.block: {block!r} is not a block of the spec", f"{where}.{side}.block")
            ends.append((block, _text(end.get("handle"), f"{where}.{side}.handle") or None))
        key = (ends[0][0], ends[0][1], ends[1][0], ends[1][1])
        if key in seen:
            raise SpecError(f"{where}: the same edge twice", where)
        seen.add(key)
        edges.append(key)
    return edges


# -- the draft's side ----------------------------------------------------------------------------------


def block_fields(block: dict[str, Any]) -> dict[str, Any]:
    """The fields a spec sets, from a block as the API returns it."""
    return {name: block.get(name) if name != "config" else block.get("config") or {} for name in BLOCK_FIELDS}


def edge_key(edge: dict[str, Any]) -> EdgeKey:
    """An API edge's endpoints and handles."""
    return (edge["source_block"], edge.get("source_handle"), edge["target_block"], edge.get("target_handle"))


def edge_ends(key: EdgeKey) -> dict[str, Any]:
    """An edge as a spec writes it: `{from: {block, handle}, to: {block, handle}}` (no handle: left out)."""
    source = {"block": key[0]} | ({"handle": key[1]} if key[1] else {})
    target = {"block": key[2]} | ({"handle": key[3]} if key[3] else {})
    return {"from": source, "to": target}


def edge_name(key: EdgeKey) -> str:
    """`a:output-json-0→b:input-json-0`."""
    source = key[0] + (f":{key[1]}" if key[1] else "")
    target = key[2] + (f":{key[3]}" if key[3] else "")
    return f"{source}→{target}"


# -- planning ------------------------------------------------------------------------------------------


def changed_paths(before: Any, after: Any, prefix: str, depth: int = 3) -> list[str]:
    """Dotted paths where two values differ, down to `depth` levels of mappings."""
    if before == after:
        return []
    if depth == 0 or not isinstance(before, dict) or not isinstance(after, dict):
        return [prefix]
    paths: list[str] = []
    for key in sorted(set(before) | set(after), key=str):
        paths += changed_paths(before.get(key), after.get(key), f"{prefix}.{key}", depth - 1)
    return paths


def plan(spec: Spec, workflow: dict[str, Any] | None, graph: dict[str, Any]) -> list[Change]:
    """What applying `spec` to this workflow (None: a new one) and its draft graph would do."""
    changes: list[Change] = []
    meta = {"name": spec.name, "description": spec.description}
    if workflow is None:
        changes.append(Change("create", "workflow", spec.name, "workflow", after=meta))
    else:
        have_meta = {f: workflow.get(f, "") for f in meta}
        if fields := [f for f in meta if have_meta[f] != meta[f]]:
            changes.append(Change("update", "workflow", workflow["id"], "workflow", fields, have_meta, meta))
    live = {b["id"]: block_fields(b) for b in graph.get("blocks", [])}
    replaced: set[str] = set()
    for block_id, wanted in spec.blocks.items():
        have = live.get(block_id)
        if have is None:
            changes.append(Change("create", "block", block_id, wanted["type"], after=wanted))
        elif have["type"] != wanted["type"]:
            replaced.add(block_id)
            kind = f"{have['type']}→{wanted['type']}"
            changes.append(Change("replace", "block", block_id, kind, ["type"], have, wanted))
        elif fields := [p for name in BLOCK_FIELDS for p in changed_paths(have[name], wanted[name], name)]:
            changes.append(Change("update", "block", block_id, wanted["type"], fields, have, wanted))
    for block_id, have in live.items():
        if block_id not in spec.blocks:
            changes.append(Change("delete", "block", block_id, str(have["type"]), before=have))
    live_edges = {edge_key(e) for e in graph.get("edges", [])}
    for key in spec.edges:
        if key not in live_edges:
            changes.append(Change("create", "edge", edge_name(key), "edge", after=edge_ends(key)))
        elif replaced & {key[0], key[2]}:  # the server drops a deleted block's edges: they come back
            changes.append(Change("replace", "edge", edge_name(key), "edge", [], edge_ends(key), edge_ends(key)))
    for key in sorted(live_edges - set(spec.edges), key=lambda k: tuple(str(p) for p in k)):
        changes.append(Change("delete", "edge", edge_name(key), "edge", before=edge_ends(key)))
    return changes


def summary(changes: list[Change]) -> dict[str, Any]:
    """Counts as the SDK's plan summary has them (no entry is a no-op: unchanged resources are not listed)."""
    count = {a: sum(c.action == a for c in changes) for a in ("create", "update", "delete", "replace")}
    return {
        "add": count["create"],
        "change": count["update"],
        "destroy": count["delete"],
        "replace": count["replace"],
        "noop": 0,
        "total": len(changes),
        "has_changes": bool(changes),
    }


SIGNS = {"create": "+", "update": "~", "delete": "-", "replace": "-/+"}


def render(changes: list[Change], target: str) -> str:
    """The plan as a person reads it, one line per change and a count."""
    if not changes:
        return f"No changes. Workflow {target} is up to date."
    lines = [f"Plan for workflow {target}:"]
    for change in changes:
        what = f"{change.target} {change.target_id}" + (f" ({change.kind})" if change.target == "block" else "")
        detail = f": {', '.join(change.fields)}" if change.fields and change.action == "update" else ""
        lines.append(f"  {SIGNS[change.action]:>3} {what}  {change.action}{detail}")
    s = summary(changes)
    lines.append(
        f"Plan: {s['add']} to add, {s['change']} to change, {s['destroy']} to destroy, {s['replace']} to replace."
    )
    return "\n".join(lines)


# -- the graph a spec makes ------------------------------------------------------------------------------


def to_graph(
    spec: Spec, workflow_id: str, project_id: str, current: Graph, now: datetime, new_edge_id: Callable[[], str]
) -> Graph:
    """The draft graph `spec` describes, made from `current`: a block whose fields are unchanged keeps its
    `updated_at`, an edge whose ends are unchanged keeps its id; the rest are new as of `now`."""
    live = {b.id: b for b in current.blocks}
    blocks: list[Block] = []
    for block_id, wanted in spec.blocks.items():
        have = live.get(block_id)
        unchanged = have is not None and block_fields(have.model_dump(mode="json")) == wanted
        blocks.append(
            Block.model_validate(
                {
                    **wanted,
                    "id": block_id,
                    "workflow_id": workflow_id,
                    "project_id": project_id,
                    "updated_at": have.updated_at if have is not None and unchanged else now,
                }
            )
        )
    kept = {edge_key(e.model_dump(mode="json")): e for e in current.edges}
    edges: list[Edge] = []
    for key in spec.edges:
        source, source_handle, target, target_handle = key
        have_edge = kept.get(key)
        replaced = any(
            b in spec.blocks and live.get(b) is not None and live[b].type != spec.blocks[b]["type"]
            for b in (source, target)
        )
        edges.append(
            Edge(
                id=have_edge.id if have_edge is not None and not replaced else new_edge_id(),
                workflow_id=workflow_id,
                project_id=project_id,
                source_block=source,
                source_handle=source_handle,
                target_block=target,
                target_handle=target_handle,
                updated_at=have_edge.updated_at if have_edge is not None and not replaced else now,
            )
        )
    return Graph(blocks=blocks, edges=edges)


def block_path(spec: Spec, block_id: str) -> str:
    """Where a block is written in the spec: `spec.blocks.loop.children.extract`."""
    chain = [block_id]
    parent = spec.blocks[block_id]["parent_id"]
    while parent is not None and len(chain) <= len(spec.blocks):
        chain.append(parent)
        parent = spec.blocks[parent]["parent_id"]
    return "spec.blocks." + ".children.".join(reversed(chain))
