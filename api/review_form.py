"""A review version's snapshot as an HTML form generated from the block's JSON Schema. Pure: strings in, HTML out.

Every value is one element with `data-kind` (object, array, string, number, integer, boolean, enum, json) and,
inside an object, `data-key`; the page's script (`review_static/review.js`) reads the form back into JSON by
walking those elements, so what is shown is exactly what is saved. The rules:

- object → a fieldset of its properties in schema order, then any keys the data has beyond the schema (as JSON,
  so nothing is lost); array → its items, each removable, and an "add" button cloning a `<template>` of an
  empty item (arrays of objects included); `$ref` (local), `anyOf`/`oneOf` with null, and `type: [T, "null"]`
  are followed; a nullable leaf left empty is null;
- string → a text input (a textarea when long or multi-line), number/integer → a number input, boolean and
  enum → a select; anything else (no type, a union, a null object, past the depth or size caps) → a JSON textarea;
- a leaf whose likelihood (the consensus tree mirrors the output) is under the threshold is marked `low` with
  the value written out, not only a colour.

Everything from the schema or the data is escaped; deep or huge inputs fall back to JSON text past the caps.
"""

from __future__ import annotations

import html
import json
import math
from dataclasses import dataclass, field
from typing import Any

from docflow.review_inputs import resolve_ref

MAX_DEPTH = 12
MAX_NODES = 2000
LONG_TEXT = 80


@dataclass
class _Form:
    root: dict[str, Any]
    threshold: float
    nodes: int = 0
    next_id: int = 0
    low: list[str] = field(default_factory=list)
    # Set while rendering a property the data does not have: its element says so, and the script leaves the key
    # out again when the reviewer left it empty (a key is never added as null behind the reviewer's back).
    absent: bool = False
    # What `_empty` may still build, over all array templates of the form.
    empty_budget: int = MAX_NODES

    def ident(self) -> str:
        self.next_id += 1
        return f"f{self.next_id}"


def render_form(schema: dict[str, Any] | None, data: Any, likelihoods: Any, threshold: float) -> str:
    """The form of `data` under `schema`, leaves under `threshold` in `likelihoods` marked low."""
    return form_and_low_fields(schema, data, likelihoods, threshold)[0]


def form_and_low_fields(
    schema: dict[str, Any] | None, data: Any, likelihoods: Any, threshold: float
) -> tuple[str, list[str]]:
    """The form, and the paths of the fields it marks low."""
    form = _Form(schema or {}, threshold)
    markup = _node(form, schema or {}, data, likelihoods, key=None, label="Output", path="", depth=0)
    return markup, form.low


def form_schema(
    block_type: str, output_schema: dict[str, Any] | None, categories: list[str] | None, subdocuments: list[str] | None
) -> dict[str, Any] | None:
    """The schema a review's form follows: the extract's own; a classifier's category among its categories; a
    split's documents, each a name among its sub-documents and its pages (the snapshot shapes of docflow.reviews)."""
    if block_type == "extract":
        return output_schema
    if block_type == "classifier":
        return {"type": "object", "properties": {"category": {"type": "string", "enum": list(categories or [])}}}
    if block_type == "split":
        document = {
            "type": "object",
            "properties": {
                "name": {"type": "string", "enum": list(subdocuments or [])},
                "pages": {"type": "array", "items": {"type": "integer"}},
            },
        }
        return {"type": "object", "properties": {"documents": {"type": "array", "items": document}}}
    return None


def low_fields(schema: dict[str, Any] | None, data: Any, likelihoods: Any, threshold: float) -> list[str]:
    """The paths of the fields the form marks low."""
    return form_and_low_fields(schema, data, likelihoods, threshold)[1]


def _shape(node: dict[str, Any], root: dict[str, Any]) -> tuple[str | None, bool, dict[str, Any]]:
    """(the one non-null type, nullable, the schema of that type); type None when it is not one type."""
    node = resolve_ref(node, root)
    for union in ("anyOf", "oneOf"):
        options = node.get(union)
        if isinstance(options, list):
            resolved = [resolve_ref(o, root) for o in options]
            rest = [o for o in resolved if o.get("type") != "null"]
            if len(rest) == 1:
                kind, _, sub = _shape(rest[0], root)
                return kind, len(rest) < len(resolved), sub
            return None, False, node
    kind = node.get("type")
    if isinstance(kind, list):
        named = [k for k in kind if k != "null"]
        return (named[0] if len(named) == 1 and isinstance(named[0], str) else None), "null" in kind, node
    if isinstance(node.get("enum"), list) and kind is None:
        return "enum", None in node["enum"], node
    if kind is None and isinstance(node.get("properties"), dict):
        kind = "object"
    return (kind if isinstance(kind, str) else None), False, node


