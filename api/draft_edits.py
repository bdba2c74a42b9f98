"""Block and edge edits on a workflow's draft, each validated before it is written.

A block write validates the block's config against its type's model (`validate_block`); an edge write
validates the resulting graph and refuses what the edge breaks (missing block or handle, file↔json, a second
edge into an input, an edge into a start block, a cycle). Issues the draft already had do not block an edit:
a draft may be incomplete while it is edited; publishing requires it whole.

A draft holds at most `max_blocks` blocks (setting `max_blocks_per_workflow`): the whole graph is read and
rewritten on every edit and walked by every run, so its size must be bounded. The count is checked inside the
conditional write, so concurrent creates cannot pass it together.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from api.drafts import Draft, DraftStore, Kind, block_config_issues, graph_error, introduced_issues, safe_id
from api.errors import ConflictError, InvalidError, NotFoundError
from api.function_code import check_function_code
from docflow.ids import BLOCK, EDGE, new_id
from docflow.models import Block, Edge, Graph
from storage.objects import ObjectStore

T = TypeVar("T")
Item = TypeVar("Item", Block, Edge)
ConfigMode = Literal["merge", "replace"]
DEFAULT_MAX_BLOCKS = 500  # the default of Settings.max_blocks_per_workflow
_TYPES = (
    "start_document, start_json, note, parse, extract, conditional, function, api_call, merge_dicts, split, "
    "classifier, for_each, while_loop"
)


class BlockCreate(BaseModel):
    """A new block (the SDK's `WorkflowBlockCreateRequest`)."""

    model_config = ConfigDict(extra="ignore")
    workflow_id: str
    id: str | None = Field(default=None, description="Block id, unique in the project; default `blk_…`")
    type: str = Field(description=f"One of: {_TYPES} (edit: not yet)")
    label: str | None = ""
    position_x: float | None = 0
    position_y: float | None = 0
    width: float | None = None
    height: float | None = None
    config: dict[str, Any] | None = Field(default=None, description="The config of the block's type")
    parent_id: str | None = None


class BlockUpdate(BaseModel):
    """A partial block update; `config_mode` merge (default: deep merge, null deletes a key) or replace."""

    model_config = ConfigDict(extra="ignore")
    label: str | None = None
    position_x: float | None = None
    position_y: float | None = None
    width: float | None = None
    height: float | None = None
    config: dict[str, Any] | None = None
    parent_id: str | None = None
    config_mode: ConfigMode | None = None


class ConfigCheck(BaseModel):
    """A config to validate against a block's type without writing it."""

    model_config = ConfigDict(extra="ignore")
    config: dict[str, Any]
    config_mode: ConfigMode | None = "replace"


class EdgeCreate(BaseModel):
    """A new edge (the SDK's `WorkflowEdgeCreateRequest`)."""

    model_config = ConfigDict(extra="ignore")
    workflow_id: str
    id: str | None = Field(default=None, description="Edge id, unique in the project; default `edge_…`")
    source_block: str
    target_block: str
    source_handle: str | None = Field(default=None, description="Output handle; may be omitted if only one")
    target_handle: str | None = Field(default=None, description="Input handle; may be omitted if only one")


class EdgeUpdate(BaseModel):
    """A partial edge update: new endpoints or handles (a null handle means the block's only one)."""

    model_config = ConfigDict(extra="ignore")
    source_block: str | None = None
    target_block: str | None = None
    source_handle: str | None = None
    target_handle: str | None = None


def merge_patch(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """JSON Merge Patch: nested objects merge, null deletes a key, anything else replaces."""
    merged = dict(base)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_patch(merged[key], value)
        else:
            merged[key] = value
    return merged


def _now() -> datetime:
    return datetime.now(UTC)


def _new_id(given: str | None, prefix: str) -> str:
    if given is None:
        return new_id(prefix)
    if not safe_id(given):
        message = f"id '{given}' is not valid: use letters, digits, '_', '-' or '.' (at most 128)"
        raise InvalidError(message, code="invalid_id", field="id")
    return given


def _find_block(graph: Graph, block_id: str) -> Block:
    block = graph.block(block_id)
    if block is None:
        raise NotFoundError(f"no block '{block_id}'", block_id=block_id)
    return block


def _find_edge(graph: Graph, edge_id: str) -> Edge:
    edge = next((e for e in graph.edges if e.id == edge_id), None)
    if edge is None:
        raise NotFoundError(f"no edge '{edge_id}'", edge_id=edge_id)
    return edge


class GraphEditor:
    """Reads and edits the blocks and edges of drafts."""

    def __init__(self, store: ObjectStore, *, max_blocks: int = DEFAULT_MAX_BLOCKS) -> None:
        self.drafts = DraftStore(store)
        self.max_blocks = max_blocks

    async def workflow_of(self, project_id: str, kind: Kind, item_id: str, workflow_id: str | None) -> str:
        """The workflow given, or the one holding the block or edge id; 404 if none."""
        holder = workflow_id or await self.drafts.owner(project_id, kind, item_id)
        if holder is None:
            raise NotFoundError(f"no {kind} '{item_id}'", **{f"{kind}_id": item_id})
        return holder

    # -- blocks ------------------------------------------------------------------------------------------

    async def get_block(self, project_id: str, block_id: str, workflow_id: str | None) -> tuple[Block, str]:
        """A block of a draft, and the draft's ETag."""
        draft = await self.drafts.read(project_id, await self.workflow_of(project_id, "block", block_id, workflow_id))
        return _find_block(draft.graph, block_id), draft.etag

    async def create_block(self, project_id: str, body: BlockCreate, if_match: str | None) -> tuple[Block, str]:
        """Add a block to a draft; 422 on a bad type or config, 409 on an id the project already uses."""
        block_id = _new_id(body.id, BLOCK)
        config = body.config or {}
        if (error := block_config_issues(block_id, body.type, config)) is not None:
            raise error
        await check_function_code(block_id, body.type, config)
        block = Block.model_validate(
            {
                **body.model_dump(exclude={"workflow_id", "id", "config"}, exclude_none=True),
                "id": block_id,
                "workflow_id": body.workflow_id,
                "project_id": project_id,
                "config": config,
                "updated_at": _now(),
            }
        )

        def put(graph: Graph) -> Block:
            _check_room(graph, body.workflow_id, self.max_blocks)
            return _put_block(graph, block, new=True)

        etag = await self._add(project_id, "block", block_id, body.workflow_id, put, if_match)
        return block, etag

    async def update_block(
        self, project_id: str, block_id: str, workflow_id: str | None, body: BlockUpdate, if_match: str | None
    ) -> tuple[Block, str]:
        """Change a block's fields; its config merges (default) or is replaced, then is validated."""
        workflow_id = await self.workflow_of(project_id, "block", block_id, workflow_id)
        # New code is the only part of a config whose check is too costly for the draft's critical section.
        await check_function_code(block_id, "function", body.config)

        def apply(graph: Graph) -> Block:
            updated = _patched(_find_block(graph, block_id), body)
            if (error := block_config_issues(block_id, updated.type, updated.config)) is not None:
                raise error
            return _put_block(graph, updated)

        return _with_etag(await self.drafts.change(project_id, workflow_id, apply, if_match))

    async def delete_block(self, project_id: str, block_id: str, workflow_id: str | None, if_match: str | None) -> str:
        """Remove a block and every edge touching it; returns the draft's new ETag."""
        workflow_id = await self.workflow_of(project_id, "block", block_id, workflow_id)

        def apply(graph: Graph) -> Graph:
            _find_block(graph, block_id)
            gone = [e for e in graph.edges if block_id in (e.source_block, e.target_block)]
            graph.blocks = [b for b in graph.blocks if b.id != block_id]
            graph.edges = [e for e in graph.edges if e not in gone]
            return Graph(blocks=[], edges=gone)

        removed, draft = await self.drafts.change(project_id, workflow_id, apply, if_match)
        await self.drafts.release(project_id, "block", block_id, workflow_id)
        await self.drafts.release_graph(project_id, workflow_id, removed)
        return draft.etag

    async def check_config(
        self, project_id: str, block_id: str, workflow_id: str | None, body: ConfigCheck
    ) -> tuple[Block, dict[str, Any]]:
        """The block and the config it would have; 422 naming the field if that config is invalid."""
        block, _ = await self.get_block(project_id, block_id, workflow_id)
        config = merge_patch(block.config, body.config) if body.config_mode == "merge" else body.config
        if (error := block_config_issues(block_id, block.type, config)) is not None:
            raise error
        await check_function_code(block_id, block.type, config)
        return block, config

    # -- edges -------------------------------------------------------------------------------------------

    async def get_edge(self, project_id: str, edge_id: str) -> tuple[Edge, str]:
        """An edge of a draft, found through the edge index, and the draft's ETag."""
        draft = await self.drafts.read(project_id, await self.workflow_of(project_id, "edge", edge_id, None))
        return _find_edge(draft.graph, edge_id), draft.etag

    async def create_edge(self, project_id: str, body: EdgeCreate, if_match: str | None) -> tuple[Edge, str]:
        """Connect two blocks; 422 naming the block, handle or field the edge gets wrong."""
        edge_id = _new_id(body.id, EDGE)
        edge = Edge.model_validate(
            {**body.model_dump(exclude={"id"}), "id": edge_id, "project_id": project_id, "updated_at": _now()}
        )
        etag = await self._add(
            project_id, "edge", edge_id, body.workflow_id, lambda g: _put_edge(g, edge, new=True), if_match
        )
        return edge, etag

    async def _add(
        self,
        project_id: str,
        kind: Kind,
        item_id: str,
        workflow_id: str,
        put: Callable[[Graph], Any],
        if_match: str | None,
    ) -> str:
        """Claim a new id, then write the item into the draft; the claim is released if the write fails."""
        await self.drafts.read(project_id, workflow_id)
        await self.drafts.claim(project_id, kind, item_id, workflow_id)
        try:
            _, draft = await self.drafts.change(project_id, workflow_id, put, if_match)
        except Exception:
            await self.drafts.release(project_id, kind, item_id, workflow_id)
            raise
        return draft.etag

    async def update_edge(
        self, project_id: str, edge_id: str, body: EdgeUpdate, if_match: str | None
    ) -> tuple[Edge, str]:
        """Move an edge's endpoints or handles; the result is validated like a new edge."""
        workflow_id = await self.workflow_of(project_id, "edge", edge_id, None)
        changes = body.model_dump(exclude_unset=True)
        for end in ("source_block", "target_block"):
            if end in changes and changes[end] is None:
                raise InvalidError(f"{end} cannot be null", code="invalid_edge", edge_id=edge_id, field=end)

        def apply(graph: Graph) -> Edge:
            edge = _find_edge(graph, edge_id).model_copy(update={**changes, "updated_at": _now()})
            return _put_edge(graph, edge)

        return _with_etag(await self.drafts.change(project_id, workflow_id, apply, if_match))

    async def delete_edge(self, project_id: str, edge_id: str, if_match: str | None) -> str:
        """Remove an edge; returns the draft's new ETag."""
        workflow_id = await self.workflow_of(project_id, "edge", edge_id, None)

        def apply(graph: Graph) -> None:
            _find_edge(graph, edge_id)
            graph.edges = [e for e in graph.edges if e.id != edge_id]

        _, draft = await self.drafts.change(project_id, workflow_id, apply, if_match)
        await self.drafts.release(project_id, "edge", edge_id, workflow_id)
        return draft.etag


def _with_etag(result: tuple[T, Draft]) -> tuple[T, str]:
    return result[0], result[1].etag


def _patched(block: Block, body: BlockUpdate) -> Block:
    changes: dict[str, Any] = {}
    for name in body.model_fields_set - {"config", "config_mode"}:
        value = getattr(body, name)
        if value is not None or name in ("width", "height", "parent_id"):  # these three may be cleared
            changes[name] = value
    if body.config is not None:
        changes["config"] = body.config if body.config_mode == "replace" else merge_patch(block.config, body.config)
    return block.model_copy(update={**changes, "updated_at": _now()})


def _check_room(graph: Graph, workflow_id: str, max_blocks: int) -> None:
    if len(graph.blocks) >= max_blocks:
        raise InvalidError(
            f"workflow_id: workflow '{workflow_id}' has {len(graph.blocks)} blocks, the limit is {max_blocks}",
            code="too_many_blocks",
            field="workflow_id",
            workflow_id=workflow_id,
            limit=max_blocks,
        )


def _put_block(graph: Graph, block: Block, *, new: bool = False) -> Block:
    """Insert or replace a block, refusing what it breaks at the block level (e.g. its parent_id)."""
    if new and graph.block(block.id) is not None:
        raise ConflictError(f"block '{block.id}' already exists", code="duplicate_block_id", block_id=block.id)
    before = graph.model_copy(deep=True)
    graph.blocks = _upsert(graph.blocks, block)
    issues = [i for i in introduced_issues(before, graph) if i.block_id == block.id and i.edge_id is None]
    if issues:
        raise graph_error(issues)
    return block


def _put_edge(graph: Graph, edge: Edge, *, new: bool = False) -> Edge:
    """Insert or replace an edge, refusing any graph issue it introduces."""
    if new and any(e.id == edge.id for e in graph.edges):
        raise ConflictError(f"edge '{edge.id}' already exists", code="duplicate_edge_id", edge_id=edge.id)
    before = graph.model_copy(deep=True)
    graph.edges = _upsert(graph.edges, edge)
    issues = introduced_issues(before, graph)
    if issues:
        raise graph_error(issues)
    return edge


def _upsert(items: list[Item], item: Item) -> list[Item]:
    """The list with `item` in place of the one with its id, or appended."""
    replaced = [item if x.id == item.id else x for x in items]
    return replaced if any(x.id == item.id for x in items) else items + [item]
