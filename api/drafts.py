"""A workflow's draft graph in S3: optimistic concurrency on its ETag, and the project-wide id index.

The draft is one JSON document `{"blocks": [...], "edges": [...]}` at `keys.draft()`. Every change is
read (ETag) → change → write with `If-Match`; a write that loses a race re-reads and re-applies the change,
so concurrent edits that do not conflict all land. A client that sends `If-Match` with an ETag that is no
longer current gets 409: it edited a draft it had not seen.

Block and edge ids are claimed under `keys.block_index()` / `keys.edge_index()` with `If-None-Match`, so an
id is unique within a project; a claim records the workflow holding it (edge routes carry only the id).
A claim whose workflow no longer exists is stale and may be taken over.
"""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal, NamedTuple, TypeVar

from api.errors import ApiError, ConflictError, InvalidError, NotFoundError
from docflow import keys
from docflow.graph import GraphIssue, validate_block, validate_graph
from docflow.models import Graph, WorkflowRecord
from storage.objects import NotFound, ObjectStore, PreconditionFailed

R = TypeVar("R")
Kind = Literal["block", "edge"]

MAX_ATTEMPTS = 10
# Full-jitter exponential backoff between attempts: spreads writers that lost the same race.
_BACKOFF_SECONDS = 0.025
_BACKOFF_CAP_SECONDS = 1.0
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


class Draft(NamedTuple):
    """A draft graph and the ETag it was read or written at."""

    graph: Graph
    etag: str


def safe_id(value: str) -> bool:
    """Whether an id is safe inside an S3 key (letters, digits, `_`, `-`, `.`)."""
    return bool(_SAFE_ID.match(value)) and ".." not in value


def same_etag(sent: str, current: str) -> bool:
    """Whether a client's `If-Match` names the current ETag (quotes and a weak `W/` prefix ignored)."""
    if sent.strip() == "*":
        return True
    tags = [tag.strip().removeprefix("W/").strip('"') for tag in sent.split(",")]
    return current.strip('"') in tags


def graph_error(issues: list[GraphIssue]) -> InvalidError:
    """A 422 naming the first issue's block, edge, handle and field, with every issue in `issues`."""
    first = issues[0]
    return InvalidError(
        first.message,
        code=first.code,
        block_id=first.block_id,
        edge_id=first.edge_id,
        handle=first.handle,
        field=first.field,
        issues=[issue.model_dump(exclude_none=True) for issue in issues],
    )


def block_config_issues(block_id: str, block_type: str, config: dict[str, Any]) -> InvalidError | None:
    """The 422 for a config that does not fit its block type's model, naming the block and field."""
    issues = [i.model_copy(update={"block_id": block_id}) for i in validate_block(block_type, config)]
    return graph_error(issues) if issues else None


def introduced_issues(before: Graph, after: Graph) -> list[GraphIssue]:
    """The issues of `after` that `before` did not have: what a change broke."""
    old = {_issue_key(issue) for issue in validate_graph(before)}
    return [issue for issue in validate_graph(after) if _issue_key(issue) not in old]


def _issue_key(issue: GraphIssue) -> tuple[str | None, ...]:
    return (issue.code, issue.block_id, issue.edge_id, issue.handle, issue.field)


def _index_key(project_id: str, kind: Kind, item_id: str) -> str:
    return keys.block_index(project_id, item_id) if kind == "block" else keys.edge_index(project_id, item_id)


