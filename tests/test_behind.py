"""The write-behind queue (app/stores/behind.py) on its own: when rows are written, and in
what batches. The store behind it is a recorder whose writes last as long as the test
says, so what is batched with what does not depend on timing."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
import uvloop

from app.store import Row
from app.stores.behind import WriteBehind


class _Recorder:
    """A store's batched put: records each batch; a write waits for `release` while
    `hold` is set."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.started = asyncio.Event()
        self.release = asyncio.Event()
        self.hold = False

    async def write(self, rows: list[Row], now: float) -> None:
        self.batches.append([key for key, _, _ in rows])
        self.started.set()
        if self.hold:
            await self.release.wait()


async def _written(store: _Recorder, batches: int) -> None:
    while len(store.batches) < batches:  # noqa: ASYNC110 (a poll: the recorder has no event)
        await asyncio.sleep(0.01)


def test_rows_put_during_a_write_wait_for_their_own_window() -> None:
    """A row put while a batch is being written is not written the moment that write ends
    (a store kept busy with tiny batches): it waits out its own window, with the rows that
    join it meanwhile."""

    async def scenario() -> tuple[list[list[str]], list[list[str]]]:
        store = _Recorder()
        behind = WriteBehind(store.write, "test", window=0.5)
        store.hold = True
        behind.put("a", b"1", 100.0, 0.0)
        await asyncio.wait_for(store.started.wait(), 1)  # the window's write of "a" runs
        behind.put("b", b"2", 100.0, 0.0)  # while it is under way
        store.release.set()
        await asyncio.sleep(0.01)  # the write of "a" has ended; b's window has not
        when_a_ended = [list(batch) for batch in store.batches]
        behind.put("c", b"3", 100.0, 0.0)  # joins b's window
        await asyncio.wait_for(_written(store, 2), 5)
        return when_a_ended, store.batches

    when_a_ended, batches = asyncio.run(scenario())
    assert when_a_ended == [["a"]]
    assert batches == [["a"], ["b", "c"]]


def test_a_flush_writes_everything_including_rows_put_during_its_writes() -> None:
    async def scenario() -> tuple[bool, list[list[str]], int]:
        store = _Recorder()
        behind = WriteBehind(store.write, "test", window=60.0)
        store.hold = True
        behind.put("a", b"1", 100.0, 0.0)
        flushing = asyncio.create_task(behind.flush())
        await asyncio.wait_for(store.started.wait(), 1)
        behind.put("b", b"2", 100.0, 0.0)
        behind.put("a", b"3", 100.0, 0.0)  # a later put of a key lands last
        store.release.set()
        done = await asyncio.wait_for(flushing, 1)
        return done, store.batches, behind.pending

    done, batches, pending = asyncio.run(scenario())
    assert done and pending == 0
    assert batches == [["a"], ["b", "a"]]


def test_max_rows_starts_a_write_at_once() -> None:
    async def scenario() -> list[list[str]]:
        store = _Recorder()
        behind = WriteBehind(store.write, "test", window=60.0, max_rows=3)
        for key in "abc":
            behind.put(key, b"v", 100.0, 0.0)
        await asyncio.wait_for(store.started.wait(), 1)
        behind.put("d", b"v", 100.0, 0.0)  # waits for its window (60 s): not written here
        await asyncio.sleep(0.05)
        return store.batches

    assert asyncio.run(scenario()) == [["a", "b", "c"]]


@pytest.mark.parametrize("run", [asyncio.run, uvloop.run], ids=["asyncio", "uvloop"])
def test_puts_past_max_rows_in_one_turn_of_the_loop_are_all_queued_and_written(
    run: Callable[[Coroutine[Any, Any, Any]], Any],
) -> None:
    """From the `max_rows`th put a write is due at once; the puts that follow in the same
    turn of the loop join it. On uvloop (the server's loop) a timer of delay 0 is a plain
    handle, which has no `when()`: those puts failed, and the cache took the store for
    down for a second."""

    async def scenario() -> tuple[list[bool], list[list[str]]]:
        store = _Recorder()
        behind = WriteBehind(store.write, "test", window=60.0, max_rows=3)
        queued = [behind.put(key, b"v", 100.0, 0.0) for key in "abcde"]
        await asyncio.wait_for(_written(store, 1), 1)
        return queued, store.batches

    queued, batches = run(scenario())
    assert queued == [True] * 5
    assert batches == [["a", "b", "c", "d", "e"]]
