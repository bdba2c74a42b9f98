"""What a reviewer may save as a version: a snapshot of the gated block's output shape, checked before it is stored.

- extract: the block's output object, valid against its `output_schema` (`docflow.schemas.validate`, RE2);
- classifier: `{"category": one of the block's categories}`;
- split: `{"documents": [{"name": one of the sub-documents, "pages": [1-based, sorted, unique, ≤ page count]}]}`;
- for_each: `{"partitions": [{"key": a non-empty string, "pages": as for split}]}`.

A snapshot that breaks the rule raises `SnapshotError` whose `field` is the JSON path from the request body
(`snapshot.lines.0.qty`), so the API answers 422 naming it. Nesting is capped (`MAX_DEPTH`) before anything
recurses into a snapshot, since it is user input.
"""

from __future__ import annotations

from typing import Any

import jsonschema

from docflow import schemas
from docflow.reviews import ReviewRecord

MAX_DEPTH = 64
_PAGED = {"split": ("documents", "name"), "for_each": ("partitions", "key")}


class SnapshotError(ValueError):
    """A snapshot that does not fit the block's output; `field` names where (`snapshot.…`)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def check_snapshot(record: ReviewRecord, snapshot: dict[str, Any]) -> None:
    """Refuse a snapshot that is not a valid output of the review's block (see the module docstring)."""
    _check_depth(snapshot)
    if record.block_type == "extract":
        _check_extract(snapshot, record.output_schema)
    elif record.block_type == "classifier":
        _check_category(snapshot, record.categories)
    else:
        _check_paged(snapshot, record.block_type, record.subdocuments, record.page_count)


def _path(*parts: object) -> str:
    return ".".join(["snapshot", *(str(p) for p in parts)])


def _check_depth(snapshot: dict[str, Any]) -> None:
    stack: list[tuple[Any, tuple[object, ...]]] = [(snapshot, ())]
    while stack:
        value, at = stack.pop()
        if len(at) > MAX_DEPTH:
            raise SnapshotError(_path(*at), f"nested deeper than {MAX_DEPTH} levels")
        if isinstance(value, dict):
            stack.extend((v, (*at, k)) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((v, (*at, i)) for i, v in enumerate(value))


def _check_extract(snapshot: dict[str, Any], schema: dict[str, Any] | None) -> None:
    if not schema:
        return
    try:
        schemas.validate(snapshot, schema)
    except jsonschema.ValidationError as exc:
        at = list(exc.absolute_path)
        missing = _missing_required(exc)
        if missing is not None:
            at.append(missing)
        raise SnapshotError(_path(*at), exc.message) from exc
    except jsonschema.SchemaError as exc:
        raise SnapshotError("snapshot", "the block's output schema holds a rule that cannot be checked") from exc


def _missing_required(exc: jsonschema.ValidationError) -> str | None:
    """The first required property absent, for a `required` error (its path is the object's, not the field's)."""
    if exc.validator != "required" or not isinstance(exc.instance, dict) or not isinstance(exc.validator_value, list):
        return None
    return next((str(name) for name in exc.validator_value if name not in exc.instance), None)


def _only_keys(value: dict[str, Any], allowed: tuple[str, ...], *at: object) -> None:
    for key in value:
        if key not in allowed:
            raise SnapshotError(_path(*at, key), f"unknown field; expected only {', '.join(allowed)}")
    for key in allowed:
        if key not in value:
            raise SnapshotError(_path(*at, key), "required")


def _check_category(snapshot: dict[str, Any], categories: list[str] | None) -> None:
    _only_keys(snapshot, ("category",))
    category = snapshot["category"]
    if not isinstance(category, str) or not category:
        raise SnapshotError(_path("category"), "must be a non-empty string")
    if categories is not None and category not in categories:
        raise SnapshotError(_path("category"), f"{category!r} is not one of the block's categories {categories}")


def _check_paged(snapshot: dict[str, Any], block_type: str, names: list[str] | None, page_count: int | None) -> None:
    listing, label = _PAGED[block_type]
    _only_keys(snapshot, (listing,))
    parts = snapshot[listing]
    if not isinstance(parts, list):
        raise SnapshotError(_path(listing), "must be a list")
    for i, part in enumerate(parts):
        if not isinstance(part, dict):
            raise SnapshotError(_path(listing, i), f"must be an object with {label} and pages")
        _only_keys(part, (label, "pages"), listing, i)
        name = part[label]
        if not isinstance(name, str) or not name:
            raise SnapshotError(_path(listing, i, label), "must be a non-empty string")
        if block_type == "split" and names is not None and name not in names:
            raise SnapshotError(_path(listing, i, label), f"{name!r} is not one of the block's sub-documents {names}")
        _check_pages(part["pages"], page_count, listing, i)


def _check_pages(pages: Any, page_count: int | None, *at: object) -> None:
    if not isinstance(pages, list):
        raise SnapshotError(_path(*at, "pages"), "must be a list of page numbers")
    previous = 0
    for j, page in enumerate(pages):
        where = _path(*at, "pages", j)
        if not isinstance(page, int) or isinstance(page, bool) or page < 1:
            raise SnapshotError(where, "must be a page number (an integer from 1)")
        if page <= previous:
            raise SnapshotError(where, "pages must be sorted and unique")
        if page_count is not None and page > page_count:
            raise SnapshotError(where, f"page {page} is past the document's last page ({page_count})")
        previous = page
