"""The extract executor with the chat-completions provider against a real local server: the block's model,
usage in the artifact (next to credits), and a Retry-After the provider would not wait out handed to
Temporal as the activity's next retry delay. Text input only, so no storage is touched."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import httpx
import pytest
from retab.types.workflows import ExtractionWorkflowArtifact
from temporalio.exceptions import ApplicationError

from activities.executors import Executors
from activities.model_http import RetryPolicy
from activities.provider import OpenAICompatibleProvider
from docflow.models import Block
from docflow.runs import ExecuteBlockInput, HandleValue, RunContext
from tests.chat_server import ChatCompletionsServer

SCHEMA = {"type": "object", "properties": {"total": {"type": "number"}}}


@pytest.fixture
def server() -> Iterator[ChatCompletionsServer]:
    with ChatCompletionsServer() as running:
        yield running


@pytest.fixture
async def executors(server: ChatCompletionsServer) -> AsyncIterator[Executors]:
    async with httpx.AsyncClient(timeout=5) as http:
        retry = RetryPolicy(max_retries=2, initial_seconds=0.05, max_wait_seconds=1.0)
        provider = OpenAICompatibleProvider(http, server.url, "sk-test", "default-model", retry=retry)
        # The text-input extract path uses neither storage, nor api_call, nor the isolated pool.
        yield Executors(cast(Any, None), provider, cast(Any, None), cast(Any, None))


def extract_input(config: dict[str, Any]) -> tuple[ExecuteBlockInput, dict[str, HandleValue]]:
    block = Block(id="blk_extract", workflow_id="wf_1", type="extract", config=config, updated_at=datetime.now(UTC))
    run = RunContext(run_id="run_1", project_id="proj_1", workflow_id="wf_1", version_id="v1")
    inputs = {"input-json-text": HandleValue(type="json", data={"text": "Total: 12.50"})}
    return ExecuteBlockInput(run=run, block=block, step_id="blk_extract", inputs=inputs), inputs


CONFIG = {"json_schema": SCHEMA, "inputs": [{"name": "text", "type": "json"}], "model": "block-model"}


async def test_the_artifact_carries_the_blocks_model_and_the_calls_usage(
    server: ChatCompletionsServer, executors: Executors
) -> None:
    server.fail_next(500)
    server.answer({"total": "12.50"})
    produced = await executors.extract(*extract_input(CONFIG))
    assert [r.body["model"] for r in server.requests] == ["block-model", "block-model"]
    artifact = produced.artifact
    assert artifact is not None and artifact["output"] == {"total": 12.5} and artifact["model"] == "block-model"
    usage = artifact["usage"]
    assert usage["credits"] == 0.0
    assert {k: usage[k] for k in ("calls", "retries", "prompt_tokens", "completion_tokens")} == {
        "calls": 1,
        "retries": 1,
        "prompt_tokens": 11,
        "completion_tokens": 7,
    }
    assert usage["wall_time_ms"] >= 25  # the backoff before the retry is counted
    ExtractionWorkflowArtifact.model_validate({**artifact, "id": "extr_1"})


async def test_a_long_retry_after_becomes_the_activitys_next_retry_delay(
    server: ChatCompletionsServer, executors: Executors
) -> None:
    server.fail_next(429, headers={"Retry-After": "45"})
    with pytest.raises(ApplicationError) as info:
        await executors.extract(*extract_input(CONFIG))
    assert info.value.type == "ProviderTransientError" and not info.value.non_retryable
    assert info.value.next_retry_delay == timedelta(seconds=45)
    assert len(server.requests) == 1
