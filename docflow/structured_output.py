"""A model's answer read as the JSON object a user schema asks for: parsed, repaired where safe, validated.

    read_answer(content, schema) -> dict     or OutputProblem(path, message)

Parsing is tolerant: ``` fences are stripped, the outermost `{…}` is taken from prose around it, and
broken JSON (trailing commas, single quotes, unquoted keys, a cut-off end) goes through `json_repair`.
Repairs follow the schema and never invent a value: a numeric string where a number is wanted
("12.5" → 12.5, "1,440.00" → 1440.0), "true"/"false" where a boolean is wanted, an integral float
where an integer is wanted, a number where a string is wanted, an enum value in another case, and keys
dropped where `additionalProperties` is false. What is still invalid is an `OutputProblem` naming the
JSON path (`$.lines[2].amount`), never a null in its place.

Null is the answer's word for "the document does not give it" (the system prompt asks for it), so a
null value is accepted wherever a value goes, and a required key the answer left out is filled with null.
`check_answer` applies the same rule to data built from answers (a consensus merge).

The schema is the user's: validation goes through `docflow.schemas.validate` (patterns on RE2), and in
the worker this runs in the isolated executor (`activities.isolated_tasks`), not on the event loop.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from typing import Any

import json_repair
import jsonschema

from docflow.patterns import PatternError, search
from docflow.schemas import iter_errors

# Deeper than this, repairs stop (validation still runs): bounds the walk on a recursive schema.
_MAX_DEPTH = 64
_FENCE = re.compile(r"^```[a-zA-Z]*\s*(.*?)\s*```$", re.DOTALL)
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
# Thousands separators only with a decimal part: "1,440.00" is unambiguous, "1,440" is not (1.44 in much of Europe).
_GROUPED = re.compile(r"[+-]?\d{1,3}(,\d{3})+\.\d+")
_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "boolean": (bool,),
    "null": (type(None),),
}


class OutputProblem(ValueError):
    """A model answer that is not the JSON object the schema asks for; `path` is a JSON path (`$.total`)."""

    def __init__(self, message: str, path: str = "$") -> None:
        super().__init__(f"{path}: {message}")
        self.message = message
        self.path = path


def read_answer(content: str, schema: dict[str, Any]) -> dict[str, Any]:
    """The JSON object in `content`, repaired toward `schema` and valid against it, or OutputProblem."""
    data = parse_object(content)
    if data is None:
        raise OutputProblem("the answer holds no JSON object")
    repaired = conform(data, schema)
    check_answer(repaired, schema)
    assert isinstance(repaired, dict)  # conform keeps an object an object
    return repaired


def check_answer(data: Any, schema: dict[str, Any]) -> None:
    """Raise OutputProblem (with the JSON path) where `data` breaks `schema`; a null value breaks nothing."""
    try:
        errors = [error for error in iter_errors(data, schema) if error.instance is not None]
    except RecursionError as exc:
        raise OutputProblem("the answer is nested too deeply to validate") from exc
    error = jsonschema.exceptions.best_match(errors)
    if error is not None:
        raise OutputProblem(error.message, json_path(error.absolute_path))


def parse_object(content: str) -> dict[str, Any] | None:
    """The outermost JSON object in a model's message content (fences stripped, broken JSON repaired)."""
    text = content.strip()
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group(1)
    start, end = text.find("{"), text.rfind("}")
    candidates = [text]
    if start >= 0:
        candidates += [text[start : end + 1]] if end > start else []
        candidates.append(text[start:])  # a cut-off answer: json_repair closes it
    for candidate in candidates:
        try:
            data = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(data, dict):
            return data
    if start < 0:
        return None
    try:
        repaired = json_repair.loads(text[start:])
    except (ValueError, RecursionError):
        return None
    return repaired if isinstance(repaired, dict) else None


def json_path(parts: Iterable[Any]) -> str:
    """`$.lines[2].amount` from jsonschema's path parts."""
    path = "$"
    for part in parts:
        if isinstance(part, int):
            path += f"[{part}]"
        elif isinstance(part, str) and part.isidentifier():
            path += f".{part}"
        else:
            path += f"[{json.dumps(str(part))}]"
    return path


def conform(value: Any, schema: Any, root: Any = None, depth: int = 0) -> Any:
    """`value` with the safe repairs toward `schema` applied (see the module docstring); the rest untouched."""
    root = schema if root is None else root
    schema = _resolve(schema, root)
    if not isinstance(schema, dict) or depth > _MAX_DEPTH:
        return value
    branch = _branch(value, schema, root)
    if branch is not None:
        value = conform(value, branch, root, depth + 1)
    types = _types(schema)
    if types and not _is_any(value, types):
        value = _coerce(value, types)
    if isinstance(value, str) and isinstance(schema.get("enum"), list) and value not in schema["enum"]:
        same = [e for e in schema["enum"] if isinstance(e, str) and e.casefold() == value.strip().casefold()]
        value = same[0] if len(same) == 1 else value
    if isinstance(value, dict):
        return _conform_object(value, schema, root, depth)
    if isinstance(value, list):
        return _conform_array(value, schema, root, depth)
    return value


