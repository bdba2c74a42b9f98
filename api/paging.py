"""Keyset pages over an in-memory list: `{"data": [...], "list_metadata": {"before", "after"}}`.

The cursors are item ids (Retab's `list_metadata`): `after` is the last id of the page when more follow
(`has_more = after != null`), `before` the first id when items precede it. Items are ordered by a sort key
with the id as tiebreaker, so a page boundary is stable while items are added elsewhere.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, Field

from api.errors import InvalidError

T = TypeVar("T")
Order = Literal["asc", "desc"]


class PageQuery(BaseModel):
    """The paging query of a list call."""

    before: str | None = Field(default=None, description="Return the page before this id")
    after: str | None = Field(default=None, description="Return the page after this id")
    limit: int = Field(default=10, ge=1, le=1000, description="Items per page")
    order: Order = Field(default="desc", description="Sort direction")


class ListMetadata(BaseModel):
    """Page boundaries: `after` is set only when more items follow."""

    before: str | None = None
    after: str | None = None


class Page(BaseModel, Generic[T]):
    """A page of a list."""

    data: list[T]
    list_metadata: ListMetadata


def paginate(
    items: Sequence[T],
    query: PageQuery,
    *,
    ident: Callable[[T], str],
    sort_key: Callable[[T], Any],
) -> Page[T]:
    """The page of `items` the query asks for, with its `list_metadata`."""
    if query.before is not None and query.after is not None:
        raise InvalidError("give either 'before' or 'after', not both", code="invalid_cursor", field="before")
    ordered = sorted(items, key=lambda item: (sort_key(item), ident(item)), reverse=query.order == "desc")
    ids = [ident(item) for item in ordered]
    start, end = 0, query.limit
    if query.after is not None:
        start = _position(ids, query.after, "after") + 1
        end = start + query.limit
    elif query.before is not None:
        end = _position(ids, query.before, "before")
        start = max(0, end - query.limit)
    page = ordered[start:end]
    metadata = ListMetadata(
        before=ident(page[0]) if page and start > 0 else None,
        after=ident(page[-1]) if page and end < len(ordered) else None,
    )
    return Page(data=page, list_metadata=metadata)


def _position(ids: list[str], cursor: str, field: str) -> int:
    try:
        return ids.index(cursor)
    except ValueError:
        raise InvalidError(
            f"{field}: '{cursor}' is not in this list (it may have been deleted); list again from the start",
            code="invalid_cursor",
            field=field,
        ) from None
