"""What a store and its users share: the store's protocol, its answers and its error.

The backends (`sqlite`, `redis`) import this module, not the package, which loads them
lazily (`open_store`): so no two modules import each other.
"""

from __future__ import annotations

from typing import Protocol

import attrs

__all__ = ["BucketState", "Store", "StoreUnavailable", "Take"]


class StoreUnavailable(Exception):
    """The store did not answer (down, locked, unwritable); the message says why."""


@attrs.frozen
class Take:
    """The answer of `Store.take`: a lease was taken, or how long until one may be."""

    taken: bool
    wait: float  # seconds; 0 when taken


@attrs.frozen
class BucketState:
    """What a bucket holds now: leases counted, seconds until the next frees, pause left."""

    in_use: int
    next_free_in: float
    paused_for: float


class Store(Protocol):
    """A shared budget store. Every method blocks; call it from a worker thread."""

    url: str

    def take(self, key: str, lease: str, capacity: int, per: float, bound: float) -> Take: ...

    def finish(self, key: str, lease: str, per: float) -> None: ...

    def cancel(self, key: str, lease: str) -> None: ...

    def pause(self, key: str, seconds: float) -> None: ...

    def state(self, key: str, per: float) -> BucketState: ...

    def close(self) -> None: ...
