"""Align the items of K voted arrays into rows, so the consensus merges like with like.

- arrays of objects align on a key field: among the fields holding a string or a number in every
  non-empty vote (the first 32 in schema order, then order of appearance), the one with the best coverage
  (share of all items that have it) times uniqueness (distinct values per item within a vote, averaged),
  if at least 0.67; strings before numbers, then that order, on ties. Items match when their keys agree
  (`docflow.agreement`). Without a key field, items match when at least 0.67 of their non-null top-level
  fields (the first 32) agree;
- arrays of scalars align on the values themselves (a multiset: each item is its own key);
- arrays of arrays or of mixed items align by position.

Each item joins a row that has no item from its own vote yet: the first with the same exact spelling
(case folded, whitespace collapsed), else the most similar agreeing one (earliest on ties), else a new
row. Votes are read in order, so the result is deterministic.

Bounds: fuzzy matching compares an item with every open row, so it runs only while every vote has at most
50 items (`FUZZY_ALIGN_MAX_ITEMS`: ≤ 10 · 50 · 500 comparisons, each over the first 100 characters,
`ALIGN_COMPARE_CHARS`); longer arrays match exact spellings only, in linear time, or align by position
when they have no key field.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import Any

from docflow.agreement import canonical, is_number, values_agree

FUZZY_ALIGN_MAX_ITEMS = 50
# Alignment only pairs items (the merge then compares them in full): short prefixes keep it cheap.
ALIGN_COMPARE_CHARS = 100
KEY_MIN_SCORE = 0.67
MAX_KEY_CANDIDATES = 32
MAX_ITEM_FIELDS = 32
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
    if not voting:
        return None
    items: list[dict[str, Any]] = [item for array in voting for item in array]
    shared = set.intersection(*({name for item in array for name in item if _is_key(item[name])} for array in voting))
    properties = item_schema.get("properties")
    order = list(properties) if isinstance(properties, dict) else []
    order += [name for item in voting[0] for name in item]
    candidates = [name for name in dict.fromkeys(order) if name in shared][:MAX_KEY_CANDIDATES]
    best: tuple[float, bool, int] | None = None
    chosen: str | None = None
    for position, name in enumerate(candidates):
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
    both = dict.fromkeys([*a, *b])
    fields = [name for name in both if a.get(name) is not None or b.get(name) is not None][:MAX_ITEM_FIELDS]
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
    # Per spelling, the vote being read and how many of its rows that vote has already filled, so
    # repeated items ("1", "1", "1") find their row in amortised constant time.
    cursor: dict[Hashable, tuple[int, int]] = {}
    for vote, array in enumerate(arrays):
        for position, item in enumerate(array):
            spelling = exact(item)
            target = None if spelling is None else _exact_row(rows, by_exact, cursor, spelling, vote)
            if target is None:
                target = _closest(rows, vote, item, similarity) if fuzzy else None
                if target is None:
                    target = len(rows)
                    rows.append([])
                if spelling is not None:
                    # Not yet known under this spelling: every known row already holds this vote.
                    by_exact.setdefault(spelling, []).append(target)
            rows[target].append((vote, position, item))
    return rows


def _exact_row(
    rows: list[Row],
    by_exact: dict[Hashable, list[int]],
    cursor: dict[Hashable, tuple[int, int]],
    spelling: Hashable,
    vote: int,
) -> int | None:
    known = by_exact.get(spelling, [])
    read_by, at = cursor.get(spelling, (vote, 0))
    at = at if read_by == vote else 0
    while at < len(known) and rows[known[at]][-1][0] == vote:
        at += 1
    cursor[spelling] = (vote, at)
    return known[at] if at < len(known) else None


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
