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

The file is user input: it is read with PyYAML's `safe_load` (never `yaml.load`, whose full loader builds
arbitrary Python objects), capped in size, and must hold plain JSON values only (a YAML date, a cycle made of
anchors, or an alias bomb is refused naming where). Pure code: parsing, export and planning call no API.

A plan compares the spec with the draft: blocks by id (fields type, label, position, size, config, parent;
a new type is a replace), edges by their endpoints and handles (no edge is updated: one goes, one comes),
and the workflow's name and description. An empty plan is "no changes", so applying a file twice changes
nothing the second time, and an exported file (devstack.cli_spec_export) applies as no change.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import yaml

from devstack.cli_client import CliError

API_VERSION = "workflows.retab.com/v1alpha2"
MAX_SPEC_BYTES = 4 * 1024 * 1024
MAX_NODES = 200_000  # values in a spec after aliases are followed: a bound on alias bombs
BLOCK_FIELDS = ("type", "label", "position_x", "position_y", "width", "height", "config", "parent_id")
Action = Literal["create", "update", "delete", "replace"]
EdgeKey = tuple[str, str | None, str, str | None]


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

    @property
    def address(self) -> str:
        """`block.extract`, `edge.a:out→b:in`, `workflow.wf_…`."""
        return f"{self.target}.{self.target_id}"

    def public(self) -> dict[str, Any]:
        """The change as `--json` prints it (the SDK's `resource_changes` entry, in brief)."""
        actions = ["delete", "create"] if self.action == "replace" else [self.action]
        return {
            "address": self.address,
            "target": self.target,
            "target_id": self.target_id,
            "type": self.kind,
            "actions": actions,
            "fields": self.fields,
        }


# -- reading -------------------------------------------------------------------------------------------


def load_yaml(text: str, source: str) -> Any:
    """The YAML document as plain JSON values; a CliError naming the line, or the path of a non-JSON value."""
    if len(text.encode()) > MAX_SPEC_BYTES:
        raise CliError(f"{source}: larger than {MAX_SPEC_BYTES // (1024 * 1024)} MiB")
    try:
        document = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise CliError(f"{source}: not valid YAML: {exc.problem or exc.context}{where}") from exc
    except yaml.YAMLError as exc:
        raise CliError(f"{source}: not valid YAML: {exc}") from exc
    _check_json(document, source, [0], set())
    return document


def _check_json(value: Any, path: str, count: list[int], parents: set[int]) -> None:
    count[0] += 1
    if count[0] > MAX_NODES:
        raise CliError(f"{path}: the spec expands to more than {MAX_NODES} values (aliases included)")
    if isinstance(value, dict | list):
        if id(value) in parents:
            raise CliError(f"{path}: refers to itself (a YAML anchor cycle)")
        parents.add(id(value))
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            if isinstance(value, dict) and not isinstance(key, str):
                raise CliError(f"{path}: key {key!r} is not a string; quote it")
            _check_json(item, f"{path}.{key}" if isinstance(value, dict) else f"{path}[{key}]", count, parents)
        parents.discard(id(value))
    elif not isinstance(value, str | int | float | bool) and value is not None:
        raise CliError(f"{path}: a YAML {type(value).__name__} is not a JSON value; quote it")


