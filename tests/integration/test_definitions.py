"""Workflow definitions through the official SDK and raw HTTP: workflows, blocks, edges, versions.

Real API, real S3 (SeaweedFS): drafts are written with conditional writes, so the concurrency tests here
exercise the store's If-Match, not a mock.
"""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from retab import Retab
from retab.exceptions import ConflictError, NotFoundError, ValidationError

from api.definitions import Definitions
from api.errors import InvalidError
from api.errors import NotFoundError as NotFoundError_
from storage.objects import ObjectStore
from tests.conftest import Stack

SCHEMA = {"type": "object", "properties": {"total": {"type": "number"}}}


@pytest.fixture
def definitions(store: ObjectStore) -> Definitions:
    """The service itself on the test S3 (the runs API calls it in-process)."""
    return Definitions(store)


def _uid() -> str:
    return uuid.uuid4().hex[:8]


def _workflow(client: Retab, stack: Stack, name: str = "defs") -> str:
    return client.workflows.create(project_id=stack.project_id, name=f"{name} {_uid()}").id


def _doc_extract(client: Retab, wf: str) -> tuple[str, str]:
    """A start_document block feeding an extract block; returns their ids."""
    start = client.workflows.blocks.create(workflow_id=wf, type="start_document", label="Document")
    extract = client.workflows.blocks.create(
        workflow_id=wf, type="extract", label="Extract", config={"json_schema": SCHEMA}
    )
    client.workflows.edges.create(
        workflow_id=wf,
        source_block=start.id,
        target_block=extract.id,
        source_handle="output-file-0",
        target_handle="input-file-document",
    )
    return start.id, extract.id


def _function(client: Retab, wf: str) -> str:
    return client.workflows.blocks.create(workflow_id=wf, type="function", config={"mapping": {"x": "total"}}).id


def _conditional(branch: str) -> dict[str, Any]:
    condition = {"id": branch, "sub_conditions": [{"path": "total", "operator": "gt", "expected": 100}]}
    return {"conditions": [condition]}


def _detail(response: httpx.Response) -> dict[str, Any]:
    detail: dict[str, Any] = response.json()["detail"]
    return detail


# -- workflows ------------------------------------------------------------------------------------------


def test_workflow_create_get_list_update_delete(client: Retab, stack: Stack) -> None:
    created = client.workflows.create(project_id=stack.project_id, name="Invoices", description="first")
    assert created.id.startswith("wf_")
    assert created.project_id == stack.project_id
    assert created.published is None

    fetched = client.workflows.get(created.id)
    assert (fetched.name, fetched.description) == ("Invoices", "first")
    listed = [w.id for w in client.workflows.list(limit=1000).data]
    assert created.id in listed

    updated = client.workflows.update(created.id, name="Invoices v2")
    assert (updated.name, updated.description) == ("Invoices v2", "first")
    assert updated.updated_at > created.updated_at
    assert client.workflows.get(created.id).name == "Invoices v2"

    client.workflows.delete(created.id)
    with pytest.raises(NotFoundError):
        client.workflows.get(created.id)
    assert created.id not in [w.id for w in client.workflows.list(limit=1000).data]


def test_deleting_a_workflow_frees_its_block_ids(client: Retab, stack: Stack) -> None:
    block_id = f"blk-reused-{_uid()}"
    wf = _workflow(client, stack)
    client.workflows.blocks.create(workflow_id=wf, id=block_id, type="start_document")
    client.workflows.delete(wf)

    other = _workflow(client, stack)
    block = client.workflows.blocks.create(workflow_id=other, id=block_id, type="start_document")
    assert block.workflow_id == other


def test_workflow_list_pages_with_cursors(client: Retab, stack: Stack) -> None:
    mine = {_workflow(client, stack, "paged") for _ in range(3)}
    seen: list[str] = []
    page = client.workflows.list(limit=2, order="asc", sort_by="created_at")
    while True:
        seen += [w.id for w in page.data]
        if not page.has_more:
            break
        page = client.workflows.list(limit=2, order="asc", sort_by="created_at", after=page.list_metadata.after)
    assert len(seen) == len(set(seen))
    assert mine <= set(seen)


def test_create_with_another_project_id_is_404(client: Retab, http: httpx.Client) -> None:
    with pytest.raises(NotFoundError) as raised:
        client.workflows.create(project_id="proj_someone_else", name="x")
    assert raised.value.details is not None and raised.value.details["field"] == "project_id"


