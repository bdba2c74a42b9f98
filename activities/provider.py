"""The model provider layer: text + JSON schema → data, behind one `ModelProvider` protocol.

Errors (catch at any level):

    ProviderError                  a call that failed; retrying the same request will not help
    └── ProviderTransientError     429, 5xx, timeouts, connection failures: retry later

`OpenAICompatibleProvider` speaks chat completions over an injected httpx client (OpenAI, Azure,
vLLM, Ollama, llama.cpp server…). It asks for JSON-schema structured output; a server that refuses
`response_format` (a 400 naming it) is asked again with `json_object`, then with plain text, and the
provider remembers the downgrade per model. Every answer is read by `docflow.structured_output`
(fences stripped, broken JSON repaired, values coerced toward the schema, validated); an answer still
invalid gets one repair request naming the JSON path and the problem, then fails as a `ProviderError`
with that `path`: never a silent null. Requests are retried and limited as `activities.model_http` says.

`OfflineProvider` reads labelled values (`Total Due: EUR 1,440.00`) from the text with no network and
no randomness, for the demo and tests (`activities.labelled_text`).

Usage per call (`ExtractionResult.usage`): `calls` (completions received), `prompt_tokens`,
`completion_tokens`, `total_tokens` (0 when the server reports none), `wall_time_ms` (retries and
waits included) and `retries` (requests repeated after a transient failure).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import httpx
import jsonschema
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
from activities.model_http import CallStats, ChatEndpoint, RetryPolicy
from activities.provider_errors import ProviderError, ProviderTransientError
from docflow.structured_output import OutputProblem, parse_object, read_answer

if TYPE_CHECKING:
    from activities.isolation import IsolatedExecutor
    from docflow.config import Settings

__all__ = ["ProviderError", "ProviderTransientError"]

T = TypeVar("T")

_EXCERPT_CHARS = 300
# Structured-output modes, best first: the next is tried when a server refuses one.
_FORMATS = ("json_schema", "json_object", "text")
_REMEMBERED_MODELS = 256
_FORMAT_WORDS = ("response_format", "json_schema", "json_object", "structured output")
# Reading an answer against a user schema runs in the isolated executor under this wall-clock limit.
READ_LIMIT_SECONDS = 4.0

# Reads a model's message content as the schema's object, or raises OutputProblem.
OutputReader = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]


class ExtractionRequest(BaseModel):
    """What to extract: the document text, the schema the answer must match, and how to ask."""

    text: str
    json_schema: dict[str, Any]
    instructions: str | None = None
    model: str | None = None
    temperature: float = 0.0


USAGE_KEYS = ("calls", "prompt_tokens", "completion_tokens", "total_tokens", "wall_time_ms", "retries")


def empty_usage() -> dict[str, int]:
    """Usage with every count at zero (the keys of the module docstring)."""
    return dict.fromkeys(USAGE_KEYS, 0)


class ExtractionResult(BaseModel):
    """The extracted data, the model that produced it and its usage (calls, tokens, wall time, retries)."""

    data: dict[str, Any]
    model: str
    usage: dict[str, int] = Field(default_factory=empty_usage)


class ModelProvider(Protocol):
    """Anything that turns text + schema into data."""

    async def extract(self, request: ExtractionRequest) -> ExtractionResult:
        """Extract data matching `request.json_schema` from `request.text`."""
        ...

    async def extract_votes(self, request: ExtractionRequest, n: int) -> list[ExtractionResult]:
        """`n` independent extractions of the same request, run in parallel (the votes of a consensus)."""
        ...

    async def classify(self, request: ClassificationRequest) -> ClassificationResult:
        """Choose one of `request.categories` for `request.text`."""
        ...

    async def split(self, request: SplitRequest) -> SplitResult:
        """Find the sub-documents of `request.pages` and their pages."""
        ...


class OpenAICompatibleProvider:
    """A chat-completions client (`POST {base_url}/chat/completions`) asking for schema-shaped JSON.

    The request's `model` (the block's) overrides `default_model` (the settings' `model_name`).
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        base_url: str,
        api_key: str | None,
        default_model: str,
        timeout_seconds: float | None = None,
        *,
        retry: RetryPolicy | None = None,
        max_concurrency: int = 8,
        reader: OutputReader | None = None,
    ) -> None:
        self._endpoint = ChatEndpoint(
            client, base_url, api_key, timeout_seconds, retry or RetryPolicy(), max_concurrency
        )
        self._default_model = default_model
        self._read = reader or read_in_process
        self._format_level: dict[str, int] = {}  # model → index in _FORMATS the server accepted

    async def extract(self, request: ExtractionRequest) -> ExtractionResult:
        """Data matching `request.json_schema`: one completion, and one repair request if it does not match."""
        stats = CallStats()
        model = request.model or self._default_model
        messages = [
            {"role": "system", "content": system_prompt(request.json_schema, request.instructions)},
            {"role": "user", "content": request.text},
        ]
        body = await self._complete(model, messages, request, stats)
        content, finish = _content(body)
        try:
            data = await self._read(content, request.json_schema)
        except OutputProblem as problem:
            messages += [{"role": "assistant", "content": content}, {"role": "user", "content": repair_prompt(problem)}]
            body = await self._complete(model, messages, request, stats)
            content, finish = _content(body)
            try:
                data = await self._read(content, request.json_schema)
            except OutputProblem as again:
                hint = " (cut off: finish_reason=length)" if finish == "length" else ""
                raise ProviderError(
                    f"model answer does not match the schema at {again.path}: {again.message}{hint}, "
                    f"after one repair request; the answer: {content[:_EXCERPT_CHARS]}",
                    path=again.path,
                ) from again
        return ExtractionResult(data=data, model=str(body.get("model") or model), usage=_usage(stats))

    async def extract_votes(self, request: ExtractionRequest, n: int) -> list[ExtractionResult]:
        """`n` extractions of the same request in parallel, within the concurrency limit (consensus votes)."""
        return await gather_votes(self, request, n)

    async def _complete(
        self, model: str, messages: list[dict[str, str]], request: ExtractionRequest, stats: CallStats
    ) -> dict[str, Any]:
        """One completion, stepping down the structured-output modes while the server refuses them."""
        level = self._format_level.get(model, 0)
        while True:
            payload = _chat_payload(model, messages, request, _FORMATS[level])
            try:
                body = await self._endpoint.post(payload, stats)
            except ProviderTransientError:
                raise
            except ProviderError as exc:
                if level + 1 >= len(_FORMATS) or not _refuses_format(exc):
                    raise
                level += 1
                # The model name is the block's (user config): remember a bounded number of downgrades.
                if model in self._format_level or len(self._format_level) < _REMEMBERED_MODELS:
                    self._format_level[model] = level
                continue
            usage = body.get("usage")
            stats.usage.append(usage if isinstance(usage, dict) else {})
            return body

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
        started = time.monotonic()
        data = extract_fields(request.json_schema, request.text)
        # Word counts stand in for tokens so usage is non-zero and repeatable.
        prompt = len(request.text.split())
        completion = len(json.dumps(data).split())
        usage = {
            **empty_usage(),
            "calls": 1,
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "wall_time_ms": _elapsed_ms(started),
        }
        return ExtractionResult(data=data, model=self.model_name, usage=usage)

    async def extract_votes(self, request: ExtractionRequest, n: int) -> list[ExtractionResult]:
        """`n` extractions of the same request (identical: label reading has no randomness)."""
        return await gather_votes(self, request, n)

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


