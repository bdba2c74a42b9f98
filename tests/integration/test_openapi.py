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


def test_endpoints_not_built_yet_say_so(stack: Stack) -> None:
    headers = {"Api-Key": stack.api_key}
    for method, path in [
        ("GET", "/v1/workflows/experiments"),
        ("GET", "/v1/workflows/evals"),
        ("POST", "/v1/workflows/wf_x/spec/plan"),
        ("POST", "/v1/workflows/runs/export"),
    ]:
        answer = httpx.request(method, f"{stack.api_url}{path}", headers=headers)
        assert answer.status_code == 501, (method, path, answer.text)
        assert answer.json()["detail"]["code"] == "not_built"
    assert httpx.get(f"{stack.api_url}/v1/workflows/experiments").status_code == 401
