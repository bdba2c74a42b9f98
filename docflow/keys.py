"""S3 key layout: every record of a project under `projects/<project_id>/`, documents under `files/`.

What a run writes is under `runs/<run_id>/`; what a block execution (a rerun, `wfsim_…`) writes is under
`executions/<execution_id>/`, with the same layout, so the block activities write both the same way.

Bytes of presigned uploads not yet verified are under `uploads/`; nothing reads them once a file is complete.

Listings the API needs are prefix scans: a workflow's versions, a run's steps.
"""

from __future__ import annotations

from datetime import UTC, datetime

# The id prefix of block executions (docflow.ids.EXECUTION): their records live under their own prefix.
EXECUTION_PREFIX = "wfsim_"


def workflow(project: str, workflow_id: str) -> str:
    """The workflow's metadata record."""
    return f"projects/{project}/workflows/{workflow_id}/workflow.json"


def workflows_prefix(project: str) -> str:
    """Prefix of all workflows of a project."""
    return f"projects/{project}/workflows/"


def workflow_list(project: str) -> str:
    """The project's workflow listing index: each workflow record with the ETag it was read at (a cache)."""
    return f"projects/{project}/index/workflow-list.json"


def draft(project: str, workflow_id: str) -> str:
    """The editable draft graph, written with If-Match."""
    return f"projects/{project}/workflows/{workflow_id}/draft.json"


def version(project: str, workflow_id: str, version_id: str) -> str:
    """An immutable published version."""
    return f"projects/{project}/workflows/{workflow_id}/versions/{version_id}.json"


def versions_prefix(project: str, workflow_id: str) -> str:
    """Prefix of a workflow's versions."""
    return f"projects/{project}/workflows/{workflow_id}/versions/"


def block_index(project: str, block_id: str) -> str:
    """Claims a block id within a project (ids are unique per project)."""
    return f"projects/{project}/index/blocks/{block_id}"


def edge_index(project: str, edge_id: str) -> str:
    """Maps an edge id to its workflow (edge routes carry no workflow id)."""
    return f"projects/{project}/index/edges/{edge_id}"


def file_meta(project: str, file_id: str) -> str:
    """A document's metadata."""
    return f"files/{project}/{file_id}/meta.json"


def file_content(project: str, file_id: str) -> str:
    """A document's bytes."""
    return f"files/{project}/{file_id}/content"


def upload_session(project: str, file_id: str) -> str:
    """A presigned upload in progress: what the client promised to PUT."""
    return f"files/{project}/{file_id}/upload.json"


def upload_staging(project: str, file_id: str, reservation: str) -> str:
    """Where a presigned upload's bytes land before they are verified; never read after completion.

    A top-level prefix of its own, so an operator's lifecycle rule can expire what clients PUT and never
    completed (or PUT again after completion).
    """
    return f"uploads/{project}/{file_id}/{reservation}"


def compact_time(at: datetime) -> str:
    """`20261126T190102.123456Z`: a marker's time in its key, which sorts as the time does."""
    return at.astimezone(UTC).strftime("%Y%m%dT%H%M%S.%fZ")


def run_prefix(project: str, run_id: str) -> str:
    """Everything a run (or a block execution) wrote."""
    owner = "executions" if run_id.startswith(EXECUTION_PREFIX) else "runs"
    return f"projects/{project}/{owner}/{run_id}/"


def run_inputs(project: str, run_id: str) -> str:
    """The run's JSON inputs, stored by the API before the run starts."""
    return f"{run_prefix(project, run_id)}inputs.json"


def run_summary(project: str, run_id: str) -> str:
    """The run's final state, persisted when it ends."""
    return f"{run_prefix(project, run_id)}summary.json"


def step(project: str, run_id: str, step_id: str) -> str:
    """A step record with its handle payloads."""
    return f"{run_prefix(project, run_id)}steps/{step_id}.json"


def steps_prefix(project: str, run_id: str) -> str:
    """Prefix of a run's step records."""
    return f"{run_prefix(project, run_id)}steps/"


def output(project: str, run_id: str, step_id: str, handle: str) -> str:
    """A large handle output (claim check)."""
    return f"{run_prefix(project, run_id)}outputs/{step_id}/{handle}.json"


def loop_batch(project: str, run_id: str, step_id: str, batch: int) -> str:
    """What one batch of a loop's iterations produced (results in item order, its steps), by its child workflow."""
    return f"{loop_batches_prefix(project, run_id, step_id)}batch-{batch:06d}.json"


def loop_batches_prefix(project: str, run_id: str, step_id: str) -> str:
    """Prefix of a loop's batch records (zero-padded batch numbers: listed in batch order)."""
    return f"{run_prefix(project, run_id)}loops/{step_id}/"


def artifact(project: str, artifact_id: str) -> str:
    """An artifact record (artifact routes carry only its id)."""
    return f"projects/{project}/artifacts/{artifact_id}.json"


def deleted_run(project: str, run_id: str) -> str:
    """A deleted run's tombstone, kept while Temporal removes the execution."""
    return f"projects/{project}/index/deleted-runs/{run_id}"


def api_call_outcome(project: str, run_id: str, step_id: str) -> str:
    """The recorded outcome of a step's api_call: a retried attempt replays it instead of sending again."""
    return f"{run_prefix(project, run_id)}calls/{step_id}.json"


