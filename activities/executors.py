"""What each block type does, given resolved handle inputs. Pure logic lives in `docflow/`; this is I/O."""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Iterable
from datetime import timedelta
from typing import Any, TypeVar

from pydantic import ValidationError
from temporalio.exceptions import ApplicationError

from activities.document_tasks import ClassificationRequest, SplitPart, SplitRequest, SplitResult
from activities.documents import ReadOptions, UnsupportedDocumentError, read_pages
from activities.errors import BlockError, InputError
from activities.http_call import ApiCaller
from activities.isolation import IsolatedExecutor, ResourceLimit, TaskError, TaskTimeout
from activities.ocr import OcrSettings, OcrSlots, OcrUnavailable
from activities.produced import Produced
from activities.provider import (
    ExtractionRequest,
    ExtractionResult,
    ModelProvider,
    ProviderError,
    ProviderTransientError,
    combined_usage,
    gather_all,
)
from activities.python_function import run_python
from activities.review_gate import ReviewGate, review_gate_of
from activities.sandbox import SandboxPool
from activities.split_outputs import split_outputs
from docflow import keys
from docflow.blocks import (
    ClassifierConfig,
    ConditionalConfig,
    ExtractConfig,
    FunctionConfig,
    MergeDictsConfig,
    ParseConfig,
    SplitConfig,
    StartJsonConfig,
    handles_of,
    parse_config,
)
from docflow.conditions import ConditionalResult
from docflow.consensus import merge_categories, merge_splits
from docflow.merge import MergeError, merge_dicts
from docflow.models import FileRef
from docflow.review_gate import gate_artifact
from docflow.review_models import review_of
from docflow.review_predicates import Evaluation
from docflow.runs import ExecuteBlockInput, HandleValue
from storage.objects import NotFound, ObjectStore


def _json(data: Any, document: FileRef | None = None) -> HandleValue:
    return HandleValue(type="json", data=data, document=document)


def _one_json(inputs: dict[str, HandleValue], handle: str = "input-json-0") -> HandleValue:
    value = inputs.get(handle)
    if value is None or value.type != "json":
        raise InputError(f"input handle '{handle}' has no JSON value", code="missing_input", details={"handle": handle})
    return value


# Pure blocks run as local activities (5 s start-to-close): their evaluation gets less than that.
LOCAL_EVALUATION_LIMIT_SECONDS = 4.0
T = TypeVar("T")
# The consensus merge of K votes runs in the isolated executor; its bounds (docflow.consensus) keep it far below.
CONSENSUS_LIMIT_SECONDS = 30.0
# A review predicate (and the output's validation against the user's schema) in the isolated executor.
REVIEW_GATE_LIMIT_SECONDS = 10.0


