"""Where shared rate-limit budgets live: an SQLite file (one machine) or Redis (many).

Without a store, each client limits in its own memory (`_ratelimit.Bucket`). With one,
every client that names the same store and the same (base URL, API key) draws from the
same buckets. A bucket is a sliding log of *leases*, one per request:

- `take` (atomic: an SQLite `BEGIN IMMEDIATE` transaction or one Redis Lua script) drops
  expired leases and, when fewer than `capacity` remain, adds one that expires at
  `now + per + bound` (`bound`: the longest a request can take, so a process that dies
  holding a lease gives it back on its own); otherwise it says how long until a token
  can free up: the oldest finished lease's expiry, or one window from now while every
  lease is still in flight;
- `finish` rewrites the lease to expire `per` seconds after the response ended (the
  guarantee of the in-process limiter: two requests sharing a token reach the server at
  least a window apart, whatever the latency), `cancel` drops a lease never sent;
- `pause` records a Retry-After for the bucket, seen by every process.

Times are the store's own clock (Redis `TIME`, the SQLite machine's wall clock), so
clients on several machines agree. Store keys hold a SHA-256 of (base URL, API key) and
the rate class: the key never reaches the store. Store calls are blocking and run in a
worker thread (`anyio.to_thread`), so they work under asyncio and trio alike.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from .._errors import ConfigurationError
from .._validate import redact_url
from ._types import BucketState, Claim, ClaimState, Ledger, Store, StoreUnavailable, Take

if TYPE_CHECKING:
    from .redis import RedisStore
    from .sqlite import SQLiteStore

__all__ = [
    "BucketState",
    "Claim",
    "ClaimState",
    "Ledger",
    "Store",
    "StoreUnavailable",
    "Take",
    "bucket_key",
    "check_store_url",
    "ledger_key",
    "open_ledger",
    "open_store",
    "redact_url",
]

SCHEMES = ("sqlite", "redis", "rediss")
_HINT = "use sqlite:///ABSOLUTE/PATH, redis://HOST:PORT/DB or rediss://HOST:PORT/DB"


def _digest(base_url: str, api_key: str) -> str:
    return hashlib.sha256(f"{base_url}\n{api_key}".encode()).hexdigest()[:32]


def bucket_key(base_url: str, api_key: str, rate_class: str) -> str:
    """The store's name for one bucket: a hash of where and whose, never the key itself."""
    return f"codegen-ratelimit:{_digest(base_url, api_key)}:{rate_class}"


def ledger_key(base_url: str, api_key: str, idempotency_key: str) -> str:
    """The ledger's name for one idempotency key, scoped like a bucket (whose, where)."""
    return f"codegen-ledger:{_digest(base_url, api_key)}:{idempotency_key}"


def check_store_url(url: object, source: str = "RateLimits.shared") -> str:
    """The URL as given when it names a usable store; a `ConfigurationError` naming the
    problem (any password masked) otherwise."""
    if not isinstance(url, str):
        raise ConfigurationError(
            f"rate-limit store from {source} must be a URL string, not {type(url).__name__}"
        )
    text = url.strip()
    shown = redact_url(text)
    try:
        parts = urlsplit(text)
        _ = parts.port  # raises ValueError on a bad port
    except ValueError:
        raise ConfigurationError(
            f"rate-limit store from {source} is not a valid URL: {shown!r}; {_HINT}"
        ) from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        what = f"unknown scheme {scheme!r}" if scheme else "no scheme"
        raise ConfigurationError(f"rate-limit store from {source} {shown!r} has {what}; {_HINT}")
    if scheme == "sqlite":
        _sqlite_path(text, source)
    else:
        _check_redis(parts.path, shown, source)
    return text


def _sqlite_path(url: str, source: str) -> str:
    prefix = "sqlite:///"
    if not url.lower().startswith(prefix) or "?" in url or "#" in url:
        raise ConfigurationError(
            f"rate-limit store from {source} {redact_url(url)!r} must be sqlite:///ABSOLUTE/PATH "
            "(three slashes, then the absolute path; no host, query or fragment)"
        )
    path = url[len(prefix) :]
    if not path or not os.path.isabs(path):
        raise ConfigurationError(
            f"rate-limit store from {source} {url!r} names the relative path {path!r}: "
            "give an absolute one, e.g. f\"sqlite:///{Path('limits.sqlite3').resolve()}\" "
            "(four slashes on POSIX)"
        )
    return path


def _check_redis(path: str, shown: str, source: str) -> None:
    db = path.strip("/")
    if db and not (db.isascii() and db.isdigit()):
        raise ConfigurationError(
            f"rate-limit store from {source} {shown!r}: the database must be a number, got {db!r}"
        )
    if importlib.util.find_spec("redis") is None:
        raise ConfigurationError(
            f"rate-limit store from {source} {shown!r} needs the redis package: "
            "pip install 'codegen-async[redis]'"
        )


def open_store(url: str) -> Store:
    """The store for a URL accepted by `check_store_url` (nothing is contacted yet)."""
    return _open(url)


def open_ledger(url: str) -> Ledger:
    """The ledger kept in the store at a URL accepted by `check_store_url`: the same
    SQLite file or Redis database as the rate-limit buckets (nothing is contacted yet)."""
    return _open(url)


def _open(url: str) -> SQLiteStore | RedisStore:
    if url.lower().startswith("sqlite:"):
        from .sqlite import SQLiteStore

        return SQLiteStore(url, _sqlite_path(url, "open_store"))
    from .redis import RedisStore

    return RedisStore(url)
