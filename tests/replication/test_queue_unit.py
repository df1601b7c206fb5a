"""The work queue: deduplication and delayed re-adds, on trio's mock clock."""

from __future__ import annotations

import trio
import trio.testing

from couchestor.replication.queue import WorkQueue


async def test_dedup_and_fifo():
    q: WorkQueue[str] = WorkQueue()
    for key in ("a", "b", "a"):
        q.add(key)
    assert len(q) == 2
    assert [await q.get(), await q.get()] == ["a", "b"]


async def test_delayed_keys_wait_and_earliest_delay_wins(autojump_clock):
    q: WorkQueue[str] = WorkQueue()
    start = trio.current_time()
    q.add_after("slow", 10.0)
    q.add_after("fast", 2.0)
    q.add_after("slow", 5.0)
    assert await q.get() == "fast"
    assert trio.current_time() - start == 2.0
    assert await q.get() == "slow"
    assert trio.current_time() - start == 5.0


async def test_add_now_beats_a_pending_delay(autojump_clock):
    q: WorkQueue[str] = WorkQueue()
    q.add_after("k", 30.0)
    q.add("k")
    assert await q.get() == "k"
    with trio.move_on_after(60.0):
        await q.get()
        raise AssertionError("the delayed copy must have been superseded")
