"""One settings class, read from `DOCFLOW_*` environment variables, validated at start.

The defaults make the embedded stack (`docflow up`) work with no configuration.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

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

    # API
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    api_keys_file: Path | None = Field(
        default=None, description="JSON list of {sha256, project_id, name}; default <data_dir>/api_keys.json"
    )
    max_upload_bytes: int = 50 * 1024 * 1024
    public_base_url: str | None = None

    # Engine
    inline_output_limit_bytes: int = 128 * 1024
    payload_offload_bytes: int = Field(
        default=256 * 1024, description="Temporal payloads over this go to S3 (the SDK's ExternalStorage)"
    )
    max_concurrent_blocks: int = 16
    worker_max_concurrent_activities: int = 64

    # Input limits (issue 5, item 12)
    max_blocks_per_workflow: int = Field(
        default=500, ge=1, description="Blocks a workflow's draft may hold; one more is refused with 422"
    )

    # Model provider: "offline" needs no key and no network.
    model_provider: Literal["offline", "openai"] = "offline"
    model_base_url: str = "https://api.openai.com/v1"
    model_api_key: str | None = None
    model_name: str = "gpt-4o-mini"
    model_timeout_seconds: float = 120.0

    @model_validator(mode="after")
    def _refuse_placeholders_in_production(self) -> Settings:
        if self.environment == "production" and self.s3_secret_key == _PLACEHOLDER:
            raise ValueError("DOCFLOW_S3_SECRET_KEY must be set outside development")
        return self

    @property
    def keys_file(self) -> Path:
        """Where hashed API keys live."""
        return self.api_keys_file or self.data_dir / "api_keys.json"

    @property
    def temporal_ui_url(self) -> str:
        """Base URL of the Temporal web UI."""
        host = self.temporal_address.rsplit(":", 1)[0]
        return f"http://{host}:{self.temporal_ui_port}"

    @property
    def api_url(self) -> str:
        """Base URL the API is reachable at."""
        return self.public_base_url or f"http://{self.api_host}:{self.api_port}"


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
