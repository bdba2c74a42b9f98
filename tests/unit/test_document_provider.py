"""Classification and split through the providers: the chat-completions client against a real local server
(tests/chat_server.py), and the offline provider."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from activities.document_tasks import ClassificationRequest, SplitRequest
from activities.documents import extract_pages
from activities.provider import OfflineProvider, OpenAICompatibleProvider, ProviderError
from docflow.blocks import Category, Subdocument
from tests.chat_server import ChatCompletionsServer
from tests.documents import three_invoices_pdf

CATEGORIES = [
    Category(name="Invoice", description="A bill asking for payment"),
    Category(name="Receipt", description="Proof of a payment"),
]
SUBDOCUMENTS = [Subdocument(name="Invoice", allow_multiple_instances=True), Subdocument(name="Receipt")]


@pytest.fixture
def server() -> Iterator[ChatCompletionsServer]:
    with ChatCompletionsServer() as running:
        yield running


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5) as http:
        yield http


def provider(server: ChatCompletionsServer, client: httpx.AsyncClient) -> OpenAICompatibleProvider:
    return OpenAICompatibleProvider(client, base_url=server.url, api_key="sk-test", default_model="gpt-test")


async def test_classification_is_one_structured_call_with_the_categories_as_an_enum(
    server: ChatCompletionsServer, client: httpx.AsyncClient
) -> None:
    server.answer({"reasoning": "a total due", "category": "Invoice", "scores": {"Invoice": 0.9, "Receipt": 0.3}})
    request = ClassificationRequest(text="Total Due: 10", categories=CATEGORIES, instructions="Be strict.")
    result = await provider(server, client).classify(request)
    assert result.category == "Invoice" and result.reasoning == "a total due"
    assert result.likelihood == pytest.approx(0.75) and result.top_margin == pytest.approx(0.5)
    assert result.model == "gpt-test" and result.usage["total_tokens"] > 0
    (sent,) = server.requests
    schema = sent.body["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["category"]["enum"] == ["Invoice", "Receipt"]
    assert schema["properties"]["scores"]["properties"]["Receipt"]["description"] == "Proof of a payment"
    system, user = sent.body["messages"]
    assert "- Invoice: A bill asking for payment" in system["content"] and "Be strict." in system["content"]
    assert user["content"] == "Total Due: 10"


async def test_a_category_outside_the_list_is_a_named_error(
    server: ChatCompletionsServer, client: httpx.AsyncClient
) -> None:
    server.answer({"reasoning": "?", "category": "Memo", "scores": {}})
    # The schema's enum catches it (after one repair request), naming the path.
    with pytest.raises(ProviderError, match=r"\$\.category: 'Memo' is not one of"):
        await provider(server, client).classify(ClassificationRequest(text="x", categories=CATEGORIES))


async def test_split_sends_marked_pages_and_checks_the_page_range(
    server: ChatCompletionsServer, client: httpx.AsyncClient
) -> None:
    answers: list[dict[str, Any]] = [
        {"splits": [{"name": "Invoice", "pages": [1, 2]}, {"name": "Invoice", "pages": [3]}]},
        {"splits": [{"name": "Invoice", "pages": [1, 9]}]},
        {"splits": [{"name": "Invoice", "pages": [1, 9]}]},  # the answer to the repair request
    ]
    server.answer(lambda body: answers.pop(0))
    request = SplitRequest(pages=["one", "two", "three"], subdocuments=SUBDOCUMENTS)
    result = await provider(server, client).split(request)
    assert [(p.name, p.pages) for p in result.parts] == [("Invoice", [1, 2]), ("Invoice", [3])]
    sent = server.requests[0].body
    assert sent["messages"][1]["content"].startswith("--- page 1 ---\none\n\n--- page 2 ---")
    items = sent["response_format"]["json_schema"]["schema"]["properties"]["splits"]["items"]
    assert items["properties"]["name"]["enum"] == ["Invoice", "Receipt"]
    assert items["properties"]["pages"]["items"]["maximum"] == 3
    with pytest.raises(ProviderError, match=r"\$\.splits\[0\]\.pages\[1\]: 9 is greater than the maximum"):
        await provider(server, client).split(request)


async def test_offline_provider_classifies_and_splits() -> None:
    pages = extract_pages(three_invoices_pdf(), "application/pdf", "three.pdf")
    offline = OfflineProvider()
    decided = await offline.classify(ClassificationRequest(text="\n".join(pages), categories=CATEGORIES))
    assert decided.category == "Invoice" and decided.model == "offline"
    found = await offline.split(SplitRequest(pages=pages, subdocuments=SUBDOCUMENTS))
    assert [p.pages for p in found.parts] == [[1, 2], [3, 4], [5, 6]]
