"""Usage counters added up in memory and written to the store in batches.

Counting a refusal, the tokens an answer spent, an upstream error or a cache hit used to be
one store round trip each, on the request's path. Here `add` only adds to the pending
deltas of one (subject, UTC day), and a background task writes them at most every
`every` seconds: one `write` (a `Store.record`) per subject and day. `flush` writes what is
pending now; the gate calls it on shutdown and, on AWS Lambda, at the end of every
invocation (a frozen instance runs no background task and may never thaw).

What this costs: usage reaches the store up to `every` seconds late. The tokens of a caller
with a monthly token quota are written at once instead (`flush(subject)`, the gate's
`Admission.spend`), so its quota check sees them as before: overshot only by what is in
flight (and, with a lease, by what the lease's admissions spend). A write that fails
keeps its deltas for the next try; at most `max_pending` subject-days are kept meanwhile
(beyond that new ones are dropped, logged once per outage by the caller's `on_drop`).
"""

from __future__ import annotations

import asyncio
import operator
from collections.abc import Awaitable, Callable

from app.store import StoreUnavailable, Usage
from app.stores.limiter import day_of

__all__ = ["UsageBatch"]


def _sum(a: Usage, b: Usage) -> Usage:
    # The fields' values in order (a frozen dataclass keeps them in its __dict__), added
    # pairwise in C: a generator of getattr cost ~3 us, on every request that counts usage.
    return Usage(*map(operator.add, vars(a).values(), vars(b).values()))


class UsageBatch:
    """Pending usage per (subject, UTC day), written by `write(subject, now, usage)`;
    `write` raises `StoreUnavailable` when it could not (the deltas are kept)."""

    def __init__(
        self,
        write: Callable[[str, float, Usage], Awaitable[None]],
        *,
        every: float = 1.0,
        max_pending: int = 10_000,
        on_drop: Callable[[str], None] = lambda subject: None,
    ) -> None:
        self._write = write
        self.every = every
        self._max = max_pending
        self._on_drop = on_drop
        # (subject, day) -> (a `now` within that day, the summed deltas)
        self._pending: dict[tuple[str, str], tuple[float, Usage]] = {}
        self._task: asyncio.Task[None] | None = None

    def add(self, subject: str, now: float, usage: Usage) -> None:
        """Count `usage` for `subject` on the UTC day of `now` (no I/O; written within
        `every` seconds when an event loop is running, else by the next `flush`)."""
        key = (subject, day_of(now))
        held = self._pending.get(key)
        if held is None:
            if len(self._pending) >= self._max:
                self._on_drop(subject)
                return
            self._pending[key] = (now, usage)
        else:
            self._pending[key] = (held[0], _sum(held[1], usage))
        self._wake()

    @property
    def pending(self) -> int:
        """How many subject-days wait to be written."""
        return len(self._pending)

    async def flush(self, subject: str | None = None) -> bool:
        """Write everything pending now (only `subject`'s, if given); True when all of it
        was written. What a failed (or cancelled) write did not write stays pending."""
        if subject is None:
            batch, self._pending = self._pending, {}
        else:
            batch = {k: self._pending.pop(k) for k in list(self._pending) if k[0] == subject}
        items = list(batch.items())
        done = 0
        try:
            for (subject, _day), (now, usage) in items:
                await self._write(subject, now, usage)
                done += 1
        except StoreUnavailable:
            return False
        finally:
            for key, (now, usage) in items[done:]:
                held = self._pending.get(key)
                self._pending[key] = (now, usage) if held is None else (now, _sum(usage, held[1]))
        return True

    def _wake(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a synchronous caller): `flush` writes it
            return
        task = self._task
        if task is None or task.done() or task.get_loop() is not loop:
            self._task = loop.create_task(self._run())

    async def _run(self) -> None:
        while self._pending:
            await asyncio.sleep(self.every)
            await self.flush()

    async def aclose(self) -> bool:
        """Stop the background writer and write what is pending (True when all of it was)."""
        task, self._task = self._task, None
        if task is not None and not task.done() and task.get_loop() is asyncio.get_running_loop():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        return await self.flush()
