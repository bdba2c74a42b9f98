"""Session fixtures: a real Temporal dev server, a real S3 server (SeaweedFS), the API and a worker process.

Everything listens on free loopback ports under a temporary data directory; each test gets clients.
"""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import truststore
from pydantic import SecretStr
from retab import Retab

from activities import offline_documents
from activities.document_tasks import (
    CLASSIFICATION_SCHEMA_TITLE,
    SPLIT_SCHEMA_TITLE,
    ClassificationRequest,
    SplitRequest,
    read_paged_text,
)
from activities.labelled_text import extract_fields
from api.auth import create_key
from devstack.processes import ThreadedApi, start_worker, wait_for_worker
from devstack.stack import Server
from docflow.blocks import Category, Subdocument
from docflow.config import Settings
from docflow.webhooks import WebhookEndpoint
from storage.objects import ObjectStore
from tests.chat_server import ChatCompletionsServer
from tests.free_ports import start_on_free_ports
from tests.http_target import ALLOWED_HOST, HttpTarget
from tests.webhook_receiver import WebhookReceiver

_STATUS = pytest.StashKey[int]()
# Set to write histories of real runs into tests/histories/ for the replay test.
RECORDING = bool(os.environ.get("DOCFLOW_RECORD_HISTORIES"))

# The retab SDK injects truststore into `ssl` whenever a client is built; botocore then recurses forever
# building its SSL context in this process (the API in a thread, stores in tests). Our servers speak plain
# HTTP on loopback, so the tests keep the standard SSLContext.
truststore.inject_into_ssl = lambda: None

# The one secret the test worker knows (api_call headers may name it as `{{ secrets.TEST_TOKEN }}`); random per
# session, so a search for its bytes in history, records and logs finds only what this session leaked.
TEST_SECRET_NAME = "TEST_TOKEN"
TEST_SECRET = f"tok-{secrets.token_hex(16)}"

# Webhooks (docflow/webhooks.py): the test project's events go to `webhook_receivers[0]` on 127.0.0.2, signed
# with this secret; a project of no key has its endpoint on 127.0.0.1, which the egress rule refuses.
WEBHOOK_SECRET = f"whsec-{secrets.token_hex(16)}"
DENIED_WEBHOOK_PROJECT = "proj_webhooks_denied"


@dataclass
class Stack:
    """The running servers and what tests need to reach them."""

    settings: Settings
    api_url: str
    api_key: str
    project_id: str
    other_api_key: str
    worker: Server
    other_project_id: str = ""

    def restart_worker(self, *, kill: bool) -> None:
        """Stop the worker (SIGKILL if `kill`) and start a new one."""
        if kill:
            self.worker.proc.kill()
            self.worker.proc.wait(10)
        else:
            self.worker.stop()
        self.worker = start_worker(self.settings, self.settings.data_dir / "logs" / "worker.log")


def _model_answer(body: dict[str, Any]) -> dict[str, Any]:
    """The test model: reads labelled fields off the document text, for the schema the request carries.

    A classification or split schema (by its title) is answered by the offline logic, with the categories
    and sub-documents read from the schema's enums (and the categories' descriptions from their scores).
    """
    schema = body["response_format"]["json_schema"]["schema"]
    text = next(m["content"] for m in body["messages"] if m["role"] == "user")
    if schema.get("title") == CLASSIFICATION_SCHEMA_TITLE:
        scores = schema["properties"]["scores"]["properties"]
        categories = [
            Category(name=n, description=scores[n].get("description", ""))
            for n in schema["properties"]["category"]["enum"]
        ]
        decided = offline_documents.classify(ClassificationRequest(text=text, categories=categories))
        return {"reasoning": decided.reasoning, "category": decided.category, "scores": decided.scores}
    if schema.get("title") == SPLIT_SCHEMA_TITLE:
        names = schema["properties"]["splits"]["items"]["properties"]["name"]["enum"]
        subdocuments = [Subdocument(name=n, allow_multiple_instances=True) for n in names]
        found = offline_documents.split(SplitRequest(pages=read_paged_text(text), subdocuments=subdocuments))
        return {"splits": [{"name": p.name, "pages": p.pages} for p in found.parts]}
    return extract_fields(schema, text)


def _start_servers(data_dir: Path, model_url: str) -> tuple[Settings, list[Server]]:
    """Temporal and S3 on free ports (tests.free_ports)."""

    def make(ports: dict[str, Any]) -> Settings:
        return Settings(
            data_dir=data_dir,
            task_queue="docflow-tests",
            log_format="json",
            max_upload_bytes=2 * 1024 * 1024,
            # Small, so every test also exercises the claim check of large outputs.
            inline_output_limit_bytes=2048,
            # Small, so the SDK's claim check (ExternalStorage to S3) is exercised by real runs too; recorded
            # histories keep their payloads inline, so the replay test needs no S3.
            payload_offload_bytes=256 * 1024 if RECORDING else 4096,
            # Small, so a large for_each's coordinator continues as new in the loop tests (docs/loops.md).
            loop_batches_per_history=4,
            # Model calls go through the real OpenAI-compatible client to a real local HTTP server.
            model_provider="openai",
            model_base_url=model_url,
            model_api_key="sk-test",
            model_name="test-model",
            # One quick retry in the provider, so a few scripted failures reach the activity's retry policy too.
            model_max_retries=1,
            model_retry_initial_seconds=0.05,
            # Egress: only the api_call target's loopback address (tests/http_target.py); the rest of loopback
            # (API, S3, Temporal, all on 127.0.0.1) stays refused, so the SSRF tests mean something.
            egress_allow=f"{ALLOWED_HOST}/32",
            # A decision no worker answers gets its 503 sooner.
            review_decision_timeout_seconds=3,
            **ports,
        )

    return start_on_free_ports(make)


