"""The batch journal: one SQLite file (stdlib `sqlite3`, WAL) that lets a fan-out outlive
its process. Everything about it lives here: what is written when, what a resume reads
and decides. The fan-out talks to one object, `BatchJournal` (or `NoJournal` when there
is no file), through a handful of calls: `open`, `key_for`, `sending`, `not_sent`,
`created`, `status`, `finished`, `handing_out`, `due_in`, `commit_due`, `close`.

The file. One row per input: its fingerprint (a hash of the prompt and every RunSpec
field, as canonical JSON), the idempotency key of its create (committed with an fsync
BEFORE the POST goes out), a "sent" mark (written right before the POST goes out, as
one byte in the marks file `<journal>-sent`, with no fsync and no commit; folded into
the journal at close or at the next open), the run id once the create answered, the
last status seen, and the terminal outcome (the run as JSON, or the error's type and
message). A `meta` table
holds the application name, the schema version, the input count, the fan-out's group
id, where the batch runs (base URL, organization, the caller's user id, a digest of the
API key), the machine's boot id, and the owner (pid, host, start time).

One process at a time: the connection uses SQLite's EXCLUSIVE locking mode and takes
the lock when it opens, so a second process gets "database is locked" at once
(`JournalInUseError`); the kernel drops the lock when its holder dies, even by kill -9,
and the next process takes over (and recovers the WAL). Every read and write runs in a
worker thread (`anyio.to_thread`), never on the event loop; writes are staged and
committed together (group commit: whoever flushes commits everything staged so far, in
one transaction). A commit carrying a key is fsynced (synchronous FULL: not even a power
loss undoes it); the others are not (NORMAL: they survive the process, and what a power
loss could drop a resume finds again by key or by polling).

A resume decides per input: finished (replayed, no request), created (awaited), keyed
and maybe sent (reconciled by key through the commit horizon), keyed and surely not
sent (started at once with its key), or never keyed (started). "Surely not sent" needs
the sent mark's absence to be trustworthy: it is when the process died on the same boot
(the kernel kept every write); after a machine crash (another boot id, or no boot id
on this system) every keyed input counts as maybe sent, and is marked so at once.

Nothing here ever overwrites or deletes a file: a path that is not a regular file, or a
file that is not a journal of ours, is refused before anything is written to it.
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
import stat
import time
import uuid
import weakref
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from typing import Any, BinaryIO

import anyio
import anyio.to_thread
import attrs

from . import _errors
from ._convert import structure, unstructure
from ._outcome import ResumeCounts
from .models import AgentRun

__all__ = [
    "SCHEMA_VERSION",
    "BatchJournal",
    "Caller",
    "Entry",
    "Journal",
    "Key",
    "NoJournal",
    "Plan",
    "boot_id",
    "check_path",
    "fingerprint",
    "key_digest",
    "open_journal",
]

logger = logging.getLogger("codegen_async")

APPLICATION = "codegen-async batch journal"
SCHEMA_VERSION = 2

_SCHEMA = (
    "CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE inputs (idx INTEGER PRIMARY KEY, fingerprint TEXT NOT NULL, "
    "idem_key TEXT, keyed_at TEXT, run_id INTEGER, status TEXT, outcome TEXT, "
    "sent INTEGER NOT NULL DEFAULT 0)",
)

# The keys of the next inputs are committed (fsynced) together: one disk flush for this
# many creates. Each key's own "sent" mark (no fsync) tells a resume which went out.
KEYS_PER_COMMIT = 16

# A run id or status staged is committed within about this many seconds (keys, sent
# marks and outcomes are committed before their POST or their hand-out, at once).
LAG = 0.1

_BOOT_ID_FILE = "/proc/sys/kernel/random/boot_id"

# The sent marks of the running process live beside the journal, in this file.
MARKS_SUFFIX = "-sent"


def check_path(path: object) -> str:
    """The journal argument as a path string (str or os.PathLike), or raise."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"journal must be a path (str or os.PathLike) or None, got {path!r}")
    text = os.fspath(path)
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"journal must be a non-empty path, got {path!r}")
    return text


