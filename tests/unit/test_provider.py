"""Model providers: the offline label reader on the sample invoice, and the chat-completions client
against a real local HTTP server (tests/chat_server.py)."""

from __future__ import annotations

import asyncio
import datetime
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from activities.documents import extract_pages
from activities.isolation import IsolatedExecutor
from activities.labelled_text import parse_number
from activities.model_http import RetryPolicy, retry_after_seconds
from activities.provider import (
    ExtractionRequest,
    OfflineProvider,
    OpenAICompatibleProvider,
    ProviderError,
    ProviderTransientError,
    build_provider,
    combined_usage,
    isolated_reader,
)
from docflow.config import Settings
from docflow.sample_invoice import invoice_pdf_bytes
from tests.chat_server import ChatCompletionsServer

INVOICE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "invoice_number": {"type": "string"},
        "invoice_date": {"type": "string"},
        "vendor_name": {"type": "string", "description": "Vendor"},
        "total_amount": {"type": "number", "description": "Total due"},
        "currency": {"type": "string"},
    },
}


NO_RETRY = RetryPolicy(max_retries=0)


def invoice_text() -> str:
    return extract_pages(invoice_pdf_bytes(), "application/pdf", "invoice.pdf")[0]


async def test_offline_provider_reads_the_sample_invoice() -> None:
    result = await OfflineProvider().extract(ExtractionRequest(text=invoice_text(), json_schema=INVOICE_SCHEMA))
    assert result.data == {
        "invoice_number": "INV-2026-0042",
        "invoice_date": "2026-11-02",
        "vendor_name": "Acme Supplies Ltd",
        "total_amount": 1440.0,
        "currency": "EUR",
    }
    assert result.model == "offline"
    assert result.usage["total_tokens"] == result.usage["prompt_tokens"] + result.usage["completion_tokens"] > 0


async def test_offline_provider_coerces_types_and_handles_nesting() -> None:
    text = "\n".join(
        [
            "Invoice # 77",
            "Subtotal  1.234,56",
            "Paid: yes",
            "Line Count: 3",
            "Status: OPEN",
            "Vendor:",
            "Acme Supplies Ltd",
            "Tags: urgent, eu",
        ]
    )
    schema = {
        "type": "object",
        "$defs": {"Party": {"type": "object", "properties": {"vendor": {"type": "string"}}}},
        "properties": {
            "invoiceNumber": {"type": "integer"},
            "subtotal": {"type": ["number", "null"]},
            "paid": {"type": "boolean"},
            "line_count": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
            "status": {"type": "string", "enum": ["open", "closed"]},
            "party": {"$ref": "#/$defs/Party"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "lines": {"type": "array", "items": {"type": "object", "properties": {"sku": {"type": "string"}}}},
            "due_date": {"type": "string"},
        },
    }
    result = await OfflineProvider().extract(ExtractionRequest(text=text, json_schema=schema))
    assert result.data == {
        "invoiceNumber": 77,
        "subtotal": 1234.56,
        "paid": True,
        "line_count": 3,
        "status": "open",
        "party": {"vendor": "Acme Supplies Ltd"},
        "tags": ["urgent", "eu"],
        "lines": [],
        "due_date": None,
    }


@pytest.mark.parametrize(
    ("text", "number"),
    [("EUR 1,440.00", 1440.0), ("1.234,56 €", 1234.56), ("$1,234", 1234.0), ("1,5", 1.5), ("-12.5", -12.5)],
)
def test_parse_number_handles_separators_and_currencies(text: str, number: float) -> None:
    assert parse_number(text) == number


@pytest.fixture
def server() -> Iterator[ChatCompletionsServer]:
    with ChatCompletionsServer() as running:
        yield running


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5) as http:
        yield http


def provider(server: ChatCompletionsServer, client: httpx.AsyncClient, **kwargs: Any) -> OpenAICompatibleProvider:
    return OpenAICompatibleProvider(client, base_url=server.url, api_key="sk-test", default_model="gpt-test", **kwargs)


