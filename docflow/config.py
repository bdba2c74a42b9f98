"""One settings class, read from `DOCFLOW_*` environment variables, validated at start.

The defaults make the embedded stack (`docflow up`) work with no configuration.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from docflow.egress import Allowlist, parse_allowlist
from docflow.webhooks import WebhookEndpoint

_PLACEHOLDER = "docflow-dev-secret"


class Settings(BaseSettings):
    """Every knob of docflow; no `os.environ` reads happen anywhere else."""

    model_config = SettingsConfigDict(env_prefix="DOCFLOW_", extra="ignore")

    environment: Literal["development", "production"] = "development"
    data_dir: Path = Path(".data")
    log_format: Literal["auto", "console", "json"] = "auto"
    log_level: str = "INFO"

    # Temporal
    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    temporal_ui_port: int = 8233
    temporal_retention: str = "720h"
    task_queue: str = "docflow-runs"

    # S3
    s3_endpoint: str = "http://127.0.0.1:8333"
    s3_region: str = "us-east-1"
    s3_access_key: str = "docflow"
    s3_secret_key: str = _PLACEHOLDER
    s3_bucket: str = "docflow"
    s3_public_endpoint: str | None = Field(
        default=None, description="The S3 URL clients reach, for presigned uploads; default: s3_endpoint"
    )
    upload_url_ttl_seconds: int = 900
    s3_master_port: int = 9333
    s3_volume_port: int = 8080
    s3_filer_port: int = 8888
    s3_admin_port: int = 23646
    # Storage outages: calls give up after these timeouts and are retried with backoff within the budget.
    s3_connect_timeout_seconds: float = 5.0
    s3_read_timeout_seconds: float = 20.0
    s3_max_threads: int = Field(default=32, ge=1, description="Threads for blocking S3 calls (their own pool)")
    storage_retry_budget_seconds: float = Field(
        default=120.0, gt=0, description="How long a block retries when storage fails before the run fails"
    )

    # API
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    api_keys_file: Path | None = Field(
        default=None, description="JSON list of {sha256, project_id, name}; default <data_dir>/api_keys.json"
    )
    max_upload_bytes: int = 50 * 1024 * 1024
    public_base_url: str | None = None

    # Request limits (issue 5, item 7): every request body is counted as it arrives, chunked or not.
    max_request_bytes: int | None = Field(
        default=None,
        description="Cap on any request body, in bytes; default: max_upload_bytes base64-encoded plus 1 MiB",
    )

    # Engine
    inline_output_limit_bytes: int = 128 * 1024
    payload_offload_bytes: int = Field(
        default=256 * 1024, description="Temporal payloads over this go to S3 (the SDK's ExternalStorage)"
    )
    max_concurrent_blocks: int = 16
    worker_max_concurrent_activities: int = 64
    # Block executions (reruns): how long POST /blocks/executions waits for the block before answering it running.
    block_execution_wait_seconds: float = Field(default=60.0, ge=0, le=600)
    # Runs kept in the worker's memory between tasks: a waiting run stays cached (about 180 KiB each, measured by
    # bench/reviews.py) until this many; past it the oldest are evicted and replayed when they wake.
    worker_max_cached_workflows: int = Field(default=1000, ge=0)

    # Run deletion: how long a delete waits for a cancelled run to close before terminating it.
    run_delete_wait_seconds: float = Field(
        default=20.0, gt=0, description="A deleted run's activities get this long to stop before it is terminated"
    )

    # Isolated executor: expressions, conditions and user JSON Schemas run in a pool of limited processes.
    isolation_processes: int = Field(default=4, ge=1, le=64, description="Processes in the worker's isolated pool")
    isolation_memory_bytes: int = Field(
        default=256 * 1024 * 1024, ge=16 * 1024 * 1024, description="Address space a task may add to an idle process"
    )
    isolation_cpu_seconds: int = Field(
        default=5, ge=1, description="CPU time of one isolated task (a backstop to the block's wall-clock limit)"
    )

    # Input limits (issue 5, item 12)
    max_blocks_per_workflow: int = Field(
        default=500, ge=1, description="Blocks a workflow's draft may hold; one more is refused with 422"
    )

    # OCR of scanned PDF pages and images (issue 6, item 4): Tesseract, run per page as a child process.
    ocr_command: str = Field(default="tesseract", description="The Tesseract program (a name on PATH or a path)")
    ocr_languages: str = Field(default="eng", pattern=r"^[a-z_]+(\+[a-z_]+)*$", description="Tesseract languages")
    ocr_max_pages: int = Field(default=50, ge=1, description="Pages OCRed per document; more fail the block")
    ocr_max_pixels: int = Field(
        default=40_000_000, ge=1_000_000, description="Pixels of one page image (rendered scans are scaled down)"
    )
    ocr_page_timeout_seconds: float = Field(default=60.0, gt=0, description="Render or decode, then OCR, of a page")
    ocr_document_timeout_seconds: float = Field(default=300.0, gt=0, description="All OCR of one document")
    ocr_processes: int = Field(default=2, ge=1, le=64, description="OCR processes a worker runs at once")

    # Model provider: "offline" needs no key and no network.
    model_provider: Literal["offline", "openai"] = "offline"
    model_base_url: str = "https://api.openai.com/v1"
    model_api_key: str | None = None
    model_name: str = "gpt-4o-mini"
    model_timeout_seconds: float = 120.0

    # Model calls: retries, waits and concurrency (issue 6, item 5; activities/provider.py)
    model_max_retries: int = Field(
        default=4,
        ge=0,
        le=10,
        description="Retries of one model call after a 429, a 5xx, a timeout or a lost connection",
    )
    model_retry_initial_seconds: float = Field(
        default=0.5, gt=0, le=60, description="First backoff wait; it doubles per retry (with jitter)"
    )
    model_retry_max_wait_seconds: float = Field(
        default=30.0,
        gt=0,
        le=600,
        description="Longest wait before one retry; a Retry-After asking for more ends the call as transient",
    )
    # Under the extract activity's 15-minute timeout (workflows/options.py), so a call ends as ours, not cut off.
    model_call_budget_seconds: float = Field(
        default=600.0,
        gt=0,
        le=840,
        description="Longest one extraction takes, retries, waits and its repair request included; then transient",
    )
    model_max_concurrency: int = Field(
        default=8, ge=1, le=256, description="Model requests one worker has in flight at once, all blocks together"
    )

    # Reviews (issue 7, item 3): how long approve / reject waits for the run to take the decision.
    review_decision_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        le=300,
        description="An approve or reject no worker has taken within this answers 503 (the review stays open)",
    )
    review_snapshot_max_bytes: int = Field(
        default=8 * 1024 * 1024, ge=1024, description="A reviewer's snapshot (as compact JSON) may be this large"
    )
    review_max_versions: int = Field(
        default=200, ge=2, le=10_000, description="Versions one review may hold; one more is refused with 409"
    )

    # Egress and secrets of api_call (docflow/egress.py, activities/egress.py). The model provider's base URL is
    # operator config, not user config: it is not subject to the egress rule.
    egress_allow: str = Field(
        default="",
        description="Comma-separated CIDRs and host names (`*.corp.example` for subdomains) that api_call may reach "
        "although the egress rule refuses them (loopback, private, link-local, metadata…); no ports",
    )
    egress_max_response_bytes: int = Field(
        default=4 * 1024 * 1024,
        ge=1024,
        description="An api_call answer's body is read up to this; more fails the step",
    )
    secrets: dict[str, dict[str, SecretStr]] = Field(
        default_factory=dict,
        repr=False,
        description="Secrets api_call may name as `{{ secrets.NAME }}`, per project: a JSON object "
        '{"<project_id>": {"NAME": "value"}} in DOCFLOW_SECRETS, read by the worker only. A run sees only its '
        "own project's secrets (another project's name is an unknown secret); values of at least 8 characters "
        "(each occurrence of a value in a trace, output or error is replaced by ***)",
    )

    # Webhooks (issue 7, item 7; docflow/webhooks.py says why they are operator config): read by the worker only.
    webhooks: dict[str, WebhookEndpoint] = Field(
        default_factory=dict,
        repr=False,
        description="Per project: where its events are POSTed, signed. A JSON object in DOCFLOW_WEBHOOKS, "
        '{"<project_id>": {"url": "https://...", "secret": "<16+ characters>", "events": [...] (optional)}}; '
        "the URL goes through the egress rule",
    )
    webhook_timeout_seconds: float = Field(
        default=10.0, gt=0, le=60, description="One webhook POST, answer included; slower counts as a failed attempt"
    )
    webhook_egress_allow: str = Field(
        default="",
        description="Like egress_allow, for webhook endpoints only (with egress_allow's entries): opens an internal "
        "receiver to webhooks without opening it to every project's api_call",
    )

    # The `docflow` CLI's client commands (issue 11, part 2; devstack/cli_client.py)
    api_key: SecretStr | None = Field(
        default=None, description="The API key the CLI sends; default: the dev stack's <data_dir>/dev-api-key"
    )

    # Review page and reviewer links (issue 11; docs/review-page.md, storage/link_secret.py).
    review_link_secret: SecretStr | None = Field(
        default=None,
        min_length=32,
        repr=False,
        description="Signs reviewer links (HMAC-SHA256); 32+ characters. Unset in development: generated once into "
        "<data_dir>/review-link-secret; unset in production: no reviewer links",
    )
    review_link_ttl_seconds: int = Field(
        default=7 * 24 * 3600, ge=60, le=90 * 24 * 3600, description="How long a reviewer link opens its review"
    )
    review_page_likelihood_threshold: float = Field(
        default=0.8, ge=0, le=1, description="Fields whose consensus likelihood is under this are highlighted"
    )
    review_page_max_pages: int = Field(default=20, ge=1, le=500, description="Document pages shown on a review page")
    review_page_max_pixels: int = Field(
        default=3_000_000, ge=100_000, le=40_000_000, description="Pixels of one page image on a review page"
    )
    review_page_render_timeout_seconds: float = Field(
        default=20.0, gt=0, le=120, description="Counting or rendering one document's page; slower is refused"
    )

    # Sandbox of user Python (issue 10): function blocks with `code` run in bubblewrap, see docs/sandbox.md.
    sandbox_warm: int = Field(default=2, ge=1, le=64, description="Sandboxes started ahead, each used for one call")
    sandbox_python: str = Field(
        default="", description="Interpreter inside the sandbox; empty: the worker's own if readable, else python3"
    )
    sandbox_bwrap: str = Field(default="bwrap", description="The bubblewrap program (a name on PATH or a path)")
    sandbox_memory_bytes: int = Field(default=1024 << 20, ge=64 << 20, description="Address space of a sandbox")
    sandbox_tmp_bytes: int = Field(default=16 << 20, ge=1 << 20, description="Size of a sandbox's private /tmp")
    sandbox_file_bytes: int = Field(default=16 << 20, ge=1 << 20, description="Largest file a sandbox may write")
    sandbox_processes: int = Field(default=16, ge=4, description="Processes (and threads) of one sandbox")
    sandbox_open_files: int = Field(default=64, ge=16, description="Open files of one sandbox")
    sandbox_io_bytes: int = Field(
        default=8 << 20, ge=1 << 20, description="Largest input (code and data) and reply of one call"
    )
    sandbox_uid_base: int = Field(
        default=430000, ge=1000, description="First of the uids given to sandboxes when the worker runs as root"
    )

    @field_validator("egress_allow", "webhook_egress_allow")
    @classmethod
    def _allowlist_parses(cls, value: str) -> str:
        parse_allowlist(value)
        return value

    @field_validator("secrets")
    @classmethod
    def _secrets_are_long_enough(cls, value: dict[str, dict[str, SecretStr]]) -> dict[str, dict[str, SecretStr]]:
        short = sorted(
            f"{project}.{name}"
            for project, named in value.items()
            for name, secret in named.items()
            if len(secret.get_secret_value()) < 8
        )
        if short:
            raise ValueError(f"secrets shorter than 8 characters (they could not be redacted safely): {short}")
        return value

    @model_validator(mode="after")
    def _refuse_placeholders_in_production(self) -> Settings:
        if self.environment == "production" and self.s3_secret_key == _PLACEHOLDER:
            raise ValueError("DOCFLOW_S3_SECRET_KEY must be set outside development")
        return self

    @property
    def egress_allowlist(self) -> Allowlist:
        """The parsed `egress_allow`."""
        return parse_allowlist(self.egress_allow)

    @property
    def webhook_egress_allowlist(self) -> Allowlist:
        """What webhook endpoints may reach: `egress_allow` and `webhook_egress_allow`."""
        return parse_allowlist(f"{self.egress_allow},{self.webhook_egress_allow}")

    @property
    def secret_values(self) -> dict[str, dict[str, str]]:
        """Each project's secrets in clear, for the activity that resolves `{{ secrets.NAME }}`."""
        return {
            project: {name: secret.get_secret_value() for name, secret in named.items()}
            for project, named in self.secrets.items()
        }

    @property
    def keys_file(self) -> Path:
        """Where hashed API keys live."""
        return self.api_keys_file or self.data_dir / "api_keys.json"

    @property
    def request_body_limit(self) -> int:
        """The cap on any request body: room for one document of max_upload_bytes as a base64 data URL."""
        return self.max_request_bytes or self.max_upload_bytes * 4 // 3 + 1024 * 1024

    @property
    def temporal_ui_url(self) -> str:
        """Base URL of the Temporal web UI."""
        host = self.temporal_address.rsplit(":", 1)[0]
        return f"http://{host}:{self.temporal_ui_port}"

    @property
    def api_url(self) -> str:
        """Base URL the API is reachable at."""
        return self.public_base_url or f"http://{self.api_host}:{self.api_port}"

    # --- loop containers (docs/loops.md) ---
    loop_batch_size: int = Field(
        default=100,
        ge=1,
        le=1000,
        description="A for_each of more items runs them in batches of this many, each batch a child workflow",
    )
    loop_max_items: int = Field(
        default=50_000,
        ge=1,
        le=1_000_000,
        description="The most items one for_each iterates",
    )
    loop_batches_per_history: int = Field(
        default=100,
        ge=1,
        le=1000,
        description="A for_each's coordinator (LoopWorkflow) continues as new after this many batches",
    )


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