def test_a_workflow_created_without_a_project_id_is_in_the_keys_project(stack: Stack, http: httpx.Client) -> None:
    """A client holding only a key need not know its project id (the CLI's `apply`)."""
    response = http.post("/v1/workflows", json={"name": "no project"}, headers={"Idempotency-Key": "no-project-1"})
    assert response.status_code == 201, response.text
    assert response.json()["project_id"] == stack.project_id
    named = {"name": "no project", "project_id": stack.project_id}
    again = http.post("/v1/workflows", json=named, headers={"Idempotency-Key": "no-project-1"})
    assert again.status_code in (200, 201) and again.json()["id"] == response.json()["id"]  # the same request


def test_missing_or_wrong_key_is_401(stack: Stack, client: Retab) -> None:
    wf = _workflow(client, stack)
    assert httpx.get(f"{stack.api_url}/v1/workflows/{wf}").status_code == 401
    wrong = httpx.get(f"{stack.api_url}/v1/workflows/{wf}", headers={"Api-Key": "sk_wrong"})
    assert wrong.status_code == 401
    assert httpx.get(f"{stack.api_url}/v1/workflows/blocks", params={"workflow_id": wf}).status_code == 401


def test_another_projects_key_sees_404(client: Retab, other_client: Retab, stack: Stack) -> None:
    wf = _workflow(client, stack)
    start, extract = _doc_extract(client, wf)
    edge = client.workflows.edges.list(workflow_id=wf).data[0]

    with pytest.raises(NotFoundError):
        other_client.workflows.get(wf)
    with pytest.raises(NotFoundError):
        other_client.workflows.blocks.list(workflow_id=wf)
    with pytest.raises(NotFoundError):
        other_client.workflows.blocks.get(start, workflow_id=wf)
    with pytest.raises(NotFoundError):
        other_client.workflows.blocks.get(start)
    with pytest.raises(NotFoundError):
        other_client.workflows.edges.get(edge.id)
    with pytest.raises(NotFoundError):
        other_client.workflows.edges.delete(edge.id)
    with pytest.raises(NotFoundError):
        other_client.workflows.delete(wf)
    with pytest.raises(NotFoundError):
        other_client.workflows.blocks.create(workflow_id=wf, type="start_document")
    assert wf not in [w.id for w in other_client.workflows.list(limit=1000).data]
    assert client.workflows.get(wf).id == wf  # untouched
    assert {b.id for b in client.workflows.blocks.list(workflow_id=wf).data} == {start, extract}


# -- blocks and edges -----------------------------------------------------------------------------------


def test_blocks_and_edges_crud(client: Retab, stack: Stack) -> None:
    wf = _workflow(client, stack)
    start, extract = _doc_extract(client, wf)
    assert start.startswith("blk_")

    blocks = {b.id: b for b in client.workflows.blocks.list(workflow_id=wf).data}
    assert blocks[extract].config == {"json_schema": SCHEMA}
    assert client.workflows.blocks.get(extract, workflow_id=wf).label == "Extract"
    assert client.workflows.blocks.get(extract).workflow_id == wf  # found without the workflow id

    moved = client.workflows.blocks.update(extract, workflow_id=wf, label="Totals", position_x=120)
    assert (moved.label, moved.position_x, moved.config) == ("Totals", 120, {"json_schema": SCHEMA})

    edges = client.workflows.edges.list(workflow_id=wf, source_block=start).data
    assert [(e.source_handle, e.target_handle) for e in edges] == [("output-file-0", "input-file-document")]
    assert client.workflows.edges.get(edges[0].id).target_block == extract
    assert client.workflows.edges.list(workflow_id=wf, target_block=start).data == []

    client.workflows.edges.delete(edges[0].id)
    with pytest.raises(NotFoundError):
        client.workflows.edges.get(edges[0].id)
    assert client.workflows.edges.list(workflow_id=wf).data == []

    client.workflows.blocks.delete(start, workflow_id=wf)
    with pytest.raises(NotFoundError):
        client.workflows.blocks.get(start, workflow_id=wf)
    assert [b.id for b in client.workflows.blocks.list(workflow_id=wf).data] == [extract]