async def test_openai_provider_sends_schema_model_and_key(
    server: ChatCompletionsServer, client: httpx.AsyncClient
) -> None:
    server.answer({"invoice_number": "INV-2026-0042", "total_amount": 1440.0})
    request = ExtractionRequest(
        text="Invoice Number: INV-2026-0042", json_schema=INVOICE_SCHEMA, instructions="Amounts in EUR."
    )
    result = await provider(server, client).extract(request)
    assert result.data == {"invoice_number": "INV-2026-0042", "total_amount": 1440.0}
    assert result.model == "gpt-test"
    usage = dict(result.usage)
    assert 0 <= usage.pop("wall_time_ms") < 3000
    assert usage == {"calls": 1, "prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18, "retries": 0}
    (sent,) = server.requests
    assert sent.path == "/v1/chat/completions"
    assert sent.header("Authorization") == "Bearer sk-test"
    assert sent.body["model"] == "gpt-test"
    assert sent.body["temperature"] == 0.0
    assert sent.body["response_format"]["json_schema"]["schema"] == INVOICE_SCHEMA
    system, user = sent.body["messages"]
    assert "Amounts in EUR." in system["content"] and '"invoice_number"' in system["content"]
    assert user == {"role": "user", "content": "Invoice Number: INV-2026-0042"}


async def test_openai_provider_uses_request_model_and_strips_fences(
    server: ChatCompletionsServer, client: httpx.AsyncClient
) -> None:
    server.answer(lambda body: f'```json\n{{"echo_model": "{body["model"]}"}}\n```')
    request = ExtractionRequest(text="x", json_schema=INVOICE_SCHEMA, model="other-model", temperature=0.7)
    result = await provider(server, client).extract(request)
    assert result.data == {"echo_model": "other-model"}
    assert server.requests[0].body["temperature"] == 0.7


@pytest.mark.parametrize("status", [500, 503, 429])
async def test_server_errors_and_rate_limits_are_transient(
    server: ChatCompletionsServer, client: httpx.AsyncClient, status: int
) -> None:
    server.fail_next(status)
    with pytest.raises(ProviderTransientError) as info:
        await provider(server, client, retry=NO_RETRY).extract(ExtractionRequest(text="x", json_schema=INVOICE_SCHEMA))
    assert info.value.status == status
    # The next request succeeds: the failure was for one request only.
    server.answer({"ok": True})
    result = await provider(server, client).extract(ExtractionRequest(text="x", json_schema=INVOICE_SCHEMA))
    assert result.data == {"ok": True}


async def test_client_errors_are_permanent_and_show_the_body(
    server: ChatCompletionsServer, client: httpx.AsyncClient
) -> None:
    server.fail_next(400, body='{"error": {"message": "model gpt-test does not exist"}}')
    with pytest.raises(ProviderError) as info:
        await provider(server, client).extract(ExtractionRequest(text="x", json_schema=INVOICE_SCHEMA))
    assert not isinstance(info.value, ProviderTransientError)
    assert info.value.status == 400
    assert "gpt-test does not exist" in str(info.value)
    assert len(server.requests) == 1  # a permanent error is not retried


async def test_non_json_content_is_a_permanent_error(server: ChatCompletionsServer, client: httpx.AsyncClient) -> None:
    server.answer("Sure! The total is 1440.")
    with pytest.raises(ProviderError) as info:
        await provider(server, client).extract(ExtractionRequest(text="x", json_schema=INVOICE_SCHEMA))
    assert not isinstance(info.value, ProviderTransientError)
    assert "The total is 1440" in str(info.value)
    assert info.value.path == "$"


async def test_timeout_is_transient(server: ChatCompletionsServer, client: httpx.AsyncClient) -> None:
    server.delay(1.0)
    with pytest.raises(ProviderTransientError, match="timed out"):
        await provider(server, client, timeout_seconds=0.2, retry=NO_RETRY).extract(
            ExtractionRequest(text="x", json_schema=INVOICE_SCHEMA)
        )


async def test_unreachable_server_is_transient(client: httpx.AsyncClient) -> None:
    with ChatCompletionsServer() as gone:
        url = gone.url
    unreachable = OpenAICompatibleProvider(client, base_url=url, api_key=None, default_model="m", retry=NO_RETRY)
    with pytest.raises(ProviderTransientError):
        await unreachable.extract(ExtractionRequest(text="x", json_schema=INVOICE_SCHEMA))


async def test_build_provider_follows_settings(client: httpx.AsyncClient) -> None:
    assert isinstance(build_provider(Settings(model_provider="offline"), client), OfflineProvider)
    openai = build_provider(Settings(model_provider="openai", model_api_key="k"), client)
    assert isinstance(openai, OpenAICompatibleProvider)


# -- structured output, retries, concurrency, usage, votes (issue 6, item 5) ------------------------------

TOTAL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"total_amount": {"type": "number"}, "currency": {"type": "string", "enum": ["EUR", "USD"]}},
    "required": ["total_amount"],
    "additionalProperties": False,
}
FAST_RETRY = RetryPolicy(max_retries=3, initial_seconds=0.05, max_wait_seconds=2.0)


def total_request() -> ExtractionRequest:
    return ExtractionRequest(text="Total Due: EUR 1,440.00", json_schema=TOTAL_SCHEMA)


