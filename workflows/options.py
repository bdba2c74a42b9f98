"""Timeouts and retry policies of the activities the run workflow calls, named in one place."""

from __future__ import annotations

from datetime import timedelta

from temporalio.common import RetryPolicy

from docflow.blocks import api_call_time_budget
from docflow.models import Block
from docflow.python_code import activity_seconds, is_python_function

# Error types an activity raises for what a retry cannot fix.
NON_RETRYABLE = ["BlockError", "InputError", "UnsupportedDocumentError", "ProviderError", "NotFound"]

LOCAL_TIMEOUT = timedelta(seconds=5)
LOAD_GRAPH_TIMEOUT = timedelta(seconds=30)
PERSIST_TIMEOUT = timedelta(seconds=30)
# Applying a review decision: a few S3 reads and writes (a split approved with new documents cuts PDFs).
APPLY_DECISION_TIMEOUT = timedelta(minutes=2)
# Judging a test: reading its execution's outputs, evaluating its assertion (bounded, docflow.assertions), storing it.
JUDGE_TIMEOUT = timedelta(minutes=2)
HEARTBEAT_TIMEOUT = timedelta(seconds=5)

BLOCK_TIMEOUTS = {
    "parse": timedelta(minutes=10),
    "extract": timedelta(minutes=15),
    # Model calls like extract's; split also cuts and stores one PDF per part.
    "classifier": timedelta(minutes=15),
    "split": timedelta(minutes=15),
}
DEFAULT_BLOCK_TIMEOUT = timedelta(minutes=5)

BLOCK_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=500),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=5,
    non_retryable_error_types=NON_RETRYABLE,
)
# Local blocks retry storage failures (and any other retryable error) with backoff; the activity itself stops
# retrying (a non-retryable error) once the run's `storage_retry_budget_seconds` has passed since its first attempt.
# (A local activity's schedule-to-close timeout did not bound its retries on the dev server: measured.)
LOCAL_BLOCK_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=5),
    maximum_attempts=200,
    non_retryable_error_types=NON_RETRYABLE,
)
STORAGE_RETRY = RetryPolicy(maximum_attempts=10, maximum_interval=timedelta(seconds=10))
# Webhooks (activities/webhooks.py): one POST per attempt, bounded by the webhook_timeout_seconds setting (≤ 60 s);
# a refused or unconfigured endpoint returns, a failed attempt raises and is retried: 1 s, 2 s, 4 s … 5 min,
# ten attempts over about 9 minutes; the last one records the delivery as failed.
WEBHOOK_TIMEOUT = timedelta(seconds=90)
WEBHOOK_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=5),
    maximum_attempts=10,
)


def block_timeout(block: Block) -> timedelta:
    """Start-to-close timeout of a block's activity."""
    if block.type == "api_call":
        # Every attempt with the waits between them, plus a minute for recording the outcome and the step.
        return timedelta(seconds=api_call_time_budget(block.config) + 60)
    if is_python_function(block.type, block.config):
        return timedelta(seconds=activity_seconds(block.config))
    return BLOCK_TIMEOUTS.get(block.type, DEFAULT_BLOCK_TIMEOUT)


# --- loop containers (workflows.loops) ---
# Listing a for_each's items (a document's pages are cut and stored) and recording a container's step (its
# results read back in item order) are storage work that grows with the loop: a minute each, retried.
LOOP_STORAGE_TIMEOUT = timedelta(minutes=2)
# A while_loop's termination check is a local activity in the isolated executor, like a conditional block.
LOOP_TERMINATION_TIMEOUT = timedelta(seconds=10)
