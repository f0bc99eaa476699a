"""skip/limit auto-pagination over `Page[T]` responses."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable, Hashable
from typing import TypeVar

from . import _errors
from ._batched import Batched
from .models import Page

__all__ = ["MAX_PAGE_SIZE", "check_page_args", "paginate"]

T = TypeVar("T")

MAX_PAGE_SIZE = 100


def check_page_args(skip: int, limit: int) -> None:
    """Reject a page request the API would refuse, before anything is sent."""
    if not isinstance(skip, int) or isinstance(skip, bool) or skip < 0:
        raise ValueError(f"skip must be an integer >= 0, got {skip!r}")
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_PAGE_SIZE:
        raise ValueError(f"limit must be an integer in 1..{MAX_PAGE_SIZE}, got {limit!r}")


def paginate(
    fetch: Callable[[int, int], Awaitable[Page[T]]],
    *,
    page_size: int = MAX_PAGE_SIZE,
    key: Callable[[T], Hashable] | None = None,
) -> Batched[T]:
    """Every item of every page, in order, until the server has no more.

    An item seen on an earlier page is not yielded again (told apart by `key`, by default
    the item's `id`): lists that grow at the front (newest first) shift items onto the
    next page while we read. A page that brings nothing new ends the listing with
    `ResponseValidationError`: the server is not paging (it ignores `skip`, or its
    `total` promises items it never sends).
    """
    check_page_args(0, page_size)
    return Batched(_pages(fetch, page_size, _identity if key is None else key))


def _identity(item: object) -> Hashable:
    """What tells a listed item from another: its `id` (every listed model has one)."""
    ident = getattr(item, "id", None)
    return repr(item) if ident is None else ident


async def _pages(
    fetch: Callable[[int, int], Awaitable[Page[T]]],
    page_size: int,
    key: Callable[[T], Hashable],
) -> AsyncGenerator[list[T], None]:
    seen: set[Hashable] = set()
    skip = 0
    while True:
        page = await fetch(skip, page_size)
        if not page.items:
            return
        items = _unseen(page.items, key, seen)
        if not items:
            # A server that ignores `skip`, or reports a `total` it never delivers,
            # would otherwise be read for ever.
            raise _errors.ResponseValidationError(
                f"the page at skip={skip} brought nothing new (the server ignores skip, or "
                f"its total of {page.total} is wrong); stopped after {skip} items",
                path="items",
            )
        yield items
        skip += len(page.items)
        if skip >= page.total:
            return


def _unseen(items: list[T], key: Callable[[T], Hashable], seen: set[Hashable]) -> list[T]:
    """The items whose key is not in `seen`, which learns them."""
    fresh = []
    for item in items:
        k = key(item)
        if k not in seen:
            seen.add(k)
            fresh.append(item)
    return fresh