async def test_malformed_json_is_repaired_without_asking_again(
    server: ChatCompletionsServer, client: httpx.AsyncClient
) -> None:
    # Prose around it, a trailing comma, a grouped numeric string, an enum in lower case, a forbidden key.
    server.answer('Here it is: {"total_amount": "1,440.00", "currency": "eur", "note": "paid",} Thanks!')
    result = await provider(server, client).extract(total_request())
    assert result.data == {"total_amount": 1440.0, "currency": "EUR"}
    assert len(server.requests) == 1
    assert result.usage["calls"] == 1


async def test_an_invalid_answer_gets_one_repair_request_naming_the_path(
    server: ChatCompletionsServer, client: httpx.AsyncClient
) -> None:
    server.answer_next({"total_amount": "about fourteen hundred"}, '```json\n{"total_amount": 1440}\n```')
    result = await provider(server, client).extract(total_request())
    assert result.data == {"total_amount": 1440}
    first, second = server.requests
    assert second.body["messages"][:2] == first.body["messages"]
    assert second.body["messages"][2] == {"role": "assistant", "content": '{"total_amount": "about fourteen hundred"}'}
    assert "$.total_amount" in second.body["messages"][3]["content"]
    assert result.usage["calls"] == 2
    assert result.usage["prompt_tokens"] == 22 and result.usage["total_tokens"] == 36


async def test_an_answer_invalid_beyond_repair_is_a_named_error(
    server: ChatCompletionsServer, client: httpx.AsyncClient
) -> None:
    server.answer({"total_amount": [1, 2]})
    with pytest.raises(ProviderError) as info:
        await provider(server, client).extract(total_request())
    assert not isinstance(info.value, ProviderTransientError)
    assert info.value.path == "$.total_amount"
    assert "$.total_amount" in str(info.value) and "after one repair request" in str(info.value)
    assert len(server.requests) == 2


async def test_a_429_waits_for_retry_after_then_succeeds(
    server: ChatCompletionsServer, client: httpx.AsyncClient
) -> None:
    server.fail_next(429, headers={"Retry-After": "1"})
    server.answer({"total_amount": 12.5})
    result = await provider(server, client, retry=FAST_RETRY).extract(total_request())
    assert result.data == {"total_amount": 12.5}
    first, second = server.requests
    assert second.received_at - first.received_at >= 1.0  # the backoff alone would have waited 0.05 s
    assert result.usage["retries"] == 1 and result.usage["calls"] == 1
    assert result.usage["wall_time_ms"] >= 1000


async def test_a_retry_after_longer_than_the_bound_ends_the_call_as_transient(
    server: ChatCompletionsServer, client: httpx.AsyncClient
) -> None:
    server.fail_next(503, headers={"Retry-After": "120"})
    with pytest.raises(ProviderTransientError) as info:
        await provider(server, client, retry=FAST_RETRY).extract(total_request())
    assert info.value.status == 503 and info.value.retry_after == 120.0
    assert len(server.requests) == 1


def test_retry_after_reads_seconds_milliseconds_and_http_dates() -> None:
    now = datetime.datetime(2026, 11, 26, 12, 0, 0, tzinfo=datetime.UTC)
    assert retry_after_seconds(httpx.Headers({"Retry-After": "3"}), now) == 3.0
    assert retry_after_seconds(httpx.Headers({"retry-after-ms": "250", "Retry-After": "3"}), now) == 0.25
    assert retry_after_seconds(httpx.Headers({"Retry-After": "Thu, 26 Nov 2026 12:00:07 GMT"}), now) == 7.0
    assert retry_after_seconds(httpx.Headers({"Retry-After": "Thu, 26 Nov 2026 11:00:00 GMT"}), now) == 0.0
    assert retry_after_seconds(httpx.Headers({"Retry-After": "soon"}), now) is None
    assert retry_after_seconds(httpx.Headers({}), now) is None


async def test_500s_are_retried_with_backoff_then_succeed(
    server: ChatCompletionsServer, client: httpx.AsyncClient
) -> None:
    server.fail_next(500, times=2)
    server.answer({"total_amount": 7})
    result = await provider(server, client, retry=FAST_RETRY).extract(total_request())
    assert result.data == {"total_amount": 7}
    assert len(server.requests) == 3
    assert result.usage["retries"] == 2 and result.usage["calls"] == 1


async def test_retries_are_bounded_then_transient(server: ChatCompletionsServer, client: httpx.AsyncClient) -> None:
    server.fail_next(502, times=10)
    with pytest.raises(ProviderTransientError, match="after 3 retries") as info:
        await provider(server, client, retry=FAST_RETRY).extract(total_request())
    assert info.value.status == 502
    assert len(server.requests) == 4


