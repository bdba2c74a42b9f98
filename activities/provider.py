"""The model provider layer: text + JSON schema → data, behind one `ModelProvider` protocol.

Errors (catch at any level):

    ProviderError                  a call that failed; retrying the same request will not help
    └── ProviderTransientError     429, 5xx, timeouts, connection failures: retry later

`OpenAICompatibleProvider` speaks chat completions over an injected httpx client (OpenAI, Azure,
vLLM, Ollama, llama.cpp server…). `OfflineProvider` reads labelled values (`Total Due: EUR 1,440.00`)
from the text with no network and no randomness, for the demo and tests (`activities.labelled_text`).
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any, Protocol

import httpx
from pydantic import BaseModel, Field

from activities import offline_documents
from activities.document_tasks import (
    AnswerError,
    ClassificationRequest,
    ClassificationResult,
    SplitRequest,
    SplitResult,
    classification_instructions,
    classification_schema,
    paged_text,
    read_classification,
    read_split,
    split_instructions,
    split_schema,
)
from activities.labelled_text import extract_fields

if TYPE_CHECKING:
    from docflow.config import Settings

_TRANSIENT_STATUS = {408, 409, 425, 429}
_EXCERPT_CHARS = 300
_FENCE = re.compile(r"^```[a-zA-Z]*\s*(.*?)\s*```$", re.DOTALL)


class ProviderError(Exception):
    """A model call that failed for good: a refused request, or an answer that is not the JSON asked for."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class ProviderTransientError(ProviderError):
    """A model call that may succeed later: rate limited, server error, timeout, connection failure."""


class ExtractionRequest(BaseModel):
    """What to extract: the document text, the schema the answer must match, and how to ask."""

    text: str
    json_schema: dict[str, Any]
    instructions: str | None = None
    model: str | None = None
    temperature: float = 0.0