def _mapping(value: Any, path: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise CliError(f"{path}: must be a mapping")
    return value


def _text(value: Any, path: str, default: str = "") -> str:
    if value is None:
        return default
    if not isinstance(value, str):
        raise CliError(f"{path}: must be a string")
    return value


def parse_spec(text: str, source: str) -> Spec:
    """A spec from YAML text; every problem is one CliError naming its place (`spec.blocks.x.type`)."""
    document = _mapping(load_yaml(text, source), source)
    if document.get("apiVersion") != API_VERSION:
        raise CliError(f"{source}: apiVersion must be {API_VERSION} (found {document.get('apiVersion')!r})")
    if document.get("kind", "Workflow") != "Workflow":
        raise CliError(f"{source}: kind must be Workflow")
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
        raise CliError(f"{path}: must be a number")
    return float(value) if isinstance(value, float) else int(value)


def _read_blocks(found: dict[str, Any], parent: str | None, path: str, into: dict[str, dict[str, Any]]) -> None:
    for block_id, raw in found.items():
        where = f"{path}.{block_id}"
        item = _mapping(raw, where)
        if block_id in into:
            raise CliError(f"{where}: block id used twice")
        if not isinstance(item.get("type"), str) or not item["type"]:
            raise CliError(f"{where}.type: required (a block type such as extract)")
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
        raise CliError("spec.edges: must be a list")
    edges: list[EdgeKey] = []
    for index, item in enumerate(raw):
        where = f"spec.edges[{index}]"
        ends = []
        for side in ("from", "to"):
            end = _mapping(_mapping(item, where).get(side), f"{where}.{side}")
            block = end.get("block")
            if not isinstance(block, str) or block not in blocks:
                raise CliError(f"{where}.{side}.block: {block!r} is not a block of the spec")
            ends.append((block, _text(end.get("handle"), f"{where}.{side}.handle") or None))
        key = (ends[0][0], ends[0][1], ends[1][0], ends[1][1])
        if key in edges:
            raise CliError(f"{where}: the same edge twice")
        edges.append(key)
    return edges


# -- the draft's side ----------------------------------------------------------------------------------


def block_fields(block: dict[str, Any]) -> dict[str, Any]:
    """The fields a spec sets, from a block as the API returns it."""
    return {name: block.get(name) if name != "config" else block.get("config") or {} for name in BLOCK_FIELDS}


def edge_key(edge: dict[str, Any]) -> EdgeKey:
    """An API edge's endpoints and handles."""
    return (edge["source_block"], edge.get("source_handle"), edge["target_block"], edge.get("target_handle"))


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
    if workflow is None:
        changes.append(Change("create", "workflow", spec.name, "workflow"))
    else:
        fields = [f for f in ("name", "description") if workflow.get(f, "") != getattr(spec, f)]
        if fields:
            changes.append(Change("update", "workflow", workflow["id"], "workflow", fields))
    live = {b["id"]: block_fields(b) for b in graph.get("blocks", [])}
    replaced: set[str] = set()
    for block_id, wanted in spec.blocks.items():
        have = live.get(block_id)
        if have is None:
            changes.append(Change("create", "block", block_id, wanted["type"]))
        elif have["type"] != wanted["type"]:
            replaced.add(block_id)
            changes.append(Change("replace", "block", block_id, f"{have['type']}→{wanted['type']}", ["type"]))
        elif fields := [p for name in BLOCK_FIELDS for p in changed_paths(have[name], wanted[name], name)]:
            changes.append(Change("update", "block", block_id, wanted["type"], fields))
    for block_id, have in live.items():
        if block_id not in spec.blocks:
            changes.append(Change("delete", "block", block_id, str(have["type"])))
    live_edges = {edge_key(e) for e in graph.get("edges", [])}
    for key in spec.edges:
        if key not in live_edges:
            changes.append(Change("create", "edge", edge_name(key), "edge"))
        elif replaced & {key[0], key[2]}:  # the server drops a deleted block's edges: they come back
            changes.append(Change("replace", "edge", edge_name(key), "edge"))
    for key in sorted(live_edges - set(spec.edges), key=lambda k: tuple(str(p) for p in k)):
        changes.append(Change("delete", "edge", edge_name(key), "edge"))
    return changes


def summary(changes: list[Change]) -> dict[str, Any]:
    """Counts as the SDK's plan summary has them."""
    count = {a: sum(c.action == a for c in changes) for a in ("create", "update", "delete", "replace")}
    return {
        "add": count["create"],
        "change": count["update"],
        "destroy": count["delete"],
        "replace": count["replace"],
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
