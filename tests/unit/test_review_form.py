"""The review form generated from a block's JSON Schema (api.review_form).

The form is read back here the way review.js reads it (elements with `data-kind`, keyed by `data-key`, templates
skipped), so a round trip shows every value is on the page, in the place and type the schema gives it.
"""

from __future__ import annotations

import json
import time
from html.parser import HTMLParser
from typing import Any

from api.review_form import form_schema, low_fields, render_form

VOID = {"input", "br", "img", "meta", "link"}


class Node:
    def __init__(self, tag: str, attrs: dict[str, str], parent: Node | None) -> None:
        self.tag, self.attrs, self.parent = tag, attrs, parent
        self.children: list[Node] = []
        self.text = ""


class Tree(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.root = Node("root", {}, None)
        self.at = self.root

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs}, self.at)
        self.at.children.append(node)
        if tag not in VOID:
            self.at = node

    def handle_endtag(self, tag: str) -> None:
        node: Node | None = self.at
        while node is not None and node.tag != tag:
            node = node.parent
        if node is not None and node.parent is not None:
            self.at = node.parent

    def handle_data(self, data: str) -> None:
        self.at.text += data


def parse(markup: str) -> Node:
    tree = Tree()
    tree.feed(markup)
    return tree.root


def kinds_under(node: Node) -> list[Node]:
    """The value elements directly under `node`, templates skipped (review.js's `children`)."""
    found: list[Node] = []
    for child in node.children:
        if child.tag == "template":
            continue
        if "data-kind" in child.attrs:
            found.append(child)
        else:
            found.extend(kinds_under(child))
    return found


def selected(node: Node) -> str:
    options = [c for c in node.children if c.tag == "option"]
    return next((o for o in options if "selected" in o.attrs), options[0]).attrs["value"]


def read(node: Node) -> Any:
    kind = node.attrs["data-kind"]
    if kind == "object":
        out = {}
        for c in kinds_under(node):
            value = read(c)
            if c.attrs.get("data-absent") == "1" and value in (None, ""):
                continue  # as review.js: a key the data did not have stays out unless filled
            out[c.attrs["data-key"]] = value
        return out
    if kind == "array":
        return [read(c) for c in kinds_under(node)]
    if kind == "enum":
        return json.loads(selected(node))
    if kind == "json":
        return json.loads(node.text)
    value = node.text if node.tag == "textarea" else node.attrs.get("value", "")
    if kind in ("number", "integer"):
        return None if value == "" else (int(value) if kind == "integer" else float(value))
    if value == "" and node.attrs.get("data-nullable") == "1":
        return None
    return value


def round_trip(schema: dict[str, Any], data: Any) -> Any:
    [root] = kinds_under(parse(render_form(schema, data, None, 0.8)))
    return read(root)


