"""A workflow's draft written as its YAML spec (the shape docflow.spec reads back).

Blocks come in the graph's order (sources first, ties by id) with a container's blocks nested under its
`children:`; edges sorted by their ends. Multi-line strings (function code, instructions) are written as
literal blocks so a spec reads well in review. Written with PyYAML's SafeDumper: plain values only.
"""

from __future__ import annotations

from typing import Any

import yaml

from docflow.spec import API_VERSION, edge_ends, edge_key


def _ordered(blocks: list[dict[str, Any]], edges: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Blocks in the graph's order (sources first), ties by id, so an export reads top to bottom."""
    incoming = {b["id"]: 0 for b in blocks}
    for e in edges:
        if e["target_block"] in incoming and e["source_block"] in incoming:
            incoming[e["target_block"]] += 1
    by_id = {b["id"]: b for b in blocks}
    ready = sorted(i for i, n in incoming.items() if n == 0)
    order: list[dict[str, Any]] = []
    while ready:
        current = ready.pop(0)
        order.append(by_id[current])
        for e in edges:
            if e["source_block"] == current and e["target_block"] in incoming:
                incoming[e["target_block"]] -= 1
                if incoming[e["target_block"]] == 0:
                    ready = sorted([*ready, e["target_block"]])
    return order + sorted((b for b in blocks if b not in order), key=lambda b: b["id"])  # cycles, if any


def _block_entry(block: dict[str, Any], children: dict[str | None, list[dict[str, Any]]]) -> dict[str, Any]:
    entry: dict[str, Any] = {"type": block["type"]}
    if block.get("label"):
        entry["label"] = block["label"]
    entry["position"] = {"x": block.get("position_x", 0), "y": block.get("position_y", 0)}
    for size in ("width", "height"):
        if block.get(size) is not None:
            entry[size] = block[size]
    entry["config"] = block.get("config") or {}
    if kids := children.get(block["id"]):
        entry["children"] = {kid["id"]: _block_entry(kid, children) for kid in kids}
    return entry


def export_document(workflow: dict[str, Any], graph: dict[str, Any]) -> dict[str, Any]:
    """The spec of a workflow's draft, as a YAML-ready document."""
    children: dict[str | None, list[dict[str, Any]]] = {}
    for block in _ordered(graph["blocks"], graph["edges"]):
        children.setdefault(block.get("parent_id"), []).append(block)
    keys = sorted({edge_key(e) for e in graph["edges"]}, key=lambda k: tuple(str(p) for p in k))
    edges = [edge_ends(key) for key in keys]
    metadata = {"id": workflow["id"], "name": workflow.get("name", "")}
    if workflow.get("description"):
        metadata["description"] = workflow["description"]
    blocks = {b["id"]: _block_entry(b, children) for b in children.get(None, [])}
    return {
        "apiVersion": API_VERSION,
        "kind": "Workflow",
        "metadata": metadata,
        "spec": {"blocks": blocks, "edges": edges},
    }


class _Dumper(yaml.SafeDumper):
    """SafeDumper that writes multi-line strings (function code, instructions) as literal blocks."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value and not value.endswith(" ") else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def dump_yaml(document: dict[str, Any]) -> str:
    """YAML text of a document (plain values only), keys in the order given."""
    return yaml.dump(document, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=120)