class Executors:
    """Block executors, with the store, the model provider, the HTTP caller and the isolated executor injected.

    User-controlled computation (expressions, conditions, user JSON Schemas) runs in the isolated executor's
    processes, never on this event loop; its wall-clock limit covers the evaluation only. Running out of
    time or memory there is the user's (a permanent BlockError); a lost process is infrastructure (retried).
    """

    def __init__(
        self,
        store: ObjectStore,
        provider: ModelProvider,
        api: ApiCaller,
        isolated: IsolatedExecutor,
        ocr: OcrSettings | None = None,
        sandbox: SandboxPool | None = None,
    ) -> None:
        self.store = store
        self.sandbox = sandbox
        self.provider = provider
        self.api = api
        self.isolated = isolated
        self.ocr = ocr or OcrSettings()
        self.ocr_slots = OcrSlots(self.ocr)

    async def _isolated(self, task: str, payload: Any, limit: float, prefix: str, field: str) -> Any:
        """Run a task in the isolated executor; its limits become the block's errors (TaskError passes)."""
        try:
            return await self.isolated.run(task, payload, timeout=limit)
        except TaskTimeout as exc:
            raise BlockError(
                f"{field}: did not finish within {limit:g} s", code=f"{prefix}_timeout", details={"field": field}
            ) from exc
        except ResourceLimit as exc:
            raise BlockError(
                f"{field}: stopped at the {exc.resource} limit ({exc})",
                code=f"{prefix}_resource_limit",
                details={"field": field, "resource": exc.resource},
            ) from exc

    async def review_gate(self, inp: ExecuteBlockInput, produced: Produced) -> ReviewGate | None:
        """The block's review gate evaluated over what it produced; None when its config has no `review`."""
        if inp.block.config.get("review") is None:
            return None  # most blocks: no gate, and no second parse of their config
        cfg = _config(inp, inp.block.type)
        review = review_of(cfg)
        if review is None:
            return None
        artifact = produced.artifact or {}
        # Only what the gate reads crosses to the process: a consensus's votes would double the payload.
        payload = {
            "block_type": inp.block.type,
            "config": inp.block.config,
            "artifact": gate_artifact(artifact),
            "routing": produced.routing,
        }
        field = "review.predicate"
        try:
            answer = await self._isolated("review_gate", payload, REVIEW_GATE_LIMIT_SECONDS, "review_gate", field)
        except TaskError as exc:
            message = f"{field}: {exc.message}"
            raise BlockError(message, code=exc.code, details={**exc.details, "field": field}) from exc
        evaluation = Evaluation.model_validate(answer)
        return review_gate_of(inp.block.type, cfg, review, evaluation, artifact)

    async def _document_text(
        self, project_id: str, doc: FileRef, cfg: ParseConfig | None = None, content: bytes | None = None
    ) -> list[str]:
        """Text per page; scans and images are OCRed with the parse block's resolution and table format."""
        if content is None:
            content = await self._document_bytes(project_id, doc)
        cfg = cfg or ParseConfig()
        options = ReadOptions(cfg.image_resolution_dpi, cfg.table_parsing_format, self.ocr, self.ocr_slots)
        try:
            return await read_pages(content, doc.mime_type, doc.filename, options)
        except UnsupportedDocumentError as exc:
            raise BlockError(str(exc), code=exc.code, details=exc.details) from exc
        except OcrUnavailable as exc:
            raise BlockError(f"{doc.filename}: {exc}", code="ocr_unavailable") from exc

    async def _document_bytes(self, project_id: str, doc: FileRef) -> bytes:
        """The stored document's bytes (a step error if they are gone)."""
        try:
            return await self.store.get_bytes(keys.file_content(project_id, doc.id))
        except NotFound as exc:
            raise BlockError(f"document '{doc.id}' is not stored", code="document_missing") from exc

    async def start_document(self, inp: ExecuteBlockInput, inputs: dict[str, HandleValue]) -> Produced:
        """The document given for this start block."""
        doc = inp.documents.get(inp.block.id)
        if doc is None:
            raise InputError(f"no document given for start block '{inp.block.id}'", code="missing_document")
        return Produced(outputs={"output-file-0": HandleValue(type="file", document=doc)})

    async def start_json(self, inp: ExecuteBlockInput, inputs: dict[str, HandleValue]) -> Produced:
        """The JSON given for this start block, checked against its schema."""
        cfg = _config(inp, "start_json")
        assert isinstance(cfg, StartJsonConfig)
        all_inputs: dict[str, Any] = {}
        if inp.json_inputs_key:
            all_inputs = (await self.store.get_json(inp.json_inputs_key)).data
        if inp.block.id not in all_inputs:
            raise InputError(f"no JSON input given for start block '{inp.block.id}'", code="missing_json_input")
        data = all_inputs[inp.block.id]
        if cfg.json_schema:
            payload = {"schema": cfg.json_schema, "instance": data}
            try:
                await self._isolated("json_schema", payload, LOCAL_EVALUATION_LIMIT_SECONDS, "schema", "json_schema")
            except TaskError as exc:
                raise InputError(
                    f"JSON input does not match the schema: {exc.message}", code=exc.code, details=exc.details
                ) from exc
        return Produced(outputs={"output-json-0": _json(data)})

    async def parse(self, inp: ExecuteBlockInput, inputs: dict[str, HandleValue]) -> Produced:
        """Text per page of the input document."""
        cfg = _config(inp, "parse")
        assert isinstance(cfg, ParseConfig)
        doc = inputs.get("input-file-0")
        if doc is None or doc.document is None:
            raise InputError("input handle 'input-file-0' has no document", code="missing_input")
        pages = await self._document_text(inp.run.project_id, doc.document, cfg)
        output = {"pages": pages, "text": "\n\n".join(pages)}
        model = cfg.model or "docflow-text"
        artifact: dict[str, Any] = {
            "operation": "parse",
            "file": doc.document.model_dump(),
            "model": model,
            "table_parsing_format": cfg.table_parsing_format,
            "image_resolution_dpi": cfg.image_resolution_dpi,
            "output": output,
            "status": "completed",
        }
        return Produced(outputs={"output-json-0": _json(output, doc.document)}, artifact=artifact, model=model)

    async def extract(self, inp: ExecuteBlockInput, inputs: dict[str, HandleValue]) -> Produced:
        """Data matching the schema, from the document or text inputs, through the model provider."""
        cfg = _config(inp, "extract")
        assert isinstance(cfg, ExtractConfig)
        texts: list[str] = []
        source: FileRef | None = None
        for handle in handles_of("extract", cfg).inputs:
            value = inputs.get(handle)
            if value is None:
                raise InputError(
                    f"input handle '{handle}' has no value", code="missing_input", details={"handle": handle}
                )
            source = source or value.document
            if value.type == "file" and value.document is not None:
                texts.append("\n\n".join(await self._document_text(inp.run.project_id, value.document)))
            elif isinstance(value.data, dict) and isinstance(value.data.get("text"), str):
                texts.append(value.data["text"])
            else:
                texts.append(value.data if isinstance(value.data, str) else _dumps(value.data))
        request = ExtractionRequest(
            text="\n\n".join(texts),
            json_schema=cfg.json_schema,
            instructions=cfg.instructions,
            model=cfg.model,
            temperature=cfg.temperature,
        )
        n = cfg.n_consensus
        results = await _model_call(self.provider.extract_votes(request, n) if n > 1 else _one(self.provider, request))
        consensus: dict[str, Any] | None = None
        data = results[0].data
        if n > 1:
            votes = [r.data for r in results]
            payload = {"votes": votes, "schema": cfg.json_schema}
            try:
                merged = await self._isolated("consensus", payload, CONSENSUS_LIMIT_SECONDS, "consensus", "n_consensus")
            except TaskError as exc:
                raise BlockError(exc.message, code=exc.code, details=exc.details) from exc
            data = merged["value"]
            consensus = {"choices": votes, "likelihoods": merged["likelihoods"]}
        file = source or FileRef(id="", filename="", mime_type="text/plain")
        artifact = {
            "operation": "extraction",
            "file": file.model_dump(),
            "model": results[0].model,
            "json_schema": cfg.json_schema,
            "n_consensus": n,
            "instructions": cfg.instructions,
            "output": data,
            "consensus": consensus,
            "status": "completed",
            # Retab's usage carries credits; a self-hosted model call costs none.
            "usage": {"credits": 0.0, **(combined_usage(results) if n > 1 else results[0].usage)},
        }
        return Produced(outputs={"output-json-0": _json(data, source)}, artifact=artifact, model=results[0].model)

    async def classifier(self, inp: ExecuteBlockInput, inputs: dict[str, HandleValue]) -> Produced:
        """One category for the document; the document passes through on that category's handle only."""
        cfg = _config(inp, "classifier")
        assert isinstance(cfg, ClassifierConfig)
        doc = _one_document(inputs, "input-file-document")
        pages = await self._document_text(inp.run.project_id, doc)
        request = ClassificationRequest(
            text="\n\n".join(pages), categories=cfg.categories, instructions=cfg.instructions, model=cfg.model
        )
        start = time.perf_counter()
        n = cfg.n_consensus
        results = await _model_call(gather_all([self.provider.classify(request) for _ in range(n)]))
        votes = merge_categories([r.category for r in results])
        result = next(r for r in results if r.category == votes.category)
        likelihood = result.likelihood if n == 1 else votes.likelihood
        top_margin = result.top_margin if n == 1 else votes.margin
        chosen = next(c for c in cfg.categories if c.name == result.category)
        handle = f"output-file-{chosen.key}"
        decision = {"reasoning": result.reasoning, "category": result.category}
        choices = [{"reasoning": r.reasoning, "category": r.category} for r in results]
        artifact = {
            "operation": "classification",
            "file": doc.model_dump(),
            "model": result.model,
            "categories": [{"name": c.name, "description": c.description, "handle_key": c.key} for c in cfg.categories],
            "n_consensus": cfg.n_consensus,
            "instructions": cfg.instructions,
            "output": decision,
            "status": "completed",
            "consensus": {"choices": choices, "likelihoods": likelihood},
            # Beyond Retab's record (clients ignore them): what review gates on.
            "likelihood": likelihood,
            "top_margin": top_margin,
            "scores": result.scores,
            "selected_handle": handle,
            "usage": _usage(_summed(r.usage for r in results), start, calls=n),
        }
        outputs = {handle: HandleValue(type="file", document=doc)}
        return Produced(outputs=outputs, routing=[handle], artifact=artifact, model=result.model)

    async def split(self, inp: ExecuteBlockInput, inputs: dict[str, HandleValue]) -> Produced:
        """Page ranges per sub-document, each stored as its own PDF; routed to the sub-documents found."""
        cfg = _config(inp, "split")
        assert isinstance(cfg, SplitConfig)
        project = inp.run.project_id
        doc = _one_document(inputs, "input-file-0")
        content = await self._document_bytes(project, doc)
        pages = await self._document_text(project, doc, content=content)
        request = SplitRequest(
            pages=pages, subdocuments=cfg.subdocuments, instructions=cfg.instructions, model=cfg.model
        )
        start = time.perf_counter()
        n = cfg.n_consensus
        results = await _model_call(gather_all([self.provider.split(request) for _ in range(n)]))
        result = results[0] if n == 1 else _merged_split(results)
        parts = [(p.name, p.pages) for p in result.parts]
        outputs, splits = await split_outputs(self.store, project, doc, content, parts, cfg.subdocuments, len(pages))
        votes = [{"name": p.name, "pages": p.pages} for p in result.parts]
        artifact = {
            "operation": "split",
            "file": doc.model_dump(),
            "model": result.model,
            "subdocuments": [d.model_dump() for d in cfg.subdocuments],
            "n_consensus": n,
            "instructions": cfg.instructions,
            "output": votes,
            "status": "completed",
            "consensus": {
                "likelihoods": [_split_likelihood(p) for p in result.parts],
                "choices": [[{"name": p.name, "pages": p.pages} for p in r.parts] for r in results],
            },
            # Beyond Retab's record (clients ignore them): the stored PDF of each split, the document's pages.
            "splits": splits,
            "page_count": len(pages),
            "usage": _usage(_summed(r.usage for r in results), start, calls=n),
        }
        return Produced(outputs=outputs, routing=list(outputs), artifact=artifact, model=result.model)

    async def conditional(self, inp: ExecuteBlockInput, inputs: dict[str, HandleValue]) -> Produced:
        """The first matching branch; the input passes through on its handle."""
        cfg = _config(inp, "conditional")
        assert isinstance(cfg, ConditionalConfig)
        value = _one_json(inputs)
        payload = {"config": cfg.model_dump(mode="json"), "data": value.data}
        try:
            answer = await self._isolated(
                "conditions", payload, LOCAL_EVALUATION_LIMIT_SECONDS, "condition", "conditions"
            )
        except TaskError as exc:
            raise BlockError(f"conditions: {exc.message}", code=exc.code, details=exc.details) from exc
        result = ConditionalResult.model_validate(answer)
        artifact = {
            "operation": "conditional_evaluation",
            "evaluations": result.evaluations,
            "selected_handles": result.selected_handles,
            "matched_branch_id": result.matched_branch_id,
            "matched_condition_ids": result.matched_condition_ids,
        }
        outputs = {h: _json(value.data, value.document) for h in result.selected_handles}
        return Produced(outputs=outputs, routing=list(result.selected_handles), artifact=artifact)

    async def function(self, inp: ExecuteBlockInput, inputs: dict[str, HandleValue]) -> Produced:
        """The expression or mapping evaluated over the input, or the user's Python run in the sandbox."""
        cfg = _config(inp, "function")
        assert isinstance(cfg, FunctionConfig)
        value = _one_json(inputs)
        if cfg.code is not None:
            output, record = await run_python(self.sandbox, self.isolated, inp.block.id, cfg, value.data)
            return Produced(outputs={"output-json-0": _json(output)}, artifact=record)
        start = time.perf_counter()
        artifact: dict[str, Any] = {"operation": "function_invocation", "inputs": {"input-json-0": value.data}}
        # In the isolated executor, under a time limit: function blocks run as local activities, which stay short.
        limit = min(cfg.timeout_seconds, LOCAL_EVALUATION_LIMIT_SECONDS)
        field = "expression" if cfg.expression is not None else "mapping"
        payload = {"config": cfg.model_dump(mode="json", exclude_none=True), "data": value.data}
        try:
            output = await self._isolated("function", payload, limit, "expression", field)
        except TaskError as exc:
            artifact.update(error={"message": exc.message, "block_id": inp.block.id}, output=None)
            raise BlockError(exc.message, code=exc.code, details={**exc.details, "artifact": artifact}) from exc
        artifact.update(output=output, duration_ms=int((time.perf_counter() - start) * 1000))
        return Produced(outputs={"output-json-0": _json(output)}, artifact=artifact)

    async def merge_dicts(self, inp: ExecuteBlockInput, inputs: dict[str, HandleValue]) -> Produced:
        """The merged inputs, in handle order."""
        cfg = _config(inp, "merge_dicts")
        assert isinstance(cfg, MergeDictsConfig)
        ordered = [inputs[h].data for h in handles_of("merge_dicts", cfg).inputs if h in inputs]
        try:
            merged = merge_dicts(ordered, cfg.strategy)
        except MergeError as exc:
            raise BlockError(str(exc), code="merge_error") from exc
        return Produced(outputs={"output-json-0": _json(merged)})

    async def api_call(self, inp: ExecuteBlockInput, inputs: dict[str, HandleValue]) -> Produced:
        """The HTTP request, retried on 5xx and timeouts, traced in the artifact."""
        value = inputs.get("input-json-0")
        return await self.api.call(inp, value.data if value else None)


