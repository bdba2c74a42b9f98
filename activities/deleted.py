"""A deleted run's activities write nothing: each write of run data first checks the run's tombstone.

The delete writes the tombstone before it cancels the run, so a block its cancel could not stop in time (a stuck
worker, a put already in its thread) finds the tombstone and ends with the non-retryable `RunDeleted` instead of
bringing data back under a prefix the delete has emptied. Block executions (`wfsim_…`) are never deleted, so
their writes skip the check.
"""

from __future__ import annotations

from temporalio.exceptions import ApplicationError

from docflow import keys
from storage.objects import ObjectStore


async def refuse_if_deleted(store: ObjectStore, project_id: str, run_id: str) -> None:
    """Raise `RunDeleted` (non-retryable) if the run has a tombstone."""
    if run_id.startswith(keys.EXECUTION_PREFIX):
        return
    if await store.exists(keys.deleted_run(project_id, run_id)):
        raise ApplicationError(f"run '{run_id}' was deleted", type="RunDeleted", non_retryable=True)
