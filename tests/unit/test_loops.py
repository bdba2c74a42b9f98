"""Pure parts of loop containers: configs and handles, levels of readiness, step ids, items, order, termination."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from docflow.blocks import ForEachConfig, WhileLoopConfig, handles_of, parse_config
from docflow.graph import publish_issues, validate_graph
from docflow.loops import (
    LoopItemsError,
    array_items,
    batches,
    check_termination,
    in_item_order,
    iteration_context,
    iteration_of,
    iteration_prefix,
    review_iteration,
    termination_reason,
)
from docflow.models import Block, Edge, Graph
from docflow.readiness import next_actions, scope

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def blk(id_: str, type_: str, config: dict[str, Any] | None = None, parent_id: str | None = None) -> Block:
    defaults: dict[str, dict[str, Any]] = {"function": {"expression": "input"}}
    config = config if config is not None else defaults.get(type_, {})
    return Block(id=id_, workflow_id="wf_1", type=type_, config=config, parent_id=parent_id, updated_at=T0)


def edge(id_: str, source: str, target: str, out: str | None, into: str | None) -> Edge:
    return Edge(
        id=id_,
        workflow_id="wf_1",
        source_block=source,
        target_block=target,
        source_handle=out,
        target_handle=into,
        updated_at=T0,
    )


def loop_graph() -> Graph:
    return Graph(
        blocks=[
            blk("in", "start_json"),
            blk("loop", "for_each"),
            blk("a", "function", parent_id="loop"),
            blk("b", "function", parent_id="loop"),
            blk("out", "function"),
        ],
        edges=[
            edge("e1", "in", "loop", "output-json-0", "fe-left-in"),
            edge("e2", "loop", "a", "fe-left-out", "input-json-0"),
            edge("e3", "a", "b", "output-json-0", "input-json-0"),
            edge("e4", "b", "loop", "output-json-0", "fe-right-in"),
            edge("e5", "loop", "out", "fe-right-out", "input-json-0"),
        ],
    )


def test_loop_configs_and_handles() -> None:
    cfg = parse_config("for_each", {"map_source_path": "items", "max_concurrency": 3})
    assert isinstance(cfg, ForEachConfig) and cfg.on_iteration_error == "fail"
    assert handles_of("for_each", cfg).outputs == ("fe-left-out", "fe-right-out")
    wl = parse_config("while_loop", {"max_iterations": 5})
    assert handles_of("while_loop", wl).inputs == ("loop-left-in", "loop-right-in", "loop-termination")


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"map_method": "sideways"}, "map_method"),
        ({"map_source_path": "a[["}, "map_source_path"),
        ({"max_concurrency": 51}, "max_concurrency"),
        ({"on_iteration_error": "skip"}, "on_iteration_error"),
    ],
)
def test_bad_for_each_configs_name_the_field(config: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        ForEachConfig.model_validate(config)
    assert info.value.errors()[0]["loc"][0] == field


def test_while_loop_bounds_its_iterations() -> None:
    with pytest.raises(ValidationError):
        WhileLoopConfig.model_validate({"max_iterations": 101})


def test_a_loop_graph_validates_and_publishes_without_loop_termination() -> None:
    assert validate_graph(loop_graph()) == []
    assert publish_issues(loop_graph()) == []


def test_an_edge_across_a_container_boundary_is_refused() -> None:
    graph = loop_graph()
    graph.edges.append(edge("e6", "in", "b", "output-json-0", "input-json-0"))
    codes = [i.code for i in validate_graph(graph)]
    assert "edge_crosses_container" in codes


def test_inner_handles_are_refused_from_outside_and_outer_ones_from_inside() -> None:
    graph = loop_graph()
    graph.edges[0] = edge("e1", "in", "loop", "output-json-0", "fe-right-in")
    assert [i.code for i in validate_graph(graph)] == ["container_inner_handle"]
    graph = loop_graph()
    graph.edges[1] = edge("e2", "loop", "a", "fe-right-out", "input-json-0")
    assert [i.code for i in validate_graph(graph)] == ["container_outer_handle"]


def test_readiness_works_one_level_at_a_time() -> None:
    graph = loop_graph()
    top = scope(graph, None)
    assert {b.id for b in top.blocks} == {"in", "loop", "out"}
    assert next_actions(top, {}, {}) == (["in"], {})
    assert next_actions(top, {"in": "completed"}, {}) == (["loop"], {})
    body = scope(graph, "loop")
    assert {b.id for b in body.blocks} == {"a", "b"}
    # In a body the container is the (completed) source of its inner output.
    assert next_actions(body, {"loop": "completed"}, {}) == (["a"], {})
    assert next_actions(body, {"loop": "completed", "a": "skipped"}, {})[1] == {
        "b": "input 'input-json-0' inactive: upstream block 'a' was skipped"
    }


def test_step_ids_and_loop_context_chain_through_nested_loops() -> None:
    outer = iteration_prefix("", "orders", 2)
    inner = iteration_prefix(outer, "lines", 0)
    assert inner + "fn" == "orders_iter_2_lines_iter_0_fn"
    ctx = iteration_context(iteration_context([], "orders", 2, True), "lines", 0, False)
    assert [(c.container_id, c.iteration, c.is_parallel, c.parallel_item_index) for c in ctx] == [
        ("orders", 2, True, 2),
        ("lines", 0, False, None),
    ]


def test_array_items_read_the_path_and_refuse_what_is_not_an_array() -> None:
    assert array_items({"a": {"b": [1, 2]}}, "a.b") == [1, 2]
    assert array_items([3], None) == [3]
    with pytest.raises(LoopItemsError, match="does not exist"):
        array_items({}, "missing")
    with pytest.raises(LoopItemsError, match="dict, not an array"):
        array_items({"a": {}}, "a")


def test_results_are_in_item_order_whatever_the_completion_order() -> None:
    finished = {}
    for index, value in [(2, "c"), (0, "a"), (3, "d")]:
        finished[index] = value
    assert in_item_order(finished, 4) == ["a", None, "c", "d"]
    assert batches(5, 2) == [range(0, 2), range(2, 4), range(4, 5)]


def test_termination_matches_any_condition() -> None:
    cfg = WhileLoopConfig.model_validate(
        {
            "termination_conditions": [
                {"id": "done", "sub_conditions": [{"path": "status", "operator": "equals", "expected": "done"}]},
                {"id": "many", "sub_conditions": [{"path": "n", "operator": "gte", "expected": 3}]},
            ]
        }
    )
    assert not check_termination(cfg, 0, {"n": 1}).matched
    hit = check_termination(cfg, 1, {"n": 3})
    assert hit.matched and hit.matched_condition_ids == ["many"]
    assert termination_reason(hit, failed=False) == "condition_matched"
    assert termination_reason(check_termination(cfg, 0, {"n": 0}), failed=False) == "max_iterations_reached"
    assert termination_reason(None, failed=True) == "error"


def test_a_review_inside_a_loop_names_its_container_step_and_iteration() -> None:
    ctx = iteration_context(iteration_context([], "orders", 2, True), "lines", 7, True)
    step_id = iteration_prefix(iteration_prefix("", "orders", 2), "lines", 7) + "ex"
    assert review_iteration(step_id, "ex", ctx) == ("orders_iter_2_lines", "2.7")
    assert review_iteration("ex", "ex", []) == (None, None)


def test_a_start_block_inside_a_loop_is_refused() -> None:
    graph = loop_graph()
    graph.blocks.append(blk("inner_start", "start_json", parent_id="loop"))
    issues = validate_graph(graph)
    assert [(i.code, i.block_id, i.field) for i in issues] == [("start_block_in_loop", "inner_start", "parent_id")]


def test_a_step_belongs_to_the_iteration_named_after_its_loop_prefix() -> None:
    assert iteration_of("loop_iter_7_ex", "loop_iter_") == 7
    assert iteration_of("loop_iter_12_inner_iter_0_ex", "loop_iter_") == 12  # nested: the outer iteration
    assert iteration_of("outer_iter_2_loop_iter_5_ex", "outer_iter_2_loop_iter_") == 5
    assert iteration_of("ex", "loop_iter_") is None
    assert iteration_of("loop_iter_x_ex", "loop_iter_") is None
