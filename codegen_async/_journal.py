"""The batch journal: one SQLite file (stdlib `sqlite3`, WAL) that lets a fan-out outlive
its process.

One row per input: its fingerprint (a hash of the prompt and every RunSpec field, as
canonical JSON), the idempotency key of its create (committed BEFORE the POST goes out),
the run id once the create answered, the last status seen, and the terminal outcome (the
run as JSON, or the error's type and message). A `meta` table holds the application
name, the schema version, the input count, the fan-out's group id and the owner (pid,
host, start time) for diagnostics.

One process at a time: the connection uses SQLite's EXCLUSIVE locking mode and takes
the write lock when it opens, so a second process gets "database is locked" at once
(`JournalInUseError`); the kernel drops the lock when its holder dies, even by kill -9,
and the next process takes over (and recovers the WAL). Every read and write runs in a
worker thread (`anyio.to_thread`), never on the event loop; writes are staged and
committed together by `flush()` (group commit: whoever flushes commits everything
staged so far, in one transaction). A commit carrying a key is fsynced (synchronous
FULL: not even a power loss undoes it); the others are not (NORMAL: they survive the
process, and what a power loss could drop a resume finds again by key or by polling).
Nothing here ever overwrites or deletes a file: a file that is not a journal of ours is
refused before anything is written to it.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import hashlib
import json
import logging
import os
import socket
import sqlite3
import time
import weakref
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import anyio
import anyio.to_thread
import attrs

from . import _errors
from ._convert import structure, unstructure
from .models import AgentRun

__all__ = ["SCHEMA_VERSION", "Entry", "Journal", "check_path", "fingerprint"]

logger = logging.getLogger("codegen_async")

APPLICATION = "codegen-async batch journal"
SCHEMA_VERSION = 1

_SCHEMA = (
    "CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE inputs (idx INTEGER PRIMARY KEY, fingerprint TEXT NOT NULL, "
    "idem_key TEXT, keyed_at TEXT, run_id INTEGER, status TEXT, outcome TEXT)",
)


def check_path(path: object) -> str:
    """The journal argument as a path string (str or os.PathLike), or raise."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"journal must be a path (str or os.PathLike) or None, got {path!r}")
    text = os.fspath(path)
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"journal must be a non-empty path, got {path!r}")
    return text


def fingerprint(data: Mapping[str, Any]) -> str:
    """A stable hash of one input: canonical JSON (sorted keys, no spaces) through SHA-256."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


@attrs.define
class Entry:
    """What the journal knows of one input."""

    index: int
    key: str | None = None
    keyed_at: datetime.datetime | None = None
    run_id: int | None = None
    status: str | None = None
    outcome: dict[str, Any] | None = None

    @property
    def finished(self) -> bool:
        return self.outcome is not None

    @property
    def in_flight(self) -> bool:
        """Created (or maybe created: a key without a run id), not finished."""
        return not self.finished and self.key is not None


def encode_outcome(run: AgentRun | None, error: Exception | None) -> str:
    """A terminal outcome as JSON: the run, or the error's type, message and status."""
    if error is None:
        return json.dumps({"run": unstructure(run)}, separators=(",", ":"))
    data: dict[str, Any] = {
        "type": type(error).__name__,
        "message": str(getattr(error, "message", None) or error),
    }
    if isinstance(error, _errors.APIStatusError):
        data["status_code"] = error.status_code
        data["request_id"] = error.request_id
    return json.dumps({"error": data}, separators=(",", ":"))


def decode_outcome(outcome: Mapping[str, Any]) -> tuple[AgentRun | None, Exception | None]:
    """The run or the error an outcome recorded. An API error comes back as its class
    (by status code); a few others by name; any other as a `CodegenError` whose message
    starts with the recorded type."""
    if "run" in outcome:
        return structure(outcome["run"], AgentRun), None
    data = outcome["error"]
    kind, message = str(data.get("type")), str(data.get("message"))
    code = data.get("status_code")
    if isinstance(code, int):
        return None, _errors.status_error(code, message, request_id=data.get("request_id"))
    simple: dict[str, type[_errors.CodegenError]] = {
        "APIConnectionError": _errors.APIConnectionError,
        "APITimeoutError": _errors.APITimeoutError,
    }
    if kind in simple:
        return None, simple[kind](message)
    if kind == "ResponseValidationError":
        return None, _errors.ResponseValidationError(message)
    return None, _errors.CodegenError(f"{kind}: {message}")


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat()


