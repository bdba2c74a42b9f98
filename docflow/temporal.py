"""What the API and the worker share about Temporal: one data converter, one client factory, names.

Both sides build the client here, so the converter and the search attributes cannot drift apart.
"""

from __future__ import annotations

import dataclasses

from temporalio.client import Client
from temporalio.common import SearchAttributeKey
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter, ExternalStorage

from docflow.config import Settings

SA_PROJECT = SearchAttributeKey.for_keyword("DocflowProject")
SA_WORKFLOW_ID = SearchAttributeKey.for_keyword("DocflowWorkflowId")
SA_STATUS = SearchAttributeKey.for_keyword("DocflowStatus")
SA_TRIGGER = SearchAttributeKey.for_keyword("DocflowTrigger")
SA_AWAITING_REVIEW = SearchAttributeKey.for_keyword_list("DocflowAwaitingReview")
# A block execution's source run: `DocflowSourceRun = 'run_…'` in the Temporal UI lists the reruns of a run.
SA_SOURCE_RUN = SearchAttributeKey.for_keyword("DocflowSourceRun")
# Every custom search attribute (the dev server, the test server and compose register these), and the type
# names `temporal server start-dev --search-attribute` takes.
SEARCH_ATTRIBUTE_KEYS = (SA_PROJECT, SA_WORKFLOW_ID, SA_STATUS, SA_TRIGGER, SA_AWAITING_REVIEW, SA_SOURCE_RUN)
SEARCH_ATTRIBUTES: dict[str, str] = {
    key.name: "KeywordList" if key is SA_AWAITING_REVIEW else "Keyword" for key in SEARCH_ATTRIBUTE_KEYS
}

RUN_WORKFLOW = "RunWorkflow"
RUN_STATE_QUERY = "run_state"
BLOCK_EXECUTION_WORKFLOW = "BlockExecutionWorkflow"
EXECUTION_STATE_QUERY = "execution_state"
TEST_RUN_WORKFLOW = "TestRunWorkflow"
LOOP_BATCH_WORKFLOW = "LoopBatchWorkflow"
LOOP_WORKFLOW = "LoopWorkflow"
TEST_RUN_STATE_QUERY = "test_run_state"
# A review decision reaches a run as this Update (the API) or this signal (web UI, `temporal workflow signal`).
REVIEW_DECISION_UPDATE = "review_decision"
REVIEW_DECISION_SIGNAL = "review-decision"
# A loop batch tells its run when its review gates open and close (docflow.gates.GateReport).
LOOP_GATES_SIGNAL = "loop-gates"
# The run failed elsewhere: a loop batch closes its open gates (the signal carries the reason).
LOOP_GATES_CLOSE_SIGNAL = "loop-gates-close"
# A loop batch whose unfinished iterations all wait for reviews tells its coordinator, which may start the next.
LOOP_BATCH_PARKED_SIGNAL = "loop-batch-parked"


def data_converter(external_storage: ExternalStorage | None = None) -> DataConverter:
    """The one converter: pydantic models in and out of payloads, large payloads claim-checked when given."""
    if external_storage is None:
        return pydantic_data_converter
    return dataclasses.replace(pydantic_data_converter, external_storage=external_storage)


async def connect(settings: Settings, external_storage: ExternalStorage | None = None) -> Client:
    """A Temporal client with our converter; the API and the worker pass the same external storage."""
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=data_converter(external_storage),
    )
