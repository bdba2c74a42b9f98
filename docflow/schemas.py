"""User JSON Schemas: checked on write, and validated with every regex on RE2 (linear time).

Every user schema (start_json's `json_schema`, extract's `json_schema`, output schemas) is checked with
`check_schema` when a config is written and validated with `validate`, never with `jsonschema.validate`:
stock jsonschema runs `pattern` and `patternProperties` on Python's backtracking `re`, so a 26-character
input could hold the API's request handler for seconds.

`validate` uses jsonschema's validator for the schema's draft (2020-12 when `$schema` is absent), extended
so that `pattern`, `patternProperties`, `additionalProperties` (which consults `patternProperties`) and
`unevaluatedProperties` (likewise) search with RE2 (`docflow.patterns`), and `uniqueItems` hashes items
instead of comparing every pair. Chosen over jsonschema-rs with a
linear regex engine: one regex engine (RE2) for every user pattern, so one rule says what is refused; the
same validator and error paths as before; and no remote `$ref` retrieval (jsonschema-rs fetches http refs
unless told not to, an outbound call from user config). For draft 2019-09, `unevaluatedProperties` follows
the 2020-12 rules (it does not follow `$recursiveRef`).

`check_schema` refuses, naming the schema path (`properties.code.pattern`), a schema that is not valid
for its draft and any pattern RE2 cannot run (see `docflow.patterns`: backreferences, lookaround, …).
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache
from typing import Any

import jsonschema
from jsonschema import ValidationError
from jsonschema.protocols import Validator

from docflow.patterns import PatternError, compile_pattern, search

# Keywords whose value is one subschema, a list of them, or a name → subschema map (patterns live in those).
_ONE = ("additionalItems", "additionalProperties", "unevaluatedItems", "unevaluatedProperties", "contains",
        "propertyNames", "not", "if", "then", "else", "items")  # fmt: skip
_MANY = ("allOf", "anyOf", "oneOf", "prefixItems", "items")
_NAMED = ("properties", "$defs", "definitions", "dependentSchemas", "dependencies")


class SchemaProblem(ValueError):
    """A user schema we refuse; `path` is where in the schema (dotted), empty for the whole schema."""

    def __init__(self, message: str, path: str = "") -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path


def check_schema(schema: dict[str, Any]) -> None:
    """Refuse a schema that is invalid for its draft or holds a pattern RE2 cannot run."""
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    try:
        cls.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise SchemaProblem(f"not a valid JSON schema: {exc.message}", _dotted(exc.absolute_path)) from exc
    for path, pattern in _patterns(schema, ()):
        try:
            compile_pattern(pattern)
        except PatternError as exc:
            raise SchemaProblem(str(exc), _dotted(path)) from exc


def validate(instance: Any, schema: dict[str, Any]) -> None:
    """Validate like `jsonschema.validate`, with patterns on RE2; raises jsonschema's ValidationError.

    A pattern RE2 cannot run (a schema stored before it was checked) raises jsonschema's SchemaError.
    """
    cls = _linear(jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator))
    try:
        error = jsonschema.exceptions.best_match(cls(schema).iter_errors(instance))
    except RecursionError as exc:
        raise ValidationError("the value is nested too deeply to validate") from exc
    if error is not None:
        raise error


def iter_errors(instance: Any, schema: dict[str, Any]) -> Iterator[ValidationError]:
    """Every way `instance` breaks `schema`, as `validate` checks it (patterns on RE2); lazily, may recurse deep."""
    cls = _linear(jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator))
    return cls(schema).iter_errors(instance)


def _dotted(path: Any) -> str:
    return ".".join(str(part) for part in path)


def _patterns(schema: Any, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], str]]:
    """Every (schema path, pattern) in a schema, visiting subschema positions only (not `const`, `enum`…)."""
    if not isinstance(schema, dict):
        return
    if isinstance(schema.get("pattern"), str):
        yield (*path, "pattern"), schema["pattern"]
    pattern_properties = schema.get("patternProperties")
    if isinstance(pattern_properties, dict):
        for pattern, sub in pattern_properties.items():
            yield (*path, "patternProperties", pattern), pattern
            yield from _patterns(sub, (*path, "patternProperties", pattern))
    for key in _ONE:
        yield from _patterns(schema.get(key), (*path, key))
    for key in _MANY:
        if isinstance(schema.get(key), list):
            for i, sub in enumerate(schema[key]):
                yield from _patterns(sub, (*path, key, str(i)))
    for key in _NAMED:
        if isinstance(schema.get(key), dict):
            for name, sub in schema[key].items():
                yield from _patterns(sub, (*path, key, name))


# The keyword functions take `validator: Any`: `descend` and `evolve` are not on jsonschema's typed protocol.
def _search(pattern: str, text: str) -> bool:
    try:
        return search(pattern, text)
    except PatternError as exc:
        raise jsonschema.SchemaError(f"pattern {pattern!r}: {exc}") from exc


def _pattern(validator: Any, pattern: str, instance: Any, schema: dict[str, Any]) -> Iterator[ValidationError]:
    if validator.is_type(instance, "string") and not _search(pattern, instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _pattern_properties(
    validator: Any, patterns: dict[str, Any], instance: Any, schema: dict[str, Any]
) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        for key, value in instance.items():
            if _search(pattern, key):
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


def _additional(instance: dict[str, Any], schema: dict[str, Any]) -> list[str]:
    properties = schema.get("properties", {})
    patterns = schema.get("patternProperties", {})
    return [k for k in instance if k not in properties and not any(_search(p, k) for p in patterns)]


def _additional_properties(
    validator: Any, allowed: Any, instance: Any, schema: dict[str, Any]
) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    extras = _additional(instance, schema)
    if validator.is_type(allowed, "object"):
        for extra in extras:
            yield from validator.descend(instance[extra], allowed, path=extra)
    elif not allowed and extras:
        listed = ", ".join(repr(e) for e in sorted(extras))
        yield ValidationError(f"Additional properties are not allowed ({listed} unexpected)")


def _unevaluated_properties(
    validator: Any, unevaluated: Any, instance: Any, schema: dict[str, Any]
) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    evaluated = _evaluated_keys(validator, instance, schema)
    bad = [
        key
        for key in instance
        if key not in evaluated and any(True for _ in validator.descend(instance[key], unevaluated, path=key))
    ]
    if bad:
        listed = ", ".join(repr(k) for k in sorted(bad))
        yield ValidationError(f"Unevaluated properties are not allowed ({listed} unexpected)")


def _valid(errors: Iterator[ValidationError]) -> bool:
    return next(errors, None) is None


def _evaluated_keys(validator: Any, instance: dict[str, Any], schema: Any) -> set[str]:
    """jsonschema's `find_evaluated_property_keys_by_schema` (2020-12), with RE2 for patternProperties."""
    if not isinstance(schema, dict):
        return set()  # a boolean schema evaluates nothing, as in jsonschema
    keys: set[str] = set()
    for ref_keyword in ("$ref", "$dynamicRef"):
        if (ref := schema.get(ref_keyword)) is not None:
            resolved = validator._resolver.lookup(ref)
            sub = validator.evolve(schema=resolved.contents, _resolver=resolved.resolver)
            keys |= _evaluated_keys(sub, instance, resolved.contents)
    if isinstance(schema.get("properties"), dict):
        keys |= schema["properties"].keys() & instance.keys()
    for keyword in ("additionalProperties", "unevaluatedProperties"):
        if (sub := schema.get(keyword)) is not None:
            keys |= {k for k, v in instance.items() if _valid(validator.descend(v, sub))}
    for pattern in schema.get("patternProperties", {}):
        keys |= {k for k in instance if _search(pattern, k)}
    for name, sub in schema.get("dependentSchemas", {}).items():
        if name in instance:
            keys |= _evaluated_keys(validator, instance, sub)
    for keyword in ("allOf", "oneOf", "anyOf"):
        for sub in schema.get(keyword, []):
            if _valid(validator.descend(instance, sub)):
                keys |= _evaluated_keys(validator, instance, sub)
    if "if" in schema:
        if validator.evolve(schema=schema["if"]).is_valid(instance):
            keys |= _evaluated_keys(validator, instance, schema["if"])
            keys |= _evaluated_keys(validator, instance, schema.get("then", False))
        else:
            keys |= _evaluated_keys(validator, instance, schema.get("else", False))
    return keys


