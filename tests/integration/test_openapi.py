"""The OpenAPI schema documents every block type's config model."""

from __future__ import annotations

import httpx

from docflow.blocks import CONFIG_MODELS
from tests.conftest import Stack


def test_openapi_documents_each_block_config(stack: Stack) -> None:
    schema = httpx.get(f"{stack.api_url}/openapi.json").json()
    schemas = schema["components"]["schemas"]
    for model in CONFIG_MODELS.values():
        assert model.__name__ in schemas
    assert "json_schema" in schemas["ExtractConfig"]["required"]
    config = schemas["BlockCreate"]["properties"]["config"]
    assert config["x-config-model-by-type"]["extract"] == "#/components/schemas/ExtractConfig"
    assert "/v1/workflows/runs" in schema["paths"] and "/v1/workflows/blocks" in schema["paths"]
