"""`{{ path }}` placeholders for the api_call block: URLs, headers, query and body from the JSON input.

Paths use the syntax of `docflow.jsonpath`; `{{ input }}`, `{{ data }}`, `{{ . }}` and `{{ $ }}` are
the whole input. A string that is exactly one placeholder becomes the raw JSON value (a number stays
a number, an object an object); inside longer text a value is written as text, non-strings as JSON
(`true`, `null`, `{"a": 1}`). Dict keys are rendered as text too. A missing path is an error rather
than an empty string, so a request is never sent with a silently blank field.
"""

from __future__ import annotations

import json
import re
from typing import Any

from docflow.jsonpath import MISSING, TEMPLATE_ROOTS, PathError, is_wildcard_path, resolve

_PLACEHOLDER = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")


class TemplateError(ValueError):
    """A placeholder whose path is missing from the input or cannot be parsed."""

    def __init__(self, message: str, path: str) -> None:
        super().__init__(f"{message}: {{{{ {path} }}}}")
        self.message = message
        self.path = path


def render_template(template: Any, data: Any) -> Any:
    """Replace every `{{ path }}` in the strings of a str / list / dict template with input values."""
    if isinstance(template, str):
        return _render_string(template, data)
    if isinstance(template, list):
        return [render_template(item, data) for item in template]
    if isinstance(template, dict):
        return {_render_text(str(key), data): render_template(value, data) for key, value in template.items()}
    return template


def placeholders(template: Any) -> list[str]:
    """The paths of every placeholder in a template, in order (for validation on write)."""
    if isinstance(template, str):
        return [m.group(1) for m in _PLACEHOLDER.finditer(template)]
    if isinstance(template, list):
        return [p for item in template for p in placeholders(item)]
    if isinstance(template, dict):
        return [p for key, value in template.items() for p in placeholders(str(key)) + placeholders(value)]
    return []


def _render_string(text: str, data: Any) -> Any:
    whole = _PLACEHOLDER.fullmatch(text)
    if whole is not None:
        return _lookup(whole.group(1), data)
    return _render_text(text, data)


def _render_text(text: str, data: Any) -> str:
    return _PLACEHOLDER.sub(lambda m: _as_text(_lookup(m.group(1), data)), text)


def _lookup(path: str, data: Any) -> Any:
    try:
        if is_wildcard_path(path):
            raise TemplateError("wildcards are not supported in templates", path)
        value = resolve(data, path, roots=TEMPLATE_ROOTS)
    except PathError as exc:
        raise TemplateError(exc.message, path) from exc
    if value is MISSING:
        raise TemplateError("no value at this path in the input", path)
    return value


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