def _child(tree: Any, key: str | int) -> Any:
    if isinstance(key, int):
        return tree[key] if isinstance(tree, list) and key < len(tree) else None
    return tree.get(key) if isinstance(tree, dict) else None


def _attrs(form: _Form, key: str | None, kind: str, nullable: bool) -> str:
    out = f' data-kind="{kind}"'
    if form.absent:
        out += ' data-absent="1"'
        form.absent = False
    if key is not None:
        out += f' data-key="{html.escape(key)}"'
    return out + (' data-nullable="1"' if nullable else "")


def _node(
    form: _Form, schema: dict[str, Any], value: Any, likely: Any, key: str | None, label: str, path: str, depth: int
) -> str:
    form.nodes += 1
    kind, nullable, sub = _shape(schema, form.root)
    title = sub.get("title") if isinstance(sub.get("title"), str) else None
    label = title or label
    if form.nodes > MAX_NODES or depth > MAX_DEPTH:
        kind = None
    if kind == "object" and isinstance(value, dict):
        return _object(form, sub, value, likely, key, label, path, depth, nullable)
    if kind == "array" and isinstance(value, list):
        return _array(form, sub, value, likely, key, label, path, depth, nullable)
    if kind is not None and _fits(kind, sub, value):
        return _leaf(form, kind, sub, value, likely, key, label, path, nullable)
    return _json(form, value, likely, key, label, path, sub)


def _fits(kind: str, sub: dict[str, Any], value: Any) -> bool:
    """Whether a leaf control can show this value as it is (else it is shown as JSON)."""
    if value is None:
        return kind in ("string", "number", "integer", "boolean", "enum")
    if isinstance(sub.get("enum"), list) or kind == "enum":
        return isinstance(value, str | int | float | bool)
    if kind == "string":
        return isinstance(value, str)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    return False


def _legend(label: str, path: str, depth: int) -> str:
    return f'<legend><span class="name">{html.escape(label)}</span></legend>' if depth else ""


def _object(
    form: _Form,
    sub: dict[str, Any],
    value: dict[str, Any],
    likely: Any,
    key: str | None,
    label: str,
    path: str,
    depth: int,
    nullable: bool,
) -> str:
    properties = sub.get("properties") if isinstance(sub.get("properties"), dict) else {}
    assert isinstance(properties, dict)
    parts = [f'<fieldset class="f-obj"{_attrs(form, key, "object", nullable)}>{_legend(label, path, depth)}']
    shown: set[str] = set()
    for name, prop in properties.items():
        if form.nodes > MAX_NODES:
            break  # past the cap, the rest of the data is shown as JSON below (a schema may be huge)
        shown.add(name)
        form.absent = name not in value
        child = value.get(name)
        parts.append(_node(form, prop, child, _child(likely, name), name, name, _join(path, name), depth + 1))
    for name, child in value.items():
        if name not in shown:  # beyond the schema, or past the cap: kept, as JSON
            parts.append(_json(form, child, _child(likely, name), name, name, _join(path, name), {}))
    parts.append("</fieldset>")
    return "".join(parts)


def _array(
    form: _Form,
    sub: dict[str, Any],
    value: list[Any],
    likely: Any,
    key: str | None,
    label: str,
    path: str,
    depth: int,
    nullable: bool,
) -> str:
    items = sub.get("items") if isinstance(sub.get("items"), dict) else {}
    assert isinstance(items, dict)
    parts = [f'<fieldset class="f-arr"{_attrs(form, key, "array", nullable)}>{_legend(label, path, depth)}']
    parts.append('<ol class="f-items">')
    for index, item in enumerate(value):
        inner = _node(
            form, items, item, _child(likely, index), None, f"{label} {index + 1}", f"{path}[{index}]", depth + 1
        )
        parts.append(_item(inner))
    parts.append("</ol>")
    template = _node(
        form,
        items,
        _empty(form, items),
        None,
        None,
        f"new {label}",
        f"{path}[]",
        depth + 1,
    )
    parts.append(f"<template>{_item(template)}</template>")
    parts.append(f'<button type="button" class="f-add">Add to {html.escape(label)}</button></fieldset>')
    return "".join(parts)


