"""The path syntax shared by conditions and templates: `invoice.total`, `items[0].sku`, `items.*.qty`.

A path is dotted keys with optional `[i]` indexes (negative counts from the end), `['key']` for keys
that are not plain words, and `*` / `[*]` wildcards over list items. A leading `$`, `$.` or a root
alias (`data.` for conditions; `input.` and `.` too for templates) names the whole input, except when
the input is a dict holding that alias as a key, where the key wins so existing data stays reachable.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final


class PathError(ValueError):
    """A path that cannot be parsed."""

    def __init__(self, message: str, path: str) -> None:
        super().__init__(message)
        self.message = message
        self.path = path


class _Missing:
    """The value at a path that does not exist (distinct from a JSON null)."""

    _instance: _Missing | None = None

    def __new__(cls) -> _Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING: Final = _Missing()


class _Wildcard:
    def __repr__(self) -> str:
        return "*"


WILDCARD: Final = _Wildcard()

Segment = str | int | _Wildcard

CONDITION_ROOTS: Final = ("data",)
TEMPLATE_ROOTS: Final = ("input", "data")

_TOKEN = re.compile(
    r"""\.?\[\s*(?P<index>-?\d+)\s*\]          # [0] or [-1]
      | \.?\[\s*\*\s*\]                         # [*]
      | \.?\[\s*(?P<q>['"])(?P<quoted>.*?)(?P=q)\s*\]   # ['a key']
      | \.?(?P<key>[^.\[\]]+)                   # plain key, or * as a wildcard
    """,
    re.VERBOSE,
)


@dataclass(frozen=True)
class PathMatch:
    """A value found under a path; `indices` are the list positions the wildcards took."""

    indices: tuple[int, ...]
    value: Any


@dataclass(frozen=True)
class ParsedPath:
    """A parsed path: `explicit_root` when it began with `$` or `.`, so no alias rule applies."""

    segments: tuple[Segment, ...]
    explicit_root: bool = False


def parse_path(path: str) -> ParsedPath:
    """Parse a path into segments (raises PathError)."""
    text = path.strip()
    if text in ("", ".", "$"):
        return ParsedPath((), explicit_root=True)
    for prefix in ("$.", "$", "."):
        if text.startswith(prefix):
            return ParsedPath(_tokenize(text[len(prefix) :], path), explicit_root=True)
    return ParsedPath(_tokenize(text, path))


def _tokenize(text: str, path: str) -> tuple[Segment, ...]:
    segments: list[Segment] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise PathError(f"cannot parse path at position {pos}: {text[pos:]!r}", path)
        segments.append(_segment_of(match))
        pos = match.end()
    if not segments:
        raise PathError("empty path", path)
    return tuple(segments)


def _segment_of(match: re.Match[str]) -> Segment:
    if match.group("index") is not None:
        return int(match.group("index"))
    if match.group("quoted") is not None:
        return match.group("quoted")
    key = match.group("key")
    if key is None or key.strip() == "*":
        return WILDCARD
    return key.strip()


def is_wildcard_path(path: str) -> bool:
    """Whether the path fans out over list items (raises PathError on a bad path)."""
    return has_wildcard(parse_path(path).segments)


def has_wildcard(segments: tuple[Segment, ...]) -> bool:
    """Whether these segments fan out over list items."""
    return any(isinstance(s, _Wildcard) for s in segments)


def resolve(data: Any, path: str, roots: tuple[str, ...] = CONDITION_ROOTS) -> Any:
    """The value at a path without wildcards, or MISSING."""
    segments = _rooted(data, parse_path(path), roots)
    if has_wildcard(segments):
        raise PathError("a wildcard path has several values; use resolve_all", path)
    # Without a wildcard the walk yields exactly one match.
    return next(_walk(data, segments, ())).value


def resolve_all(data: Any, path: str, roots: tuple[str, ...] = CONDITION_ROOTS) -> list[PathMatch]:
    """Every value a wildcard path reaches, with the list positions taken (MISSING where absent)."""
    segments = _rooted(data, parse_path(path), roots)
    return list(_walk(data, segments, ()))


def _rooted(data: Any, parsed: ParsedPath, roots: tuple[str, ...]) -> tuple[Segment, ...]:
    segments = parsed.segments
    if parsed.explicit_root or not segments:
        return segments
    first = segments[0]
    # An alias prefix names the root unless the data really has that key.
    if isinstance(first, str) and first in roots and not (isinstance(data, dict) and first in data):
        return segments[1:]
    return segments


def _walk(value: Any, segments: tuple[Segment, ...], indices: tuple[int, ...]) -> Any:
    for pos, segment in enumerate(segments):
        if isinstance(segment, _Wildcard):
            if isinstance(value, list):
                for i, item in enumerate(value):
                    yield from _walk(item, segments[pos + 1 :], (*indices, i))
            return
        value = _step(value, segment)
        if value is MISSING:
            # A list that is not there has no items: a wildcard below it reaches nothing.
            if has_wildcard(segments[pos + 1 :]):
                return
            break
    yield PathMatch(indices, value)


def _step(value: Any, segment: str | int) -> Any:
    if isinstance(value, dict):
        return value.get(segment, MISSING) if isinstance(segment, str) else value.get(str(segment), MISSING)
    if isinstance(value, list):
        index = _as_index(segment)
        if index is not None and -len(value) <= index < len(value):
            return value[index]
    return MISSING


def _as_index(segment: str | int) -> int | None:
    if isinstance(segment, int):
        return segment
    # `items.0.sku` reads like `items[0].sku`.
    return int(segment) if re.fullmatch(r"-?\d+", segment) else None
