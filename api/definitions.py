"""Workflow definitions in S3, with no database: metadata, one draft graph, immutable versions.

Per workflow, under the caller's project (`docflow.keys`): the metadata record (`keys.workflow()`, with the
production pointer `published{version_id, published_at, description}`), the draft (`keys.draft()`, edited
through `api.drafts`), and version records (`keys.version()`): a `VersionRecord` plus a boolean `published`.
A version id is the hash of its graph (`docflow.graph.version_id`), so publishing an unchanged graph yields
the same id and writes nothing new. Running the draft snapshots it as a version with `published: false`:
runs can pin it, version listings leave it out.

Anything of another project is simply absent here (404): every key is under the caller's project.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from api import idempotency
from api.draft_edits import GraphEditor
from api.drafts import MAX_ATTEMPTS, graph_error, safe_id
from api.errors import ConflictError, InvalidError, NotFoundError
from docflow import keys
from docflow.graph import publish_issues, version_id
from docflow.ids import VERSION, WORKFLOW, derived_id, new_id
from docflow.models import Graph, Published, VersionRecord, WorkflowRecord
from storage.objects import NotFound, ObjectStore, PreconditionFailed, Versioned


class WorkflowCreate(BaseModel):
    """A new workflow (the SDK's `CreateWorkflowRequest`); it starts with an empty draft."""

    model_config = ConfigDict(extra="ignore")
    name: str | None = "Untitled Workflow"
    description: str | None = ""
    project_id: str | None = Field(default=None, description="The project of the API key (the default)")


class WorkflowUpdate(BaseModel):
    """Changes to a workflow's name or description."""

    model_config = ConfigDict(extra="ignore")
    name: str | None = None
    description: str | None = None


class PublishRequest(BaseModel):
    """A release note for the published version."""

    model_config = ConfigDict(extra="ignore")
    description: str | None = ""


_INDEX_FORMAT = 1  # of the workflow listing index; another value is ignored and rebuilt


def _now() -> datetime:
    return datetime.now(UTC)


def _workflow_prefix(project_id: str, workflow_id: str) -> str:
    return f"{keys.workflows_prefix(project_id)}{workflow_id}/"


class Definitions:
    """Workflows, their drafts and versions, for one object store."""

    def __init__(self, store: ObjectStore) -> None:
        self._store = store
        self.editor = GraphEditor(store)
        self.drafts = self.editor.drafts

    # -- workflows ---------------------------------------------------------------------------------------

    async def create_workflow(
        self, project_id: str, body: WorkflowCreate, idempotency_key: str | None = None
    ) -> WorkflowRecord:
        """A new workflow with an empty draft; 404 if `project_id` is not the caller's project.

        With an idempotency key the id derives from it and the key is claimed first (`api.idempotency`): a retry
        returns what the first request made, finishing it if a crash stopped it between its writes; the same key
        with another body is a 422.
        """
        if body.project_id not in (None, project_id):
            raise NotFoundError(f"no project '{body.project_id}'", code="project_not_found", field="project_id")
        body = body.model_copy(update={"project_id": project_id})  # a retry may name it or leave it out
        if not idempotency_key:
            record = self.new_record(project_id, body, new_id(WORKFLOW))
            await self.drafts.create(project_id, record.id)
            await self._store.put_json(keys.workflow(project_id, record.id), record, if_none_match=True)
            return record
        workflow_id = derived_id(WORKFLOW, project_id, idempotency_key, length=24)
        intent = self.new_record(project_id, body, workflow_id).model_dump(mode="json")
        request = body.model_dump(mode="json")
        scope = idempotency.WORKFLOWS
        claim = await idempotency.claim(self._store, project_id, scope, idempotency_key, request, intent)
        if not claim.done:
            # Each write is absent-only, so finishing a crashed or concurrent first request never overwrites it.
            with contextlib.suppress(PreconditionFailed):
                await self.drafts.create(project_id, workflow_id)
            with contextlib.suppress(PreconditionFailed):
                await self._store.put_json(keys.workflow(project_id, workflow_id), claim.intent, if_none_match=True)
            await idempotency.complete(self._store, claim)
        return await self.get_workflow(project_id, workflow_id)  # 404 once the workflow it made is deleted

    def new_record(self, project_id: str, body: WorkflowCreate, workflow_id: str) -> WorkflowRecord:
        """The record a create request makes."""
        now = _now()
        return WorkflowRecord(
            id=workflow_id,
            project_id=project_id,
            name=body.name if body.name is not None else "Untitled Workflow",
            description=body.description or "",
            created_at=now,
            updated_at=now,
        )

    async def get_workflow(self, project_id: str, workflow_id: str) -> WorkflowRecord:
        """A workflow's record; NotFoundError if absent (or of another project)."""
        if not safe_id(workflow_id):
            raise NotFoundError(f"no workflow '{workflow_id}'", workflow_id=workflow_id)
        try:
            return await self._store.get_model(keys.workflow(project_id, workflow_id), WorkflowRecord)
        except NotFound as exc:
            raise NotFoundError(f"no workflow '{workflow_id}'", workflow_id=workflow_id) from exc

    async def list_workflows(self, project_id: str) -> list[WorkflowRecord]:
        """Every workflow of the project, unordered, reading only the records that changed since the last listing.

        The listing index (`keys.workflow_list()`) holds each workflow record with the ETag it was read at; an S3
        listing (keys and ETags, no object read) says which records are new, changed or gone, and only those are
        read. The index is a cache, rebuilt from the records whenever it is absent, stale or of another format;
        a lost race writing it only costs the next request those reads again.
        """
        prefix = keys.workflows_prefix(project_id)
        depth = prefix.count("/") + 1
        listed = await self._store.list_etags(prefix)
        current = {k: e for k, e in listed.items() if k.endswith("/workflow.json") and k.count("/") == depth}
        cached, index_etag = await self._read_index(project_id)
        stale = [k for k, etag in current.items() if cached.get(k, {}).get("etag") != etag]
        fresh = await asyncio.gather(*(self._read_versioned(k) for k in stale))
        entries = {k: cached[k] for k in current if k not in stale}
        for key, found in zip(stale, fresh, strict=True):
            if found is not None:  # else deleted since the listing
                entries[key] = {"etag": found.etag.strip('"'), "record": found.data}
        if stale or len(entries) != len(cached):
            conditions: dict[str, Any] = {"if_match": index_etag} if index_etag else {"if_none_match": True}
            with contextlib.suppress(PreconditionFailed):  # a concurrent listing wrote it: next time refreshes
                index = {"format": _INDEX_FORMAT, "entries": entries}
                await self._store.put_json(keys.workflow_list(project_id), index, **conditions)
        return [WorkflowRecord.model_validate(entry["record"]) for entry in entries.values()]

    async def _read_index(self, project_id: str) -> tuple[dict[str, Any], str | None]:
        try:
            found = await self._store.get_json(keys.workflow_list(project_id))
        except NotFound:
            return {}, None
        same_format = found.data.get("format") == _INDEX_FORMAT
        return (found.data.get("entries", {}) if same_format else {}), found.etag

    async def update_workflow(self, project_id: str, workflow_id: str, body: WorkflowUpdate) -> WorkflowRecord:
        """Change the name or description."""
        changes: dict[str, Any] = body.model_dump(exclude_none=True)
        return await self._change_record(project_id, workflow_id, changes)

    async def delete_workflow(self, project_id: str, workflow_id: str) -> None:
        """Delete the workflow, its draft, versions, the index entries of its blocks and edges, and its tests.

        Runs and test runs stay: they are history, read by id (as a run of a deleted workflow in Temporal's
        web UI). Tests are part of the definition: each record goes, then the markers that list them."""
        await self.get_workflow(project_id, workflow_id)
        try:
            draft = await self.drafts.read(project_id, workflow_id)
        except NotFoundError:
            draft = None
        await self._store.delete(keys.workflow(project_id, workflow_id))  # its id claims are stale from here
        if draft is not None:
            await self.drafts.release_graph(project_id, workflow_id, draft.graph)
        await self._store.delete_prefix(_workflow_prefix(project_id, workflow_id))
        markers = keys.workflow_tests_prefix(project_id, workflow_id)
        test_ids = [key.rsplit("/", 1)[-1] for key in await self._store.list_keys(markers)]
        await asyncio.gather(*(self._store.delete(keys.workflow_test(project_id, t)) for t in test_ids if safe_id(t)))
        await self._store.delete_prefix(markers)

    # -- versions ----------------------------------------------------------------------------------------

    async def publish(self, project_id: str, workflow_id: str, description: str) -> WorkflowRecord:
        """Validate the draft, store it as a version and point production at it."""
        await self.get_workflow(project_id, workflow_id)
        draft = await self.drafts.read(project_id, workflow_id)
        if issues := publish_issues(draft.graph):
            raise graph_error(issues)
        version = await self._store_version(project_id, workflow_id, draft.graph, description, published=True)
        pointer = Published(version_id=version.id, published_at=_now(), description=description)
        return await self._change_record(project_id, workflow_id, {"published": pointer})

    async def list_versions(self, project_id: str, workflow_id: str) -> list[VersionRecord]:
        """The published versions of a workflow, unordered (draft-run snapshots are left out)."""
        await self.get_workflow(project_id, workflow_id)
        found = await self._store.list_keys(keys.versions_prefix(project_id, workflow_id))
        stored = await asyncio.gather(*(self._read_version(k) for k in found))
        return [VersionRecord.model_validate(data) for data in stored if data and data.get("published")]

    async def get_version(self, project_id: str, workflow_id: str, version: str) -> VersionRecord:
        """One version of a workflow (published, or a draft-run snapshot); 404 if absent."""
        key = keys.version(project_id, workflow_id, version) if safe_id(version) else None
        # Both reads at once: the workflow (404 if absent) and the version.
        _, data = await asyncio.gather(self.get_workflow(project_id, workflow_id), self._read_version(key))
        if data is None:
            raise NotFoundError(f"workflow '{workflow_id}' has no version '{version}'", version_id=version)
        return VersionRecord.model_validate(data)

    async def discard_draft(
        self, project_id: str, workflow_id: str, if_match: str | None
    ) -> tuple[WorkflowRecord, str]:
        """Reset the draft to the production version; 409 if nothing was ever published."""
        record = await self.get_workflow(project_id, workflow_id)
        if record.published is None or record.published.version_id is None:
            raise ConflictError(
                f"workflow '{workflow_id}' has never been published: there is no version to reset the draft to",
                code="no_published_version",
                workflow_id=workflow_id,
            )
        return await self.restore(project_id, workflow_id, record.published.version_id, if_match)

    async def restore(
        self, project_id: str, workflow_id: str, version: str, if_match: str | None
    ) -> tuple[WorkflowRecord, str]:
        """Copy a version's graph into the draft; returns the workflow and the draft's new ETag."""
        graph = (await self.get_version(project_id, workflow_id, version)).graph()
        draft = await self.drafts.replace(project_id, workflow_id, graph, if_match)
        return await self._change_record(project_id, workflow_id, {}), draft.etag

    async def draft_and_version(self, project_id: str, workflow_id: str, version: str) -> tuple[Graph, VersionRecord]:
        """The draft's graph, checked as a draft run checks it (422 naming the issues) but not snapshotted as a
        version (a rerun reads the draft, it does not pin it), and one version of the workflow (404): the
        workflow record, the draft and the version read at once."""
        key = keys.version(project_id, workflow_id, version) if safe_id(version) else None
        _, draft, data = await asyncio.gather(
            self.get_workflow(project_id, workflow_id),
            self.drafts.read(project_id, workflow_id),
            self._read_version(key),
        )
        if data is None:
            raise NotFoundError(f"workflow '{workflow_id}' has no version '{version}'", version_id=version)
        if issues := publish_issues(draft.graph):
            raise graph_error(issues)
        return draft.graph, VersionRecord.model_validate(data)

    async def resolve_version(self, project_id: str, workflow_id: str, requested: str) -> VersionRecord:
        """The version a run pins: "production", "draft" (validated and snapshotted) or a `ver_…` id."""
        record = await self.get_workflow(project_id, workflow_id)
        if requested == "production":
            if record.published is None or record.published.version_id is None:
                raise InvalidError(
                    f"workflow '{workflow_id}' has no published version: publish it or run version 'draft'",
                    code="no_published_version",
                    field="version",
                )
            return await self.get_version(project_id, workflow_id, record.published.version_id)
        if requested == "draft":
            draft = await self.drafts.read(project_id, workflow_id)
            if issues := publish_issues(draft.graph):
                raise graph_error(issues)
            return await self._store_version(project_id, workflow_id, draft.graph, "", published=False)
        if requested.startswith(VERSION):
            try:
                return await self.get_version(project_id, workflow_id, requested)
            except NotFoundError as exc:
                message = f"workflow '{workflow_id}' has no version '{requested}'"
                raise InvalidError(message, code="unknown_version", field="version") from exc
        message = f"version '{requested}' is not valid: use 'production', 'draft' or a 'ver_…' id"
        raise InvalidError(message, code="invalid_version", field="version")

    # -- storage -----------------------------------------------------------------------------------------

    async def _store_version(
        self, project_id: str, workflow_id: str, graph: Graph, description: str, *, published: bool
    ) -> VersionRecord:
        """Write a version once (content-addressed); publishing marks an existing snapshot published."""
        version = VersionRecord(
            id=version_id(graph),
            workflow_id=workflow_id,
            blocks=graph.blocks,
            edges=graph.edges,
            created_at=_now(),
            description=description,
        )
        key = keys.version(project_id, workflow_id, version.id)
        try:
            await self._store.put_json(
                key, {**version.model_dump(mode="json"), "published": published}, if_none_match=True
            )
            return version
        except PreconditionFailed:
            pass  # the same graph is stored already
        found = await self._store.get_json(key)
        if published and not found.data.get("published"):
            marked = {**found.data, "published": True, "description": found.data.get("description") or description}
            with contextlib.suppress(PreconditionFailed):  # else a concurrent publish marked it
                await self._store.put_json(key, marked, if_match=found.etag)
        return VersionRecord.model_validate(found.data)

    async def _change_record(self, project_id: str, workflow_id: str, changes: dict[str, Any]) -> WorkflowRecord:
        """Apply changes (and a new `updated_at`) to the workflow record with If-Match, retrying lost races."""
        key = keys.workflow(project_id, workflow_id)
        for _ in range(MAX_ATTEMPTS):
            try:
                found = await self._store.get_json(key)
            except NotFound as exc:
                raise NotFoundError(f"no workflow '{workflow_id}'", workflow_id=workflow_id) from exc
            record = WorkflowRecord.model_validate(found.data).model_copy(update={**changes, "updated_at": _now()})
            try:
                await self._store.put_json(key, record, if_match=found.etag)
            except PreconditionFailed:
                continue
            return record
        raise ConflictError(f"workflow '{workflow_id}' kept changing; retry", code="workflow_busy")

    async def _read_versioned(self, key: str) -> Versioned | None:
        try:
            return await self._store.get_json(key)
        except NotFound:
            return None

    async def _read_version(self, key: str | None) -> dict[str, Any] | None:
        if key is None:  # not a version id
            return None
        try:
            return (await self._store.get_json(key)).data
        except NotFound:
            return None
