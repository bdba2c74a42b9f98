"""Schema-driven reading of labelled values (`Label: value`) from plain text; the offline provider's engine.

For each schema property the candidate labels are, in order: its name in words (`total_amount`,
`totalAmount` → "total amount"), its `title`, its `description` when short enough to be a label,
and its name without a trailing generic word ("vendor_name" → "vendor"). A line matches a label
followed by `:`, `#`, a tab or two spaces; a line holding only `Label:` takes the next line as value.
Values are coerced by the schema type; a property with no match is None (an array is []).
"""

from __future__ import annotations

import re
from typing import Any

_GENERIC_TAIL = {"name", "number", "amount", "value", "no", "num", "text", "id", "code"}
_MAX_LABEL_WORDS = 6
_SEPARATOR = r"(?:\s*[:#]\s*|\t+\s*|\s{2,})"
_NUMBER = re.compile(r"(?:(?<![\w-])-)?\d[\d.,']*")
_TRUE = {"true", "yes", "y", "1", "x", "checked", "on"}
_FALSE = {"false", "no", "n", "0", "unchecked", "off"}


def extract_fields(schema: dict[str, Any], text: str) -> dict[str, Any]:
    """One value per property of an object schema (recursively), read from labelled lines of `text`."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return _fill_object(schema, schema, lines)


def _fill_object(schema: dict[str, Any], root: dict[str, Any], lines: list[str]) -> dict[str, Any]:
    properties = _resolve(schema, root).get("properties") or {}
    return {name: _fill_value(name, _resolve(sub, root), root, lines) for name, sub in properties.items()}


def _fill_value(name: str, schema: dict[str, Any], root: dict[str, Any], lines: list[str]) -> Any:
    kind = schema_type(schema)
    if kind == "object":
        return _fill_object(schema, root, lines)
    raw = find_labelled(labels_for(name, schema), lines)
    if kind == "array":
        items = _resolve(schema.get("items") or {}, root)
        # Rows of objects need a table reader the offline provider does not have.
        if raw is None or schema_type(items) in ("object", "array"):
            return []
        # Split, then strip: `\s*[,;]\s*` retries from every space of a long blank run (quadratic).
        parts = (part.strip() for part in re.split(r"[,;]", raw))
        return [coerce(part, items) for part in parts if part]
    return None if raw is None else coerce(raw, schema)


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    """Follow a local `$ref` and pick the non-null branch of an `anyOf`/`oneOf` (pydantic's Optional)."""
    seen = 0
    while isinstance(schema.get("$ref"), str) and schema["$ref"].startswith("#/") and seen < 32:
        target: Any = root
        for part in schema["$ref"][2:].split("/"):
            target = target.get(part, {}) if isinstance(target, dict) else {}
        schema, seen = (target if isinstance(target, dict) else {}), seen + 1
    for key in ("anyOf", "oneOf"):
        options = [o for o in schema.get(key) or [] if isinstance(o, dict) and o.get("type") != "null"]
        if options:
            merged = {k: v for k, v in schema.items() if k != key}
            return {**_resolve(options[0], root), **merged}
    return schema


def schema_type(schema: dict[str, Any]) -> str:
    """The main JSON type of a schema (`["number", "null"]` → "number"); "object" when it has properties."""
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    if isinstance(kind, str):
        return kind
    return "object" if "properties" in schema else "string"


def labels_for(name: str, schema: dict[str, Any]) -> list[str]:
    """Candidate labels of a property, most specific first."""
    words = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name).replace("_", " ").replace("-", " ").lower().split()
    candidates = [" ".join(words)]
    for key in ("title", "description"):
        value = schema.get(key)
        if isinstance(value, str) and 0 < len(value.split()) <= _MAX_LABEL_WORDS:
            candidates.append(value.strip().rstrip(".").lower())
    if len(words) > 1 and words[-1] in _GENERIC_TAIL:
        candidates.append(" ".join(words[:-1]))
    return list(dict.fromkeys(c for c in candidates if c))


def find_labelled(labels: list[str], lines: list[str]) -> str | None:
    """The value after the first label that some line carries, or None."""
    for label in labels:
        words = r"[\s_-]+".join(re.escape(w) for w in label.split())
        inline = re.compile(rf"^\W*{words}{_SEPARATOR}(?P<value>\S.*)$", re.IGNORECASE)
        alone = re.compile(rf"^\W*{words}\s*:$", re.IGNORECASE)
        for i, line in enumerate(lines):
            match = inline.match(line)
            if match:
                return match.group("value").strip()
            if alone.match(line) and i + 1 < len(lines):
                return lines[i + 1]
    return None


def coerce(raw: str, schema: dict[str, Any]) -> Any:
    """A text value converted to the schema's type; None when it cannot be."""
    kind = schema_type(schema)
    if kind == "number":
        return parse_number(raw)
    if kind == "integer":
        number = parse_number(raw)
        return int(number) if number is not None and number.is_integer() else None
    if kind == "boolean":
        word = raw.strip().lower()
        return True if word in _TRUE else False if word in _FALSE else None
    value = raw.strip()
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return next((e for e in enum if str(e).lower() == value.lower()), None)
    return value


def parse_number(raw: str) -> float | None:
    """The first number in a text: currency and thousand separators dropped, `1.234,56` read as European."""
    match = _NUMBER.search(raw)
    if match is None:
        return None
    token = match.group(0).rstrip(".,'").replace("'", "")
    if "," in token and "." in token:
        decimal = "," if token.rfind(",") > token.rfind(".") else "."
        token = token.replace("." if decimal == "," else ",", "").replace(",", ".")
    elif "," in token:
        parts = token.split(",")
        # One comma before 1–2 digits is a decimal comma; groups of three are thousands.
        token = ".".join(parts) if len(parts) == 2 and len(parts[1]) != 3 else "".join(parts)
    elif token.count(".") > 1:
        token = token.replace(".", "")
    try:
        return float(token)
    except ValueError:
        return None