class DraftStore:
    """Reads and changes drafts; claims and releases block and edge ids."""

    def __init__(self, store: ObjectStore) -> None:
        self._store = store

    async def create(self, project_id: str, workflow_id: str) -> None:
        """Write an empty draft for a new workflow."""
        await self._store.put_json(keys.draft(project_id, workflow_id), Graph(), if_none_match=True)

    async def read(self, project_id: str, workflow_id: str) -> Draft:
        """The draft and its ETag; 404 if the workflow does not exist."""
        if not safe_id(workflow_id):
            raise NotFoundError(f"no workflow '{workflow_id}'", workflow_id=workflow_id)
        try:
            found = await self._store.get_json(keys.draft(project_id, workflow_id))
        except NotFound as exc:
            raise NotFoundError(f"no workflow '{workflow_id}'", workflow_id=workflow_id) from exc
        return Draft(Graph.model_validate(found.data), found.etag)

    async def change(
        self, project_id: str, workflow_id: str, apply: Callable[[Graph], R], if_match: str | None
    ) -> tuple[R, Draft]:
        """Apply `apply` (which edits the graph in place) to the current draft and write it with If-Match."""
        key = keys.draft(project_id, workflow_id)
        if if_match is not None and if_match.strip() == "*":
            if_match = None
        for attempt in range(MAX_ATTEMPTS):
            current = await self.read(project_id, workflow_id)
            _check_if_match(if_match, current.etag)
            graph = current.graph.model_copy(deep=True)
            result = apply(graph)
            try:
                etag = await self._store.put_json(key, graph, if_match=current.etag)
            except PreconditionFailed:
                _check_if_match(if_match, None)
                await asyncio.sleep(random.uniform(0, min(_BACKOFF_CAP_SECONDS, _BACKOFF_SECONDS * 2**attempt)))
                continue
            await self.touch(project_id, workflow_id)
            return result, Draft(graph, etag)
        raise ConflictError(
            f"the draft of workflow '{workflow_id}' kept changing under this edit; retry it",
            code="draft_busy",
            workflow_id=workflow_id,
        )

    async def touch(self, project_id: str, workflow_id: str, attempts: int = 3) -> None:
        """Move the workflow's `updated_at` to now; best effort, since the edit itself already landed.

        With If-Match, so a concurrent publish or rename is never overwritten; a lost race leaves the
        timestamp of whichever write won, which is as recent.
        """
        key = keys.workflow(project_id, workflow_id)
        for _ in range(attempts):
            try:
                found = await self._store.get_json(key)
                record = WorkflowRecord.model_validate(found.data).model_copy(update={"updated_at": datetime.now(UTC)})
                await self._store.put_json(key, record, if_match=found.etag)
                return
            except PreconditionFailed:
                continue
            except NotFound:
                return

    async def replace(self, project_id: str, workflow_id: str, graph: Graph, if_match: str | None) -> Draft:
        """Make `graph` the draft (discard, restore): claims its ids and releases those it drops."""
        claimed = await self._claim_graph(project_id, workflow_id, graph)
        try:
            old, draft = await self.change(project_id, workflow_id, lambda g: _swap(g, graph), if_match)
        except ApiError:
            await self._release_all(project_id, workflow_id, claimed)
            raise
        await self._release_all(project_id, workflow_id, _ids(old) - _ids(graph))
        return draft

    async def owner(self, project_id: str, kind: Kind, item_id: str) -> str | None:
        """The workflow holding a block or edge id, if any."""
        if not safe_id(item_id):
            return None
        try:
            found = await self._store.get_json(_index_key(project_id, kind, item_id))
        except NotFound:
            return None
        holder = found.data.get("workflow_id")
        return holder if isinstance(holder, str) else None

    async def claim(self, project_id: str, kind: Kind, item_id: str, workflow_id: str) -> None:
        """Claim a new id for a workflow; 409 if the project already uses it."""
        await self._claim(project_id, kind, item_id, workflow_id, reuse=False)

    async def release(self, project_id: str, kind: Kind, item_id: str, workflow_id: str) -> None:
        """Free an id the workflow holds (an id held by another workflow is left alone)."""
        if await self.owner(project_id, kind, item_id) == workflow_id:
            await self._store.delete(_index_key(project_id, kind, item_id))

    async def release_graph(self, project_id: str, workflow_id: str, graph: Graph) -> None:
        """Free every id of a graph that the workflow holds."""
        await self._release_all(project_id, workflow_id, _ids(graph))

    async def _claim(self, project_id: str, kind: Kind, item_id: str, workflow_id: str, *, reuse: bool) -> bool:
        """True if newly claimed, False if already held by this workflow and `reuse`; else 409."""
        key = _index_key(project_id, kind, item_id)
        record = {"workflow_id": workflow_id}
        try:
            await self._store.put_json(key, record, if_none_match=True)
            return True
        except PreconditionFailed:
            pass
        try:
            found = await self._store.get_json(key)
        except NotFound:  # released meanwhile: try once more
            await self._store.put_json(key, record, if_none_match=True)
            return True
        holder = str(found.data.get("workflow_id", ""))
        if reuse and holder == workflow_id:
            return False
        if holder != workflow_id and not await self._store.exists(keys.workflow(project_id, holder)):
            await self._store.put_json(key, record, if_match=found.etag)  # stale claim: take it over
            return True
        raise _duplicate(kind, item_id)

    async def _claim_graph(self, project_id: str, workflow_id: str, graph: Graph) -> set[tuple[Kind, str]]:
        claimed: set[tuple[Kind, str]] = set()
        try:
            for kind, item_id in sorted(_ids(graph)):
                if await self._claim(project_id, kind, item_id, workflow_id, reuse=True):
                    claimed.add((kind, item_id))
        except (ApiError, PreconditionFailed):
            await self._release_all(project_id, workflow_id, claimed)
            raise
        return claimed

    async def _release_all(self, project_id: str, workflow_id: str, ids: set[tuple[Kind, str]]) -> None:
        await asyncio.gather(*(self.release(project_id, kind, i, workflow_id) for kind, i in ids))


def _duplicate(kind: Kind, item_id: str) -> ConflictError:
    message = f"a {kind} with id '{item_id}' already exists in this project; ids are unique per project"
    if kind == "block":
        return ConflictError(message, code="duplicate_block_id", block_id=item_id, field="id")
    return ConflictError(message, code="duplicate_edge_id", edge_id=item_id, field="id")


def _check_if_match(if_match: str | None, current: str | None) -> None:
    """409 when the client's `If-Match` is not the current ETag (`current` None: the draft just changed)."""
    if if_match is None:
        return
    if current is None or not same_etag(if_match, current):
        raise ConflictError(
            "the draft changed since you read it (If-Match does not match its ETag); read it again and retry",
            code="draft_changed",
            current_etag=current,
        )


def _swap(graph: Graph, new: Graph) -> Graph:
    old = Graph(blocks=graph.blocks, edges=graph.edges)
    graph.blocks = [b.model_copy(deep=True) for b in new.blocks]
    graph.edges = [e.model_copy(deep=True) for e in new.edges]
    return old


def _ids(graph: Graph) -> set[tuple[Kind, str]]:
    blocks: set[tuple[Kind, str]] = {("block", b.id) for b in graph.blocks}
    return blocks | {("edge", e.id) for e in graph.edges}
