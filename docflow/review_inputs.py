"""What a review gate reads from a block's result, and the pure walks over it.

`GateInput` is built from what a block produced (activities/executors.py): an extract's output JSON, its
schema and (with n_consensus > 1) the consensus likelihood tree, a tree mirroring the output with floats at
the leaves; a classifier's category, likelihood and top margin; a split's sub-documents with their
likelihoods; the handles a routing block selected.

The walks are iterative (no recursion on user data) and never raise on data.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class SplitInfo(BaseModel):
    """One sub-document a split found: its 1-based pages and how sure the split is of it."""

    name: str
    pages: list[int] = Field(default_factory=list)
    likelihood: float | None = None
    page_likelihoods: list[float] | None = None


class GateInput(BaseModel):
    """Everything a predicate may read; fields a block does not produce stay empty."""

    model_config = ConfigDict(extra="forbid")

    block_type: str
    data: Any = None
    json_schema: dict[str, Any] | None = None
    validation_errors: list[Any] = Field(default_factory=list)
    likelihoods: Any = None
    category: str | None = None
    likelihood: float | None = None
    top_margin: float | None = None
    splits: list[SplitInfo] = Field(default_factory=list)
    routing: list[str] | None = None


def min_leaf(tree: Any, prefix: str = "") -> tuple[str, float] | None:
    """The lowest numeric leaf of a likelihood tree and its path (`items[0].qty`), or None when it has none."""
    best: tuple[str, float] | None = None
    stack: list[tuple[str, Any]] = [(prefix, tree)]
    while stack:
        path, node = stack.pop()
        if isinstance(node, dict):
            stack.extend((_key(path, str(k)), v) for k, v in reversed(list(node.items())))
        elif isinstance(node, list):
            stack.extend((f"{path}[{i}]", v) for i, v in reversed(list(enumerate(node))))
        elif _number(node) and (best is None or node < best[1]):
            best = (path, float(node))
    return best


def null_required_fields(data: Any, schema: dict[str, Any] | None, limit: int = 100) -> list[str]:
    """Paths of required fields that are null or absent, walking objects and arrays of objects.

    A required field is checked wherever its enclosing object is present; local `$ref`s
    (`#/$defs/...`, `#/definitions/...`) are followed.
    """
    if not isinstance(schema, dict):
        return []
    found: list[str] = []
    stack: list[tuple[str, Any, Any]] = [("", data, schema)]
    while stack and len(found) < limit:
        path, value, node = stack.pop()
        node = resolve_ref(node, schema)
        node = _branch(node, schema, "object" if isinstance(value, dict) else "array")
        if isinstance(value, dict):
            properties = node.get("properties")
            properties = properties if isinstance(properties, dict) else {}
            required = node.get("required")
            for name in required if isinstance(required, list) else []:
                if isinstance(name, str) and value.get(name) is None:
                    found.append(_key(path, name))
            for name, sub in reversed(list(properties.items())):
                if isinstance(value.get(name), dict | list):
                    stack.append((_key(path, name), value[name], sub))
        elif isinstance(value, list) and isinstance(node.get("items"), dict):
            stack.extend((f"{path}[{i}]", item, node["items"]) for i, item in reversed(list(enumerate(value))))
    return found


def _branch(node: dict[str, Any], root: dict[str, Any], kind: str) -> dict[str, Any]:
    # A nullable object is often `anyOf: [{object}, {"type": "null"}]`: walk the branch of the value's kind.
    marker = "properties" if kind == "object" else "items"
    if marker in node:
        return node
    for key in ("anyOf", "oneOf"):
        options = node.get(key)
        for option in options if isinstance(options, list) else []:
            resolved = resolve_ref(option, root)
            if marker in resolved:
                return resolved
    return node


def resolve_ref(node: Any, root: dict[str, Any]) -> dict[str, Any]:
    """`node` with its local `$ref` (`#/…`, JSON Pointer escapes) followed through `root`; {} for what is not an
    object or does not resolve. Used by the review form too (api.review_form), so both read a schema alike."""
    for _ in range(16):  # a bounded number of hops, so a $ref cycle cannot loop
        if not isinstance(node, dict):
            return {}
        ref = node.get("$ref")
        if not isinstance(ref, str) or not ref.startswith("#/"):
            return node
        target: Any = root
        for part in ref[2:].split("/"):
            target = target.get(part.replace("~1", "/").replace("~0", "~")) if isinstance(target, dict) else None
        node = target
    return {}


def _number(node: Any) -> bool:
    return isinstance(node, int | float) and not isinstance(node, bool) and math.isfinite(node)


def _key(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name