@pytest.fixture(scope="session")
def model_server() -> Iterator[ChatCompletionsServer]:
    """A real HTTP server speaking the chat-completions protocol, the worker's model provider."""
    with ChatCompletionsServer() as server:
        server.answer(_model_answer, model="test-model")
        yield server


@pytest.fixture(scope="session")
def webhook_receivers() -> Iterator[tuple[WebhookReceiver, WebhookReceiver]]:
    """The test project's webhook receiver (127.0.0.2), and one on 127.0.0.1 that must never receive anything."""
    with WebhookReceiver(ALLOWED_HOST) as allowed, WebhookReceiver("127.0.0.1") as denied:
        yield allowed, denied


@pytest.fixture(scope="session")
def stack(
    tmp_path_factory: pytest.TempPathFactory,
    model_server: ChatCompletionsServer,
    webhook_receivers: tuple[WebhookReceiver, WebhookReceiver],
) -> Iterator[Stack]:
    data_dir = tmp_path_factory.mktemp("docflow-data")
    settings, servers = _start_servers(data_dir, model_server.url)
    api: ThreadedApi | None = None
    worker: Server | None = None
    try:
        key, project = create_key(settings.keys_file, name="tests")
        other_key, other_project = create_key(settings.keys_file, name="other-project")
        receiver, denied = webhook_receivers
        # Secrets are per project: only the test project knows TEST_TOKEN (the other project must not reach it).
        settings.secrets = {project: {TEST_SECRET_NAME: SecretStr(TEST_SECRET)}}
        settings.webhooks = {
            project: WebhookEndpoint(url=f"{receiver.url}/hooks", secret=WEBHOOK_SECRET),
            DENIED_WEBHOOK_PROJECT: WebhookEndpoint(url=f"{denied.url}/hooks", secret=WEBHOOK_SECRET),
        }
        api = ThreadedApi(settings).start()
        worker = start_worker(settings, data_dir / "logs" / "worker.log")
        wait_for_worker(settings, proc=worker.proc)
        stack = Stack(settings, api.url, key, project, other_key, worker, other_project)
        yield stack
        worker = stack.worker
    finally:
        if worker is not None:
            worker.stop()
        if api is not None:
            api.stop()
        for server in reversed(servers):
            server.stop()
        if os.environ.get("DOCFLOW_TEST_SHOW_LOGS"):
            for log in sorted((data_dir / "logs").glob("*.log")):
                sys.stderr.write(f"--- {log.name}\n{log.read_text()[-5000:]}\n")


@pytest.fixture
def client(stack: Stack) -> Retab:
    """The official retab SDK, pointed at our API with the test project's key."""
    return Retab(api_key=stack.api_key, base_url=stack.api_url, max_retries=0)


@pytest.fixture
def other_client(stack: Stack) -> Retab:
    """The SDK with a key of another project."""
    return Retab(api_key=stack.other_api_key, base_url=stack.api_url, max_retries=0)


@pytest.fixture
def http(stack: Stack) -> Iterator[httpx.Client]:
    """A raw HTTP client with the test project's key, for status codes and error bodies."""
    with httpx.Client(base_url=stack.api_url, headers={"Api-Key": stack.api_key}, timeout=30) as c:
        yield c


@pytest.fixture
def store(stack: Stack) -> ObjectStore:
    """The test stack's object store, for tests that look at what was stored."""
    return ObjectStore(stack.settings)


@pytest.fixture(scope="session")
def http_target() -> Iterator[HttpTarget]:
    """A real HTTP server for api_call blocks."""
    with HttpTarget() as target:
        yield target


@pytest.fixture(scope="session")
def forbidden_target() -> Iterator[HttpTarget]:
    """The same server on 127.0.0.1, which the test worker may not reach: it must never count a request."""
    with HttpTarget("127.0.0.1") as target:
        yield target


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    session.config.stash[_STATUS] = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    # The SDK's Rust core can abort the interpreter at exit after all work succeeded
    # (temporalio/sdk-python#300): leave with the real status, hard.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(config.stash.get(_STATUS, 0))


@pytest.fixture
def samples() -> Path:
    """The bundled sample documents."""
    return Path(__file__).resolve().parents[1] / "docflow" / "examples"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A failed test that used the stack shows the tail of the servers' logs, so CI failures can be read."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    stack = getattr(item, "funcargs", {}).get("stack")
    if report.failed and isinstance(stack, Stack):
        for log in sorted((stack.settings.data_dir / "logs").glob("*.log")):
            report.sections.append((f"{log.name} (tail)", log.read_text(errors="replace")[-4000:]))