def idempotency(project: str, scope: str, key_sha256: str) -> str:
    """An `Idempotency-Key`'s record: the request it is bound to and what it creates (`api.idempotency`)."""
    return f"projects/{project}/index/idempotency/{scope}/{key_sha256}.json"


def review(project: str, review_id: str) -> str:
    """A review record (`docflow.reviews.ReviewRecord`)."""
    return f"projects/{project}/reviews/{review_id}/review.json"


def review_version(project: str, review_id: str, version_id: str) -> str:
    """One immutable version of a review."""
    return f"projects/{project}/reviews/{review_id}/versions/{version_id}.json"


def review_versions_prefix(project: str, review_id: str) -> str:
    """Prefix of a review's versions."""
    return f"projects/{project}/reviews/{review_id}/versions/"


def review_version_index(project: str, version_id: str) -> str:
    """Maps a version id to its review (version routes carry only the version id)."""
    return f"projects/{project}/index/review-versions/{version_id}"


def review_queue_prefix(project: str) -> str:
    """Prefix of the project's review queue: one empty marker per review, in creation order."""
    return f"projects/{project}/index/reviews/"


def review_queue(project: str, created_at_compact: str, review_id: str) -> str:
    """A review's marker in the queue; `created_at_compact` (`20261126T190102.123456Z`) sorts by time."""
    return f"projects/{project}/index/reviews/{created_at_compact}_{review_id}"


def webhook_delivery(project: str, event_id: str) -> str:
    """A webhook event's delivery record: every attempt and the outcome (`docflow.webhooks.DeliveryRecord`)."""
    return f"projects/{project}/webhooks/deliveries/{event_id}.json"


def review_pending_prefix(project: str) -> str:
    """Prefix of the project's pending reviews: the queue's markers of reviews not yet decided or closed."""
    return f"projects/{project}/index/reviews-pending/"


def review_pending(project: str, created_at_compact: str, review_id: str) -> str:
    """A pending review's marker (named as in the queue); removed once the review is decided or closed."""
    return f"projects/{project}/index/reviews-pending/{created_at_compact}_{review_id}"


def run_review(project: str, run_id: str, review_id: str) -> str:
    """Names a review of the run, under the run's prefix, so deleting the run finds its reviews to delete."""
    return f"{run_prefix(project, run_id)}reviews/{review_id}"


def run_reviews_prefix(project: str, run_id: str) -> str:
    """Prefix of the run's review pointers."""
    return f"{run_prefix(project, run_id)}reviews/"


def run_execution(project: str, run_id: str, created_at_compact: str, execution_id: str) -> str:
    """A block execution's marker under its source run: the run's reruns list in creation order."""
    return f"{run_prefix(project, run_id)}executions/{created_at_compact}_{execution_id}"


def run_executions_prefix(project: str, run_id: str) -> str:
    """Prefix of the markers of a run's block executions."""
    return f"{run_prefix(project, run_id)}executions/"


def execution_by_fingerprint(project: str, execution_fingerprint: str) -> str:
    """The completed execution with this `execution_fingerprint`: an identical rerun returns it."""
    return f"projects/{project}/index/executions/{execution_fingerprint}"


def workflow_test(project: str, test_id: str) -> str:
    """A workflow test's record, written once and then with If-Match."""
    return f"projects/{project}/tests/{test_id}.json"


def workflow_test_marker(project: str, workflow_id: str, test_id: str) -> str:
    """Lists a test under its workflow (written before the record, removed after it)."""
    return f"projects/{project}/index/workflow-tests/{workflow_id}/{test_id}"


def workflow_tests_prefix(project: str, workflow_id: str) -> str:
    """Prefix of a workflow's test markers."""
    return f"projects/{project}/index/workflow-tests/{workflow_id}/"


def test_run(project: str, test_run_id: str) -> str:
    """A test run's record, stored when it ends."""
    return f"projects/{project}/test-runs/{test_run_id}/run.json"


def test_result(project: str, test_run_id: str, result_id: str) -> str:
    """One test's result in a test run."""
    return f"projects/{project}/test-runs/{test_run_id}/results/{result_id}.json"


def test_results_prefix(project: str, test_run_id: str) -> str:
    """Prefix of a test run's results."""
    return f"projects/{project}/test-runs/{test_run_id}/results/"


def test_result_index(project: str, result_id: str) -> str:
    """Maps a result id to its test run (result routes carry only the result id)."""
    return f"projects/{project}/index/test-results/{result_id}"


def workflow_test_run(project: str, workflow_id: str, created_at_compact: str, test_run_id: str) -> str:
    """A test run's marker under its workflow: a workflow's test runs list in creation order."""
    return f"projects/{project}/index/workflow-test-runs/{workflow_id}/{created_at_compact}_{test_run_id}"


def test_runs_index_prefix(project: str) -> str:
    """Prefix of the markers of every test run of the project."""
    return f"projects/{project}/index/workflow-test-runs/"


def workflow_test_runs_prefix(project: str, workflow_id: str) -> str:
    """Prefix of the markers of a workflow's test runs."""
    return f"projects/{project}/index/workflow-test-runs/{workflow_id}/"
