"""skip/limit auto-pagination over `Page[T]` responses."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable, Hashable
from typing import TypeVar

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

    With `key`, an item seen on an earlier page is not yielded again: lists that grow at
    the front (newest first) shift items onto the next page while we read.
    """
    check_page_args(0, page_size)
    return Batched(_pages(fetch, page_size, key))


async def _pages(
    fetch: Callable[[int, int], Awaitable[Page[T]]],
    page_size: int,
    key: Callable[[T], Hashable] | None,
) -> AsyncGenerator[list[T], None]:
    seen: set[Hashable] = set()
    skip = 0
    while True:
        page = await fetch(skip, page_size)
        items = page.items if key is None else _unseen(page.items, key, seen)
        if items:
            yield items
        skip += len(page.items)
        if not page.items or skip >= page.total:
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
