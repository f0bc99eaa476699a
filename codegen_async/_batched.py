"""An async iterator over items that arrive in batches (pages of a list, pages of logs).

It iterates item by item like any async iterator; `batches()` hands out what is left a
batch at a time, so the sync facade moves a whole page per round trip to its loop.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from typing import Generic, TypeVar

__all__ = ["Batched"]

T = TypeVar("T")


class Batched(AsyncIterator[T], Generic[T]):
    """Items from an async generator of batches, one at a time or a batch at a time."""

    __slots__ = ("_buffer", "_source")

    def __init__(self, source: AsyncGenerator[Sequence[T], None]) -> None:
        self._source = source
        self._buffer: deque[T] = deque()

    def __aiter__(self) -> Batched[T]:
        return self

    async def __anext__(self) -> T:
        while not self._buffer:
            self._buffer.extend(await self._source.__anext__())
        return self._buffer.popleft()

    async def batches(self) -> AsyncIterator[list[T]]:
        """What is left, a non-empty batch at a time (shares the position of `__anext__`)."""
        while True:
            if self._buffer:
                batch = list(self._buffer)
                self._buffer.clear()
                yield batch
                continue
            try:
                self._buffer.extend(await self._source.__anext__())
            except StopAsyncIteration:
                return

    async def aclose(self) -> None:
        """Stop the source (its `finally` blocks run in the closing task)."""
        self._buffer.clear()
        await self._source.aclose()