def _unique_items(validator: Any, unique: Any, instance: Any, schema: dict[str, Any]) -> Iterator[ValidationError]:
    # jsonschema compares unsortable items (objects) pairwise: 20,000 of them took minutes. Hash a canonical form.
    if not unique or not validator.is_type(instance, "array"):
        return
    seen: set[Any] = set()
    for index, item in enumerate(instance):
        key = _canonical(item)
        if key in seen:
            yield ValidationError(f"item {index} repeats an earlier item; the array's items must be unique")
            return
        seen.add(key)


def _canonical(value: Any) -> Any:
    """A hashable form equal exactly when JSON Schema calls two values equal (1 == 1.0, True != 1)."""
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int | float):
        return ("number", value)
    if isinstance(value, list | tuple):
        return ("array", tuple(_canonical(v) for v in value))
    if isinstance(value, dict):
        return ("object", frozenset((k, _canonical(v)) for k, v in value.items()))
    return (type(value).__name__, value)


_LINEAR = {
    "pattern": _pattern,
    "patternProperties": _pattern_properties,
    "additionalProperties": _additional_properties,
    "unevaluatedProperties": _unevaluated_properties,
    "uniqueItems": _unique_items,
}


@lru_cache(maxsize=16)
def _linear(cls: type[Validator]) -> type[Validator]:
    """The draft's validator class with every regex keyword on RE2."""
    overrides = {k: v for k, v in _LINEAR.items() if k in cls.VALIDATORS}
    extended: type[Validator] = jsonschema.validators.extend(cls, overrides)  # type: ignore[no-untyped-call]
    return extended
