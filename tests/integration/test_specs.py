"""Declarative specs through the SDK (`client.workflows.spec.get/validate`, `plan`, `apply`) against the real
stack: export → edit → plan → apply → run; a spec lands whole or not at all, and never over an edit it did
not see; bad and hostile specs are 400s naming where; another project sees nothing."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
import yaml
from retab import Retab

from tests.conftest import Stack
from tests.integration.builders import build, chain, wait_for

HEAD = "apiVersion: workflows.retab.com/v1alpha2\nkind: Workflow\n"


def _two_functions(client: Retab, stack: Stack) -> tuple[str, dict[str, str]]:
    blocks, edges = chain([("in", "start_json", {}), ("f", "function", {"expression": "input"})])
    return build(client, stack.project_id, blocks, edges)


def _edited(text: str, ids: dict[str, str], extra: str) -> str:
    """The exported spec with `f` doubling `n` and a new function `extra` after it."""
    document = yaml.safe_load(text)
    document["spec"]["blocks"][ids["f"]]["config"]["expression"] = "input['n'] * 2"
    document["spec"]["blocks"][extra] = {"type": "function", "config": {"expression": "input + 1"}}
    ends = {"from": {"block": ids["f"], "handle": "output-json-0"}, "to": {"block": extra, "handle": "input-json-0"}}
    document["spec"]["edges"].append(ends)
    return str(yaml.safe_dump(document, sort_keys=False))


def _refusal(answer: httpx.Response, status: int = 400) -> tuple[str, str]:
    assert answer.status_code == status, answer.text
    detail = answer.json()["detail"]
    return detail["code"], str(detail["details"].get("field"))


def _draft(http: httpx.Client, wf_id: str) -> dict[str, Any]:
    blocks = http.get("/v1/workflows/blocks", params={"workflow_id": wf_id, "limit": 100}).json()["data"]
    edges = http.get("/v1/workflows/edges", params={"workflow_id": wf_id, "limit": 100}).json()["data"]
    return {"blocks": {b["id"]: b["config"] for b in blocks}, "edges": sorted(e["id"] for e in edges)}


def test_export_edit_plan_apply_and_run(client: Retab, stack: Stack, http: httpx.Client) -> None:
    wf_id, ids = _two_functions(client, stack)
    exported = client.workflows.spec.get(wf_id)
    assert exported.workflow_id == wf_id and f"{ids['f']}:" in exported.yaml_definition
    unchanged = client.workflows.plan(yaml_definition=exported.yaml_definition, workflow_id=wf_id)
    assert unchanged.action == "noop" and unchanged.summary is not None and unchanged.summary.has_changes is False
    assert unchanged.rendered_plan and "No changes" in unchanged.rendered_plan

    extra = f"plus-{uuid.uuid4().hex[:6]}"
    text = _edited(exported.yaml_definition, ids, extra)
    planned = client.workflows.plan(yaml_definition=text, workflow_id=wf_id)
    assert planned.action == "update" and planned.block_count == 3 and planned.edge_count == 2
    changes = {(c.address, tuple(c.actions)): c for c in planned.resource_changes or []}
    assert set(changes) == {
        (f"block.{ids['f']}", ("update",)),
        (f"block.{extra}", ("create",)),
        (f"edge.{ids['f']}:output-json-0→{extra}:input-json-0", ("create",)),
    }
    update = changes[(f"block.{ids['f']}", ("update",))].change
    assert [(f.path_display, f.before, f.after) for f in update.field_changes or []] == [
        ("config.expression", "input", "input['n'] * 2")
    ]
    assert _draft(http, wf_id)["blocks"][ids["f"]] == {"expression": "input"}  # a plan changes nothing

    applied = client.workflows.apply(yaml_definition=text, workflow_id=wf_id)
    assert applied.action == "update" and applied.created is False and applied.workflow_id == wf_id
    assert _draft(http, wf_id)["blocks"][ids["f"]] == {"expression": "input['n'] * 2"}
    run = client.workflows.runs.create(workflow_id=wf_id, json_inputs={ids["in"]: {"n": 4}}, version="draft")
    assert wait_for(client, run.id).lifecycle.status == "completed"
    output = http.get(f"/v1/workflows/runs/{run.id}/steps/{extra}").json()["handle_outputs"]["output-json-0"]
    assert output["data"] == 9

    again = client.workflows.apply(yaml_definition=text, workflow_id=wf_id)
    assert again.action == "noop" and again.summary is not None and again.summary.total == 0
    assert client.workflows.spec.get(wf_id).yaml_definition == client.workflows.spec.get(wf_id).yaml_definition


def test_apply_without_a_workflow_creates_one(client: Retab, stack: Stack, http: httpx.Client) -> None:
    start, fn = f"in-{uuid.uuid4().hex[:6]}", f"fn-{uuid.uuid4().hex[:6]}"
    text = HEAD + (
        "metadata: {id: wf_elsewhere, name: From a spec, description: made by apply}\n"
        f"spec:\n  blocks:\n    {start}: {{type: start_json}}\n"
        f"    {fn}: {{type: function, config: {{expression: 'input'}}}}\n"
        f"  edges:\n    - {{from: {{block: {start}, handle: output-json-0}},"
        f" to: {{block: {fn}, handle: input-json-0}}}}\n"
    )
    planned = client.workflows.plan(yaml_definition=text)
    assert planned.action == "create" and planned.workflow_id == ""
    created = client.workflows.apply(yaml_definition=text)
    assert created.created is True and created.action == "create" and created.workflow_id.startswith("wf")
    assert created.workflow_id != "wf_elsewhere"  # metadata.id is context, not the target
    record = client.workflows.get(created.workflow_id)
    assert record.name == "From a spec" and record.description == "made by apply"
    assert set(_draft(http, created.workflow_id)["blocks"]) == {start, fn}
    run = client.workflows.runs.create(workflow_id=created.workflow_id, json_inputs={start: {"a": 1}}, version="draft")
    assert wait_for(client, run.id).lifecycle.status == "completed"

    # The same blocks again in a new workflow: their ids are the first one's, so nothing is created.
    names = {w.name for w in client.workflows.list(limit=100).data}
    answer = http.post("/v1/workflows/spec/apply", json={"yaml_definition": text.replace("From a spec", "Copy")})
    assert _refusal(answer, 409)[0] == "duplicate_block_id"
    assert {w.name for w in client.workflows.list(limit=100).data} == names  # the new workflow went again


def test_apply_lands_only_on_the_draft_it_planned_against(client: Retab, stack: Stack, http: httpx.Client) -> None:
    wf_id, ids = _two_functions(client, stack)
    text = _edited(client.workflows.spec.get(wf_id).yaml_definition, ids, f"plus-{uuid.uuid4().hex[:6]}")
    planned = http.post(f"/v1/workflows/{wf_id}/spec/plan", json={"yaml_definition": text})
    etag = planned.headers["ETag"]
    # Someone edits the draft between the plan and the apply.
    client.workflows.blocks.update(ids["f"], workflow_id=wf_id, config={"expression": "input['other']"})
    stale = http.post(f"/v1/workflows/{wf_id}/spec/apply", json={"yaml_definition": text}, headers={"If-Match": etag})
    assert _refusal(stale, 409)[0] == "draft_changed"
    assert _draft(http, wf_id)["blocks"][ids["f"]] == {"expression": "input['other']"}  # their edit stands

    fresh = http.post(f"/v1/workflows/{wf_id}/spec/plan", json={"yaml_definition": text}).headers["ETag"]
    landed = http.post(f"/v1/workflows/{wf_id}/spec/apply", json={"yaml_definition": text}, headers={"If-Match": fresh})
    assert landed.status_code == 200, landed.text
    assert landed.headers["ETag"] != fresh
    assert _draft(http, wf_id)["blocks"][ids["f"]] == {"expression": "input['n'] * 2"}


def test_a_bad_spec_changes_nothing_and_names_where(
    client: Retab, other_client: Retab, stack: Stack, http: httpx.Client
) -> None:
    wf_id, ids = _two_functions(client, stack)
    exported = client.workflows.spec.get(wf_id).yaml_definition
    before = _draft(http, wf_id)

    def apply(document: dict[str, Any]) -> httpx.Response:
        text = yaml.safe_dump(document, sort_keys=False)
        return http.post(f"/v1/workflows/{wf_id}/spec/apply", json={"yaml_definition": text})

    # One good change beside one bad config: neither lands.
    document = yaml.safe_load(exported)
    document["spec"]["blocks"][ids["in"]]["label"] = "renamed"
    document["spec"]["blocks"][ids["f"]]["config"] = {"expression": "input", "timeout_seconds": 0}
    code, field = _refusal(apply(document))
    assert code == "invalid_spec" and field.startswith(f"spec.blocks.{ids['f']}.config.")
    # An edge into a handle the block does not have.
    document = yaml.safe_load(exported)
    document["spec"]["edges"][0]["to"]["handle"] = "input-json-9"
    assert _refusal(apply(document)) == ("invalid_spec", "spec.edges[0]")
    # An unknown type; a function whose code does not compile.
    document = yaml.safe_load(exported)
    document["spec"]["blocks"][ids["f"]]["type"] = "teleport"
    assert _refusal(apply(document)) == ("invalid_spec", f"spec.blocks.{ids['f']}.type")
    document = yaml.safe_load(exported)
    code_config = {"language": "python", "code": "def transform(input_data):\n    return (\n"}
    document["spec"]["blocks"][ids["f"]]["config"] = code_config
    assert _refusal(apply(document)) == ("invalid_spec", f"spec.blocks.{ids['f']}.config.code")
    assert _draft(http, wf_id) == before

    # The same refusals from validate, which never writes; a good spec validates with its counts.
    check = http.post("/v1/workflows/spec/validate", json={"yaml_definition": "apiVersion: v0\n"})
    assert _refusal(check) == ("invalid_spec", "apiVersion")
    valid = client.workflows.spec.validate(yaml_definition=exported)
    assert valid.is_valid and (valid.block_count, valid.edge_count) == (2, 1) and valid.workflow_id == wf_id

    # Another project: the workflow is not there.
    with pytest.raises(Exception, match="404|not found|Not Found"):
        other_client.workflows.plan(yaml_definition=exported, workflow_id=wf_id)
    with pytest.raises(Exception, match="404|not found|Not Found"):
        other_client.workflows.spec.get(wf_id)
    foreign = http.post(
        f"/v1/workflows/{wf_id}/spec/apply",
        json={"yaml_definition": exported},
        headers={"Api-Key": stack.other_api_key},
    )
    assert foreign.status_code == 404
    assert _draft(http, wf_id) == before


@pytest.mark.parametrize(
    ("text", "field", "says"),
    [
        (HEAD + "spec: {blocks: {a: !!python/object/apply:os.system [id]}}\n", "yaml_definition", "not valid YAML"),
        (
            "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n"
            + "".join(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]\n" for i in range(1, 9)),
            "yaml_definition",
            "more than 200000 values",
        ),
        (HEAD + "spec: {blocks: &b {a: {type: note, config: *b}}}\n", "yaml_definition.spec.blocks.a.config", "itself"),
        (
            HEAD + "spec: {blocks: {a: {type: note}}, edges: [{from: {block: zz}, to: {block: a}}]}\n",
            "spec.edges[0].from.block",
            "zz",
        ),
        ("a: " + "[" * 20_000 + "]" * 20_000 + "\n", "yaml_definition", "nested more than 64 levels deep"),
    ],
    ids=["python-tag", "alias-bomb", "anchor-cycle", "unknown-block", "deep"],
)
def test_hostile_specs_are_400s(http: httpx.Client, text: str, field: str, says: str) -> None:
    answer = http.post("/v1/workflows/spec/validate", json={"yaml_definition": text})
    code, named = _refusal(answer)
    assert code == "invalid_spec" and says in answer.json()["detail"]["message"]
    assert named.startswith(field)  # the bomb: where the count ran out, under yaml_definition


def test_a_spec_of_thousands_of_broken_edges_is_one_bounded_400(http: httpx.Client) -> None:
    """Every edge into a handle that does not exist: the issues are counted, the first hundred listed."""
    edges = "".join(
        f"    - {{from: {{block: a, handle: output-json-{i}}}, to: {{block: b, handle: input-json-{i}}}}}\n"
        for i in range(1, 5_001)
    )
    text = HEAD + "metadata: {name: W}\nspec:\n  blocks:\n    a: {type: start_json}\n    b: {type: merge_dicts}\n"
    answer = http.post("/v1/workflows/spec/validate", json={"yaml_definition": text + "  edges:\n" + edges})
    code, field = _refusal(answer)
    assert code == "invalid_spec" and field.startswith("spec.edges[")
    details = answer.json()["detail"]["details"]
    assert len(details["issues"]) == 100 and details["issue_count"] >= 5_000
    assert details["issues"][-1]["path"].startswith("spec.edges[")
