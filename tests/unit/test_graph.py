"""Unit tests of docflow.graph: validation, handle resolution, version ids, ordering and readiness."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

import pytest

from docflow.graph import (
    GraphIssue,
    resolve_edge_handles,
    topological_order,
    validate_block,
    validate_graph,
    version_id,
)
from docflow.models import Block, Edge, Graph
from docflow.readiness import edge_state, next_actions

T0 = datetime(2026, 1, 1, tzinfo=UTC)
T1 = datetime(2026, 6, 1, tzinfo=UTC)

SCHEMA = {"type": "object", "properties": {"total": {"type": "number"}}}
CONFIGS: dict[str, dict[str, Any]] = {
    "start_document": {},
    "start_json": {},
    "note": {"text": "hello"},
    "parse": {},
    "extract": {"json_schema": SCHEMA},
    "conditional": {
        "conditions": [
            {"id": "high", "sub_conditions": [{"path": "total", "operator": "gt", "expected": 100}]},
            {"id": "low", "sub_conditions": [{"path": "total", "operator": "lte", "expected": 100}]},
        ]
    },
    "function": {"expression": "total * 2"},
    "api_call": {"url": "https://example.com/hook"},
    "merge_dicts": {},
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


def edge(edge_id: str, source: str, target: str, sh: str | None = None, th: str | None = None) -> Edge:
    return Edge(
        id=edge_id,
        workflow_id="wf_1",
        source_block=source,
        target_block=target,
        source_handle=sh,
        target_handle=th,
        updated_at=T0,
    )


def codes(issues: list[GraphIssue]) -> list[str]:
    return [i.code for i in issues]


def linear() -> Graph:
    """start_document -> extract -> function, fully wired."""
    return Graph(
        blocks=[blk("start", "start_document"), blk("ext", "extract"), blk("fn", "function")],
        edges=[
            edge("e1", "start", "ext", "output-file-0", "input-file-document"),
            edge("e2", "ext", "fn", "output-json-0", "input-json-0"),
        ],
    )


def routed() -> Graph:
    """start_json -> route (conditional) -> hi / lo functions -> merge (merge_dicts), plus a tail after hi."""
    return Graph(
        blocks=[
            blk("start", "start_json"),
            blk("route", "conditional"),
            blk("hi", "function"),
            blk("lo", "function"),
            blk("tail", "api_call"),
            blk("merge", "merge_dicts"),
        ],
        edges=[
            edge("e1", "start", "route", "output-json-0", "input-json-0"),
            edge("e2", "route", "hi", "output-json-high", "input-json-0"),
            edge("e3", "route", "lo", "output-json-low", "input-json-0"),
            edge("e4", "hi", "tail", "output-json-0", "input-json-0"),
            edge("e5", "hi", "merge", "output-json-0", "input-json-0"),
            edge("e6", "lo", "merge", "output-json-0", "input-json-1"),
        ],
    )


# --- validate_block ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("type_", sorted(CONFIGS))
def test_valid_config_of_every_built_type_has_no_issues(type_: str) -> None:
    assert validate_block(type_, CONFIGS[type_]) == []


def test_unknown_block_type_is_reported_on_the_type_field() -> None:
    [issue] = validate_block("formula", {})
    assert issue.code == "unknown_block_type"
    assert issue.field == "type"
    assert "formula" in issue.message and "extract" in issue.message


@pytest.mark.parametrize("type_", ["edit"])
def test_not_built_block_type_is_refused(type_: str) -> None:
    [issue] = validate_block(type_, {})
    assert issue.code == "block_type_not_built"
    assert issue.field == "type"
    assert type_ in issue.message


def test_missing_required_config_key_names_the_field() -> None:
    [issue] = validate_block("extract", {})
    assert issue.code == "invalid_config"
    assert issue.field == "config.json_schema"
    assert issue.block_id is None


def test_nested_config_error_has_dotted_location() -> None:
    config = {"conditions": [{"id": "a", "sub_conditions": [{"path": "x", "operator": "bigger"}]}]}
    [issue] = validate_block("conditional", config)
    assert issue.field == "config.conditions.0.sub_conditions.0.operator"
    assert "bigger" not in issue.field


def test_one_issue_per_pydantic_error_and_value_error_prefix_is_dropped() -> None:
    issues = validate_block("extract", {"json_schema": {"type": "array"}, "n_consensus": 0, "typo": 1})
    assert codes(issues) == ["invalid_config"] * 3
    assert sorted(i.field or "" for i in issues) == [
        "config.json_schema",
        "config.n_consensus",
        "config.typo",
    ]
    schema_issue = next(i for i in issues if i.field == "config.json_schema")
    assert "Value error" not in schema_issue.message
    assert "json_schema must be an object schema" in schema_issue.message


def test_model_level_config_error_is_reported_on_config() -> None:
    [issue] = validate_block("function", {})
    assert issue.code == "invalid_config"
    assert issue.field == "config"
    assert "exactly one of 'expression', 'mapping' or 'code'" in issue.message


# --- validate_graph ---------------------------------------------------------------------------------------


def test_valid_graphs_have_no_issues() -> None:
    assert validate_graph(linear()) == []
    assert validate_graph(routed()) == []


def test_block_config_issue_carries_the_block_id() -> None:
    graph = linear()
    graph.blocks[1] = blk("ext", "extract", {"json_schema": SCHEMA, "temperature": 9})
    [issue] = validate_graph(graph)
    assert (issue.code, issue.block_id, issue.field) == ("invalid_config", "ext", "config.temperature")
    assert "'ext'" in issue.message


def test_edge_to_missing_blocks_reports_each_missing_end() -> None:
    graph = linear()
    graph.edges.append(edge("e9", "ghost", "phantom"))
    issues = validate_graph(graph)
    assert [(i.code, i.block_id, i.edge_id, i.field) for i in issues] == [
        ("edge_missing_block", "ghost", "e9", "source_block"),
        ("edge_missing_block", "phantom", "e9", "target_block"),
    ]


def test_unknown_source_handle_lists_the_available_ones() -> None:
    graph = linear()
    graph.edges[1] = edge("e2", "ext", "fn", "output-json-7", "input-json-0")
    [issue] = validate_graph(graph)
    assert (issue.code, issue.block_id, issue.edge_id) == ("edge_missing_handle", "ext", "e2")
    assert (issue.handle, issue.field) == ("output-json-7", "source_handle")
    assert "'output-json-0'" in issue.message


def test_unknown_target_handle_is_reported_on_the_target() -> None:
    graph = linear()
    graph.edges[0] = edge("e1", "start", "ext", "output-file-0", "input-file-0")
    [issue] = validate_graph(graph)
    assert (issue.code, issue.block_id, issue.handle, issue.field) == (
        "edge_missing_handle",
        "ext",
        "input-file-0",
        "target_handle",
    )


def test_none_handles_are_allowed_when_unambiguous() -> None:
    graph = linear()
    graph.edges = [edge("e1", "start", "ext"), edge("e2", "ext", "fn")]
    assert validate_graph(graph) == []


def test_none_handle_on_a_block_with_several_outputs_is_ambiguous() -> None:
    graph = routed()
    graph.edges[1] = edge("e2", "route", "hi", None, "input-json-0")
    [issue] = validate_graph(graph)
    assert (issue.code, issue.block_id, issue.edge_id, issue.handle, issue.field) == (
        "edge_missing_handle",
        "route",
        "e2",
        None,
        "source_handle",
    )
    assert "'output-json-high'" in issue.message and "'output-json-else'" in issue.message


def test_none_target_handle_on_merge_dicts_is_ambiguous() -> None:
    graph = routed()
    graph.edges[4] = edge("e5", "hi", "merge")
    [issue] = validate_graph(graph)
    assert (issue.code, issue.block_id, issue.field) == ("edge_missing_handle", "merge", "target_handle")


def test_file_output_into_json_input_is_a_kind_mismatch() -> None:
    graph = Graph(
        blocks=[blk("start", "start_document"), blk("fn", "function")],
        edges=[edge("e1", "start", "fn", "output-file-0", "input-json-0")],
    )
    [issue] = validate_graph(graph)
    assert (issue.code, issue.block_id, issue.edge_id) == ("edge_kind_mismatch", "fn", "e1")
    assert "file" in issue.message and "json" in issue.message


def test_json_output_into_file_input_is_a_kind_mismatch_even_with_resolved_handles() -> None:
    graph = Graph(
        blocks=[blk("start", "start_json"), blk("p", "parse")],
        edges=[edge("e1", "start", "p")],
    )
    assert codes(validate_graph(graph)) == ["edge_kind_mismatch"]


def test_second_edge_into_the_same_input_is_a_duplicate() -> None:
    graph = linear()
    graph.blocks.append(blk("start2", "start_document"))
    graph.edges.append(edge("e0", "start2", "ext", "output-file-0", None))
    [issue] = validate_graph(graph)
    # edges are checked in id order: e0 comes first, so e1 is the duplicate
    assert (issue.code, issue.block_id, issue.edge_id, issue.handle) == (
        "duplicate_input_edge",
        "ext",
        "e1",
        "input-file-document",
    )
    assert "'e0'" in issue.message


def test_edge_into_a_start_block_is_refused() -> None:
    graph = linear()
    graph.edges.append(edge("e3", "fn", "start", "output-json-0", None))
    issues = validate_graph(graph)
    assert [(i.code, i.block_id, i.edge_id) for i in issues] == [("start_block_has_input", "start", "e3")]


def test_note_block_takes_no_edges() -> None:
    graph = linear()
    graph.blocks.append(blk("memo", "note"))
    graph.edges.append(edge("e3", "memo", "fn"))
    graph.edges.append(edge("e4", "fn", "memo"))
    issues = validate_graph(graph)
    assert [(i.code, i.block_id, i.edge_id) for i in issues] == [
        ("note_has_edge", "memo", "e3"),
        ("note_has_edge", "memo", "e4"),
    ]


def test_a_lone_note_is_fine() -> None:
    graph = linear()
    graph.blocks.append(blk("memo", "note"))
    assert validate_graph(graph) == []


def test_cycle_is_reported_once_with_its_blocks() -> None:
    graph = Graph(
        blocks=[
            blk("start", "start_json"),
            blk("a", "function"),
            blk("b", "merge_dicts"),
            blk("c", "function"),
        ],
        edges=[
            edge("e1", "start", "b", None, "input-json-0"),
            edge("e2", "b", "a"),
            edge("e3", "a", "c"),
            edge("e4", "c", "b", None, "input-json-1"),
        ],
    )
    [issue] = validate_graph(graph)
    assert (issue.code, issue.block_id) == ("cycle", "a")
    assert "'a', 'b', 'c'" in issue.message


def test_self_loop_is_a_cycle_and_downstream_blocks_are_not() -> None:
    graph = Graph(
        blocks=[blk("start", "start_json"), blk("m", "merge_dicts"), blk("after", "function")],
        edges=[
            edge("e1", "start", "m", None, "input-json-0"),
            edge("e2", "m", "m", None, "input-json-1"),
            edge("e3", "m", "after"),
        ],
    )
    issues = validate_graph(graph)
    assert [(i.code, i.block_id) for i in issues] == [("cycle", "m")]


def test_two_separate_cycles_give_two_issues() -> None:
    graph = Graph(
        blocks=[blk(b, "merge_dicts") for b in ("a", "b", "x", "y")],
        edges=[
            edge("e1", "a", "b", None, "input-json-0"),
            edge("e2", "b", "a", None, "input-json-0"),
            edge("e3", "x", "y", None, "input-json-0"),
            edge("e4", "y", "x", None, "input-json-0"),
        ],
    )
    assert [(i.code, i.block_id) for i in validate_graph(graph)] == [("cycle", "a"), ("cycle", "x")]


def test_duplicate_block_ids_are_reported_once() -> None:
    graph = linear()
    graph.blocks.append(blk("fn", "function"))
    [issue] = validate_graph(graph)
    assert (issue.code, issue.block_id, issue.field) == ("duplicate_block_id", "fn", "id")
    assert "2 blocks" in issue.message


def test_duplicate_edge_ids_are_reported() -> None:
    graph = linear()
    graph.blocks.append(blk("fn2", "function"))
    graph.edges.append(edge("e2", "ext", "fn2"))
    assert [(i.code, i.edge_id) for i in validate_graph(graph)] == [("duplicate_edge_id", "e2")]


def test_parent_id_pointing_nowhere_is_unknown_parent() -> None:
    graph = linear()
    graph.blocks[2] = blk("fn", "function", parent_id="loop_1")
    [issue] = validate_graph(graph)
    assert (issue.code, issue.block_id, issue.field) == ("unknown_parent", "fn", "parent_id")
    assert "loop_1" in issue.message


def test_parent_that_is_not_a_container_is_invalid() -> None:
    graph = linear()
    graph.blocks[2] = blk("fn", "function", parent_id="ext")
    assert [(i.code, i.block_id) for i in validate_graph(graph)] == [("invalid_parent", "fn")]


def test_body_of_a_loop_container_is_not_a_cycle() -> None:
    graph = Graph(
        blocks=[
            blk("start", "start_json"),
            blk("loop", "for_each", {"map_method": "iterate_array"}),
            blk("body", "function", parent_id="loop"),
        ],
        edges=[
            edge("e1", "start", "loop", None, "fe-left-in"),
            edge("e2", "loop", "body", "fe-left-out", None),
            edge("e3", "body", "loop", None, "fe-right-in"),
        ],
    )
    assert validate_graph(graph) == []


def test_handles_of_an_invalid_block_are_not_checked() -> None:
    graph = linear()
    graph.blocks[1] = blk("ext", "extract", {})
    graph.edges[0] = edge("e1", "start", "ext", "output-file-0", "input-file-whatever")
    assert [(i.code, i.block_id, i.field) for i in validate_graph(graph)] == [
        ("invalid_config", "ext", "config.json_schema")
    ]


def test_issue_order_is_blocks_then_edges_then_cycles_whatever_the_input_order() -> None:
    graph = Graph(
        blocks=[
            blk("z", "extract", {}),
            blk("a", "parse", {"image_resolution_dpi": 1}),
            blk("m", "merge_dicts"),
            blk("n", "merge_dicts"),
        ],
        edges=[
            edge("e9", "m", "n", None, "input-json-0"),
            edge("e5", "n", "m", None, "input-json-0"),
            edge("e1", "nowhere", "a"),
        ],
    )
    expected = [
        ("invalid_config", "a", None),
        ("invalid_config", "z", None),
        ("edge_missing_block", "nowhere", "e1"),
        ("cycle", "m", None),
    ]
    for seed in range(5):
        shuffled = graph.model_copy(deep=True)
        random.Random(seed).shuffle(shuffled.blocks)
        random.Random(seed).shuffle(shuffled.edges)
        assert [(i.code, i.block_id, i.edge_id) for i in validate_graph(shuffled)] == expected


# --- resolve_edge_handles ---------------------------------------------------------------------------------


def test_resolve_fills_unambiguous_handles_and_leaves_the_rest() -> None:
    graph = routed()
    graph.edges[0] = edge("e1", "start", "route")
    graph.edges[4] = edge("e5", "hi", "merge")  # merge has two inputs: stays None
    resolved = resolve_edge_handles(graph)
    by_id = {e.id: e for e in resolved.edges}
    assert (by_id["e1"].source_handle, by_id["e1"].target_handle) == ("output-json-0", "input-json-0")
    assert (by_id["e5"].source_handle, by_id["e5"].target_handle) == ("output-json-0", None)
    assert graph.edges[0].source_handle is None  # the input graph is untouched
    assert [b.id for b in resolved.blocks] == [b.id for b in graph.blocks]


def test_resolve_keeps_explicit_handles_and_skips_invalid_blocks() -> None:
    graph = linear()
    graph.blocks[2] = blk("fn", "function", {})
    graph.edges[1] = edge("e2", "ext", "fn")
    resolved = resolve_edge_handles(graph)
    assert resolved.edges[0] == graph.edges[0]
    assert (resolved.edges[1].source_handle, resolved.edges[1].target_handle) == ("output-json-0", None)


# --- version_id -------------------------------------------------------------------------------------------


def test_version_id_format() -> None:
    vid = version_id(linear())
    assert vid.startswith("ver_")
    assert len(vid) == 4 + 32
    int(vid[4:], 16)


def test_version_id_ignores_order_timestamps_and_workflow_id() -> None:
    graph = linear()
    other = Graph(
        blocks=[b.model_copy(update={"updated_at": T1, "workflow_id": "wf_2"}) for b in reversed(graph.blocks)],
        edges=[e.model_copy(update={"updated_at": T1, "workflow_id": "wf_2"}) for e in reversed(graph.edges)],
    )
    assert version_id(other) == version_id(graph)


def test_version_id_survives_a_json_round_trip() -> None:
    graph = linear()
    assert version_id(Graph.model_validate_json(graph.model_dump_json())) == version_id(graph)


@pytest.mark.parametrize(
    "change",
    [
        {"label": "Extract totals"},
        {"config": {"json_schema": SCHEMA, "instructions": "be careful"}},
        {"position_x": 10.0},
        {"position_y": 10.0},
        {"width": 200.0},
        {"height": 80.0},
        {"parent_id": "loop"},
    ],
)
def test_version_id_changes_with_block_content(change: dict[str, Any]) -> None:
    graph = linear()
    changed = graph.model_copy(deep=True)
    changed.blocks[1] = changed.blocks[1].model_copy(update=change)
    assert version_id(changed) != version_id(graph)


def test_version_id_changes_with_edges() -> None:
    graph = linear()
    resolved_differently = graph.model_copy(deep=True)
    resolved_differently.edges[0] = edge("e1", "start", "ext", None, "input-file-document")
    renamed = graph.model_copy(deep=True)
    renamed.edges[0] = renamed.edges[0].model_copy(update={"id": "e0"})
    assert len({version_id(graph), version_id(resolved_differently), version_id(renamed)}) == 3


# --- topological_order ------------------------------------------------------------------------------------


def test_topological_order_breaks_ties_by_id_and_drops_notes() -> None:
    graph = routed()
    graph.blocks.append(blk("aaa_note", "note"))
    assert topological_order(graph) == ["start", "route", "hi", "lo", "merge", "tail"]


def test_topological_order_is_independent_of_input_order() -> None:
    graph = routed()
    shuffled = graph.model_copy(deep=True)
    shuffled.blocks.reverse()
    shuffled.edges.reverse()
    assert topological_order(shuffled) == topological_order(graph)


def test_topological_order_refuses_a_cycle() -> None:
    graph = Graph(
        blocks=[blk("a", "function"), blk("b", "function")],
        edges=[edge("e1", "a", "b"), edge("e2", "b", "a")],
    )
    with pytest.raises(ValueError, match="cycle"):
        topological_order(graph)


# --- edge_state -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "routing", "expected"),
    [
        ("completed", None, "active"),
        ("completed", ["output-json-high"], "active"),
        ("completed", ["output-json-low"], "dead"),
        ("completed", [], "dead"),
        ("skipped", None, "dead"),
        ("error", None, "dead"),
        ("cancelled", None, "dead"),
        ("pending", None, "waiting"),
        ("running", None, "waiting"),
        ("awaiting_review", None, "waiting"),
    ],
)
def test_edge_state(status: str, routing: list[str] | None, expected: str) -> None:
    e = edge("e2", "route", "hi", "output-json-high", "input-json-0")
    assert edge_state(e, {"route": status}, {"route": routing}) == expected


def test_edge_state_of_an_unknown_source_is_waiting() -> None:
    assert edge_state(edge("e", "x", "y", "output-json-0"), {}, {}) == "waiting"


# --- next_actions -----------------------------------------------------------------------------------------


def test_start_blocks_are_ready_first() -> None:
    graph = routed()
    assert next_actions(graph, {}, {}) == (["start"], {})


def test_blocks_wait_while_their_inputs_are_running() -> None:
    graph = routed()
    assert next_actions(graph, {"start": "completed", "route": "running"}, {}) == ([], {})


def test_routed_branch_runs_and_the_other_is_skipped_with_a_reason() -> None:
    graph = routed()
    status = {"start": "completed", "route": "completed"}
    ready, skip = next_actions(graph, status, {"route": ["output-json-high"]})
    assert ready == ["hi"]
    assert skip == {"lo": "input 'input-json-0' inactive: branch 'output-json-low' of block 'route' was not taken"}


def test_merge_dicts_runs_when_one_input_is_active() -> None:
    graph = routed()
    status = {"start": "completed", "route": "completed", "hi": "completed", "lo": "skipped"}
    ready, skip = next_actions(graph, status, {"route": ["output-json-high"]})
    assert ready == ["merge", "tail"]
    assert skip == {}


def test_merge_dicts_waits_for_every_input_to_resolve() -> None:
    graph = routed()
    status = {"start": "completed", "route": "completed", "hi": "completed", "lo": "running"}
    ready, skip = next_actions(graph, status, {"route": None})
    assert ready == ["tail"]
    assert skip == {}


def test_merge_dicts_with_every_input_dead_is_skipped() -> None:
    graph = routed()
    status = {"start": "completed", "route": "completed", "hi": "skipped", "lo": "error"}
    ready, skip = next_actions(graph, status, {})
    assert ready == []
    assert skip == {
        "merge": "input 'input-json-0' inactive: upstream block 'hi' was skipped",
        "tail": "input 'input-json-0' inactive: upstream block 'hi' was skipped",
    }


def test_skips_cascade_down_a_dead_branch_in_one_call() -> None:
    graph = routed()
    status = {"start": "completed", "route": "completed"}
    ready, skip = next_actions(graph, status, {"route": ["output-json-low"]})
    assert ready == ["lo"]
    assert list(skip) == ["hi", "tail"]
    assert skip["hi"] == "input 'input-json-0' inactive: branch 'output-json-high' of block 'route' was not taken"
    assert skip["tail"] == "input 'input-json-0' inactive: upstream block 'hi' was skipped"


def test_non_merge_block_with_one_dead_input_is_skipped_naming_that_input() -> None:
    inputs = [{"name": "left", "type": "json"}, {"name": "right", "type": "json"}]
    graph = Graph(
        blocks=[
            blk("start", "start_json"),
            blk("a", "function"),
            blk("b", "function"),
            blk("ext", "extract", {"json_schema": SCHEMA, "inputs": inputs}),
        ],
        edges=[
            edge("e1", "start", "a"),
            edge("e2", "start", "b"),
            edge("e3", "a", "ext", "output-json-0", "input-json-left"),
            edge("e4", "b", "ext", "output-json-0", "input-json-right"),
        ],
    )
    assert validate_graph(graph) == []
    status = {"start": "completed", "a": "completed", "b": "error"}
    assert next_actions(graph, status, {}) == (
        [],
        {"ext": "input 'input-json-right' inactive: upstream block 'b' failed"},
    )


def test_cancelled_upstream_reason() -> None:
    graph = linear()
    _, skip = next_actions(graph, {"start": "completed", "ext": "cancelled"}, {})
    assert skip == {"fn": "input 'input-json-0' inactive: upstream block 'ext' was cancelled"}


def test_block_with_no_input_connected_is_skipped() -> None:
    graph = linear()
    graph.blocks.append(blk("orphan", "function"))
    ready, skip = next_actions(graph, {}, {})
    assert ready == ["start"]
    assert skip == {"orphan": "no input connected"}


def test_notes_are_never_ready_nor_skipped() -> None:
    graph = linear()
    graph.blocks.append(blk("memo", "note"))
    ready, skip = next_actions(graph, {}, {})
    assert "memo" not in ready and "memo" not in skip


def test_only_pending_blocks_are_considered() -> None:
    graph = linear()
    status = {"start": "completed", "ext": "completed", "fn": "running"}
    assert next_actions(graph, status, {}) == ([], {})
    status = {"start": "running"}
    assert next_actions(graph, status, {}) == ([], {})


def test_ready_blocks_come_in_topological_order() -> None:
    graph = Graph(
        blocks=[
            blk("s2", "start_json"),
            blk("s1", "start_document"),
            blk("p", "parse"),
            blk("f", "function"),
        ],
        edges=[edge("e1", "s1", "p"), edge("e2", "s2", "f")],
    )
    # Kahn's algorithm with a min-heap: s1, p, s2, f
    assert next_actions(graph, {"s1": "completed", "s2": "completed"}, {}) == (["p", "f"], {})
    assert next_actions(graph, {}, {}) == (["s1", "s2"], {})


def test_whole_run_walk_reaches_every_block_once() -> None:
    graph = resolve_edge_handles(routed())
    status: dict[str, str] = {}
    routing: dict[str, list[str] | None] = {}
    seen: list[str] = []
    while True:
        ready, skip = next_actions(graph, status, routing)
        if not ready and not skip:
            break
        for block_id, _reason in skip.items():
            status[block_id] = "skipped"
            seen.append(block_id)
        for block_id in ready:
            status[block_id] = "completed"
            routing[block_id] = ["output-json-low"] if block_id == "route" else None
            seen.append(block_id)
    assert sorted(seen) == sorted(b.id for b in graph.blocks)
    assert status == {
        "start": "completed",
        "route": "completed",
        "lo": "completed",
        "hi": "skipped",
        "tail": "skipped",
        "merge": "completed",
    }


def test_duplicate_input_is_caught_on_the_raw_handle_of_an_invalid_block() -> None:
    graph = linear()
    graph.blocks[2] = blk("fn", "function", {})
    graph.edges.append(edge("e3", "ext", "fn", "output-json-0", "input-json-0"))
    assert [(i.code, i.block_id, i.edge_id) for i in validate_graph(graph)] == [
        ("invalid_config", "fn", None),
        ("duplicate_input_edge", "fn", "e3"),
    ]


def test_publish_refuses_a_block_with_some_inputs_unconnected() -> None:
    from docflow.graph import publish_issues

    extract_cfg = {
        "json_schema": {"type": "object", "properties": {}},
        "inputs": [{"name": "text", "type": "json"}, {"name": "notes", "type": "json"}],
    }
    graph = Graph(
        blocks=[blk("in", "start_json"), blk("ex", "extract", extract_cfg), blk("parked", "function")],
        edges=[edge("e1", "in", "ex", "output-json-0", "input-json-text")],
    )
    assert validate_graph(graph) == []  # fine while editing
    issues = publish_issues(graph)
    assert [(i.code, i.block_id, i.handle) for i in issues] == [("input_not_connected", "ex", "input-json-notes")]
