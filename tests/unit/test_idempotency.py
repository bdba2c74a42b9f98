"""The request hash an `Idempotency-Key` is bound to."""

from __future__ import annotations

from api.idempotency import RUNS, WORKFLOWS, request_hash


def test_the_hash_ignores_key_order_and_sees_every_value() -> None:
    body = {"workflow_id": "wf_1", "json_inputs": {"in": {"a": 1, "b": [1, 2]}}}
    same = {"json_inputs": {"in": {"b": [1, 2], "a": 1}}, "workflow_id": "wf_1"}
    assert request_hash(RUNS, "proj_a", body) == request_hash(RUNS, "proj_a", same)
    changed = {"workflow_id": "wf_1", "json_inputs": {"in": {"a": 1, "b": [2, 1]}}}
    assert request_hash(RUNS, "proj_a", body) != request_hash(RUNS, "proj_a", changed)


def test_the_hash_is_scoped_by_route_and_project() -> None:
    body = {"name": "x"}
    assert request_hash(RUNS, "proj_a", body) != request_hash(WORKFLOWS, "proj_a", body)
    assert request_hash(RUNS, "proj_a", body) != request_hash(RUNS, "proj_b", body)