def test_deleting_a_block_deletes_its_edges(client: Retab, stack: Stack) -> None:
    wf = _workflow(client, stack)
    start, extract = _doc_extract(client, wf)
    edge = client.workflows.edges.list(workflow_id=wf).data[0]
    client.workflows.blocks.delete(extract)
    assert client.workflows.edges.list(workflow_id=wf).data == []
    with pytest.raises(NotFoundError):
        client.workflows.edges.get(edge.id)
    assert [b.id for b in client.workflows.blocks.list(workflow_id=wf).data] == [start]


def test_edge_patch_moves_handles_and_is_revalidated(client: Retab, stack: Stack, http: httpx.Client) -> None:
    wf = _workflow(client, stack)
    a, b = _function(client, wf), _function(client, wf)
    edge = client.workflows.edges.create(workflow_id=wf, source_block=a, target_block=b)
    assert (edge.source_handle, edge.target_handle) == (None, None)  # each block has one handle per side

    ok = http.patch(f"/v1/workflows/edges/{edge.id}", json={"target_handle": "input-json-0"})
    assert ok.status_code == 200, ok.text
    assert ok.json()["target_handle"] == "input-json-0"

    bad = http.patch(f"/v1/workflows/edges/{edge.id}", json={"target_handle": "input-json-9"})
    assert bad.status_code == 422
    assert bad.json()["detail"]["details"]["handle"] == "input-json-9"
    assert client.workflows.edges.get(edge.id).target_handle == "input-json-0"


def test_block_list_pages_by_cursor(client: Retab, stack: Stack) -> None:
    wf = _workflow(client, stack)
    made = {client.workflows.blocks.create(workflow_id=wf, type="start_json").id for _ in range(5)}
    first = client.workflows.blocks.list(workflow_id=wf, limit=2)
    assert len(first.data) == 2 and first.has_more
    seen = [b.id for b in first]  # auto-paging through `after`
    assert sorted(seen) == sorted(made)


def test_block_config_merge_and_replace(client: Retab, stack: Stack) -> None:
    wf = _workflow(client, stack)
    block = client.workflows.blocks.create(
        workflow_id=wf, type="extract", config={"json_schema": SCHEMA, "instructions": "be terse", "temperature": 0.5}
    )
    merged = client.workflows.blocks.update(
        block.id,
        workflow_id=wf,
        config={"instructions": None, "json_schema": {"properties": {"n": {"type": "integer"}}}},
    )
    assert merged.config is not None
    assert "instructions" not in merged.config  # null deletes
    assert merged.config["temperature"] == 0.5  # untouched keys stay
    assert set(merged.config["json_schema"]["properties"]) == {"total", "n"}  # nested objects merge

    replaced = client.workflows.blocks.update(
        block.id, workflow_id=wf, config={"json_schema": SCHEMA}, config_mode="replace"
    )
    assert replaced.config == {"json_schema": SCHEMA}


def test_validate_config_hashes_without_writing(client: Retab, stack: Stack) -> None:
    wf = _workflow(client, stack)
    block = client.workflows.blocks.create(workflow_id=wf, type="extract", config={"json_schema": SCHEMA})
    other = {"json_schema": SCHEMA, "instructions": "x"}
    result = client.workflows.blocks.create_block_validate_config(block.id, config=other, workflow_id=wf)
    assert (result.ok, result.block_type, result.block_id) == (True, "extract", block.id)
    again = client.workflows.blocks.create_block_validate_config(block.id, config=dict(reversed(other.items())))
    assert len(result.config_hash) == 64 and again.config_hash == result.config_hash
    assert client.workflows.blocks.get(block.id).config == {"json_schema": SCHEMA}  # not written

    with pytest.raises(ValidationError) as raised:
        client.workflows.blocks.create_block_validate_config(block.id, config={"json_schema": "nope"})
    assert raised.value.details is not None and raised.value.details["field"] == "config.json_schema"


# -- versions -------------------------------------------------------------------------------------------


