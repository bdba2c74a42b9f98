"""The OpenAPI schema, with every block type's config model documented.

Block configs travel as free-form objects (as in the SDK), validated on write against the model of the
block's `type`; here each model becomes a component, and the block bodies' `config` points at them.
Error answers are documented as what we send, `{"detail": {"code", "message", "details"}}` (`ErrorResponse`),
not FastAPI's default list-of-errors shape.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from docflow.blocks import CONFIG_MODELS

_REF = "#/components/schemas/{model}"
_BODIES = ("BlockCreate", "BlockUpdate", "ConfigCheck")


def _config_components() -> tuple[dict[str, Any], dict[str, str]]:
    components: dict[str, Any] = {}
    by_type: dict[str, str] = {}
    for block_type, model in sorted(CONFIG_MODELS.items()):
        schema = model.model_json_schema(ref_template=_REF)
        components.update(schema.pop("$defs", {}))
        components[model.__name__] = schema
        by_type[block_type] = _REF.format(model=model.__name__)
    return components, by_type


def install_openapi(app: FastAPI) -> None:
    """Generate the schema once, with the config models added."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        components, by_type = _config_components()
        schemas = schema.setdefault("components", {}).setdefault("schemas", {})
        schemas.update(components)
        for body in _BODIES:
            props = schemas.get(body, {}).get("properties", {})
            if "config" in props:
                props["config"] = {
                    "anyOf": [{"$ref": ref} for ref in by_type.values()] + [{"type": "null"}],
                    "description": "The config of the block's type; validated on write against that type's model.",
                    "x-config-model-by-type": by_type,
                }
        _document_errors(schema)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


_ERROR_RESPONSE = {
    "type": "object",
    "title": "ErrorResponse",
    "required": ["detail"],
    "properties": {
        "detail": {
            "type": "object",
            "required": ["code", "message", "details"],
            "properties": {
                "code": {"type": "string", "description": "A stable code to branch on"},
                "message": {"type": "string", "description": "What is wrong, naming the field or block"},
                "details": {"type": "object", "description": "The failing `field`, block or other specifics"},
            },
        }
    },
}


def _document_errors(schema: dict[str, Any]) -> None:
    """Point every 422 answer at our error shape (see `api.errors`) instead of FastAPI's default."""
    schemas = schema["components"]["schemas"]
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    schemas["ErrorResponse"] = _ERROR_RESPONSE
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            answer = operation.get("responses", {}).get("422")
            if answer is not None:
                answer["description"] = "Invalid input; `details.field` names the field"
                answer["content"] = {"application/json": {"schema": {"$ref": _REF.format(model="ErrorResponse")}}}