class Journal:
    """One open journal (see the module docstring). Made by `await Journal.open(...)`."""

    path: str
    group_id: str
    entries: list[Entry]
    took_over: dict[str, Any] | None  # the earlier owner, when its batch did not close
    _lock: anyio.Lock
    _limiter: anyio.CapacityLimiter

    def __init__(self, path: str, conn: sqlite3.Connection) -> None:
        self.path = path
        self._conn = conn
        self._pending: list[tuple[str, tuple[Any, ...]]] = []
        self._must_sync = False  # a staged write must reach the disk (fsync) when committed
        self._synchronous = "FULL"
        self._staged = 0
        self._flushed = 0
        self._dirty_since = 0.0  # time.monotonic() of the oldest uncommitted write
        self._broken: _errors.JournalError | None = None
        self._closed = False
        self.took_over = None
        self.fresh = False  # created by this open
        self.group_id = ""
        self.entries = []
        self._finalizer = weakref.finalize(self, conn.close)

    # -- opening ------------------------------------------------------------------------

    @classmethod
    async def open(cls, path: str, inputs: Sequence[Mapping[str, Any]], group_id: str) -> Journal:
        """Open (or create) the journal for these inputs (each as the JSON-able data its
        fingerprint is taken of), locked for this process."""
        journal = await anyio.to_thread.run_sync(
            functools.partial(cls._open, path, inputs, group_id)
        )
        # Made here, on the event loop's thread (anyio's primitives belong to a loop).
        journal._lock = anyio.Lock()
        journal._limiter = anyio.CapacityLimiter(1)
        return journal

    @classmethod
    def _open(cls, path: str, inputs: Sequence[Mapping[str, Any]], group_id: str) -> Journal:
        fingerprints = [fingerprint(data) for data in inputs]
        if os.path.isdir(path):
            raise _errors.JournalError(f"journal {path}: is a directory", path=path)
        try:
            conn = sqlite3.connect(path, timeout=0, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise _errors.JournalError(f"cannot open journal {path}: {exc}", path=path) from None
        journal = cls(path, conn)
        try:
            journal._start(fingerprints, group_id)
        except BaseException:
            conn.close()
            raise
        return journal

    def _start(self, fingerprints: list[str], group_id: str) -> None:
        # Read and check first, writing nothing: a file that is not ours stays as it is.
        # The first read takes the lock (EXCLUSIVE mode keeps it), so a journal another
        # batch holds is refused here.
        conn = self._conn
        with self._sqlite_errors("cannot open"):
            conn.execute("PRAGMA locking_mode=EXCLUSIVE")
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        with self._sqlite_errors("cannot read"):
            if tables:
                self._check(tables, fingerprints)
        with self._sqlite_errors("cannot write to"):
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("BEGIN IMMEDIATE")
            if not tables:
                self._create(fingerprints, group_id)
            owner = {"pid": os.getpid(), "host": socket.gethostname(), "started": _now()}
            conn.execute("INSERT OR REPLACE INTO meta VALUES ('owner', ?)", (json.dumps(owner),))
            conn.execute("COMMIT")

    @contextlib.contextmanager
    def _sqlite_errors(self, doing: str) -> Iterator[None]:
        """sqlite3's errors as JournalErrors that name the file and the cause."""
        try:
            yield
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise _errors.JournalInUseError(
                    f"journal {self.path} is held by another live batch (another process, "
                    "or another fan-out of this one); wait for it to end, or stop it, then "
                    "run again",
                    path=self.path,
                ) from None
            raise self._error(doing, exc) from None
        except sqlite3.DatabaseError as exc:  # "file is not a database", malformed
            raise self._foreign(str(exc)) from None

    def _create(self, fingerprints: list[str], group_id: str) -> None:
        conn = self._conn
        for statement in _SCHEMA:
            conn.execute(statement)
        meta = {
            "application": APPLICATION,
            "schema": str(SCHEMA_VERSION),
            "count": str(len(fingerprints)),
            "group_id": group_id,
            "created": _now(),
            "owner": "",
        }
        conn.executemany("INSERT INTO meta VALUES (?, ?)", meta.items())
        conn.executemany(
            "INSERT INTO inputs (idx, fingerprint) VALUES (?, ?)", enumerate(fingerprints)
        )
        self.group_id = group_id
        self.fresh = True
        self.entries = [Entry(index) for index in range(len(fingerprints))]

    def _check(self, tables: set[str], fingerprints: list[str]) -> None:
        conn, path = self._conn, self.path
        if not {"meta", "inputs"} <= tables:
            raise self._foreign("it has no codegen-async tables")
        meta = dict(conn.execute("SELECT name, value FROM meta").fetchall())
        if meta.get("application") != APPLICATION:
            raise self._foreign("its meta table names another application")
        schema = meta.get("schema", "")
        if not schema.isdigit():
            raise self._foreign(f"its schema version {schema!r} is not a number")
        if int(schema) > SCHEMA_VERSION:
            raise _errors.JournalError(
                f"journal {path} was written by a newer codegen-async (schema {schema}; this "
                f"version reads up to {SCHEMA_VERSION}): upgrade, or use another file",
                path=path,
            )
        rows = conn.execute(
            "SELECT idx, fingerprint, idem_key, keyed_at, run_id, status, outcome "
            "FROM inputs ORDER BY idx"
        ).fetchall()
        for index, row in enumerate(rows):
            if row[0] != index:
                raise self._foreign(f"its inputs skip index {index}")
        count = len(rows)
        for index, (row, mine) in enumerate(zip(rows, fingerprints, strict=False)):
            if row[1] != mine:
                raise self._mismatch(index, f"items[{index}] differs from the one recorded")
        if count != len(fingerprints):
            first = min(count, len(fingerprints))
            raise self._mismatch(
                first,
                f"it holds {count} inputs and {len(fingerprints)} were given; items[{first}] "
                "is on one side only",
            )
        self.group_id = meta.get("group_id", "")
        owner = meta.get("owner") or ""
        self.took_over = json.loads(owner) if owner else None
        self.entries = [self._entry(row) for row in rows]

    def _entry(self, row: tuple[Any, ...]) -> Entry:
        index, _, key, keyed_at, run_id, status, outcome = row
        when = datetime.datetime.fromisoformat(keyed_at) if keyed_at else None
        return Entry(index, key, when, run_id, status, json.loads(outcome) if outcome else None)

    def _foreign(self, why: str) -> _errors.JournalError:
        return _errors.JournalError(
            f"{self.path} is not a codegen-async batch journal ({why}); it was left as it "
            "is: pass another path",
            path=self.path,
        )

    def _mismatch(self, index: int, why: str) -> _errors.JournalMismatchError:
        return _errors.JournalMismatchError(
            f"journal {self.path} was written for other inputs: {why}. Resume with the same "
            "inputs, or start a new journal (another path)",
            path=self.path,
            index=index,
        )

    def _error(self, doing: str, exc: sqlite3.Error) -> _errors.JournalError:
        return _errors.JournalError(f"{doing} journal {self.path}: {exc}", path=self.path)

    # -- writing ------------------------------------------------------------------------

    def stage_key(self, index: int, key: str, at: datetime.datetime) -> None:
        self._stage(
            "UPDATE inputs SET idem_key = ?, keyed_at = ? WHERE idx = ?",
            (key, at.isoformat(), index),
        )
        self._must_sync = True  # the one write a crash (or power loss) must not undo

    def stage_release(self, index: int) -> None:
        """Forget a key reserved for an input whose create was never sent."""
        self._stage(
            "UPDATE inputs SET idem_key = NULL, keyed_at = NULL "
            "WHERE idx = ? AND run_id IS NULL AND outcome IS NULL",
            (index,),
        )

    def stage_created(self, index: int, run_id: int, status: str | None) -> None:
        self._stage(
            "UPDATE inputs SET run_id = ?, status = ? WHERE idx = ?", (run_id, status, index)
        )

    def stage_status(self, index: int, status: str | None) -> None:
        self._stage("UPDATE inputs SET status = ? WHERE idx = ?", (status, index))

    def stage_outcome(
        self, index: int, run: AgentRun | None, error: Exception | None, run_id: int | None
    ) -> None:
        status = None if run is None or run.status is None else str(run.status.value)
        self._stage(
            "UPDATE inputs SET outcome = ?, status = ?, run_id = COALESCE(?, run_id) WHERE idx = ?",
            (encode_outcome(run, error), status, run_id, index),
        )

    def _stage(self, sql: str, params: tuple[Any, ...]) -> None:
        if self._staged == self._flushed:
            self._dirty_since = time.monotonic()
        self._pending.append((sql, params))
        self._staged += 1

    @property
    def unflushed(self) -> bool:
        """Whether writes are staged that are not committed yet."""
        return self._staged > self._flushed

    def unflushed_for(self) -> float:
        """Seconds since the oldest write not committed yet was staged (0 when none)."""
        return time.monotonic() - self._dirty_since if self.unflushed else 0.0

    @property
    def staged(self) -> int:
        """How many writes were staged so far (a mark for `flush(upto=...)`)."""
        return self._staged

    async def flush(self, upto: int | None = None) -> None:
        """Commit everything staged so far (and what others staged meanwhile), durably;
        with `upto`, only if the writes up to that mark are not committed yet."""
        if self._broken is not None:
            raise self._broken
        target = self._staged if upto is None else upto
        if self._flushed >= target:
            return
        async with self._lock:
            # Closed: only a fan-out being torn down stages more; what it would add, a
            # resume derives again (by key and run id). But a key must never be sent
            # without being on disk first.
            if self._closed and self._must_sync:
                raise _errors.JournalError(f"journal {self.path} is closed", path=self.path)
            if self._flushed >= target or self._closed:
                return
            if self._broken is not None:
                raise self._broken
            ops, self._pending = self._pending, []
            sync, self._must_sync = self._must_sync, False
            await anyio.to_thread.run_sync(
                functools.partial(self._write, ops, self._staged, sync), limiter=self._limiter
            )

    def _write(self, ops: list[tuple[str, tuple[Any, ...]]], upto: int, sync: bool = True) -> None:
        """Commit `ops` in one transaction. With `sync`, the commit is on the disk when
        this returns (fsync); without, it survives the process (kill -9) but maybe not a
        power loss, which costs nothing here: a lost run id or outcome is found again
        by a resume (by key, by polling), and a later synced commit carries it too."""
        conn = self._conn
        try:
            level = "FULL" if sync else "NORMAL"
            if level != self._synchronous:
                conn.execute(f"PRAGMA synchronous={level}")
                self._synchronous = level
            conn.execute("BEGIN IMMEDIATE")
            try:
                for sql, params in ops:
                    conn.execute(sql, params)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:  # SQLITE_FULL and a few others roll back by themselves
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            self._broken = self._error("cannot write to", exc)
            raise self._broken from None
        self._flushed = upto

    async def aclose(self) -> None:
        """Commit what is staged, mark the journal released and close it."""
        if self._closed:
            return
        try:
            async with self._lock:
                self._closed = True
                if self._broken is None:
                    ops, self._pending = self._pending, []
                    ops.append(("UPDATE meta SET value = '' WHERE name = 'owner'", ()))
                    await anyio.to_thread.run_sync(
                        functools.partial(self._write, ops, self._staged), limiter=self._limiter
                    )
        finally:
            self._closed = True
            self._finalizer()
