"""Unit tests of docflow.fingerprints: stable under reordering and cosmetics, changed by any executable edit."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from docflow.fingerprints import (
    block_config_fingerprint,
    drifted_blocks,
    execution_fingerprint,
    handle_inputs_fingerprint,
    upstream_blocks,
    upstream_fingerprint,
    workflow_draft_fingerprint,
)
from docflow.ids import canonical_json
from docflow.models import Block, Edge, FileRef, Graph
from docflow.runs import HandleValue

T0 = datetime(2026, 1, 1, tzinfo=UTC)
T1 = datetime(2026, 6, 1, tzinfo=UTC)

SCHEMA = {"type": "object", "properties": {"total": {"type": "number"}, "vendor": {"type": "string"}}}
CONFIGS: dict[str, dict[str, Any]] = {
    "start_document": {},
    "start_json": {},
    "note": {"text": "hello"},
    "parse": {},
    "extract": {"json_schema": SCHEMA, "instructions": "Read the invoice.", "n_consensus": 1},
    "function": {"expression": "total * 2"},
    "api_call": {"url": "https://example.com/hook"},
    "merge_dicts": {},
    "for_each": {},
}


def blk(block_id: str, type_: str, config: dict[str, Any] | None = None, **kw: Any) -> Block:
    return Block(
        id=block_id,
        workflow_id="wf_1",
        type=type_,
        config=CONFIGS.get(type_, {}) if config is None else config,
        updated_at=T0,
        **kw,
    )


def edge(edge_id: str, source: str, target: str, sh: str | None, th: str | None) -> Edge:
    return Edge(
        id=edge_id,
        workflow_id="wf_1",
        source_block=source,
        target_block=target,
        source_handle=sh,
        target_handle=th,
        updated_at=T0,
    )


def graph() -> Graph:
    """start -> ext -> fn -> hook, with a sibling branch start -> prs and a note on the canvas."""
    return Graph(
        blocks=[
            blk("start", "start_document"),
            blk("ext", "extract"),
            blk("fn", "function"),
            blk("hook", "api_call"),
            blk("prs", "parse"),
            blk("memo", "note"),
        ],
        edges=[
            edge("e1", "start", "ext", "output-file-0", "input-file-document"),
            edge("e2", "ext", "fn", "output-json-0", "input-json-0"),
            edge("e3", "fn", "hook", "output-json-0", "input-json-0"),
            edge("e4", "start", "prs", "output-file-0", "input-file-0"),
        ],
    )


def reordered(value: Any) -> Any:
    """The same JSON value with every dict's keys in reverse insertion order."""
    if isinstance(value, dict):
        return {k: reordered(value[k]) for k in reversed(list(value))}
    if isinstance(value, list):
        return [reordered(v) for v in value]
    return value


def with_block(g: Graph, block_id: str, **update: Any) -> Graph:
    """A copy of the graph with one block's fields replaced."""
    blocks = [b.model_copy(update=update, deep=True) if b.id == block_id else b for b in g.blocks]
    return Graph(blocks=blocks, edges=list(g.edges))


def with_config(g: Graph, block_id: str, **changes: Any) -> Graph:
    block = g.block(block_id)
    assert block is not None
    return with_block(g, block_id, config={**block.config, **changes})


def recreated(g: Graph) -> Graph:
    """The same graph as an editor might store it again: new edge ids, shuffled lists, keys reordered."""
    rng = random.Random(7)
    blocks = [b.model_copy(update={"config": reordered(b.config), "updated_at": T1}) for b in g.blocks]
    edges = [e.model_copy(update={"id": f"edge_new_{i}", "updated_at": T1}) for i, e in enumerate(g.edges)]
    rng.shuffle(blocks)
    rng.shuffle(edges)
    return Graph(blocks=blocks, edges=edges)


def is_sha256_hex(value: str) -> bool:
    return len(value) == 64 and all(c in "0123456789abcdef" for c in value)


# --- block config -----------------------------------------------------------------------------------------


def test_block_config_fingerprint_is_sha256_of_canonical_type_and_config() -> None:
    block = blk("ext", "extract")
    expected = hashlib.sha256(canonical_json({"type": "extract", "config": CONFIGS["extract"]})).hexdigest()
    assert block_config_fingerprint(block) == expected