async def test_a_hang_hits_the_timeout_and_is_retried(server: ChatCompletionsServer, client: httpx.AsyncClient) -> None:
    server.hang_next(1.5)
    server.answer({"total_amount": 3})
    started = time.monotonic()
    result = await provider(server, client, timeout_seconds=0.3, retry=FAST_RETRY).extract(total_request())
    assert result.data == {"total_amount": 3}
    assert len(server.requests) == 2
    assert result.usage["retries"] == 1
    assert 0.3 <= time.monotonic() - started < 1.5  # timed out at 0.3 s, did not wait for the hung answer


async def test_the_call_budget_bounds_retries_of_a_hung_server(
    server: ChatCompletionsServer, client: httpx.AsyncClient
) -> None:
    server.hang_next(1.0, times=5)
    budget = RetryPolicy(max_retries=4, initial_seconds=0.05, max_wait_seconds=1.0, budget_seconds=0.6)
    started = time.monotonic()
    with pytest.raises(ProviderTransientError):
        await provider(server, client, timeout_seconds=0.25, retry=budget).extract(total_request())
    # Four retries of 0.25 s each would take over 1.2 s; the budget ends the call at 0.6 s.
    assert time.monotonic() - started < 0.9
    assert 2 <= len(server.requests) <= 3


async def test_the_concurrency_limit_holds_across_calls(
    server: ChatCompletionsServer, client: httpx.AsyncClient
) -> None:
    server.delay(0.15)
    server.answer({"total_amount": 1})
    limited = provider(server, client, max_concurrency=2)
    await asyncio.gather(limited.extract_votes(total_request(), 4), limited.extract(total_request()))
    assert len(server.requests) == 5
    assert server.max_concurrent == 2
    # The server does see more at once when the limit allows it.
    server.max_concurrent = 0
    await provider(server, client, max_concurrency=8).extract_votes(total_request(), 4)
    assert server.max_concurrent == 4


async def test_k_votes_run_in_parallel_and_each_is_returned(
    server: ChatCompletionsServer, client: httpx.AsyncClient
) -> None:
    server.delay(0.3)
    server.answer_next(*({"total_amount": amount} for amount in (10, 10, 11, 10, 12)))
    started = time.monotonic()
    votes = await provider(server, client).extract_votes(total_request(), 5)
    assert time.monotonic() - started < 0.3 * 4  # in parallel: about one call's time; in turn it is five (1.5 s)
    assert sorted(v.data["total_amount"] for v in votes) == [10, 10, 10, 11, 12]
    assert all(v.usage["calls"] == 1 and v.model == "gpt-test" for v in votes)
    usage = combined_usage(votes)
    assert usage["calls"] == 5 and usage["total_tokens"] == 5 * 18


async def test_a_refused_response_format_falls_back_and_is_remembered(
    server: ChatCompletionsServer, client: httpx.AsyncClient
) -> None:
    refusal = '{"error": {"message": "response_format type json_schema is not supported by this model"}}'
    server.fail_next(400, body=refusal)
    server.fail_next(400, body='{"error": {"message": "unknown field response_format"}}')
    server.answer('The total: {"total_amount": 5}')
    fallback = provider(server, client)
    assert (await fallback.extract(total_request())).data == {"total_amount": 5}
    modes = [r.body.get("response_format", {}).get("type") for r in server.requests]
    assert modes == ["json_schema", "json_object", None]
    await fallback.extract(total_request())
    assert "response_format" not in server.requests[-1].body  # plain text from now on for this model


async def test_answers_are_read_in_the_isolated_executor(
    server: ChatCompletionsServer, client: httpx.AsyncClient
) -> None:
    async with IsolatedExecutor(processes=1, memory_bytes=256 * 1024 * 1024, cpu_seconds=5) as pool:
        isolated = provider(server, client, reader=isolated_reader(pool))
        server.answer('{"total_amount": "12.5", "extra": 1}')
        assert (await isolated.extract(total_request())).data == {"total_amount": 12.5}
        server.answer({"total_amount": 1, "currency": "GBP"})
        with pytest.raises(ProviderError) as info:
            await isolated.extract(total_request())
        assert "'GBP' is not one of" in str(info.value) and info.value.path == "$.currency"


def test_build_provider_passes_the_call_settings(client: httpx.AsyncClient) -> None:
    settings = Settings(
        model_provider="openai",
        model_max_retries=2,
        model_retry_max_wait_seconds=5,
        model_call_budget_seconds=60,
        model_max_concurrency=3,
    )
    built = build_provider(settings, client)
    assert isinstance(built, OpenAICompatibleProvider)
    assert built._endpoint.retry == RetryPolicy(
        max_retries=2, initial_seconds=0.5, max_wait_seconds=5, budget_seconds=60
    )
