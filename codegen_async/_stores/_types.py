"""What a store and its users share: the store's protocol, its answers and its error.

The backends (`sqlite`, `redis`) import this module, not the package, which loads them
lazily (`open_store`): so no two modules import each other.
"""

from __future__ import annotations

from typing import Literal, Protocol

import attrs

__all__ = ["BucketState", "Claim", "ClaimState", "Ledger", "Store", "StoreUnavailable", "Take"]


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


# What `Ledger.claim` found for a key:
# - "fresh": nothing may have been sent for it; the caller holds it now and may POST;
# - "done": its run id is known (`run_id`);
# - "held": another live holder may be creating it; ask again within `wait` seconds;
# - "orphaned": a holder reserved it at `reserved_at` and is gone (its lease ran out)
#   without a run id: the caller holds it now and must look for the run among those
#   created since `reserved_at` before posting.
ClaimState = Literal["fresh", "done", "held", "orphaned"]


@attrs.frozen
class Claim:
    """The answer of `Ledger.claim`. Times are the store's clock, epoch seconds."""

    state: ClaimState
    first_at: float  # when the key was first claimed (kept across releases)
    now: float  # the store's time of this answer
    reserved_at: float | None = None  # when the current reservation was made
    run_id: int | None = None
    wait: float = 0.0  # "held": seconds until the holder's lease runs out


class Ledger(Protocol):
    """Exactly one run per key across processes and machines: key -> (first claimed,
    reserved at, holder and its lease, run id). Every method blocks and is atomic."""

    url: str

    def claim(self, key: str, holder: str, lease: float, ttl: float) -> Claim: ...

    def record(self, key: str, run_id: int) -> int: ...

    def release(self, key: str, holder: str, *, sent: bool) -> None: ...

    def close(self) -> None: ...