def test_block_config_fingerprint_ignores_key_order_and_cosmetics() -> None:
    block = blk("ext", "extract")
    same = block.model_copy(
        update={
            "id": "ext_copy",
            "label": "Invoice fields",
            "position_x": 420.5,
            "position_y": -80,
            "width": 300,
            "height": 120,
            "parent_id": None,
            "updated_at": T1,
            "config": reordered(block.config),
        }
    )
    assert block_config_fingerprint(same) == block_config_fingerprint(block)


@pytest.mark.parametrize(
    "change",
    [
        {"instructions": "Read the receipt."},
        {"n_consensus": 3},
        {"model": "retab-large"},
        {"json_schema": {**SCHEMA, "required": ["total"]}},
        {"json_schema": {"type": "object", "properties": {"total": {"type": "number", "description": "VAT incl."}}}},
        {"temperature": 0.2},
    ],
)
def test_any_config_change_changes_the_block_config_fingerprint(change: dict[str, Any]) -> None:
    block = blk("ext", "extract")
    changed = block.model_copy(update={"config": {**block.config, **change}})
    assert block_config_fingerprint(changed) != block_config_fingerprint(block)


def test_block_type_is_part_of_the_block_config_fingerprint() -> None:
    assert block_config_fingerprint(blk("b", "parse", {})) != block_config_fingerprint(blk("b", "start_json", {}))


def test_integral_float_and_int_are_the_same_json_number() -> None:
    assert block_config_fingerprint(blk("e", "extract", {"temperature": 1.0})) == block_config_fingerprint(
        blk("e", "extract", {"temperature": 1})
    )
    assert block_config_fingerprint(blk("e", "extract", {"flag": True})) != block_config_fingerprint(
        blk("e", "extract", {"flag": 1})
    )


# --- handle inputs ----------------------------------------------------------------------------------------

DOC = FileRef(id="file_" + "a" * 32, filename="invoice.pdf", mime_type="application/pdf")


def inputs(**overrides: HandleValue) -> dict[str, HandleValue]:
    values = {
        "input-file-document": HandleValue(type="file", document=DOC),
        "input-json-0": HandleValue(type="json", data={"total": 120, "lines": [{"sku": "A", "qty": 2}]}),
    }
    return {**values, **overrides}


def test_handle_inputs_fingerprint_is_stable_under_key_order() -> None:
    given = inputs()
    swapped = {k: given[k] for k in reversed(list(given))}
    swapped["input-json-0"] = HandleValue(type="json", data=reordered(given["input-json-0"].data))
    assert handle_inputs_fingerprint(swapped) == handle_inputs_fingerprint(given)
    assert is_sha256_hex(handle_inputs_fingerprint(given))


@pytest.mark.parametrize(
    "changed",
    [
        {"input-file-document": HandleValue(type="file", document=DOC.model_copy(update={"id": "file_" + "b" * 32}))},
        {"input-file-document": HandleValue(type="file", document=DOC.model_copy(update={"filename": "other.pdf"}))},
        {"input-file-document": HandleValue(type="file", document=DOC.model_copy(update={"mime_type": "image/png"}))},
        {"input-json-0": HandleValue(type="json", data={"total": 121, "lines": [{"sku": "A", "qty": 2}]})},
        {"input-json-0": HandleValue(type="json", data={"total": 120, "lines": []})},
        {"input-json-1": HandleValue(type="json", data=None)},
    ],
)
def test_any_input_change_changes_the_handle_inputs_fingerprint(changed: dict[str, HandleValue]) -> None:
    assert handle_inputs_fingerprint(inputs(**changed)) != handle_inputs_fingerprint(inputs())


def test_a_claim_check_must_be_loaded_before_fingerprinting() -> None:
    with pytest.raises(ValueError, match="input-json-0"):
        handle_inputs_fingerprint({"input-json-0": HandleValue(type="json", data_ref="runs/r/outputs/x.json")})


def test_a_loaded_claim_check_fingerprints_as_inline_data() -> None:
    loaded = HandleValue(type="json", data={"total": 120.0, "lines": [{"sku": "A", "qty": 2}]})
    assert handle_inputs_fingerprint(inputs(**{"input-json-0": loaded})) == handle_inputs_fingerprint(inputs())


# --- upstream ---------------------------------------------------------------------------------------------


def test_upstream_blocks_are_the_ancestors_only() -> None:
    g = graph()
    assert upstream_blocks(g, "fn") == ["ext", "start"]
    assert upstream_blocks(g, "hook") == ["ext", "fn", "start"]
    assert upstream_blocks(g, "prs") == ["start"]
    assert upstream_blocks(g, "start") == []