def _item(inner: str) -> str:
    return f'<li class="f-item">{inner}<button type="button" class="f-remove">Remove</button></li>'


def _empty(form: _Form, schema: dict[str, Any], depth: int = 0) -> Any:
    """An empty value of a schema, for a new array item: objects with their properties empty, else null; within
    the form's budget, so `$ref`s that fan out cannot make it grow without bound."""
    form.empty_budget -= 1
    kind, _, sub = _shape(schema, form.root)
    if kind == "object" and depth < 4 and form.empty_budget > 0:
        properties = sub.get("properties") if isinstance(sub.get("properties"), dict) else {}
        assert isinstance(properties, dict)
        return {name: _empty(form, prop, depth + 1) for name, prop in list(properties.items())[: form.empty_budget]}
    if kind == "array":
        return []
    if kind == "string":
        return ""
    return None


def _leaf(
    form: _Form,
    kind: str,
    sub: dict[str, Any],
    value: Any,
    likely: Any,
    key: str | None,
    label: str,
    path: str,
    nullable: bool,
) -> str:
    ident = form.ident()
    enum = sub.get("enum")
    if kind == "boolean":
        enum = [True, False]
        kind = "enum"
    if isinstance(enum, list):
        kind = "enum"
        control = _select(ident, enum, value, _attrs(form, key, "enum", nullable), path)
    elif kind in ("number", "integer"):
        step = "1" if kind == "integer" else "any"
        shown = "" if value is None or isinstance(value, bool) else _number(value)
        control = (
            f'<input id="{ident}" type="number" step="{step}" value="{html.escape(shown)}"'
            f'{_attrs(form, key, kind, nullable)} data-path="{html.escape(path)}">'
        )
    else:
        text = "" if value is None else str(value)
        attrs = f'id="{ident}"{_attrs(form, key, "string", nullable)} data-path="{html.escape(path)}"'
        if len(text) > LONG_TEXT or "\n" in text:
            control = f'<textarea {attrs} rows="3">{html.escape(text)}</textarea>'
        else:
            control = f'<input {attrs} type="text" value="{html.escape(text)}">'
    return _field(form, ident, label, sub, likely, path, control)


def _select(ident: str, enum: list[Any], value: Any, attrs: str, path: str) -> str:
    options = list(enum)
    if 'data-nullable="1"' in attrs and None not in options:
        options.insert(0, None)
    if value not in options:
        options.insert(0, value)  # the data's value is shown even when the schema does not list it
    rendered = []
    for option in options:
        encoded = html.escape(json.dumps(option))
        shown = "(empty)" if option is None else str(option).lower() if isinstance(option, bool) else str(option)
        selected = " selected" if option == value and type(option) is type(value) else ""
        rendered.append(f'<option value="{encoded}"{selected}>{html.escape(shown)}</option>')
    return f'<select id="{ident}"{attrs} data-path="{html.escape(path)}">{"".join(rendered)}</select>'


def _json(form: _Form, value: Any, likely: Any, key: str | None, label: str, path: str, sub: dict[str, Any]) -> str:
    ident = form.ident()
    text = json.dumps(value, indent=2, ensure_ascii=False)
    control = (
        f'<textarea id="{ident}" class="f-json" rows="{min(12, text.count(chr(10)) + 2)}"'
        f'{_attrs(form, key, "json", False)} data-path="{html.escape(path)}">{html.escape(text)}</textarea>'
    )
    return _field(form, ident, f"{label} (JSON)", sub, likely, path, control)


def _field(form: _Form, ident: str, label: str, sub: dict[str, Any], likely: Any, path: str, control: str) -> str:
    score = (
        likely if isinstance(likely, int | float) and not isinstance(likely, bool) and math.isfinite(likely) else None
    )
    low = score is not None and score < form.threshold
    if low:
        form.low.append(path)
    classes = "f-field low" if low else "f-field"
    badge = ""
    if score is not None:
        word = "low confidence" if low else "confidence"
        badge = f'<span class="f-score">{word} {score:.2f}</span>'
    description = sub.get("description")
    hint = f'<span class="f-hint">{html.escape(description)}</span>' if isinstance(description, str) else ""
    return f'<div class="{classes}"><label for="{ident}">{html.escape(label)}</label>{badge}{hint}{control}</div>'


def _number(value: int | float) -> str:
    return str(value) if isinstance(value, int) else repr(value)


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name
