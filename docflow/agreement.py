"""When two consensus votes agree on one value, and which value a group of agreeing votes stands for.

- numbers agree when |a - b| ≤ 3 % of max(|a|, |b|) (the edge included); non-finite numbers agree only
  when equal;
- strings agree when their similarity reaches 0.90. Similarity is the best `rapidfuzz` ratio over the
  views: the original, the letters lowercased (only when both have letters), the sorted lowercased words.
  The digits are a view that must match exactly: two strings whose digit sequences differ never agree
  (digits carry identity: invoice numbers, amounts, dates), so "INV-001" ~ "inv 001" but not "INV-002";
- anything else agrees when equal as canonical JSON.

A cluster is the votes that agree with one vote, its centre; the largest cluster wins and the earliest
centre wins ties (agreement is not transitive, so clusters may overlap). A number cluster stands for its
mean (rounded when the schema says integer); a string cluster for its medoid, the member closest to the others in the
original view, the earliest among equals.

Bound: strings are compared on their first 2,000 characters (`STRING_COMPARE_CHARS`; alignment passes a
shorter limit), so one comparison costs at most ~3 · 2,000 · 2,000 / 64 machine-word steps, whatever the
input, and a merge costs O(K · 2,000 / 64 · 3) steps per character of input.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any, TypeVar

from rapidfuzz import fuzz

NUMBER_TOLERANCE = 0.03
STRING_THRESHOLD = 0.90
STRING_COMPARE_CHARS = 2_000
# Float noise (0.97 vs 1.0 differ by 0.030000000000000027) must not push a value off the 3 % edge.
_EDGE_SLACK = 1e-9
_WORDS = re.compile(r"\w+")
_NOT_DIGIT = re.compile(r"[^0-9]")

T = TypeVar("T")


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def canonical(value: Any) -> str:
    """One spelling per JSON value, for exact comparison and grouping."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def numbers_agree(a: float, b: float) -> bool:
    if a == b:
        return True
    if not (math.isfinite(a) and math.isfinite(b)):
        return False
    return abs(a - b) <= NUMBER_TOLERANCE * max(abs(a), abs(b)) * (1 + _EDGE_SLACK)


@lru_cache(maxsize=1024)
def _views(text: str, limit: int = STRING_COMPARE_CHARS) -> tuple[str, str, str, str]:
    text = text[:limit]
    folded = text.casefold()
    letters = "".join(char for char in folded if char.isalpha())
    words = " ".join(sorted(_WORDS.findall(folded)))
    return text, _NOT_DIGIT.sub("", text), letters, words


def string_similarity(a: str, b: str, limit: int = STRING_COMPARE_CHARS) -> float:
    """0..1 over the first `limit` characters; see the module docstring. Differing digit sequences give 0."""
    if a == b:
        return 1.0
    original_a, digits_a, letters_a, words_a = _views(a, limit)
    original_b, digits_b, letters_b, words_b = _views(b, limit)
    if digits_a != digits_b:
        return 0.0
    scores = [fuzz.ratio(original_a, original_b), fuzz.ratio(words_a, words_b)]
    if letters_a and letters_b:
        scores.append(fuzz.ratio(letters_a, letters_b))
    return max(scores) / 100


def strings_agree(a: str, b: str, limit: int = STRING_COMPARE_CHARS) -> bool:
    return string_similarity(a, b, limit) >= STRING_THRESHOLD


def values_agree(a: Any, b: Any, limit: int = STRING_COMPARE_CHARS) -> bool:
    """Agreement of two leaf values of any type (numbers and strings by their rules, else equality)."""
    if is_number(a) and is_number(b):
        return numbers_agree(a, b)
    if isinstance(a, str) and isinstance(b, str):
        return strings_agree(a, b, limit)
    return canonical(a) == canonical(b)


def largest_cluster(values: Sequence[T], agree: Callable[[T, T], bool]) -> list[int]:
    """Indexes of the votes agreeing with the best centre; the earliest centre wins ties."""
    # Agreement is symmetric: each pair is compared once.
    pairs = {(i, j): agree(values[i], values[j]) for i in range(len(values)) for j in range(i + 1, len(values))}
    best: list[int] = []
    for centre in range(len(values)):
        members = [
            other for other in range(len(values)) if other == centre or pairs[min(centre, other), max(centre, other)]
        ]
        if len(members) > len(best):
            best = members
    return best


def number_value(members: Sequence[float], integer: bool) -> float:
    """The cluster's mean, rounded (half to even) when the schema says integer; the value itself if unanimous."""
    if all(member == members[0] for member in members):
        return members[0]
    mean = math.fsum(members) / len(members)
    if integer:
        return round(mean)
    return mean


def string_medoid(members: Sequence[str]) -> str:
    """The member with the highest summed original-view similarity to the others; earliest on ties."""
    originals = [_views(member)[0] for member in members]

    def closeness(index: int) -> float:
        return sum(fuzz.ratio(originals[index], other) for other in originals)

    return members[max(range(len(members)), key=lambda index: (closeness(index), -index))]