def test_upstream_blocks_of_an_absent_block_is_an_error() -> None:
    with pytest.raises(ValueError, match="'gone'"):
        upstream_blocks(graph(), "gone")


def test_a_loop_container_and_its_ancestors_are_upstream_of_its_body() -> None:
    g = graph()
    g.blocks += [blk("loop", "for_each"), blk("inner", "function", parent_id="loop")]
    g.edges += [
        edge("e5", "ext", "loop", "output-json-0", None),
        edge("e6", "loop", "inner", None, "input-json-0"),
        edge("e7", "inner", "loop", "output-json-0", None),
    ]
    assert upstream_blocks(g, "inner") == ["ext", "loop", "start"]
    g.edges = [e for e in g.edges if e.id != "e6"]  # the body is still inside the loop
    assert upstream_blocks(g, "inner") == ["ext", "loop", "start"]


def test_upstream_fingerprint_is_stable_when_the_graph_is_recreated_identically() -> None:
    g = graph()
    assert upstream_fingerprint(recreated(g), "hook") == upstream_fingerprint(g, "hook")
    assert is_sha256_hex(upstream_fingerprint(g, "hook"))


def test_a_none_handle_fingerprints_as_the_one_handle_it_means() -> None:
    g = graph()
    implicit = Graph(
        blocks=g.blocks, edges=[e.model_copy(update={"source_handle": None, "target_handle": None}) for e in g.edges]
    )
    assert upstream_fingerprint(implicit, "hook") == upstream_fingerprint(g, "hook")


def test_cosmetic_changes_upstream_keep_the_fingerprint() -> None:
    g = graph()
    moved = with_block(g, "ext", label="Renamed", position_x=999, position_y=12.5, width=10, height=20)
    moved = with_config(moved, "memo", text="a different note")
    assert upstream_fingerprint(moved, "fn") == upstream_fingerprint(g, "fn")
    assert drifted_blocks(g, moved, "fn") == []


# Each edit of the standard graph, and the blocks `drifted_blocks(…, "fn")` must name for it.
EDITS: dict[str, tuple[Callable[[Graph], Graph], list[str]]] = {
    "ancestor config": (lambda g: with_config(g, "ext", instructions="Other."), ["ext"]),
    "ancestor type": (lambda g: with_block(g, "ext", type="parse", config={}), ["ext"]),
    "root ancestor config": (lambda g: with_config(g, "start", accept=["application/pdf"]), ["start"]),
    "own config": (lambda g: with_config(g, "fn", expression="total * 3"), []),
    "own label": (lambda g: with_block(g, "fn", label="Double"), []),
    "sibling config": (lambda g: with_config(g, "prs", model="retab-large"), []),
    "descendant config": (lambda g: with_config(g, "hook", url="https://example.com/other"), []),
    "descendant edge": (lambda g: Graph(blocks=g.blocks, edges=[e for e in g.edges if e.id != "e3"]), []),
    "edge ids": (lambda g: recreated(g), []),
    "block added upstream": (
        lambda g: Graph(
            blocks=[*g.blocks, blk("pre", "parse")],
            edges=[
                *[e for e in g.edges if e.id != "e1"],
                edge("e8", "start", "pre", "output-file-0", "input-file-0"),
                edge("e9", "pre", "ext", "output-json-0", "input-json-ctx"),
                edge("e10", "start", "ext", "output-file-0", "input-file-document"),
            ],
        ),
        ["ext", "pre", "start"],
    ),
    "ancestor removed": (
        lambda g: Graph(
            blocks=[b for b in g.blocks if b.id != "start"], edges=[e for e in g.edges if e.source_block != "start"]
        ),
        ["ext", "start"],
    ),
    "input rewired to a sibling": (
        lambda g: Graph(
            blocks=g.blocks,
            edges=[e for e in g.edges if e.id != "e2"] + [edge("e2", "prs", "fn", "output-json-0", "input-json-0")],
        ),
        ["ext", "fn", "prs", "start"],
    ),
    "upstream handle changed": (
        lambda g: Graph(
            blocks=g.blocks,
            edges=[e.model_copy(update={"target_handle": "input-file-other"}) if e.id == "e1" else e for e in g.edges],
        ),
        ["ext", "start"],
    ),
    "block moved into a loop": (
        lambda g: with_block(Graph(blocks=[*g.blocks, blk("loop", "for_each")], edges=g.edges), "fn", parent_id="loop"),
        ["fn", "loop"],
    ),
}