def _config(inp: ExecuteBlockInput, block_type: str) -> Any:
    """The block's validated config; a stored config that no longer validates is a step error naming the field."""
    try:
        return parse_config(block_type, inp.block.config)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = "config." + ".".join(str(part) for part in first["loc"])
        message = f"{field}: {first['msg']}"
        raise BlockError(message, code="invalid_config", details={"field": field}) from exc
    except ValueError as exc:
        raise BlockError(f"config: {exc}", code="invalid_config", details={"field": "config"}) from exc


async def _one(provider: ModelProvider, request: ExtractionRequest) -> list[ExtractionResult]:
    return [await provider.extract(request)]


async def _model_call(call: Awaitable[list[T]]) -> list[T]:
    """Await model calls, mapping the provider's errors to the activity's: transient retried, permanent not."""
    try:
        return await call
    except ProviderTransientError as exc:
        # Rate limits, 5xx, timeouts past the provider's own retries: Temporal retries the activity with
        # backoff, not sooner than a Retry-After the provider would not wait out itself.
        if exc.retry_after is None:
            raise
        raise ApplicationError(
            str(exc), type="ProviderTransientError", next_retry_delay=timedelta(seconds=exc.retry_after)
        ) from exc
    except ProviderError as exc:
        raise BlockError(f"model call failed: {exc}", code="provider_error") from exc


