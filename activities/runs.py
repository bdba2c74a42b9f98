"""Run-level activities: load a version's graph, persist a run's summary."""

from __future__ import annotations

from temporalio import activity
from temporalio.exceptions import ApplicationError

from docflow import keys
from docflow.executions import PersistExecutionInput
from docflow.graph import resolve_edge_handles
from docflow.models import Graph, VersionRecord
from docflow.runs import LoadGraphInput, PersistRunInput
from storage.objects import NotFound, ObjectStore
from workflows.activity_names import LOAD_GRAPH, PERSIST_EXECUTION, PERSIST_RUN


class RunActivities:
    """Activities around a run, with the object store injected."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store

    @activity.defn(name=LOAD_GRAPH)
    async def load_graph(self, inp: LoadGraphInput) -> Graph:
        """The graph of a published version or a draft snapshot, with edge handles resolved."""
        key = keys.version(inp.project_id, inp.workflow_id, inp.version_id)
        try:
            version = await self.store.get_model(key, VersionRecord)
        except NotFound as exc:
            raise ApplicationError(
                f"version '{inp.version_id}' of workflow '{inp.workflow_id}' is not stored",
                type="NotFound",
                non_retryable=True,
            ) from exc
        return resolve_edge_handles(version.graph())

    @activity.defn(name=PERSIST_RUN)
    async def persist_summary(self, inp: PersistRunInput) -> None:
        """Write the run's final state, so reads of closed runs need no replay."""
        state = inp.state
        await self.store.put_json(keys.run_summary(state.project_id, state.run_id), state)

    @activity.defn(name=PERSIST_EXECUTION)
    async def persist_execution(self, inp: PersistExecutionInput) -> None:
        """Write a block execution's final record (`keys.run_summary` under the execution's prefix)."""
        record = inp.record
        await self.store.put_json(keys.run_summary(record.project_id, record.id), record)