def test_publish_is_content_addressed(client: Retab, stack: Stack) -> None:
    wf = _workflow(client, stack)
    _, extract = _doc_extract(client, wf)

    first = client.workflows.publish(wf, description="v1")
    assert first.published is not None and first.published.version_id is not None
    assert first.published.version_id.startswith("ver_") and first.published.description == "v1"
    again = client.workflows.publish(wf, description="same graph")
    assert again.published is not None and again.published.version_id == first.published.version_id
    assert [v.id for v in client.workflows.list_versions(workflow_id=wf).data] == [first.published.version_id]

    client.workflows.blocks.update(extract, workflow_id=wf, config={"instructions": "read carefully"})
    second = client.workflows.publish(wf, description="v2")
    assert second.published is not None and second.published.version_id != first.published.version_id
    assert client.workflows.get(wf).published.version_id == second.published.version_id  # type: ignore[union-attr]

    versions = client.workflows.list_versions(workflow_id=wf).data
    assert [v.id for v in versions] == [second.published.version_id, first.published.version_id]
    old = client.workflows.get_version(first.published.version_id, workflow_id=wf)
    old_extract = next(b for b in old.blocks if b.id == extract)  # type: ignore[union-attr]
    assert old_extract.config == {"json_schema": SCHEMA}
    assert len(old.edges or []) == 1 and old.edges[0].source_handle == "output-file-0"  # type: ignore[index]


def test_publish_refuses_an_invalid_draft(client: Retab, stack: Stack) -> None:
    wf = _workflow(client, stack)
    block = client.workflows.blocks.create(workflow_id=wf, type="conditional", config=_conditional("big"))
    target = _function(client, wf)
    client.workflows.edges.create(
        workflow_id=wf, source_block=block.id, target_block=target, source_handle="output-json-big"
    )
    # Renaming the branch strands the edge on a handle that no longer exists: allowed in a draft...
    client.workflows.blocks.update(
        block.id,
        workflow_id=wf,
        config=_conditional("large"),
        config_mode="replace",
    )
    # ...but not published.
    with pytest.raises(ValidationError) as raised:
        client.workflows.publish(wf)
    details = raised.value.details or {}
    assert (details["block_id"], details["handle"]) == (block.id, "output-json-big")
    assert client.workflows.get(wf).published is None


def test_discard_draft_and_restore(client: Retab, stack: Stack, http: httpx.Client) -> None:
    wf = _workflow(client, stack)
    with pytest.raises(ConflictError):
        client.workflows.discard_draft(wf)  # nothing published yet

    start, extract = _doc_extract(client, wf)
    v1 = client.workflows.publish(wf).published.version_id  # type: ignore[union-attr]
    client.workflows.blocks.delete(start, workflow_id=wf)
    client.workflows.blocks.update(extract, workflow_id=wf, label="changed")
    assert client.workflows.publish(wf).published.version_id != v1  # type: ignore[union-attr]

    restored = http.post(f"/v1/workflows/versions/{v1}/restore", params={"workflow_id": wf})
    assert restored.status_code == 200, restored.text
    assert restored.headers["ETag"]
    blocks = {b.id: b for b in client.workflows.blocks.list(workflow_id=wf).data}
    assert set(blocks) == {start, extract} and blocks[extract].label == "Extract"
    assert len(client.workflows.edges.list(workflow_id=wf).data) == 1
    assert client.workflows.blocks.get(start).workflow_id == wf  # the restored id is indexed again

    client.workflows.blocks.delete(start, workflow_id=wf)
    discarded = client.workflows.discard_draft(wf)  # back to production: the second version
    assert discarded.published is not None and discarded.published.version_id != v1
    assert [b.label for b in client.workflows.blocks.list(workflow_id=wf).data] == ["changed"]


def test_unknown_version_is_404(client: Retab, stack: Stack) -> None:
    wf = _workflow(client, stack)
    with pytest.raises(NotFoundError):
        client.workflows.get_version("ver_" + "0" * 32, workflow_id=wf)
    with pytest.raises(NotFoundError):
        client.workflows.create_version_restore("ver_" + "0" * 32, workflow_id=wf)


# -- bad input ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("block_type", ["not_a_block", "edit"])
def test_unknown_or_unbuilt_block_type_is_422_on_type(
    http: httpx.Client, client: Retab, stack: Stack, block_type: str
) -> None:
    wf = _workflow(client, stack)
    response = http.post("/v1/workflows/blocks", json={"workflow_id": wf, "type": block_type})
    assert response.status_code == 422
    assert _detail(response)["details"]["field"] == "type"
    assert block_type in _detail(response)["message"]
    assert client.workflows.blocks.list(workflow_id=wf).data == []


