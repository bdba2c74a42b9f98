"""`{{ path }}` placeholders for the api_call block: URLs, headers, query and body from the JSON input.

Paths use the syntax of `docflow.jsonpath`; `{{ input }}`, `{{ data }}`, `{{ . }}` and `{{ $ }}` are
the whole input. A string that is exactly one placeholder becomes the raw JSON value (a number stays
a number, an object an object); inside longer text a value is written as text, non-strings as JSON
(`true`, `null`, `{"a": 1}`). Dict keys are rendered as text too. A missing path is an error rather
than an empty string, so a request is never sent with a silently blank field.

`{{ secrets.NAME }}` is the worker's secret NAME (setting `secrets`), never a path in the input; the caller
passes the secrets in, and an unknown name is an `UnknownSecretError` naming the name, not a value.

In a URL (`render_url`) the origin is the literal text before the first placeholder, and every value is
percent-encoded where it lands (RFC 6570 simple expansion: only unreserved characters stay as they are), so
input can add to the path or query but never move the request to another host, port or scheme.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import quote, quote_plus

from docflow.egress import literal_origin_error, origin
from docflow.jsonpath import MISSING, TEMPLATE_ROOTS, PathError, is_wildcard_path, resolve

_PLACEHOLDER = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
SECRETS_ROOT = "secrets."
NO_SECRETS: Mapping[str, str] = {}


class TemplateError(ValueError):
    """A placeholder whose path is missing from the input or cannot be parsed."""

    def __init__(self, message: str, path: str) -> None:
        super().__init__(f"{message}: {{{{ {path} }}}}")
        self.message = message
        self.path = path


class UnknownSecretError(TemplateError):
    """`{{ secrets.NAME }}` names a secret the worker does not have."""

    def __init__(self, name: str) -> None:
        super().__init__(f"no secret named {name!r} is configured on the worker", f"{SECRETS_ROOT}{name}")
        self.name = name


def render_template(template: Any, data: Any, secrets: Mapping[str, str] = NO_SECRETS) -> Any:
    """Replace every `{{ path }}` in the strings of a str / list / dict template with input values."""
    if isinstance(template, str):
        whole = _PLACEHOLDER.fullmatch(template)
        if whole is not None:
            return _lookup(whole.group(1), data, secrets)
        return _render_text(template, data, secrets)
    if isinstance(template, list):
        return [render_template(item, data, secrets) for item in template]
    if isinstance(template, dict):
        return {
            _render_text(str(key), data, secrets): render_template(value, data, secrets)
            for key, value in template.items()
        }
    return template


def render_url(template: str, data: Any, secrets: Mapping[str, str] = NO_SECRETS) -> str:
    """The URL with each value percent-encoded where it lands; raises TemplateError if the origin would move."""
    problem = literal_origin_error(template)
    if problem is not None:
        raise TemplateError(f"url {problem}", "url")
    first = _PLACEHOLDER.search(template)
    literal = template[: first.start()] if first else template
    rendered = _render_text(template, data, secrets, lambda text: quote(text, safe=""))
    try:
        moved = origin(rendered) != origin(literal)
    except ValueError:
        moved = True
    if moved:
        raise TemplateError("the rendered url does not keep the literal scheme, host and port", "url")
    return rendered


def redact(value: Any, secrets: Iterable[str]) -> Any:
    """The value (str / list / dict, keys too) with every secret, raw, URL- or JSON-encoded, replaced by ***."""
    forms = sorted(
        {f for s in secrets if s for f in (s, quote(s, safe=""), quote_plus(s), json.dumps(s)[1:-1])}, key=len
    )
    if not forms:
        return value
    return _redact(value, forms[::-1])


def _redact(value: Any, forms: list[str]) -> Any:
    if isinstance(value, str):
        for form in forms:
            value = value.replace(form, "***")
        return value
    if isinstance(value, list | tuple):
        return [_redact(item, forms) for item in value]
    if isinstance(value, dict):
        return {_redact(str(k), forms): _redact(v, forms) for k, v in value.items()}
    return value


def placeholders(template: Any) -> list[str]:
    """The paths of every placeholder in a template, in order (for validation on write)."""
    if isinstance(template, str):
        return [m.group(1) for m in _PLACEHOLDER.finditer(template)]
    if isinstance(template, list):
        return [p for item in template for p in placeholders(item)]
    if isinstance(template, dict):
        return [p for key, value in template.items() for p in placeholders(str(key)) + placeholders(value)]
    return []


def _render_text(
    text: str, data: Any, secrets: Mapping[str, str], encode: Callable[[str], str] = lambda text: text
) -> str:
    return _PLACEHOLDER.sub(lambda m: encode(_as_text(_lookup(m.group(1), data, secrets))), text)


def _lookup(path: str, data: Any, secrets: Mapping[str, str]) -> Any:
    if path.startswith(SECRETS_ROOT):
        name = path[len(SECRETS_ROOT) :].strip()
        if name not in secrets:
            raise UnknownSecretError(name)
        return secrets[name]
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