def repair_prompt(problem: OutputProblem) -> str:
    """The follow-up message asking the model to correct an answer that broke the schema."""
    return (
        f"Your answer does not match the JSON schema at {problem.path}: {problem.message}. "
        "Answer again with only the corrected JSON object."
    )


async def gather_votes(provider: ModelProvider, request: ExtractionRequest, n: int) -> list[ExtractionResult]:
    """`n` calls of `provider.extract` at once; the first failure cancels the others and is raised."""
    if n < 1:
        raise ValueError("n must be at least 1")
    return await gather_all([provider.extract(request) for _ in range(n)])


async def gather_all(calls: Sequence[Awaitable[T]]) -> list[T]:
    """Await model calls at once; the first failure cancels the others (no call outlives the step) and is raised."""
    tasks = [asyncio.ensure_future(call) for call in calls]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


def combined_usage(results: Sequence[ExtractionResult], wall_time_ms: int | None = None) -> dict[str, int]:
    """The usage of several calls as one step's: counts summed, wall time the given one (else the longest)."""
    total = empty_usage()
    for result in results:
        for key in USAGE_KEYS:
            total[key] += result.usage.get(key, 0)
    longest = max((r.usage.get("wall_time_ms", 0) for r in results), default=0)
    total["wall_time_ms"] = longest if wall_time_ms is None else wall_time_ms
    return total