def test_config_that_fails_its_model_is_422_naming_field_and_block(client: Retab, stack: Stack) -> None:
    wf = _workflow(client, stack)
    with pytest.raises(ValidationError) as raised:
        client.workflows.blocks.create(workflow_id=wf, id=f"x-{_uid()}", type="extract", config={"json_schema": "nope"})
    details = raised.value.details or {}
    assert details["field"] == "config.json_schema"
    assert details["block_id"].startswith("x-")

    block = client.workflows.blocks.create(workflow_id=wf, type="extract", config={"json_schema": SCHEMA})
    with pytest.raises(ValidationError) as raised:
        client.workflows.blocks.update(block.id, workflow_id=wf, config={"n_consensus": "three"})
    assert (raised.value.details or {})["field"] == "config.n_consensus"
    assert (raised.value.details or {})["block_id"] == block.id
    assert client.workflows.blocks.get(block.id).config == {"json_schema": SCHEMA}


def test_edge_to_a_missing_block_is_422_naming_it(client: Retab, stack: Stack) -> None:
    wf = _workflow(client, stack)
    start = client.workflows.blocks.create(workflow_id=wf, type="start_document").id
    with pytest.raises(ValidationError) as raised:
        client.workflows.edges.create(workflow_id=wf, source_block=start, target_block="blk_ghost")
    details = raised.value.details or {}
    assert (details["block_id"], details["field"]) == ("blk_ghost", "target_block")
    assert client.workflows.edges.list(workflow_id=wf).data == []


def test_edge_to_a_missing_handle_is_422_naming_it(client: Retab, stack: Stack) -> None:
    wf = _workflow(client, stack)
    start = client.workflows.blocks.create(workflow_id=wf, type="start_document").id
    extract = client.workflows.blocks.create(workflow_id=wf, type="extract", config={"json_schema": SCHEMA}).id
    with pytest.raises(ValidationError) as raised:
        client.workflows.edges.create(
            workflow_id=wf, source_block=start, target_block=extract, target_handle="input-file-invoice"
        )
    details = raised.value.details or {}
    assert (details["handle"], details["block_id"], details["field"]) == (
        "input-file-invoice",
        extract,
        "target_handle",
    )


def test_edge_that_closes_a_cycle_is_422(client: Retab, stack: Stack) -> None:
    wf = _workflow(client, stack)
    a, b = _function(client, wf), _function(client, wf)
    client.workflows.edges.create(workflow_id=wf, source_block=a, target_block=b)
    with pytest.raises(ValidationError) as raised:
        client.workflows.edges.create(workflow_id=wf, source_block=b, target_block=a)
    assert raised.value.code == "cycle"
    assert (raised.value.details or {})["block_id"] in {a, b}
    assert len(client.workflows.edges.list(workflow_id=wf).data) == 1


def test_edge_into_a_start_block_is_422(client: Retab, stack: Stack) -> None:
    wf = _workflow(client, stack)
    start, extract = _doc_extract(client, wf)
    with pytest.raises(ValidationError) as raised:
        client.workflows.edges.create(workflow_id=wf, source_block=extract, target_block=start)
    assert raised.value.code == "start_block_has_input"
    assert (raised.value.details or {})["block_id"] == start


def test_second_edge_into_one_input_is_422(client: Retab, stack: Stack) -> None:
    wf = _workflow(client, stack)
    start, extract = _doc_extract(client, wf)
    other = client.workflows.blocks.create(workflow_id=wf, type="start_document").id
    with pytest.raises(ValidationError) as raised:
        client.workflows.edges.create(workflow_id=wf, source_block=other, target_block=extract)
    assert raised.value.code == "duplicate_input_edge"
    assert (raised.value.details or {})["handle"] == "input-file-document"


def test_duplicate_block_id_is_409(client: Retab, stack: Stack) -> None:
    block_id = f"blk-dup-{_uid()}"
    wf, other = _workflow(client, stack), _workflow(client, stack)
    client.workflows.blocks.create(workflow_id=wf, id=block_id, type="start_document", label="first")
    with pytest.raises(ConflictError) as raised:
        client.workflows.blocks.create(workflow_id=wf, id=block_id, type="start_json")
    assert (raised.value.details or {})["block_id"] == block_id
    with pytest.raises(ConflictError):  # ids are unique across the project's workflows
        client.workflows.blocks.create(workflow_id=other, id=block_id, type="start_json")
    assert client.workflows.blocks.get(block_id, workflow_id=wf).label == "first"
    assert client.workflows.blocks.list(workflow_id=other).data == []