def check_kind(path: str) -> None:
    """Refuse a path that exists and is not a regular file (following symlinks): a
    directory, a FIFO, a device, a socket. A missing file is fine (it is created)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as exc:
        raise _errors.JournalError(
            f"cannot open journal {path}: {exc.strerror}", path=path
        ) from None
    if stat.S_ISREG(mode):
        return
    kinds = (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    )
    kind = next((name for test, name in kinds if test(mode)), "not a regular file")
    target = os.path.realpath(path)
    shown = path if target == os.path.abspath(path) else f"{path} (a symlink to {target})"
    raise _errors.JournalError(
        f"journal {shown} is {kind}, not a regular file; nothing was written to it: pass "
        "the path of a file (it is created when missing)",
        path=path,
    )


def fingerprint(data: Mapping[str, Any]) -> str:
    """A stable hash of one input: canonical JSON (sorted keys, no spaces) through SHA-256."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def key_digest(base_url: str, api_key: str) -> str:
    """A digest of the API key (for one base URL): the same key resumes without asking the
    server who it belongs to. The key itself never reaches the file."""
    text = f"codegen-async journal\0{base_url}\0{api_key}"
    return hashlib.sha256(text.encode()).hexdigest()


def boot_id() -> str | None:
    """This machine's boot id (Linux), or None where there is none (then every resume
    counts as after a machine crash: keyed inputs are reconciled, never trusted unsent)."""
    try:
        with open(_BOOT_ID_FILE, encoding="ascii") as file:
            text = file.read().strip()
    except (OSError, ValueError):
        return None
    return text or None


@attrs.frozen
class Caller:
    """Who and where a batch runs: what a journal records and checks on resume. The two
    reads are the client's own (each at most one request, then remembered)."""

    base_url: str
    key_digest: str
    organization_id: Callable[[], Awaitable[int]]
    user_id: Callable[[], Awaitable[int]]


@attrs.define
class Entry:
    """What the journal file holds for one input."""

    index: int
    key: str | None = None
    keyed_at: datetime.datetime | None = None
    run_id: int | None = None
    status: str | None = None
    outcome: dict[str, Any] | None = None
    sent: bool = False

    @property
    def finished(self) -> bool:
        return self.outcome is not None


@attrs.frozen
class Key:
    """The idempotency key of one create. `sent_at` is set when an earlier process may
    have sent it (from then on): look it up before posting it again."""

    value: str
    sent_at: datetime.datetime | None = None


@attrs.frozen
class Replay:
    """An input the journal saw finish: its outcome, with no request."""

    index: int
    run: AgentRun | None
    error: Exception | None
    run_id: int | None


@attrs.frozen
class Plan:
    """What an opened journal says to do: replay these, await these runs (index, run id,
    last status), start or reconcile the rest (`key_for` tells which)."""

    group_id: str
    replays: list[Replay]
    in_flight: list[tuple[int, int, str | None]]
    resumed: ResumeCounts | None  # None for a new journal


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


def settles(error: Exception | None) -> bool:
    """Does this outcome end the input for good (journaled), or only this process's part
    (the fan-out's timeout or fail_fast, an undecided create: a resume takes them up)?"""
    stops = (_errors.WaitTimeoutError, _errors.RunNotStartedError, _errors.AmbiguousCreateError)
    return not isinstance(error, stops)


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat()


def _close_all(conn: sqlite3.Connection, files: list[BinaryIO]) -> None:
    conn.close()
    for file in files:
        file.close()


