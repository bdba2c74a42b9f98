"""Model providers: the offline label reader on the sample invoice, and the chat-completions client
against a real local HTTP server (tests/chat_server.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from activities.documents import extract_pages
from activities.labelled_text import parse_number
from activities.provider import (
    ExtractionRequest,
    OfflineProvider,
    OpenAICompatibleProvider,
    ProviderError,
    ProviderTransientError,
    build_provider,
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
    assert result.usage == {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
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
        await provider(server, client).extract(ExtractionRequest(text="x", json_schema=INVOICE_SCHEMA))
    assert info.value.status == status
    # The next request succeeds: the failure was for one request only.
    server.answer({"ok": True})
    result = await provider(server, client).extract(ExtractionRequest(text="x", json_schema=INVOICE_SCHEMA))
    assert result.data == {"ok": True}


async def test_client_errors_are_permanent_and_show_the_body(
    server: ChatCompletionsServer, client: httpx.AsyncClient
) -> None:
    server.fail_next(400, body='{"error": {"message": "response_format not supported"}}')
    with pytest.raises(ProviderError) as info:
        await provider(server, client).extract(ExtractionRequest(text="x", json_schema=INVOICE_SCHEMA))
    assert not isinstance(info.value, ProviderTransientError)
    assert info.value.status == 400
    assert "response_format not supported" in str(info.value)


async def test_non_json_content_is_a_permanent_error(server: ChatCompletionsServer, client: httpx.AsyncClient) -> None:
    server.answer("Sure! The total is 1440.")
    with pytest.raises(ProviderError) as info:
        await provider(server, client).extract(ExtractionRequest(text="x", json_schema=INVOICE_SCHEMA))
    assert not isinstance(info.value, ProviderTransientError)
    assert "The total is 1440" in str(info.value)


async def test_timeout_is_transient(server: ChatCompletionsServer, client: httpx.AsyncClient) -> None:
    server.delay(1.0)
    with pytest.raises(ProviderTransientError, match="timed out"):
        await provider(server, client, timeout_seconds=0.2).extract(
            ExtractionRequest(text="x", json_schema=INVOICE_SCHEMA)
        )


async def test_unreachable_server_is_transient(client: httpx.AsyncClient) -> None:
    with ChatCompletionsServer() as gone:
        url = gone.url
    unreachable = OpenAICompatibleProvider(client, base_url=url, api_key=None, default_model="m")
    with pytest.raises(ProviderTransientError):
        await unreachable.extract(ExtractionRequest(text="x", json_schema=INVOICE_SCHEMA))


async def test_build_provider_follows_settings(client: httpx.AsyncClient) -> None:
    assert isinstance(build_provider(Settings(model_provider="offline"), client), OfflineProvider)
    openai = build_provider(Settings(model_provider="openai", model_api_key="k"), client)
    assert isinstance(openai, OpenAICompatibleProvider)