def test_bad_paging_is_refused_not_500(client: Retab, stack: Stack, http: httpx.Client) -> None:
    wf = _workflow(client, stack)
    response = http.get("/v1/workflows/blocks", params={"workflow_id": wf, "after": "blk_gone"})
    assert response.status_code == 422 and _detail(response)["details"]["field"] == "after"
    response = http.get("/v1/workflows", params={"sort_by": "color"})
    assert response.status_code == 422 and _detail(response)["details"]["field"] == "sort_by"
    response = http.get("/v1/workflows/blocks", params={"workflow_id": "../../etc"})
    assert response.status_code == 404


# -- concurrency ----------------------------------------------------------------------------------------


def test_parallel_block_creates_lose_no_write(client: Retab, stack: Stack) -> None:
    wf = _workflow(client, stack)

    def create(i: int) -> str:
        return client.workflows.blocks.create(workflow_id=wf, type="start_json", label=f"b{i}").id

    with ThreadPoolExecutor(max_workers=20) as pool:
        created = list(pool.map(create, range(20)))
    stored = client.workflows.blocks.list(workflow_id=wf, limit=100).data
    assert sorted(b.id for b in stored) == sorted(created)
    assert sorted(b.label or "" for b in stored) == sorted(f"b{i}" for i in range(20))


def test_stale_if_match_is_409_and_changes_nothing(client: Retab, stack: Stack, http: httpx.Client) -> None:
    wf = _workflow(client, stack)
    block = client.workflows.blocks.create(workflow_id=wf, type="start_document", label="original")
    read = http.get(f"/v1/workflows/blocks/{block.id}", params={"workflow_id": wf})
    etag = read.headers["ETag"]

    fresh = http.patch(f"/v1/workflows/blocks/{block.id}", json={"position_x": 5}, headers={"If-Match": etag})
    assert fresh.status_code == 200, fresh.text
    assert fresh.headers["ETag"] != etag

    stale = http.patch(f"/v1/workflows/blocks/{block.id}", json={"label": "overwrite"}, headers={"If-Match": etag})
    assert stale.status_code == 409
    assert _detail(stale)["code"] == "draft_changed"
    stored = client.workflows.blocks.get(block.id, workflow_id=wf)
    assert (stored.label, stored.position_x) == ("original", 5)


# -- resolve_version (the runs API's entry point) -------------------------------------------------------


async def test_resolve_version_pins_production_draft_or_an_id(
    client: Retab, stack: Stack, definitions: Definitions
) -> None:
    wf = _workflow(client, stack)
    with pytest.raises(InvalidError) as raised:
        await definitions.resolve_version(stack.project_id, wf, "production")
    assert (raised.value.code, raised.value.details["field"]) == ("no_published_version", "version")

    _, extract = _doc_extract(client, wf)
    snapshot = await definitions.resolve_version(stack.project_id, wf, "draft")
    assert snapshot.id.startswith("ver_") and {b.id for b in snapshot.blocks} >= {extract}
    assert (await definitions.resolve_version(stack.project_id, wf, "draft")).id == snapshot.id  # idempotent
    assert client.workflows.list_versions(workflow_id=wf).data == []  # draft snapshots are not listed
    assert client.workflows.get_version(snapshot.id, workflow_id=wf).id == snapshot.id  # but runs can show them
    pinned = await definitions.resolve_version(stack.project_id, wf, snapshot.id)
    assert pinned.graph() == snapshot.graph()

    published = client.workflows.publish(wf).published
    assert published is not None and published.version_id == snapshot.id  # same graph, same id
    assert [v.id for v in client.workflows.list_versions(workflow_id=wf).data] == [snapshot.id]
    production = await definitions.resolve_version(stack.project_id, wf, "production")
    assert production.id == snapshot.id