class Journal:
    """One open journal file (see the module docstring): reads, checks, staged writes and
    their commits. Made by `await Journal.open(...)`; the fan-out uses `BatchJournal`."""

    path: str
    group_id: str
    entries: list[Entry]
    took_over: dict[str, Any] | None  # the earlier owner, when its batch did not close
    meta: dict[str, str]
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
        self.fresh = False  # no tables yet: created by this open
        self.same_boot = False  # the last owner ran on this boot: its unsent marks hold
        self.group_id = ""
        self.entries = []
        self.meta = {}
        self._fingerprints: list[str] = []
        self._marks_path = path + MARKS_SUFFIX
        self._marks: BinaryIO | None = None  # the sent marks of this process (see `mark_sent`)
        self._marked: set[int] = set()
        self._open_files: list[BinaryIO] = []  # closed with the connection
        self._finalizer = weakref.finalize(self, _close_all, conn, self._open_files)

    # -- opening ------------------------------------------------------------------------

    @classmethod
    async def open(
        cls, path: str, inputs: Sequence[Mapping[str, Any]], group_id: str, caller: Caller
    ) -> Journal:
        """Open (or create) the journal for these inputs (each as the JSON-able data its
        fingerprint is taken of), locked for this process, and check it was written for
        this caller: its base URL and inputs before any request, its organization (one
        read when the client does not know it yet), its user when the API key differs
        (one read of the caller)."""
        journal = await anyio.to_thread.run_sync(
            functools.partial(cls._read, path, inputs, caller.base_url)
        )
        try:
            # Made here, on the event loop's thread (anyio's primitives belong to a loop).
            journal._lock = anyio.Lock()
            journal._limiter = anyio.CapacityLimiter(1)
            org_id = await caller.organization_id()
            journal._check_org(org_id)
            user_id = None
            if journal.fresh or journal.meta.get("key_digest") != caller.key_digest:
                user_id = await caller.user_id()
                journal._check_user(user_id)
            place = {"base_url": caller.base_url, "org_id": str(org_id)}
            place["key_digest"] = caller.key_digest
            if user_id is not None:
                place["user_id"] = str(user_id)
            await anyio.to_thread.run_sync(
                functools.partial(journal._claim, place, group_id, boot_id())
            )
        except BaseException:
            journal._finalizer()
            raise
        return journal

    @classmethod
    def _read(cls, path: str, inputs: Sequence[Mapping[str, Any]], base_url: str) -> Journal:
        fingerprints = [fingerprint(data) for data in inputs]
        check_kind(path)
        try:
            conn = sqlite3.connect(path, timeout=0, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise _errors.JournalError(f"cannot open journal {path}: {exc}", path=path) from None
        journal = cls(path, conn)
        try:
            journal._load(fingerprints, base_url)
        except BaseException:
            conn.close()
            raise
        return journal

    def _load(self, fingerprints: list[str], base_url: str) -> None:
        # Read and check first, writing nothing: a file that is not ours stays as it is.
        # The first read takes the lock (EXCLUSIVE mode keeps it), so a journal another
        # batch holds is refused here.
        conn = self._conn
        with self._sqlite_errors("cannot open"):
            conn.execute("PRAGMA locking_mode=EXCLUSIVE")
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        with self._sqlite_errors("cannot read"):
            if tables:
                self._check(tables, fingerprints, base_url)
                self._read_marks()
            else:
                self.fresh = True
                self.entries = [Entry(index) for index in range(len(fingerprints))]
                self._fingerprints = fingerprints

    def _read_marks(self) -> None:
        """The sent marks an earlier process left in the marks file (it is removed when
        a batch closes: one is left only by a crash)."""
        check_kind(self._marks_path)
        try:
            with open(self._marks_path, "rb") as file:
                marks = file.read(len(self.entries))
        except FileNotFoundError:
            return
        except OSError as exc:
            raise _errors.JournalError(
                f"cannot read journal {self.path}: {self._marks_path}: {exc.strerror}",
                path=self.path,
            ) from None
        for entry, mark in zip(self.entries, marks, strict=False):
            entry.sent = entry.sent or (mark == 1 and entry.key is not None)

    def _claim(self, place: dict[str, str], group_id: str, boot: str | None) -> None:
        """Write this process in: the tables of a new journal, the place, the boot id
        and the owner; the sent marks an earlier process left folded in (after a machine
        crash: every keyed input as maybe sent); then an empty marks file."""
        conn = self._conn
        with self._sqlite_errors("cannot write to"):
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("BEGIN IMMEDIATE")
            if self.fresh:
                self._create(group_id)
            self.same_boot = boot is not None and self.meta.get("boot_id") == boot
            for entry in self.entries:
                entry.sent = entry.sent or (entry.key is not None and not self.same_boot)
            sent = [(e.index,) for e in self.entries if e.sent and not e.finished]
            conn.executemany("UPDATE inputs SET sent = 1 WHERE idx = ?", sent)
            owner = {"pid": os.getpid(), "host": socket.gethostname(), "started": _now()}
            values = {**place, "boot_id": boot or "", "owner": json.dumps(owner)}
            conn.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", values.items())
            conn.execute("COMMIT")
        check_kind(self._marks_path)
        try:  # only now that the marks it held are on disk in the journal itself
            self._marks = open(self._marks_path, "w+b", buffering=0)  # noqa: SIM115
            self._open_files.append(self._marks)
        except OSError as exc:
            raise _errors.JournalError(
                f"cannot write to journal {self.path}: {self._marks_path}: {exc.strerror}",
                path=self.path,
            ) from None

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

    def _create(self, group_id: str) -> None:
        conn = self._conn
        for statement in _SCHEMA:
            conn.execute(statement)
        meta = {
            "application": APPLICATION,
            "schema": str(SCHEMA_VERSION),
            "count": str(len(self._fingerprints)),
            "group_id": group_id,
            "created": _now(),
        }
        conn.executemany("INSERT INTO meta VALUES (?, ?)", meta.items())
        conn.executemany(
            "INSERT INTO inputs (idx, fingerprint) VALUES (?, ?)", enumerate(self._fingerprints)
        )
        self.group_id = group_id

    def _check(self, tables: set[str], fingerprints: list[str], base_url: str) -> None:
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
        if int(schema) < SCHEMA_VERSION:
            raise _errors.JournalError(
                f"journal {path} was written by an older codegen-async (schema {schema}) that "
                "did not record the server, organization and user it ran for, so resuming it "
                "cannot be checked as safe; it was left as it is: finish it with the version "
                "that wrote it, or start a new journal (another path)",
                path=path,
            )
        if meta.get("base_url") != base_url:
            raise self._elsewhere(f"the server {meta.get('base_url')!r}, not {base_url!r}")
        rows = conn.execute(
            "SELECT idx, fingerprint, idem_key, keyed_at, run_id, status, outcome, sent "
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
        self.meta = meta
        self.group_id = meta.get("group_id", "")
        owner = meta.get("owner") or ""
        self.took_over = json.loads(owner) if owner else None
        self.entries = [self._entry(row) for row in rows]

    def _check_org(self, org_id: int) -> None:
        if not self.fresh and self.meta.get("org_id") != str(org_id):
            raise self._elsewhere(f"organization {self.meta.get('org_id')}, not {org_id}")

    def _check_user(self, user_id: int) -> None:
        if not self.fresh and self.meta.get("user_id") != str(user_id):
            raise self._elsewhere(
                f"the user {self.meta.get('user_id')}, and this API key belongs to user {user_id}"
            )

    def _entry(self, row: tuple[Any, ...]) -> Entry:
        index, _, key, keyed_at, run_id, status, outcome, sent = row
        when = datetime.datetime.fromisoformat(keyed_at) if keyed_at else None
        decoded = json.loads(outcome) if outcome else None
        return Entry(index, key, when, run_id, status, decoded, bool(sent))

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

    def _elsewhere(self, why: str) -> _errors.JournalMismatchError:
        return _errors.JournalMismatchError(
            f"journal {self.path} was written for {why}; its runs are not this caller's. "
            "Resume it with the client that wrote it, or start a new journal (another path)",
            path=self.path,
        )

    def _error(self, doing: str, exc: sqlite3.Error) -> _errors.JournalError:
        return _errors.JournalError(f"{doing} journal {self.path}: {exc}", path=self.path)

    # -- writing ------------------------------------------------------------------------

    def stage_key(self, index: int, key: str, at: datetime.datetime) -> None:
        self._stage(
            "UPDATE inputs SET idem_key = ?, keyed_at = ?, sent = 0 WHERE idx = ?",
            (key, at.isoformat(), index),
        )
        self._must_sync = True  # the one write a crash (or power loss) must not undo

    def stage_sent(self, index: int) -> None:
        self._stage("UPDATE inputs SET sent = 1 WHERE idx = ?", (index,))

    def mark_sent(self, index: int, sent: bool = True) -> None:
        """Record that input `index`'s POST is about to go out (or, `sent=False`, that it
        did not after all): one byte at offset `index` of the marks file, written at
        once (an unbuffered write, no fsync, no worker thread: microseconds). A process
        crash keeps it (the kernel has it); a machine crash may not, which a resume
        knows by the boot id. Folded into the journal at close or at the next open."""
        if self._broken is not None:
            raise self._broken
        if self._marks is None or self._closed:
            raise _errors.JournalError(f"journal {self.path} is closed", path=self.path)
        try:
            self._marks.seek(index)
            self._marks.write(b"\x01" if sent else b"\x00")
        except OSError as exc:
            self._broken = _errors.JournalError(
                f"cannot write to journal {self.path}: {self._marks_path}: {exc.strerror}",
                path=self.path,
            )
            raise self._broken from None
        if sent:
            self._marked.add(index)
        else:
            self._marked.discard(index)

    def stage_release(self, index: int) -> None:
        """Forget a key reserved for an input whose create was never sent."""
        self._stage(
            "UPDATE inputs SET idem_key = NULL, keyed_at = NULL, sent = 0 "
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
        by a resume (by key, by polling), a lost sent mark is assumed (another boot), and
        a later synced commit carries them too."""
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
                    ops.extend(
                        ("UPDATE inputs SET sent = 1 WHERE idx = ? AND run_id IS NULL", (i,))
                        for i in sorted(self._marked)
                    )
                    ops.append(("UPDATE meta SET value = '' WHERE name = 'owner'", ()))
                    await anyio.to_thread.run_sync(
                        functools.partial(self._write, ops, self._staged), limiter=self._limiter
                    )
                    # Every mark is in the journal now (fsynced): the file has done its job.
                    with contextlib.suppress(OSError):
                        os.unlink(self._marks_path)
        finally:
            self._closed = True
            self._finalizer()


# -- what the fan-out talks to --------------------------------------------------------------


class NoJournal:
    """No journal: fresh keys, nothing written, nothing to resume."""

    async def open(self, inputs: Sequence[Mapping[str, Any]], group_id: str) -> Plan:
        return Plan(group_id, [], [], None)

    def key_for(self, index: int) -> Key:
        return Key(uuid.uuid4().hex)

    async def sending(self, index: int) -> None:
        return None

    def not_sent(self, index: int) -> None:
        return None

    def created(self, index: int, run_id: int, status: str | None) -> None:
        return None

    def status(self, index: int, status: str | None) -> None:
        return None

    def finished(
        self, index: int, run: AgentRun | None, error: Exception | None, run_id: int | None
    ) -> None:
        return None

    async def handing_out(self, index: int) -> None:
        return None

    def due_in(self) -> float:
        return float("inf")

    async def commit_due(self) -> None:
        return None

    async def close(self) -> None:
        return None


class BatchJournal(NoJournal):
    """A journal file as the fan-out sees it: what to replay, await, reconcile or start;
    the key of each create and the writes around it; commits when they are due."""

    def __init__(self, path: str, caller: Caller) -> None:
        self._path = path
        self._caller = caller
        self._file: Journal | None = None
        self._keys: dict[int, Key] = {}  # keys handed out or reserved, create not answered
        self._reserved: set[int] = set()  # inputs with a key no create was given yet
        self._fresh: deque[int] = deque()  # inputs with no key yet, in order
        self._marks: dict[int, int] = {}  # input -> mark of its staged outcome
        self._key_marks: dict[int, int] = {}  # input -> mark of its staged key

    @property
    def _journal(self) -> Journal:
        assert self._file is not None, "the journal is not open"
        return self._file

    async def open(self, inputs: Sequence[Mapping[str, Any]], group_id: str) -> Plan:
        journal = await Journal.open(self._path, inputs, group_id, self._caller)
        self._file = journal
        replays: list[Replay] = []
        in_flight: list[tuple[int, int, str | None]] = []
        reconcile = 0
        try:
            for entry in journal.entries:
                if entry.outcome is not None:
                    run, error = decode_outcome(entry.outcome)
                    replays.append(Replay(entry.index, run, error, entry.run_id))
                elif entry.run_id is not None:
                    in_flight.append((entry.index, entry.run_id, entry.status))
                elif entry.key is None:
                    self._fresh.append(entry.index)
                elif entry.sent:  # maybe sent: look it up by key first
                    sent_at = entry.keyed_at or datetime.datetime.now(datetime.timezone.utc)
                    self._keys[entry.index] = Key(entry.key, sent_at)
                    reconcile += 1
                else:  # keyed, and surely never sent: start it at once, with its key
                    self._keys[entry.index] = Key(entry.key)
                    self._reserved.add(entry.index)
        except (KeyError, TypeError, ValueError) as exc:
            await journal.aclose()
            raise _errors.JournalError(
                f"journal {journal.path}: an outcome cannot be read back ({exc})",
                path=journal.path,
            ) from None
        resumed = None
        if not journal.fresh:
            to_start = len(journal.entries) - len(replays) - len(in_flight) - reconcile
            resumed = ResumeCounts(len(replays), len(in_flight), to_start, reconcile)
        if journal.took_over:
            logger.info("journal %s: resuming after %s", journal.path, journal.took_over)
        return Plan(journal.group_id, replays, in_flight, resumed)

    def key_for(self, index: int) -> Key:
        """The key of input `index`'s create: its earlier one, or a new one staged now
        with the keys of the next fresh inputs (made durable by `sending`)."""
        key = self._keys.get(index)
        if key is not None:
            return key
        now = datetime.datetime.now(datetime.timezone.utc)
        journal = self._journal
        batch = [index]
        with contextlib.suppress(ValueError):
            self._fresh.remove(index)
        while self._fresh and len(batch) < KEYS_PER_COMMIT:
            batch.append(self._fresh.popleft())
        for i in batch:
            self._keys[i] = Key(uuid.uuid4().hex)
            journal.stage_key(i, self._keys[i].value, now)
            self._reserved.add(i)
        for i in batch:
            self._key_marks[i] = journal.staged
        return self._keys[index]

    async def sending(self, index: int) -> None:
        """Its POST is about to go out: its key on disk first (fsynced, one commit per
        batch of keys), then its sent mark (`Journal.mark_sent`: no fsync, no wait)."""
        self._reserved.discard(index)
        journal = self._journal
        await journal.flush(self._key_marks.pop(index, 0))
        journal.mark_sent(index)

    def not_sent(self, index: int) -> None:
        """Its create sent nothing after all (no rate-limit token in time): it waits its
        turn again with the same key, released at close if it never goes."""
        self._journal.mark_sent(index, sent=False)
        self._reserved.add(index)

    def created(self, index: int, run_id: int, status: str | None) -> None:
        self._keys.pop(index, None)
        self._journal.stage_created(index, run_id, status)

    def status(self, index: int, status: str | None) -> None:
        self._journal.stage_status(index, status)

    def finished(
        self, index: int, run: AgentRun | None, error: Exception | None, run_id: int | None
    ) -> None:
        self._keys.pop(index, None)
        if settles(error):
            self._journal.stage_outcome(index, run, error, run_id)
            self._marks[index] = self._journal.staged

    async def handing_out(self, index: int) -> None:
        """Commit the outcome of input `index` (and all staged with it) before it is
        handed out."""
        mark = self._marks.pop(index, None)
        if mark is not None:
            await self._journal.flush(mark)

    def due_in(self) -> float:
        """Seconds until the run ids and statuses staged should be committed."""
        journal = self._file
        if journal is None or not journal.unflushed:
            return float("inf")
        return max(0.0, LAG - journal.unflushed_for())

    async def commit_due(self) -> None:
        """Commit the run ids and statuses staged meanwhile, once due (not fsynced: should
        a power cut lose them, a resume finds the runs by their keys)."""
        journal = self._file
        if journal is not None and journal.unflushed and journal.unflushed_for() >= LAG:
            await journal.flush()

    async def close(self) -> None:
        """Release the keys no create was given (nothing was sent), commit, close."""
        journal = self._file
        if journal is None:
            return
        for index in self._reserved:
            journal.stage_release(index)
        self._reserved.clear()
        with anyio.CancelScope(shield=True):
            await journal.aclose()


def open_journal(path: str | os.PathLike[str] | None, caller: Caller) -> NoJournal:
    """The fan-out's journal: a file at `path`, or none."""
    return NoJournal() if path is None else BatchJournal(check_path(path), caller)