INVOICE = {
    "type": "object",
    "properties": {
        "number": {"type": "string", "description": "Invoice number"},
        "total": {"type": "number"},
        "count": {"type": "integer"},
        "paid": {"type": "boolean"},
        "currency": {"type": "string", "enum": ["EUR", "USD"]},
        "note": {"type": ["string", "null"]},
        "vendor": {
            "type": "object",
            "properties": {"name": {"type": "string"}, "address": {"$ref": "#/$defs/address"}},
        },
        "lines": {"type": "array", "items": {"$ref": "#/$defs/line"}},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
    "$defs": {
        "address": {"anyOf": [{"type": "object", "properties": {"city": {"type": "string"}}}, {"type": "null"}]},
        "line": {
            "type": "object",
            "properties": {"sku": {"type": "string"}, "qty": {"type": "integer"}, "price": {"type": "number"}},
        },
    },
}
DATA = {
    "number": "INV-1",
    "total": 12.5,
    "count": 3,
    "paid": False,
    "currency": "USD",
    "note": None,
    "vendor": {"name": "Acme", "address": {"city": "Lyon"}},
    "lines": [{"sku": "A", "qty": 2, "price": 1.25}, {"sku": "B", "qty": 1, "price": 10.0}],
    "tags": ["x", "y"],
}


def test_every_value_of_a_nested_document_round_trips_through_the_form() -> None:
    assert round_trip(INVOICE, DATA) == DATA


def test_controls_follow_the_schema_types() -> None:
    page = render_form(INVOICE, DATA, None, 0.8)
    assert 'type="number" step="any"' in page and 'type="number" step="1"' in page
    assert '<option value="&quot;USD&quot;" selected>USD</option>' in page
    assert '<option value="false" selected>false</option>' in page
    assert "Invoice number" in page  # descriptions are shown as hints
    # Arrays of objects and of strings can grow: an empty item's template and an add button for each.
    assert page.count("<template>") == 2 and page.count('class="f-add"') == 2
    assert page.count('class="f-remove"') == 4 + 2  # each item, and one in each template


def test_an_array_item_template_is_an_empty_item_of_the_items_schema() -> None:
    tree = parse(render_form(INVOICE, DATA, None, 0.8))

    def templates(node: Node) -> list[Node]:
        found = [c for c in node.children if c.tag == "template"]
        for c in node.children:
            found.extend(templates(c))
        return found

    lines_template = templates(tree)[0]
    [item] = [c for c in lines_template.children if c.tag == "li"]
    [value] = kinds_under(item)
    assert read(value) == {"sku": "", "qty": None, "price": None}


def test_fields_under_the_threshold_are_marked_low_with_their_likelihood_written() -> None:
    likelihoods = {
        "number": 1.0,
        "total": 0.4,
        "vendor": {"name": 0.95, "address": {"city": 0.5}},
        "lines": [{"sku": 1.0, "qty": 0.6, "price": 1.0}, {"sku": 1.0, "qty": 1.0, "price": 1.0}],
    }
    page = render_form(INVOICE, DATA, likelihoods, 0.8)
    assert page.count('class="f-field low"') == 3
    assert "low confidence 0.40" in page and "low confidence 0.60" in page and "confidence 0.95" in page
    assert low_fields(INVOICE, DATA, likelihoods, 0.8) == ["total", "vendor.address.city", "lines[0].qty"]
    assert low_fields(INVOICE, DATA, likelihoods, 0.3) == []
    assert low_fields(INVOICE, DATA, None, 0.8) == []


def test_hostile_text_in_schema_and_data_is_escaped() -> None:
    schema = {
        "type": "object",
        "properties": {'"><script>alert(1)</script>': {"type": "string", "description": "<img src=x onerror=y>"}},
    }
    data = {'"><script>alert(1)</script>': "</textarea><script>alert(2)</script>", "extra<b>": {"<i>": 1}}
    page = render_form(schema, data, None, 0.8)
    assert "<script>" not in page and "<img" not in page and "<b>" not in page
    assert round_trip(schema, data) == data  # keys beyond the schema are kept, as JSON


def test_what_the_form_cannot_show_as_fields_is_kept_as_json() -> None:
    schema = {
        "type": "object",
        "properties": {
            "union": {"anyOf": [{"type": "string"}, {"type": "number"}]},
            "untyped": {},
            "gone": {"type": "object", "properties": {"a": {"type": "string"}}},
            "mismatch": {"type": "number"},
        },
    }
    data = {"union": 3, "untyped": {"any": [1, 2]}, "gone": None, "mismatch": "not a number"}
    page = render_form(schema, data, None, 0.8)
    assert page.count('data-kind="json"') == 4
    assert round_trip(schema, data) == data


def test_a_schema_without_properties_and_a_very_deep_document_still_render() -> None:
    assert round_trip({}, {"a": 1}) == {"a": 1}
    deep: dict[str, Any] = {"type": "object", "properties": {}}
    value: dict[str, Any] = {}
    node, leaf_value = deep, value
    for _ in range(40):
        child: dict[str, Any] = {"type": "object", "properties": {}}
        node["properties"]["k"] = child
        leaf_value["k"] = {}
        node, leaf_value = child, leaf_value["k"]
    assert round_trip(deep, value) == value  # past the depth cap the rest is one JSON field


def test_a_ref_cycle_does_not_loop() -> None:
    schema = {"$ref": "#/$defs/a", "$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"$ref": "#/$defs/a"}}}
    assert round_trip(schema, {"x": 1}) == {"x": 1}


def test_classifier_and_split_reviews_get_forms_of_their_snapshot_shapes() -> None:
    classifier = form_schema("classifier", None, ["Invoice", "Receipt"], None)
    page = render_form(classifier, {"category": "Invoice"}, 0.55, 0.8)
    assert '<option value="&quot;Receipt&quot;">Receipt</option>' in page
    assert round_trip(classifier or {}, {"category": "Invoice"}) == {"category": "Invoice"}
    split = form_schema("split", None, None, ["invoice", "annex"])
    snapshot = {"documents": [{"name": "invoice", "pages": [1, 2]}, {"name": "annex", "pages": [3]}]}
    assert round_trip(split or {}, snapshot) == snapshot
    assert form_schema("extract", INVOICE, None, None) is INVOICE and form_schema("for_each", None, None, None) is None


def test_a_property_the_data_lacks_is_offered_but_not_added_empty() -> None:
    data = {"number": "INV-1", "vendor": {"name": "Acme"}}
    page = render_form(INVOICE, data, None, 0.8)
    assert page.count('data-absent="1"') == 8  # total, count, paid, currency, note, lines, tags; vendor.address
    assert round_trip(INVOICE, data) == data


def test_a_schema_that_fans_out_through_refs_renders_within_the_caps() -> None:
    # Ten properties per level, each a $ref to the next level, twelve levels deep: 10**12 fields if expanded.
    defs = {
        f"l{i}": {"type": "object", "properties": {f"p{k}": {"$ref": f"#/$defs/l{i + 1}"} for k in range(10)}}
        for i in range(12)
    }
    defs["l12"] = {"type": "array", "items": {"$ref": "#/$defs/l0"}}
    schema = {"$ref": "#/$defs/l0", "$defs": defs}
    data: dict[str, Any] = {f"p{k}": {f"p{j}": {} for j in range(10)} for k in range(10)}
    page = render_form(schema, data, None, 0.8)
    assert len(page) < 5_000_000
    assert round_trip(schema, data) == data
    # The same fan-out as the items of an empty array: its new-item template is built within the caps too.
    listed = {"type": "object", "properties": {"list": {"type": "array", "items": {"$ref": "#/$defs/l0"}}}}
    started = time.monotonic()
    page = render_form({**listed, "$defs": defs}, {"list": []}, None, 0.8)
    assert len(page) < 5_000_000 and time.monotonic() - started < 5
    assert round_trip({**listed, "$defs": defs}, {"list": []}) == {"list": []}