@pytest.mark.parametrize("name", list(EDITS))
def test_drifted_blocks_names_exactly_the_changed_upstream(name: str) -> None:
    edit, expected = EDITS[name]
    source = graph()
    draft = edit(graph())
    assert drifted_blocks(source, draft, "fn") == expected
    assert drifted_blocks(draft, source, "fn") == expected  # symmetric: added one way is removed the other
    # Eligibility and the 409's names agree: the fingerprint changes exactly when a block is named.
    assert (upstream_fingerprint(draft, "fn") != upstream_fingerprint(source, "fn")) == bool(expected)


def test_a_block_moved_into_a_loop_already_upstream_is_drift() -> None:
    source = graph()
    source.blocks.append(blk("loop", "for_each"))
    source.edges = [e for e in source.edges if e.id != "e2"] + [
        edge("e5", "ext", "loop", "output-json-0", None),
        edge("e6", "loop", "fn", None, "input-json-0"),
    ]
    draft = with_block(source, "fn", parent_id="loop")
    assert upstream_blocks(source, "fn") == upstream_blocks(draft, "fn") == ["ext", "loop", "start"]
    assert drifted_blocks(source, draft, "fn") == ["fn"]
    assert upstream_fingerprint(draft, "fn") != upstream_fingerprint(source, "fn")


def test_a_number_becoming_a_boolean_upstream_is_drift() -> None:
    source = with_config(graph(), "ext", temperature=1)
    draft = with_config(graph(), "ext", temperature=True)
    assert drifted_blocks(source, draft, "fn") == ["ext"]
    assert upstream_fingerprint(draft, "fn") != upstream_fingerprint(source, "fn")


def test_drifted_blocks_needs_the_block_in_both_graphs() -> None:
    g = graph()
    without = Graph(
        blocks=[b for b in g.blocks if b.id != "fn"],
        edges=[e for e in g.edges if "fn" not in (e.source_block, e.target_block)],
    )
    with pytest.raises(ValueError, match="'fn'"):
        drifted_blocks(g, without, "fn")


# --- whole draft, execution -------------------------------------------------------------------------------


def test_workflow_draft_fingerprint_ignores_ids_of_edges_order_and_cosmetics() -> None:
    g = graph()
    cosmetic = with_config(with_block(recreated(g), "hook", label="Notify", position_x=5), "memo", text="todo")
    assert workflow_draft_fingerprint(cosmetic) == workflow_draft_fingerprint(g)
    assert is_sha256_hex(workflow_draft_fingerprint(g))


@pytest.mark.parametrize("name", [n for n in EDITS if n != "edge ids"])
def test_any_executable_edit_changes_the_workflow_draft_fingerprint(name: str) -> None:
    edit, _ = EDITS[name]
    if name == "own label":
        assert workflow_draft_fingerprint(edit(graph())) == workflow_draft_fingerprint(graph())
    else:
        assert workflow_draft_fingerprint(edit(graph())) != workflow_draft_fingerprint(graph())


def test_execution_fingerprint_changes_with_each_part() -> None:
    parts = ("a" * 64, "b" * 64, "c" * 64)
    base = execution_fingerprint(*parts, None)
    assert execution_fingerprint(*parts, None) == base
    assert is_sha256_hex(base)
    others = {
        execution_fingerprint("d" * 64, parts[1], parts[2], None),
        execution_fingerprint(parts[0], "d" * 64, parts[2], None),
        execution_fingerprint(parts[0], parts[1], "d" * 64, None),
        execution_fingerprint(*parts, 3),
        execution_fingerprint(*parts, 5),
    }
    assert base not in others
    assert len(others) == 5


def test_an_identical_rerun_has_the_same_execution_fingerprint() -> None:
    def fp(g: Graph, given: dict[str, HandleValue]) -> str:
        block = g.block("fn")
        assert block is not None
        return execution_fingerprint(
            handle_inputs_fingerprint(given), block_config_fingerprint(block), upstream_fingerprint(g, "fn"), None
        )

    first = fp(graph(), inputs())
    assert fp(recreated(graph()), inputs()) == first
    assert fp(with_config(graph(), "hook", url="https://example.com/elsewhere"), inputs()) == first
    assert fp(with_config(graph(), "fn", expression="total"), inputs()) != first
    assert fp(with_config(graph(), "ext", instructions="Other."), inputs()) != first
    assert fp(graph(), inputs(**{"input-json-0": HandleValue(type="json", data={})})) != first
