"""What the API and the worker share about Temporal: one data converter, one client factory, names.

Both sides build the client here, so the converter and the search attributes cannot drift apart.
"""

from __future__ import annotations

from temporalio.client import Client
from temporalio.common import SearchAttributeKey
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter

from docflow.config import Settings

SA_PROJECT = SearchAttributeKey.for_keyword("DocflowProject")
SA_WORKFLOW_ID = SearchAttributeKey.for_keyword("DocflowWorkflowId")
SA_STATUS = SearchAttributeKey.for_keyword("DocflowStatus")
SA_TRIGGER = SearchAttributeKey.for_keyword("DocflowTrigger")
SA_AWAITING_REVIEW = SearchAttributeKey.for_keyword_list("DocflowAwaitingReview")

RUN_WORKFLOW = "RunWorkflow"
RUN_STATE_QUERY = "run_state"


def data_converter() -> DataConverter:
    """The one converter: pydantic models in and out of payloads."""
    return pydantic_data_converter


async def connect(settings: Settings) -> Client:
    """A Temporal client with our converter."""
    return await Client.connect(
        settings.temporal_address, namespace=settings.temporal_namespace, data_converter=data_converter()
    )
