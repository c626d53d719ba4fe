"""Writes behind: key-value puts collected in memory and written to the store in batches
(`Store.kv_put_many`), off the request's path: the response cache's shared level.

`put` only queues the row (no I/O, no await): a timer on the event loop writes what is
pending `window` seconds after the first queued row, or at once when `max_rows` are
queued, in one `write(rows, now)` (a backend's batched put). One write at a time per
event loop, in queue order, so a later put of a key lands last (a queued key is replaced
in place). `flush` writes what is pending now, and `aclose` at shutdown (the cache's
`aclose`, before the store is closed); on AWS Lambda the handler flushes at the end of
every invocation (a frozen instance runs no timer and may never thaw).

What this costs: a row reaches the store up to `window` seconds (plus the write) after
`put`, so other processes on the store see it that much later. A write that fails keeps
its rows for the next try (`retry` seconds later), and `put` says so (False) until a
write succeeds. Pending rows are bounded in bytes (`max_bytes`): beyond, `put` drops the
row and raises `StoreUnavailable` (the caller logs it once per outage); it never waits.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from app.store import Row, StoreUnavailable

__all__ = ["MAX_BYTES", "MAX_ROWS", "WINDOW", "WriteBehind"]

log = logging.getLogger("app.stores.behind")

WINDOW = 0.025
"""Seconds from a row's arrival to its batch's write (other processes see it that late)."""
MAX_ROWS = 256
"""Rows that start a write at once (SQLite commits them in transactions of at most 128)."""
MAX_BYTES = 8 * 1024 * 1024
RETRY = 1.0  # seconds between writes while the store fails


class WriteBehind:
    """Pending puts of one store, written by `write(rows, now)`, which raises
    `StoreUnavailable` when it could not (see the module docstring)."""

    def __init__(
        self,
        write: Callable[[list[Row], float], Awaitable[None]],
        name: str,
        *,
        window: float | None = None,
        max_rows: int | None = None,
        max_bytes: int | None = None,
        retry: float | None = None,
    ) -> None:
        self._write = write
        self.name = name
        # The module's values when not given, read now (tests set them).
        self.window = WINDOW if window is None else window
        self.max_rows = MAX_ROWS if max_rows is None else max_rows
        self.max_bytes = MAX_BYTES if max_bytes is None else max_bytes
        self.retry = RETRY if retry is None else retry
        self._pending: dict[str, Row] = {}
        self._bytes = 0
        self._now = 0.0
        self._failing = False
        # The pending write's timer (a plain Handle when uvloop schedules a delay of 0), and
        # when it is due, in its loop's time.
        self._due: asyncio.Handle | None = None
        self._due_at = 0.0
        self._due_loop: asyncio.AbstractEventLoop | None = None
        self._writing: asyncio.Future[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def pending(self) -> int:
        """How many rows wait to be written."""
        return len(self._pending)

    def put(self, key: str, value: bytes, expires: float, now: float) -> bool:
        """Queue one row (it replaces a queued row of the same key). True when the store's
        last write worked, False while it fails (the row is queued all the same). Raises
        `StoreUnavailable` when the pending rows would exceed `max_bytes`: this one is
        dropped."""
        old = self._pending.get(key)
        held = self._bytes - (0 if old is None else len(old[0]) + len(old[1]))
        size = len(key) + len(value)
        if held + size > self.max_bytes:
            raise StoreUnavailable(
                f"{self.name}: {len(self._pending)} writes wait for the store, no room for more"
            )
        self._pending[key] = (key, value, expires)
        self._bytes = held + size
        self._now = max(self._now, now)
        if self._failing:  # the timer retries it, no sooner
            self._schedule(self.retry)
        else:
            self._schedule(0.0 if len(self._pending) >= self.max_rows else self.window)
        return not self._failing

    async def flush(self) -> bool:
        """Write everything pending now; True when all of it was written. What a failed (or
        cancelled) write did not write stays pending."""
        while self._pending:
            if not await self._write_pending():
                return False
        return True

    async def _write_pending(self) -> bool:
        """One write of the rows pending once the write under way (if any) has ended; True
        when it worked. Rows put meanwhile wait for the next write: the timer's or a flush's."""
        loop = asyncio.get_running_loop()
        while (writing := self._writing) is not None and not writing.done():
            if writing.get_loop() is not loop:
                break
            await asyncio.shield(writing)  # one write at a time: later puts land last
        if self._pending:
            rows, now = list(self._pending.values()), self._now
            self._pending, self._bytes = {}, 0
            self._writing = done = loop.create_future()
            try:
                await self._write(rows, now)
            except Exception:  # StoreUnavailable, or a bug: either way, keep the rows
                self._failing = True
                self._requeue(rows)
                return False
            except BaseException:
                self._requeue(rows)
                raise
            finally:
                done.set_result(None)
            self._failing = False
        return True

    async def aclose(self) -> bool:
        """Stop the timer and write what is pending (True when all of it was); logged
        when the store could not take it."""
        if self._due is not None:
            self._due.cancel()
            self._due = None
        if await self.flush():
            return True
        log.warning(
            "response cache: writes not stored, the store is unreachable at shutdown",
            extra={"fields": {"event": "cache_writes_not_stored", "pending": self.pending}},
        )
        return False

    def _requeue(self, rows: list[Row]) -> None:
        """Put a failed batch back in front of what was queued since (newer rows of a key
        win), as far as `max_bytes` allows."""
        newer, self._pending, self._bytes = self._pending, {}, 0
        for row in [*rows, *newer.values()]:
            size = len(row[0]) + len(row[1])
            old = self._pending.pop(row[0], None)
            if old is not None:
                self._bytes -= len(old[0]) + len(old[1])
            if self._bytes + size <= self.max_bytes:
                self._pending[row[0]] = row
                self._bytes += size

    def _schedule(self, delay: float) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a synchronous caller): `flush` writes it
            return
        due = self._due
        if due is not None and self._due_loop is loop and not due.cancelled():
            if delay > 0 or self._due_at <= loop.time():
                return  # a write is due soon enough
            due.cancel()
        self._due_at = loop.time() + delay
        self._due, self._due_loop = loop.call_later(delay, self._start), loop

    def _start(self) -> None:
        self._due = None
        task = asyncio.get_running_loop().create_task(self._drain())
        self._tasks.add(task)  # a reference until it is done (the loop keeps only weak ones)
        task.add_done_callback(self._tasks.discard)

    async def _drain(self) -> None:
        # One batch, not a flush: rows put during this write have their own timer. Writing
        # them as soon as it ends would keep the store busy with small batches (measured on
        # SQLite at ~2,400 misses a second: 12 rows a batch, 37 us of CPU a row).
        if not await self._write_pending() and self._pending:
            self._schedule(self.retry)