def _conform_object(value: dict[str, Any], schema: dict[str, Any], root: Any, depth: int) -> dict[str, Any]:
    properties = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
    assert isinstance(properties, dict)
    patterns = schema.get("patternProperties") if isinstance(schema.get("patternProperties"), dict) else {}
    assert isinstance(patterns, dict)
    extra = schema.get("additionalProperties", True)
    result: dict[str, Any] = {}
    for key, item in value.items():
        if key in properties:
            result[key] = conform(item, properties[key], root, depth + 1)
        elif any(_matches(pattern, key) for pattern in patterns):
            result[key] = item
        elif extra is False:
            continue  # a key the schema forbids: dropped rather than failing the answer
        else:
            result[key] = conform(item, extra, root, depth + 1) if isinstance(extra, dict) else item
    required = schema.get("required") if isinstance(schema.get("required"), list) else []
    assert isinstance(required, list)
    for key in required:
        if isinstance(key, str) and key in properties and key not in result:
            result[key] = None  # left out: the document does not give it (see the module docstring)
    return result


def _conform_array(value: list[Any], schema: dict[str, Any], root: Any, depth: int) -> list[Any]:
    prefix = schema.get("prefixItems") if isinstance(schema.get("prefixItems"), list) else []
    assert isinstance(prefix, list)
    items = schema.get("items")
    result = []
    for index, item in enumerate(value):
        sub = prefix[index] if index < len(prefix) else items
        result.append(conform(item, sub, root, depth + 1) if isinstance(sub, dict) else item)
    return result


def _resolve(schema: Any, root: Any) -> Any:
    """A local `$ref` (`#/$defs/Party`) followed a few hops; anything else as given."""
    for _ in range(8):
        if not isinstance(schema, dict) or not isinstance(schema.get("$ref"), str):
            return schema
        ref: str = schema["$ref"]
        if not ref.startswith("#"):
            return schema
        target: Any = root
        for part in filter(None, ref[1:].split("/")):
            key = part.replace("~1", "/").replace("~0", "~")
            target = target.get(key) if isinstance(target, dict) else None
        if target is None:
            return schema
        schema = target
    return schema


def _branch(value: Any, schema: dict[str, Any], root: Any) -> Any:
    """The anyOf/oneOf branch to repair toward: the first whose type takes the value, else the first coercible."""
    branches = [_resolve(b, root) for k in ("anyOf", "oneOf") for b in schema.get(k) or [] if isinstance(b, dict)]
    typed = [(b, _types(b)) for b in branches if isinstance(b, dict)]
    for candidate, types in typed:
        if not types or _is_any(value, types):
            return candidate
    for candidate, types in typed:
        if _is_any(_coerce(value, types), types):
            return candidate
    return None


def _types(schema: dict[str, Any]) -> list[str]:
    kind = schema.get("type")
    if isinstance(kind, str):
        return [kind]
    return [k for k in kind if isinstance(k, str)] if isinstance(kind, list) else []


def _is_any(value: Any, types: list[str]) -> bool:
    return any(_is(value, t) for t in types)


def _is(value: Any, kind: str) -> bool:
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool) or isinstance(value, float) and value.is_integer()
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "object" or kind == "array" or kind == "string" or kind == "null":
        return isinstance(value, _JSON_TYPES[kind])
    if kind == "boolean":
        return isinstance(value, bool)
    return False


def _coerce(value: Any, types: list[str]) -> Any:
    """The value as one of `types` where that loses nothing; otherwise the value unchanged."""
    if isinstance(value, str):
        text = value.strip()
        number = _number(text)
        if number is not None and "integer" in types and number.is_integer():
            return int(number)
        if number is not None and "number" in types:
            return int(number) if number.is_integer() and _NUMBER.fullmatch(text) and "." not in text else number
        if "boolean" in types and text.lower() in ("true", "false"):
            return text.lower() == "true"
        if "null" in types and text.lower() == "null":
            return None
    elif isinstance(value, int | float) and not isinstance(value, bool) and "string" in types:
        return json.dumps(value)
    return value


def _number(text: str) -> float | None:
    if _GROUPED.fullmatch(text):
        text = text.replace(",", "")
    elif not _NUMBER.fullmatch(text):
        return None
    number = float(text)
    return number if math.isfinite(number) else None


def _matches(pattern: str, key: str) -> bool:
    try:
        return search(pattern, key)
    except PatternError:
        return True  # a pattern RE2 cannot run: keep the key and let validation report the schema
