"""The poller's `Subscriber`: how one parked waiter sleeps and is woken (both backends).

Under asyncio it sleeps on a bare future, elsewhere on an `anyio.Event`; the semantics
are the same: a wake before the sleep is kept, a wake during it ends it, a cancelled
sleep leaves nothing behind, and a wait without a timeout holds no cancel scope.
"""

from __future__ import annotations

import anyio
import pytest

from codegen_async._polling import Subscriber

pytestmark = pytest.mark.anyio


async def test_a_wake_before_the_sleep_is_kept_and_then_cleared() -> None:
    sub = Subscriber()
    sub.wake()
    assert sub.woken
    with anyio.fail_after(5):
        await sub.sleep()  # returns at once: it was woken already
    assert not sub.woken


async def test_a_wake_during_the_sleep_ends_it() -> None:
    sub = Subscriber()
    woke: list[bool] = []

    async def sleeper() -> None:
        await sub.sleep()
        woke.append(True)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(sleeper)
            await anyio.wait_all_tasks_blocked()
            assert woke == []
            sub.wake()
    assert woke == [True]
    assert not sub.woken


async def test_a_cancelled_sleep_leaves_no_waker_and_a_later_wake_is_kept() -> None:
    sub = Subscriber()
    with anyio.move_on_after(0.01) as scope:
        await sub.sleep()
    assert scope.cancelled_caught
    assert sub._waker is None
    sub.wake()  # nobody sleeps: only the flag
    assert sub.woken
    with anyio.fail_after(5):
        await sub.sleep()


async def test_many_sleepers_each_woken_alone() -> None:
    subs = [Subscriber() for _ in range(50)]
    woken: list[int] = []

    async def sleeper(i: int) -> None:
        await subs[i].sleep()
        woken.append(i)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            for i in range(len(subs)):
                tg.start_soon(sleeper, i)
            await anyio.wait_all_tasks_blocked()
            for i in (7, 3, 41):
                subs[i].wake()
                await anyio.wait_all_tasks_blocked()
            assert woken == [7, 3, 41]
            tg.cancel_scope.cancel()