class ExtractionResult(BaseModel):
    """The extracted data, the model that produced it and its token usage."""

    data: dict[str, Any]
    model: str
    usage: dict[str, int] = Field(
        default_factory=lambda: {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    )


class ModelProvider(Protocol):
    """Anything that turns text + schema into data."""

    async def extract(self, request: ExtractionRequest) -> ExtractionResult:
        """Extract data matching `request.json_schema` from `request.text`."""
        ...

    async def classify(self, request: ClassificationRequest) -> ClassificationResult:
        """Choose one of `request.categories` for `request.text`."""
        ...

    async def split(self, request: SplitRequest) -> SplitResult:
        """Find the sub-documents of `request.pages` and their pages."""
        ...


class OpenAICompatibleProvider:
    """A chat-completions client (`POST {base_url}/chat/completions`) asking for schema-shaped JSON."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        base_url: str,
        api_key: str | None,
        default_model: str,
        timeout_seconds: float | None = None,
    ) -> None:
        self._client = client
        self._url = base_url.rstrip("/") + "/chat/completions"
        self._api_key = api_key
        self._default_model = default_model
        self._timeout = timeout_seconds

    async def extract(self, request: ExtractionRequest) -> ExtractionResult:
        """One chat-completions call; its message content parsed as the extracted JSON object."""
        model = request.model or self._default_model
        payload = _chat_payload(request, model)
        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
        timeout = self._timeout if self._timeout is not None else httpx.USE_CLIENT_DEFAULT
        try:
            response = await self._client.post(self._url, json=payload, headers=headers, timeout=timeout)
        except httpx.TimeoutException as exc:
            raise ProviderTransientError(f"model call to {self._url} timed out") from exc
        except httpx.TransportError as exc:
            raise ProviderTransientError(f"model call to {self._url} failed: {exc!r}") from exc
        _raise_for_status(response)
        body = _json_body(response)
        return ExtractionResult(
            data=_content_object(body),
            model=str(body.get("model") or model),
            usage=_usage(body.get("usage")),
        )

    # Classification and split are structured-output calls through `extract` (activities.document_tasks).
    async def classify(self, request: ClassificationRequest) -> ClassificationResult:
        """One structured call: the category (an enum of the names), the reasoning and a score per category."""
        ask = ExtractionRequest(
            text=request.text,
            json_schema=classification_schema(request.categories),
            instructions=classification_instructions(request.categories, request.instructions),
            model=request.model,
        )
        result = await self.extract(ask)
        try:
            return read_classification(request, result.data, result.model, result.usage)
        except AnswerError as exc:
            raise ProviderError(f"model answer does not fit the classification: {exc}") from exc

    async def split(self, request: SplitRequest) -> SplitResult:
        """One structured call over the page-marked text: splits as [{name, pages}]."""
        ask = ExtractionRequest(
            text=paged_text(request.pages),
            json_schema=split_schema(request.subdocuments, len(request.pages)),
            instructions=split_instructions(request.subdocuments, request.instructions),
            model=request.model,
        )
        result = await self.extract(ask)
        try:
            return read_split(request, result.data, result.model, result.usage)
        except AnswerError as exc:
            raise ProviderError(f"model answer does not fit the split: {exc}") from exc


class OfflineProvider:
    """Deterministic extraction by label matching; reports the model "offline"."""

    model_name = "offline"

    async def extract(self, request: ExtractionRequest) -> ExtractionResult:
        """Fill each schema property from a `Label: value` line of the text (None when absent)."""
        data = extract_fields(request.json_schema, request.text)
        # Word counts stand in for tokens so usage is non-zero and repeatable.
        prompt = len(request.text.split())
        completion = len(json.dumps(data).split())
        usage = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }
        return ExtractionResult(data=data, model=self.model_name, usage=usage)

    async def classify(self, request: ClassificationRequest) -> ClassificationResult:
        """Word similarity of the text to each category (activities.offline_documents)."""
        return offline_documents.classify(request, self.model_name)

    async def split(self, request: SplitRequest) -> SplitResult:
        """Boundaries from page-number resets, changing identifiers and headings (activities.offline_documents)."""
        return offline_documents.split(request, self.model_name)


def system_prompt(json_schema: dict[str, Any], instructions: str | None) -> str:
    """The system message: answer with one JSON object matching the schema, plus the user's instructions."""
    prompt = (
        "You extract structured data from documents. Answer with a single JSON object that matches "
        "this JSON schema, and nothing else. Use null for a value the document does not give; "
        "do not invent values or add keys the schema does not define.\n\nJSON schema:\n"
        + json.dumps(json_schema, ensure_ascii=False)
    )
    return f"{prompt}\n\nInstructions:\n{instructions}" if instructions else prompt


def _chat_payload(request: ExtractionRequest, model: str) -> dict[str, Any]:
    return {
        "model": model,
        "messages": [
            {"role": "system", "content": system_prompt(request.json_schema, request.instructions)},
            {"role": "user", "content": request.text},
        ],
        "response_format": {
            "type": "json_schema",
            # strict=False: strict mode refuses common schemas (optional keys, free-form objects).
            "json_schema": {"name": "extraction", "schema": request.json_schema, "strict": False},
        },
        "temperature": request.temperature,
    }


def _raise_for_status(response: httpx.Response) -> None:
    status = response.status_code
    if status < 400:
        return
    excerpt = response.text[:_EXCERPT_CHARS]
    message = f"model server answered HTTP {status}: {excerpt}"
    if status >= 500 or status in _TRANSIENT_STATUS:
        raise ProviderTransientError(message, status)
    raise ProviderError(message, status)


def _json_body(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError as exc:
        excerpt = response.text[:_EXCERPT_CHARS]
        raise ProviderError(f"model server answered non-JSON: {excerpt}", response.status_code) from exc
    if not isinstance(body, dict):
        raise ProviderError("model server answered JSON that is not an object", response.status_code)
    return body


def _content_object(body: dict[str, Any]) -> dict[str, Any]:
    try:
        choice = body["choices"][0]
        message = choice["message"]
    except (KeyError, IndexError, TypeError) as exc:
        raise ProviderError(f"model answer has no choices[0].message: {str(body)[:_EXCERPT_CHARS]}") from exc
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(content, str):
        refusal = message.get("refusal") if isinstance(message, dict) else None
        raise ProviderError(f"model gave no content{f' (refusal: {refusal})' if refusal else ''}")
    data = parse_json_content(content)
    if data is None:
        reason = choice.get("finish_reason") if isinstance(choice, dict) else None
        hint = " (cut off: finish_reason=length)" if reason == "length" else ""
        raise ProviderError(f"model content is not a JSON object{hint}: {content[:_EXCERPT_CHARS]}")
    return data


def parse_json_content(content: str) -> dict[str, Any] | None:
    """The JSON object in a model's message content (``` fences stripped), or None if there is none."""
    text = content.strip()
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group(1)
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _usage(raw: Any) -> dict[str, int]:
    usage = raw if isinstance(raw, dict) else {}
    counts = {k: usage.get(k) for k in ("prompt_tokens", "completion_tokens", "total_tokens")}
    result = {k: v if isinstance(v, int) else 0 for k, v in counts.items()}
    if not result["total_tokens"]:
        result["total_tokens"] = result["prompt_tokens"] + result["completion_tokens"]
    return result


def build_provider(settings: Settings, client: httpx.AsyncClient) -> ModelProvider:
    """The provider the settings name: "offline" (no network) or "openai" (any chat-completions server)."""
    if settings.model_provider == "openai":
        return OpenAICompatibleProvider(
            client,
            base_url=settings.model_base_url,
            api_key=settings.model_api_key,
            default_model=settings.model_name,
            timeout_seconds=settings.model_timeout_seconds,
        )
    return OfflineProvider()
