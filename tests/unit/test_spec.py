"""The YAML spec (docflow.spec; the CLI's and the API's), pure:
parsing refuses what is not a plain JSON document, plans say what changes, an
export parses back to the same graph (so export-then-apply plans no change)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from devstack.cli_client import failure
from devstack.cli_view import leaf_blocks, outputs_of
from docflow.spec import SpecError, parse_spec, plan, render, summary
from docflow.spec_export import dump_yaml, export_document

HEAD = "apiVersion: workflows.retab.com/v1alpha2\nkind: Workflow\nmetadata: {name: W}\n"


def _spec(body: str) -> str:
    return HEAD + "spec:\n" + body


def _block(block_id: str, type_: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": block_id,
        "workflow_id": "wf_1",
        "type": type_,
        "label": extra.get("label", ""),
        "position_x": 0.0,
        "position_y": 0.0,
        "width": None,
        "height": None,
        "config": extra.get("config", {}),
        "parent_id": extra.get("parent_id"),
        "updated_at": "2026-11-26T00:00:00Z",
    }


def _edge(source: str, target: str, edge_id: str = "edge_1") -> dict[str, Any]:
    return {
        "id": edge_id,
        "source_block": source,
        "target_block": target,
        "source_handle": "output-json-0",
        "target_handle": "input-json-0",
    }


GRAPH = {
    "blocks": [
        _block("in", "start_json"),
        _block("fn", "function", label="Double", config={"expression": "input * 2", "code": "a\nb\n"}),
        _block("loop", "for_each", config={"map_method": "iterate_array"}),
        _block("inner", "function", parent_id="loop", config={"expression": "input"}),
    ],
    "edges": [_edge("in", "fn"), _edge("fn", "loop", "edge_2")],
}
WORKFLOW = {"id": "wf_1", "name": "W", "description": "d"}


def test_an_export_parses_back_to_the_same_graph_and_plans_no_change() -> None:
    text = dump_yaml(export_document(WORKFLOW, GRAPH))
    assert "code: |" in text  # multi-line strings as literal blocks, readable in review
    assert "    loop:\n" in text and "      children:\n        inner:" in text  # a container's blocks nest
    spec = parse_spec(text, "export.yaml")
    assert spec.workflow_id == "wf_1" and spec.name == "W" and spec.description == "d"
    assert spec.blocks["inner"]["parent_id"] == "loop"
    assert plan(spec, WORKFLOW, GRAPH) == []
    assert render([], "wf_1") == "No changes. Workflow wf_1 is up to date."


def test_a_plan_names_each_change_and_a_new_type_is_a_replace() -> None:
    text = dump_yaml(export_document(WORKFLOW, GRAPH))
    text = text.replace("input * 2", "input * 3").replace("type: start_json", "type: start_document")
    text = text.replace("  description: d\n", "")
    spec = parse_spec(text, "w.yaml")
    del spec.blocks["inner"]
    spec.blocks["new"] = {**spec.blocks["fn"], "label": "New"}
    spec.edges = [e for e in spec.edges if e[2] != "loop"]
    changes = {(c.address, c.action, tuple(c.fields)) for c in plan(spec, WORKFLOW, GRAPH)}
    assert changes == {
        ("workflow.wf_1", "update", ("description",)),
        ("block.in", "replace", ("type",)),
        ("block.fn", "update", ("config.expression",)),
        ("block.new", "create", ()),
        ("block.inner", "delete", ()),
        ("edge.in:output-json-0→fn:input-json-0", "replace", ()),  # its source block is replaced
        ("edge.fn:output-json-0→loop:input-json-0", "delete", ()),
    }
    counted = summary(plan(spec, WORKFLOW, GRAPH))
    assert (counted["add"], counted["change"], counted["destroy"], counted["replace"]) == (1, 2, 2, 2)
    assert "Plan: 1 to add, 2 to change, 2 to destroy, 2 to replace." in render(plan(spec, WORKFLOW, GRAPH), "wf_1")


def test_a_new_workflow_plans_every_resource() -> None:
    spec = parse_spec(dump_yaml(export_document(WORKFLOW, GRAPH)), "w.yaml")
    actions = [(c.target, c.action) for c in plan(spec, None, {"blocks": [], "edges": []})]
    assert actions.count(("block", "create")) == 4 and actions.count(("edge", "create")) == 2
    assert actions[0] == ("workflow", "create")


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("spec:\n  blocks: [unclosed\n", "not valid YAML"),
        ("!!python/object/apply:os.system ['true']\n", "not valid YAML"),  # safe_load builds no objects
        ("apiVersion: other/v1\n", "apiVersion must be workflows.retab.com/v1alpha2"),
        (_spec("  blocks:\n    a: {label: x}\n"), "spec.blocks.a.type: required"),
        (
            _spec("  blocks:\n    a: {type: note, config: {when: 2026-01-01}}\n"),
            "spec.blocks.a.config.when: a YAML date",
        ),
        (_spec("  blocks:\n    a: {type: note, config: {1: x}}\n"), "key 1 is not a string"),
        (_spec("  blocks:\n    a: {type: note, position: {x: high}}\n"), "spec.blocks.a.position.x: must be a number"),
        (_spec("  blocks:\n    a: {type: note}\n  edges:\n    - {from: {block: a}, to: {block: b}}\n"), "to.block"),
        (
            _spec(
                "  blocks: {a: {type: note}}\n"
                "  edges: [{from: {block: a}, to: {block: a}}, {from: {block: a}, to: {block: a}}]\n"
            ),
            "the same edge twice",
        ),
        (_spec("  blocks:\n    a: {type: for_each, children: {a: {type: note}}}\n"), "block id used twice"),
        (_spec("  blocks: &b\n    a: {type: note, config: *b}\n"), "refers to itself"),
        ("a: " + "[" * 5000 + "]" * 5000 + "\n", "nested more than 64 levels deep"),  # past PyYAML's recursion
        ("a: " + "{b: " * 70 + "1" + "}" * 70 + "\n", "nested more than 64 levels deep"),
    ],
)
def test_a_bad_spec_is_one_error_naming_the_place(text: str, names: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec(text, "w.yaml")
    assert names in str(caught.value)
    assert "\n" not in str(caught.value)


def test_an_alias_bomb_is_refused_by_its_expanded_size() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    with pytest.raises(SpecError, match="more than 200000 values"):
        parse_spec("\n".join(lines) + "\n", "bomb.yaml")


def test_api_errors_become_one_line_with_code_and_status() -> None:
    request = httpx.Request("GET", "http://127.0.0.1/v1/workflows/x")
    body = {"detail": {"code": "not_found", "message": "no workflow 'x'\nat all", "details": {}}}
    assert (
        str(failure(httpx.Response(404, json=body, request=request))) == "no workflow 'x' at all (not_found, HTTP 404)"
    )
    assert str(failure(httpx.Response(502, text="bad gateway", request=request))) == "bad gateway (error, HTTP 502)"


def test_outputs_are_the_completed_leaf_blocks() -> None:
    steps = [
        {
            "block_id": b,
            "step_id": b,
            "lifecycle": {"status": s},
            "handle_outputs": {"output-json-0": {"type": "json", "data": b}},
        }
        for b, s in (("in", "completed"), ("fn", "completed"), ("inner", "completed"), ("loop", "error"))
    ]
    graph = {"blocks": GRAPH["blocks"] + [_block("note", "note")], "edges": GRAPH["edges"]}
    assert leaf_blocks(graph) == {"loop", "inner"}
    assert outputs_of(steps, leaf_blocks(graph)) == {"inner": {"output-json-0": "inner"}}
