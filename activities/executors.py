"""What each block type does, given resolved handle inputs. Pure logic lives in `docflow/`; this is I/O."""

from __future__ import annotations

import json
import time
from typing import Any

from activities.documents import ReadOptions, UnsupportedDocumentError, read_pages
from activities.errors import BlockError, InputError
from activities.http_call import ApiCaller
from activities.isolation import IsolatedExecutor, ResourceLimit, TaskError, TaskTimeout
from activities.ocr import OcrSettings, OcrSlots, OcrUnavailable
from activities.produced import Produced
from activities.provider import ExtractionRequest, ModelProvider, ProviderError, ProviderTransientError
from activities.storage import NotFound, ObjectStore
from docflow import keys
from docflow.blocks import (
    ConditionalConfig,
    ExtractConfig,
    FunctionConfig,
    MergeDictsConfig,
    ParseConfig,
    StartJsonConfig,
    handles_of,
    parse_config,
)
from docflow.conditions import ConditionalResult
from docflow.merge import MergeError, merge_dicts
from docflow.models import FileRef
from docflow.runs import ExecuteBlockInput, HandleValue


def _json(data: Any, document: FileRef | None = None) -> HandleValue:
    return HandleValue(type="json", data=data, document=document)


def _one_json(inputs: dict[str, HandleValue], handle: str = "input-json-0") -> HandleValue:
    value = inputs.get(handle)
    if value is None or value.type != "json":
        raise InputError(f"input handle '{handle}' has no JSON value", code="missing_input", details={"handle": handle})
    return value


# Pure blocks run as local activities (5 s start-to-close): their evaluation gets less than that.
LOCAL_EVALUATION_LIMIT_SECONDS = 4.0


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
    ) -> None:
        self.store = store
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

    async def _document_text(self, project_id: str, doc: FileRef, cfg: ParseConfig | None = None) -> list[str]:
        """Text per page; scans and images are OCRed with the parse block's resolution and table format."""
        try:
            content = await self.store.get_bytes(keys.file_content(project_id, doc.id))
        except NotFound as exc:
            raise BlockError(f"document '{doc.id}' is not stored", code="document_missing") from exc
        cfg = cfg or ParseConfig()
        options = ReadOptions(cfg.image_resolution_dpi, cfg.table_parsing_format, self.ocr, self.ocr_slots)
        try:
            return await read_pages(content, doc.mime_type, doc.filename, options)
        except UnsupportedDocumentError as exc:
            raise BlockError(str(exc), code=exc.code, details=exc.details) from exc
        except OcrUnavailable as exc:
            raise BlockError(f"{doc.filename}: {exc}", code="ocr_unavailable") from exc

    async def start_document(self, inp: ExecuteBlockInput, inputs: dict[str, HandleValue]) -> Produced:
        """The document given for this start block."""
        doc = inp.documents.get(inp.block.id)
        if doc is None:
            raise InputError(f"no document given for start block '{inp.block.id}'", code="missing_document")
        return Produced(outputs={"output-file-0": HandleValue(type="file", document=doc)})

    async def start_json(self, inp: ExecuteBlockInput, inputs: dict[str, HandleValue]) -> Produced:
        """The JSON given for this start block, checked against its schema."""
        cfg = parse_config("start_json", inp.block.config)
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
        cfg = parse_config("parse", inp.block.config)
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
        cfg = parse_config("extract", inp.block.config)
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
        try:
            result = await self.provider.extract(request)
        except ProviderTransientError:
            raise  # rate limits, 5xx, timeouts: Temporal retries the activity with backoff
        except ProviderError as exc:
            raise BlockError(f"model call failed: {exc}", code="provider_error") from exc
        file = source or FileRef(id="", filename="", mime_type="text/plain")
        artifact = {
            "operation": "extraction",
            "file": file.model_dump(),
            "model": result.model,
            "json_schema": cfg.json_schema,
            "n_consensus": cfg.n_consensus,
            "instructions": cfg.instructions,
            "output": result.data,
            "status": "completed",
            # Retab's usage carries credits; a self-hosted model call costs none.
            "usage": {"credits": 0.0, **result.usage},
        }
        return Produced(outputs={"output-json-0": _json(result.data, source)}, artifact=artifact, model=result.model)

    async def conditional(self, inp: ExecuteBlockInput, inputs: dict[str, HandleValue]) -> Produced:
        """The first matching branch; the input passes through on its handle."""
        cfg = parse_config("conditional", inp.block.config)
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
        """The expression or mapping evaluated over the input."""
        cfg = parse_config("function", inp.block.config)
        assert isinstance(cfg, FunctionConfig)
        value = _one_json(inputs)
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
        cfg = parse_config("merge_dicts", inp.block.config)
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


def _dumps(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, default=str)
