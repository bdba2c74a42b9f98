"""The Temporal worker: registers the workflows and the activities, with their clients injected."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sys
from collections.abc import Sequence

import httpx
import structlog
from temporalio.client import Client
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities.blocks import BlockActivities
from activities.egress import Egress, no_cookies
from activities.executors import Executors
from activities.http_call import ApiCaller
from activities.isolation import IsolatedExecutor
from activities.loops import LoopActivities
from activities.ocr import OcrSettings
from activities.provider import build_provider
from activities.reviews import ReviewActivities
from activities.runs import RunActivities
from activities.sandbox import SandboxOptions, SandboxPool
from activities.test_results import TestRunActivities
from activities.webhooks import WebhookSender
from docflow.config import Settings, get_settings
from docflow.logging import configure_logging
from docflow.temporal import connect
from storage.objects import ObjectStore
from storage.payloads import external_storage
from workflows.block_execution import BlockExecutionWorkflow
from workflows.loop_batch import LoopBatchWorkflow, LoopWorkflow
from workflows.run import RunWorkflow
from workflows.test_run import TestRunWorkflow

log = structlog.get_logger("docflow.worker")

# Re-importing these per workflow run costs tens of milliseconds or more; they are deterministic.
PASSTHROUGH = ("pydantic", "pydantic_core", "annotated_types", "docflow")


def workflow_runner() -> SandboxedWorkflowRunner:
    """The sandbox, with our shared models passed through."""
    return SandboxedWorkflowRunner(restrictions=SandboxRestrictions.default.with_passthrough_modules(*PASSTHROUGH))


def model_http_client(settings: Settings) -> httpx.AsyncClient:
    """The model provider's client (operator config, not subject to the egress rule); it keeps no cookies."""
    return httpx.AsyncClient(timeout=settings.model_timeout_seconds, cookies=no_cookies())


def isolated_executor(settings: Settings) -> IsolatedExecutor:
    """The pool that runs user-controlled computation (expressions, conditions, schemas); start it before use."""
    return IsolatedExecutor(
        processes=settings.isolation_processes,
        memory_bytes=settings.isolation_memory_bytes,
        cpu_seconds=settings.isolation_cpu_seconds,
    )


def sandbox_pool(settings: Settings) -> SandboxPool:
    """The warm sandboxes that run function blocks' user Python (activities.sandbox); start it before use."""
    return SandboxPool(
        SandboxOptions(
            size=settings.sandbox_warm,
            python=settings.sandbox_python,
            bwrap=settings.sandbox_bwrap,
            memory_bytes=settings.sandbox_memory_bytes,
            tmp_bytes=settings.sandbox_tmp_bytes,
            file_bytes=settings.sandbox_file_bytes,
            processes=settings.sandbox_processes,
            open_files=settings.sandbox_open_files,
            io_bytes=settings.sandbox_io_bytes,
            uid_base=settings.sandbox_uid_base,
        )
    )


def ocr_settings(settings: Settings) -> OcrSettings:
    """How scanned pages and images are OCRed (activities.ocr)."""
    return OcrSettings(
        command=settings.ocr_command,
        languages=settings.ocr_languages,
        page_timeout_seconds=settings.ocr_page_timeout_seconds,
        document_timeout_seconds=settings.ocr_document_timeout_seconds,
        max_pages=settings.ocr_max_pages,
        max_pixels=settings.ocr_max_pixels,
        processes=settings.ocr_processes,
    )


def build_worker(
    client: Client,
    settings: Settings,
    store: ObjectStore,
    http: httpx.AsyncClient,
    isolated: IsolatedExecutor,
    sandbox: SandboxPool | None = None,
) -> Worker:
    """A worker on the settings' task queue with every workflow and activity."""
    # api_call gets no shared client: each call builds its own, through the egress guard.
    api = ApiCaller(
        Egress(settings.egress_allowlist, settings.egress_max_response_bytes), store, settings.secret_values
    )
    provider = build_provider(settings, http, isolated)
    executors = Executors(store, provider, api, isolated, ocr_settings(settings), sandbox)
    blocks = BlockActivities(store, executors)
    runs = RunActivities(store)
    reviews = ReviewActivities(store)
    return Worker(
        client,
        task_queue=settings.task_queue,
        workflows=[RunWorkflow, BlockExecutionWorkflow, TestRunWorkflow, LoopWorkflow, LoopBatchWorkflow],
        activities=[
            *blocks.all(),
            *reviews.all(),
            *TestRunActivities(store, isolated, provider).all(),
            *LoopActivities(store, executors).all(),
            runs.load_graph,
            runs.persist_summary,
            runs.persist_execution,
            WebhookSender(store, settings).send,
        ],
        workflow_runner=workflow_runner(),
        max_concurrent_activities=settings.worker_max_concurrent_activities,
        max_cached_workflows=settings.worker_max_cached_workflows,
    )


async def serve(settings: Settings, stop: asyncio.Event | None = None) -> None:
    """Run a worker until `stop` is set (or forever)."""
    store = ObjectStore(settings)
    await store.ensure_bucket()
    client = await connect(settings, external_storage(store, settings.payload_offload_bytes))
    # The isolated pool is pre-warmed before the worker polls, so the first expression waits for no start-up.
    async with (
        model_http_client(settings) as http,
        isolated_executor(settings) as isolated,
        sandbox_pool(settings) as sandbox,
    ):
        worker = build_worker(client, settings, store, http, isolated, sandbox)
        log.info("worker started", task_queue=settings.task_queue, temporal=settings.temporal_address)
        if shutil.which(settings.ocr_command) is None:
            # Text documents still work; scanned pages and images fail with ocr_unavailable until it is installed.
            log.warning("OCR program not found: scanned pages will fail", ocr_command=settings.ocr_command)
        async with worker:
            await (stop or asyncio.Event()).wait()


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point: `python worker.py` or `docflow worker`."""
    settings = get_settings()
    configure_logging(settings.log_format, settings.log_level)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await serve(settings, stop)

    status = 0
    try:
        asyncio.run(run())
    except Exception:
        log.exception("worker failed")
        status = 1
    # The SDK's Rust core can abort at interpreter exit (temporalio/sdk-python#300): exit hard after a flush.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


if __name__ == "__main__":
    main()