@pytest.mark.parametrize(
    ("requested", "code"), [("ver_" + "0" * 32, "unknown_version"), ("latest-ish", "invalid_version")]
)
async def test_resolve_version_refuses_unknown_versions(
    client: Retab, stack: Stack, definitions: Definitions, requested: str, code: str
) -> None:
    wf = _workflow(client, stack)
    with pytest.raises(InvalidError) as raised:
        await definitions.resolve_version(stack.project_id, wf, requested)
    assert (raised.value.code, raised.value.details["field"]) == (code, "version")


async def test_resolve_version_refuses_an_invalid_draft_naming_the_block(
    client: Retab, stack: Stack, definitions: Definitions
) -> None:
    wf = _workflow(client, stack)
    a, b = _function(client, wf), _function(client, wf)
    client.workflows.edges.create(workflow_id=wf, source_block=a, target_block=b, source_handle="output-json-0")
    client.workflows.blocks.delete(a, workflow_id=wf)  # leaves b with no input: valid; now strand an edge
    start = client.workflows.blocks.create(workflow_id=wf, type="conditional", config=_conditional("big")).id
    client.workflows.edges.create(workflow_id=wf, source_block=start, target_block=b, source_handle="output-json-big")
    client.workflows.blocks.update(start, workflow_id=wf, config=_conditional("large"), config_mode="replace")
    with pytest.raises(InvalidError) as raised:
        await definitions.resolve_version(stack.project_id, wf, "draft")
    assert (raised.value.details["block_id"], raised.value.details["field"]) == (start, "source_handle")
    with pytest.raises(NotFoundError_):
        await definitions.resolve_version(stack.project_id, "wf_missing", "draft")


def test_idempotency_key_creates_one_workflow(http: httpx.Client, stack: Stack) -> None:
    body = {"name": "once", "project_id": stack.project_id}
    key = {"Idempotency-Key": f"wf-{uuid.uuid4().hex}"}
    first = http.post("/v1/workflows", json=body, headers=key)
    second = http.post("/v1/workflows", json=body, headers=key)
    assert first.status_code == second.status_code == 201
    assert first.json()["id"] == second.json()["id"]
    other = http.post("/v1/workflows", json=body, headers={"Idempotency-Key": f"wf-{uuid.uuid4().hex}"})
    assert other.json()["id"] != first.json()["id"]


def test_publish_refuses_a_partly_wired_block_naming_its_input(client: Retab, http: httpx.Client, stack: Stack) -> None:
    wf_id = _workflow(client, stack)
    start, extract = f"in-{_uid()}", f"ex-{_uid()}"
    config = {"json_schema": SCHEMA, "inputs": [{"name": "text", "type": "json"}, {"name": "notes", "type": "json"}]}
    client.workflows.blocks.create(workflow_id=wf_id, id=start, type="start_json")
    client.workflows.blocks.create(workflow_id=wf_id, id=extract, type="extract", config=config)
    client.workflows.edges.create(
        workflow_id=wf_id,
        source_block=start,
        target_block=extract,
        source_handle="output-json-0",
        target_handle="input-json-text",
    )
    answer = http.post(f"/v1/workflows/{wf_id}/publish", json={})
    assert answer.status_code == 422
    details = answer.json()["detail"]["details"]
    assert (details["block_id"], details["handle"]) == (extract, "input-json-notes")


def test_editing_the_draft_moves_the_workflows_updated_at(client: Retab, stack: Stack) -> None:
    wf_id = _workflow(client, stack)
    before = client.workflows.get(wf_id).updated_at
    client.workflows.blocks.create(workflow_id=wf_id, id=f"in-{_uid()}", type="start_json")
    assert client.workflows.get(wf_id).updated_at > before


def test_the_frameworks_own_errors_answer_in_the_api_shape(http: httpx.Client) -> None:
    """A body nested past the JSON decoder's recursion limit, an unknown path and a wrong method."""
    deep = "[" * 100_000 + "]" * 100_000
    answer = http.post("/v1/workflows", content=deep, headers={"content-type": "application/json"})
    assert answer.status_code == 400, answer.text
    assert answer.json()["detail"]["code"] == "invalid_request"
    assert answer.json()["detail"]["details"] == {"field": "body"}
    missing = http.get("/v1/no-such-path")
    assert missing.status_code == 404 and missing.json()["detail"]["code"] == "not_found"
    wrong = http.put("/v1/workflows")
    assert wrong.status_code == 405 and wrong.json()["detail"]["code"] == "method_not_allowed"
    assert "GET" in wrong.headers["allow"]