async def read_in_process(content: str, schema: dict[str, Any]) -> dict[str, Any]:
    """Read an answer on this thread: for tests and tools; the worker reads in the isolated executor."""
    try:
        return read_answer(content, schema)
    except jsonschema.SchemaError as exc:
        raise ProviderError(f"json_schema: {exc.message}") from exc


def isolated_reader(isolated: IsolatedExecutor, limit_seconds: float = READ_LIMIT_SECONDS) -> OutputReader:
    """An `OutputReader` that reads answers against the user's schema in the isolated executor."""
    from activities.isolation import ResourceLimit, TaskError, TaskTimeout

    async def read(content: str, schema: dict[str, Any]) -> dict[str, Any]:
        try:
            data = await isolated.run("model_output", {"content": content, "schema": schema}, timeout=limit_seconds)
        except TaskError as exc:
            if exc.code == "model_output_invalid":
                raise OutputProblem(exc.message, str(exc.details.get("path", "$"))) from exc
            raise ProviderError(f"json_schema: {exc.message}") from exc
        except (TaskTimeout, ResourceLimit) as exc:
            raise ProviderError(f"json_schema: reading the model's answer against it stopped: {exc}") from exc
        assert isinstance(data, dict)
        return data

    return read


def _chat_payload(model: str, messages: list[dict[str, str]], request: ExtractionRequest, mode: str) -> dict[str, Any]:
    payload: dict[str, Any] = {"model": model, "messages": messages, "temperature": request.temperature}
    if mode == "json_schema":
        payload["response_format"] = {
            "type": "json_schema",
            # strict=False: strict mode refuses common schemas (optional keys, free-form objects).
            "json_schema": {"name": "extraction", "schema": request.json_schema, "strict": False},
        }
    elif mode == "json_object":
        payload["response_format"] = {"type": "json_object"}
    return payload


def _refuses_format(exc: ProviderError) -> bool:
    """A 400/422 whose message names the structured-output request: worth asking again in a plainer mode."""
    return exc.status in (400, 422) and any(word in exc.message.lower() for word in _FORMAT_WORDS)


def _content(body: dict[str, Any]) -> tuple[str, str | None]:
    """The first choice's message content and finish reason."""
    try:
        choice = body["choices"][0]
        message = choice["message"]
    except (KeyError, IndexError, TypeError) as exc:
        raise ProviderError(f"model answer has no choices[0].message: {str(body)[:_EXCERPT_CHARS]}") from exc
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(content, str):
        refusal = message.get("refusal") if isinstance(message, dict) else None
        raise ProviderError(f"model gave no content{f' (refusal: {refusal})' if refusal else ''}")
    reason = choice.get("finish_reason") if isinstance(choice, dict) else None
    return content, reason if isinstance(reason, str) else None


def parse_json_content(content: str) -> dict[str, Any] | None:
    """The JSON object in a model's message content (fences stripped, broken JSON repaired), or None."""
    return parse_object(content)


def _usage(stats: CallStats) -> dict[str, int]:
    def count(key: str) -> int:
        return sum(v for u in stats.usage if isinstance(v := u.get(key), int) and not isinstance(v, bool))

    prompt, completion = count("prompt_tokens"), count("completion_tokens")
    return {
        "calls": len(stats.usage),
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": count("total_tokens") or prompt + completion,
        "wall_time_ms": _elapsed_ms(stats.started),
        "retries": stats.retries,
    }


def _elapsed_ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def build_provider(
    settings: Settings, client: httpx.AsyncClient, isolated: IsolatedExecutor | None = None
) -> ModelProvider:
    """The provider the settings name: "offline" (no network) or "openai" (any chat-completions server).

    One provider per worker: its concurrency limit is shared by every call the worker makes. With an
    isolated executor, answers are read against user schemas there; without one, in process.
    """
    if settings.model_provider == "openai":
        return OpenAICompatibleProvider(
            client,
            base_url=settings.model_base_url,
            api_key=settings.model_api_key,
            default_model=settings.model_name,
            timeout_seconds=settings.model_timeout_seconds,
            retry=RetryPolicy(
                max_retries=settings.model_max_retries,
                initial_seconds=settings.model_retry_initial_seconds,
                max_wait_seconds=settings.model_retry_max_wait_seconds,
                budget_seconds=settings.model_call_budget_seconds,
            ),
            max_concurrency=settings.model_max_concurrency,
            reader=isolated_reader(isolated) if isolated is not None else None,
        )
    return OfflineProvider()
