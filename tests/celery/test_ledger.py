"""The exactly-once ledger (key -> reserved at, holder, run id) in both stores: SQLite
and a real `redis-server`. One table of cases, run against each; concurrent claims from
threads, each with its own connection, grant the key to exactly one holder."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from codegen_async._stores import Ledger, ledger_key, open_ledger

from .._redis import REDIS_SERVER, RedisServer

_SKIP_WITHOUT_REDIS = REDIS_SERVER is None and not os.environ.get("CI")
TTL = 3600.0


@pytest.fixture(params=["sqlite", "redis"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
        return
    if _SKIP_WITHOUT_REDIS:
        pytest.skip("redis-server is not installed")
    with RedisServer(tmp_path) as server:
        yield server.url


@pytest.fixture
def ledger(store_url: str) -> Iterator[Ledger]:
    opened = open_ledger(store_url)
    try:
        yield opened
    finally:
        opened.close()


def test_a_fresh_key_is_reserved_then_done(ledger: Ledger) -> None:
    first = ledger.claim("k", "a", 30.0, TTL)
    assert first.state == "fresh"
    assert first.reserved_at == first.first_at
    assert first.run_id is None
    assert ledger.record("k", 41) == 41
    again = ledger.claim("k", "b", 30.0, TTL)
    assert (again.state, again.run_id, again.first_at) == ("done", 41, first.first_at)
    assert ledger.record("k", 99) == 41  # the first run id recorded stays


def test_a_live_holder_makes_others_wait(ledger: Ledger) -> None:
    ledger.claim("k", "a", 30.0, TTL)
    other = ledger.claim("k", "b", 30.0, TTL)
    assert other.state == "held"
    assert 29.0 < other.wait <= 30.0


def test_a_holder_whose_lease_ran_out_leaves_an_orphan(ledger: Ledger) -> None:
    first = ledger.claim("k", "a", 0.05, TTL)
    time.sleep(0.1)
    taken = ledger.claim("k", "b", 30.0, TTL)
    assert taken.state == "orphaned"
    assert taken.reserved_at == first.reserved_at  # look up since the first reservation
    assert ledger.claim("k", "c", 30.0, TTL).state == "held"  # b holds it now


def test_release_after_a_send_orphans_and_without_one_frees(ledger: Ledger) -> None:
    ledger.claim("sent", "a", 30.0, TTL)
    ledger.release("sent", "a", sent=True)
    assert ledger.claim("sent", "b", 30.0, TTL).state == "orphaned"
    first = ledger.claim("unsent", "a", 30.0, TTL)
    ledger.release("unsent", "a", sent=False)
    again = ledger.claim("unsent", "b", 30.0, TTL)
    assert again.state == "fresh"
    assert again.first_at == first.first_at  # the first claim's time is kept
    ledger.release("unsent", "not-the-holder", sent=False)
    assert ledger.claim("unsent", "c", 30.0, TTL).state == "held"


def test_a_done_key_is_not_released(ledger: Ledger) -> None:
    ledger.claim("k", "a", 30.0, TTL)
    ledger.record("k", 5)
    ledger.release("k", "a", sent=False)
    assert ledger.claim("k", "b", 30.0, TTL).run_id == 5


def test_entries_expire_after_their_ttl(ledger: Ledger) -> None:
    ledger.claim("k", "a", 30.0, 0.05)
    ledger.record("k", 5)
    time.sleep(0.2)
    assert ledger.claim("k", "b", 30.0, TTL).state == "fresh"


def test_concurrent_claims_grant_the_key_once(store_url: str) -> None:
    states: list[str] = []
    barrier = threading.Barrier(8)

    def claim(holder: str) -> None:
        mine = open_ledger(store_url)
        try:
            barrier.wait()
            states.append(mine.claim("k", holder, 30.0, TTL).state)
        finally:
            mine.close()

    threads = [threading.Thread(target=claim, args=(f"h{i}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(states) == ["fresh"] + ["held"] * 7


def test_ledger_keys_never_hold_the_api_key() -> None:
    key = ledger_key("https://api.example", "sk-secret", "task-1")
    assert "sk-secret" not in key
    assert key.endswith(":task-1")
    assert key != ledger_key("https://api.example", "sk-other", "task-1")
