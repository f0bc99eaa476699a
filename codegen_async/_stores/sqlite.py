"""The SQLite store: one file shared by the processes of one machine (stdlib `sqlite3`).

WAL journal; every change in one `BEGIN IMMEDIATE` transaction (one writer at a time,
readers never blocked); the machine's wall clock is the shared clock. A file that is
locked for longer than `BUSY_TIMEOUT` or cannot be written raises `StoreUnavailable`.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress

from ._types import BucketState, Claim, StoreUnavailable, Take

__all__ = ["SQLiteStore"]

BUSY_TIMEOUT = 2.0  # seconds a transaction waits for another process's lock

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS codegen_leases ("
    " bucket TEXT NOT NULL, lease TEXT NOT NULL, expires REAL NOT NULL,"
    " finished INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (bucket, lease)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS codegen_pauses (bucket TEXT PRIMARY KEY, until REAL NOT NULL)",
    # The ledger: reserved NULL when nothing may have been sent for the key.
    "CREATE TABLE IF NOT EXISTS codegen_ledger ("
    " key TEXT PRIMARY KEY, first REAL NOT NULL, reserved REAL, holder TEXT NOT NULL,"
    " lease_until REAL NOT NULL, run_id INTEGER, expires REAL NOT NULL)",
    "CREATE INDEX IF NOT EXISTS codegen_ledger_expires ON codegen_ledger (expires)",
)


class SQLiteStore:
    """Buckets in the tables of one SQLite file; one connection, used by one thread at a time."""

    def __init__(self, url: str, path: str) -> None:
        self.url = url
        self._path = path
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    def _connect(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(
                self._path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False
            )
            try:
                _set_up(conn)
            except BaseException:
                conn.close()
                raise
            self._conn = conn
        return self._conn

    @contextmanager
    def _transaction(self) -> Iterator[tuple[sqlite3.Connection, float]]:
        with self._lock:
            try:
                conn = self._connect()
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn, time.time()
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            except (sqlite3.Error, OSError) as exc:
                self._drop()
                raise StoreUnavailable(f"{type(exc).__name__}: {exc}") from exc

    def _drop(self) -> None:
        if self._conn is not None:
            with suppress(sqlite3.Error):
                self._conn.close()
            self._conn = None

    def take(self, key: str, lease: str, capacity: int, per: float, bound: float) -> Take:
        with self._transaction() as (conn, now):
            row = conn.execute("SELECT until FROM codegen_pauses WHERE bucket = ?", (key,))
            paused = row.fetchone()
            if paused is not None and paused[0] > now:
                return Take(False, paused[0] - now)
            conn.execute("DELETE FROM codegen_leases WHERE bucket = ? AND expires <= ?", (key, now))
            (count,) = conn.execute(
                "SELECT count(*) FROM codegen_leases WHERE bucket = ?", (key,)
            ).fetchone()
            if count < capacity:
                conn.execute(
                    "INSERT OR REPLACE INTO codegen_leases VALUES (?, ?, ?, 0)",
                    (key, lease, now + per + bound),
                )
                return Take(True, 0.0)
            return Take(False, _next_free(conn, key, now, per))

    def finish(self, key: str, lease: str, per: float) -> None:
        with self._transaction() as (conn, now):
            conn.execute(
                "INSERT OR REPLACE INTO codegen_leases VALUES (?, ?, ?, 1)", (key, lease, now + per)
            )

    def cancel(self, key: str, lease: str) -> None:
        with self._transaction() as (conn, _):
            conn.execute("DELETE FROM codegen_leases WHERE bucket = ? AND lease = ?", (key, lease))

    def pause(self, key: str, seconds: float) -> None:
        with self._transaction() as (conn, now):
            conn.execute(
                "INSERT INTO codegen_pauses VALUES (?, ?) ON CONFLICT (bucket) "
                "DO UPDATE SET until = max(until, excluded.until)",
                (key, now + seconds),
            )
            conn.execute("DELETE FROM codegen_pauses WHERE until <= ?", (now,))

    def state(self, key: str, per: float) -> BucketState:
        with self._transaction() as (conn, now):
            conn.execute("DELETE FROM codegen_leases WHERE bucket = ? AND expires <= ?", (key, now))
            (count,) = conn.execute(
                "SELECT count(*) FROM codegen_leases WHERE bucket = ?", (key,)
            ).fetchone()
            row = conn.execute("SELECT until FROM codegen_pauses WHERE bucket = ?", (key,))
            paused = row.fetchone()
            pause_left = max(0.0, paused[0] - now) if paused is not None else 0.0
            return BucketState(count, _next_free(conn, key, now, per) if count else 0.0, pause_left)

    def claim(self, key: str, holder: str, lease: float, ttl: float) -> Claim:
        with self._transaction() as (conn, now):
            conn.execute("DELETE FROM codegen_ledger WHERE expires <= ?", (now,))
            row = conn.execute(
                "SELECT first, reserved, holder, lease_until, run_id FROM codegen_ledger"
                " WHERE key = ?",
                (key,),
            ).fetchone()
            if row is None:
                conn.execute(
                    "INSERT INTO codegen_ledger VALUES (?, ?, ?, ?, ?, NULL, ?)",
                    (key, now, now, holder, now + lease, now + ttl),
                )
                return Claim("fresh", now, now, now)
            first, reserved, current, lease_until, run_id = row
            if run_id is not None:
                return Claim("done", first, now, reserved, run_id)
            if reserved is not None and lease_until > now and current != holder:
                return Claim("held", first, now, reserved, wait=lease_until - now)
            conn.execute(
                "UPDATE codegen_ledger SET reserved = ?, holder = ?, lease_until = ?, expires = ?"
                " WHERE key = ?",
                (now if reserved is None else reserved, holder, now + lease, now + ttl, key),
            )
            if reserved is None:
                return Claim("fresh", first, now, now)
            return Claim("orphaned", first, now, reserved)

    def record(self, key: str, run_id: int) -> int:
        with self._transaction() as (conn, _):
            conn.execute(
                "UPDATE codegen_ledger SET run_id = ? WHERE key = ? AND run_id IS NULL",
                (run_id, key),
            )
            row = conn.execute("SELECT run_id FROM codegen_ledger WHERE key = ?", (key,))
            held = row.fetchone()
            return run_id if held is None else int(held[0])

    def release(self, key: str, holder: str, *, sent: bool) -> None:
        with self._transaction() as (conn, _):
            conn.execute(
                "UPDATE codegen_ledger SET lease_until = 0,"
                " reserved = CASE WHEN ? THEN reserved ELSE NULL END"
                " WHERE key = ? AND holder = ? AND run_id IS NULL",
                (sent, key, holder),
            )

    def close(self) -> None:
        with self._lock:
            self._drop()


def _set_up(conn: sqlite3.Connection) -> None:
    """WAL and the tables. Switching a new file to WAL fails at once (no busy wait) while
    another process does the same: retry that for up to BUSY_TIMEOUT."""
    deadline = time.monotonic() + BUSY_TIMEOUT
    while True:
        try:
            (mode,) = conn.execute("PRAGMA journal_mode").fetchone()
            if str(mode).lower() != "wal":
                conn.execute("PRAGMA journal_mode=WAL")
            break
        except sqlite3.OperationalError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.01)
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("BEGIN IMMEDIATE")
    for statement in _SCHEMA:
        conn.execute(statement)
    conn.execute("COMMIT")


def _next_free(conn: sqlite3.Connection, key: str, now: float, per: float) -> float:
    """Seconds until a lease can expire: the oldest finished one's, else a window (a lease
    still in flight frees no sooner than `per` after its response)."""
    (oldest,) = conn.execute(
        "SELECT min(expires) FROM codegen_leases WHERE bucket = ? AND finished = 1", (key,)
    ).fetchone()
    return per if oldest is None else max(0.0, min(per, oldest - now))