def _one_document(inputs: dict[str, HandleValue], handle: str) -> FileRef:
    value = inputs.get(handle)
    if value is None or value.document is None:
        raise InputError(f"input handle '{handle}' has no document", code="missing_input", details={"handle": handle})
    return value.document


def _usage(tokens: dict[str, int], start: float, calls: int = 1) -> dict[str, Any]:
    # Retab's usage carries credits; a self-hosted model call costs none.
    return {"credits": 0.0, "calls": calls, "wall_ms": int((time.perf_counter() - start) * 1000), **tokens}


def _summed(usages: Iterable[dict[str, int]]) -> dict[str, int]:
    """The token counts of several calls, added up."""
    total: dict[str, int] = {}
    for usage in usages:
        for key, value in usage.items():
            total[key] = total.get(key, 0) + value
    return total


def _merged_split(results: list[SplitResult]) -> SplitResult:
    """K split votes as one: the consensus splits (docflow.consensus), with per-page agreement of the votes."""
    votes = [[{"name": p.name, "pages": p.pages} for p in r.parts] for r in results]
    try:
        merged = merge_splits(votes)
    except ValueError as exc:
        raise BlockError(f"split votes: {exc}", code="consensus_invalid") from exc
    parts = []
    for split, scored in zip(merged.splits, merged.likelihoods, strict=True):
        pages = sorted(split["pages"])
        # A page's likelihood: the share of votes that put it under a sub-document of the same name.
        agree = [
            sum(any(v["name"] == split["name"] and p in v["pages"] for v in vote) for vote in votes) for p in pages
        ]
        page_likelihoods = [count / len(votes) for count in agree]
        parts.append(
            SplitPart(
                name=split["name"], pages=pages, likelihood=scored["likelihood"], page_likelihoods=page_likelihoods
            )
        )
    parts.sort(key=lambda part: part.pages[0] if part.pages else 0)
    return SplitResult(parts=parts, model=results[0].model, usage={})


def _split_likelihood(part: SplitPart) -> dict[str, Any]:
    return {"name": part.likelihood, "pages": part.page_likelihoods or []}


def _dumps(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, default=str)
