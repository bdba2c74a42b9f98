"""Align the items of K voted arrays into rows, so the consensus merges like with like.

- arrays of objects align on a key field: among the fields holding a string or a number, those present in
  every non-empty vote, scored by coverage (share of all items that have it) times uniqueness (distinct
  values per item within a vote, averaged); the best score of at least 0.67 wins, strings before numbers,
  then schema order, then first appearance. Items match when their keys agree (`docflow.agreement`).
  Without a key field, items match when at least 0.67 of their non-null top-level fields agree;
- arrays of scalars align on the values themselves (a multiset: each item is its own key);
- arrays of arrays or of mixed items align by position.

Each item joins the best matching row that has no item from its own vote yet (exact matches first, then
the highest similarity, earliest row on ties), or starts a row of its own. Votes are read in order, so the
result is deterministic.

Bound: fuzzy matching compares an item with every open row, so it runs only while every vote has at most
50 items (`FUZZY_ALIGN_MAX_ITEMS`: ≤ 10 · 50 · 500 comparisons, each of the first 100 characters of the
strings, `ALIGN_COMPARE_CHARS`); longer arrays match keys exactly (after
case folding and whitespace collapsing) in linear time, or by position when they have no key field.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import Any

from docflow.agreement import canonical, is_number, values_agree

FUZZY_ALIGN_MAX_ITEMS = 50
# Alignment only pairs items (the merge then compares them in full): short prefixes keep it cheap.
ALIGN_COMPARE_CHARS = 100
KEY_MIN_SCORE = 0.67
ITEM_MIN_AGREEMENT = 0.67

# A row is the items that stand for one element: (vote index, position in that vote, item).
Row = list[tuple[int, int, Any]]


def align(arrays: Sequence[list[Any]], item_schema: dict[str, Any]) -> list[Row]:
    items = [item for array in arrays for item in array]
    fuzzy = all(len(array) <= FUZZY_ALIGN_MAX_ITEMS for array in arrays)
    if items and all(isinstance(item, dict) for item in items):
        key = key_field(arrays, item_schema)
        if key is not None:
            return _match(
                arrays, lambda item: _exact(item[key]) if _is_key(item.get(key)) else None, _key_matcher(key), fuzzy
            )
        if fuzzy:
            return _match(arrays, lambda item: ("json", canonical(item)), _item_agreement, fuzzy)
        return _by_position(arrays)
    if all(not isinstance(item, dict | list) for item in items):
        return _match(arrays, _exact, _scalar_agreement, fuzzy)
    return _by_position(arrays)


def key_field(arrays: Sequence[list[Any]], item_schema: dict[str, Any]) -> str | None:
    voting = [array for array in arrays if array]
    items: list[dict[str, Any]] = [item for array in voting for item in array]
    properties = item_schema.get("properties")
    order = list(properties) if isinstance(properties, dict) else []
    order += [name for item in items for name in item if name not in order]
    best: tuple[float, bool, int] | None = None
    chosen: str | None = None
    for position, name in enumerate(dict.fromkeys(order)):
        if not all(any(_is_key(item.get(name)) for item in array) for array in voting):
            continue
        valued = [[item[name] for item in array if _is_key(item.get(name))] for array in voting]
        coverage = sum(len(values) for values in valued) / len(items)
        uniqueness = sum(len({_exact(value) for value in values}) / len(values) for values in valued) / len(valued)
        score = coverage * uniqueness
        textual = all(isinstance(value, str) for values in valued for value in values)
        rank = (score, textual, -position)
        if score >= KEY_MIN_SCORE and (best is None or rank > best):
            best, chosen = rank, name
    return chosen


def _is_key(value: Any) -> bool:
    return is_number(value) or (isinstance(value, str) and bool(value.strip()))


def _exact(value: Any) -> Hashable:
    """The spelling under which two values match without fuzzy comparison."""
    if isinstance(value, str):
        return ("str", " ".join(value.casefold().split()))
    if is_number(value):
        return ("num", float(value))
    return ("json", canonical(value))


def _key_matcher(key: str) -> Callable[[Any, Any], float]:
    def similarity(a: dict[str, Any], b: dict[str, Any]) -> float:
        if _is_key(a.get(key)) and _is_key(b.get(key)):
            return 1.0 if values_agree(a[key], b[key], ALIGN_COMPARE_CHARS) else 0.0
        return _item_agreement(a, b)

    return similarity


def _scalar_agreement(a: Any, b: Any) -> float:
    return 1.0 if values_agree(a, b, ALIGN_COMPARE_CHARS) else 0.0


def _item_agreement(a: dict[str, Any], b: dict[str, Any]) -> float:
    fields = [name for name in dict.fromkeys([*a, *b]) if a.get(name) is not None or b.get(name) is not None]
    if not fields:
        return 1.0
    share = sum(values_agree(a.get(name), b.get(name), ALIGN_COMPARE_CHARS) for name in fields) / len(fields)
    return share if share >= ITEM_MIN_AGREEMENT else 0.0


def _match(
    arrays: Sequence[list[Any]],
    exact: Callable[[Any], Hashable | None],
    similarity: Callable[[Any, Any], float],
    fuzzy: bool,
) -> list[Row]:
    rows: list[Row] = []
    by_exact: dict[Hashable, list[int]] = {}
    for vote, array in enumerate(arrays):
        for position, item in enumerate(array):
            spelling = exact(item)
            known = by_exact.get(spelling, []) if spelling is not None else []
            target = next((row for row in known if rows[row][-1][0] != vote), None)
            if target is None and fuzzy:
                target = _closest(rows, vote, item, similarity)
            if target is None:
                target = len(rows)
                rows.append([])
            if spelling is not None and target not in by_exact.setdefault(spelling, []):
                by_exact[spelling].append(target)
            rows[target].append((vote, position, item))
    return rows


def _closest(rows: list[Row], vote: int, item: Any, similarity: Callable[[Any, Any], float]) -> int | None:
    best, chosen = 0.0, None
    for index, row in enumerate(rows):
        if row[-1][0] == vote:
            continue
        score = similarity(row[0][2], item)
        if score > best:
            best, chosen = score, index
    return chosen


def _by_position(arrays: Sequence[list[Any]]) -> list[Row]:
    longest = max((len(array) for array in arrays), default=0)
    return [
        [(vote, position, array[position]) for vote, array in enumerate(arrays) if position < len(array)]
        for position in range(longest)
    ]
