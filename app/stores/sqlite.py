"""The embedded store: one SQLite file, safe for several workers on one host.

- WAL (readers never wait for the writer), `synchronous=NORMAL` (durable against a crash
  of the process; the last commits may be lost on power loss), `busy_timeout` so writers
  of other processes queue instead of failing.
- A new file gets 8 KiB pages (`PAGE_SIZE`): chosen when the response cache stored its
  answers whole (a search answer ~10 KB), which then spanned fewer pages, so a batch was
  fewer WAL frames to write and to checkpoint (~21 -> ~15 us of CPU a cached answer).
  Answers are now stored LZ4-compressed (~2 KB, app/cache.py), and measured alone 4 KiB
  pages would write one ~7% cheaper (18.3 against 19.7 us a row in and out); larger
  answers (a podcast with its episodes) still span fewer 8 KiB pages. A file keeps the
  page size it was created with.
- `admit` (one request, or a lease of several) is one `BEGIN IMMEDIATE` transaction (read
  rate state, daily count and monthly tokens, then write): IMMEDIATE takes the write lock
  first, so concurrent processes serialise instead of failing with "database is locked"
  on a read-to-write upgrade.
  Every other write is a single autocommit statement.
- Writes and most reads run on the store's own worker thread, which owns the writing
  connection: one thread hop per operation, never the event loop. The response cache's
  hot operations are cheaper without the hop (measured: a hop costs ~30 us of CPU, a read
  ~4 us), and run on the event loop's own connection, which never waits (a busy file or a
  failure falls back to the worker):
  - `kv_get` reads there (WAL readers do not block on the writer);
  - `kv_put_many` (the cache's batches, written behind) commits there, in transactions
    of at most `_HERE_MAX_ROWS` rows and `_HERE_MAX_BYTES` (the loop held for ~1-2 ms
    for 70 uncompressed answers of 10 KB, and yields between them), when it can take the
    write lock at once. On the worker the same batch cost ~30-40 us of CPU more per row on
    a single core, and fell behind under load: a thread that needs the GIL back from a busy
    loop waits for the switch interval (5 ms) each time (a cache miss at 16 connections,
    bench/throughput.py's `distinct`: 342-366 -> 321-360 us across runs). That
    connection never checkpoints (a checkpoint copies the WAL into the file and syncs it:
    milliseconds); the worker does, after every `_CHECKPOINT_BYTES` written there. Each
    transaction also deletes as many expired rows at most as it stores, so the table
    keeps pace with what expires in bounded steps.
  - concurrent `kv_put`s are committed together, in one transaction per turn of the worker
    (group commit: each caller still returns only once its write is committed; 16 puts
    cost ~11 us each instead of ~29).
- The clock is the caller's `now` (all writers share one host, so they agree).
- The schema is created on first use and versioned with `PRAGMA user_version`.
- Key-value entries carry their expiry (`expires`, the caller's clock); reads skip expired
  ones, the cache's batches delete some as they go (above), and every `_SWEEP_EVERY`th
  other write of a process deletes all of them.
- WAL needs shared memory: the file must be on a local disk, not NFS/EFS, and not on
  Lambda (its /tmp is per instance).
"""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from app.store import (
    Decision,
    KeyRecord,
    Limits,
    Row,
    StoreUnavailable,
    Usage,
    UsageDay,
    check_kv,
)
from app.stores import limiter

__all__ = ["PAGE_SIZE", "SCHEMA_VERSION", "SqliteStore"]

T = TypeVar("T")

SCHEMA_VERSION = 2  # 2: the kv table (every statement is IF NOT EXISTS, so 1 migrates)
_SWEEP_EVERY = 500
PAGE_SIZE = 8192
"""Bytes a page of a new file (SQLite's default is 4096; see the module docstring)."""
# The largest transaction of a `kv_put_many` batch (see the module docstring): the event
# loop holds for a few milliseconds at most.
_HERE_MAX_ROWS = 128
_HERE_MAX_BYTES = 2 * 1024 * 1024
# Seconds between tries of a batch while another writer holds the file: a thread waiting
# for it (SQLite's own busy wait, on the worker) would need the GIL back from a busy loop
# after each statement, every time waiting out the switch interval.
_BUSY_PAUSES = (0.001, 0.002, 0.005, 0.01, 0.02, 0.025)  # then the last, again


class _Busy:
    """`_write_here`'s answer when another writer holds the file."""


_BUSY = _Busy()
# Deleted content is zeroed where that costs no extra write, whatever SQLite's build does
# by default (upstream: never; Debian's: always): in the b-tree pages, which hold every key
# record, grant and small value. The overflow pages a large value (a cached answer over a
# page, even compressed) frees keep their bytes until reused; zeroing them too cost a write
# per page: deleting uncompressed ~10 KB answers alone, ~26 us a row against ~14 (batches
# of 70; 22 against 7 by 5,000).
_SECURE_DELETE = "PRAGMA secure_delete=FAST"
_CHECKPOINT_BYTES = 4 * 1024 * 1024
"""Bytes the event loop's connection writes before the worker checkpoints the WAL (about
SQLite's own 1,000 pages, once the index pages are counted)."""
_SCHEMA = """
CREATE TABLE IF NOT EXISTS keys (
    key_id TEXT PRIMARY KEY,
    digest TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    prefix TEXT NOT NULL,
    last4 TEXT NOT NULL,
    created REAL NOT NULL,
    scopes TEXT NOT NULL,
    models TEXT NOT NULL,
    rpm INTEGER,
    daily_requests INTEGER,
    monthly_tokens INTEGER,
    expires REAL,
    revoked REAL,
    last_used REAL
);
CREATE TABLE IF NOT EXISTS rate (subject TEXT PRIMARY KEY, tat INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS usage (
    subject TEXT NOT NULL,
    day TEXT NOT NULL,
    requests INTEGER NOT NULL DEFAULT 0,
    refused INTEGER NOT NULL DEFAULT 0,
    upstream_errors INTEGER NOT NULL DEFAULT 0,
    prompt_tokens INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    cache_saved INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (subject, day)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS monthly (
    subject TEXT NOT NULL,
    month TEXT NOT NULL,
    tokens INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (subject, month)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value BLOB NOT NULL, expires REAL NOT NULL);
CREATE INDEX IF NOT EXISTS kv_expires ON kv (expires);
"""
_KEY_COLUMNS = (
    "key_id, digest, name, prefix, last4, created, scopes, models, rpm, daily_requests, "
    "monthly_tokens, expires, revoked, last_used"
)
_USAGE_FIELDS = (
    "requests",
    "refused",
    "upstream_errors",
    "prompt_tokens",
    "completion_tokens",
    "cache_saved",
)


class SqliteStore:
    """The `Store` on one SQLite file (created, with its folder, on first use)."""

    name = "sqlite"

    def __init__(self, path: str | Path, *, busy_timeout: float = 5.0) -> None:
        self.path = Path(path)
        self.busy_timeout = busy_timeout
        self._db: sqlite3.Connection | None = None
        self._thread: ThreadPoolExecutor | None = None
        self._kv_writes = 0
        self._here: sqlite3.Connection | None = None  # the event loop's (see the docstring)
        # Held while that connection is in use: event loops of several threads may share the
        # store (tests, an application embedding the service), and a thread using it while
        # another runs a statement on it or closes it crashes the process (a segmentation
        # fault in sqlite3). Never waited for on a loop: one that finds it taken reads
        # through the worker, or tries its write again after a pause.
        self._here_lock = threading.Lock()
        self._unchecked = 0  # bytes written on it since the worker's last checkpoint
        self._puts = _PendingPuts()

    # -- plumbing -------------------------------------------------------------------------

    def _worker(self) -> ThreadPoolExecutor:
        # Started on first use, and again after `aclose`: an app whose lifespan ended (a
        # test client, a reused handler) keeps working rather than failing on a dead thread.
        if self._thread is None:
            self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-store")
        return self._thread

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._worker(), self._call, work)

    def _call(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """On the worker thread: (re)connect when needed, run, map failures."""
        try:
            return work(self._connection())
        except (sqlite3.Error, OSError) as exc:
            # Reconnect on the next call: the file may come back (or be fixed) meanwhile.
            self._close()
            raise StoreUnavailable(f"sqlite: {self.path}: {exc}") from None

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(
                self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
            )
            try:
                db.execute(f"PRAGMA page_size={PAGE_SIZE}")  # a new file's; else a no-op
                _use_wal(db, self.busy_timeout)
                db.execute("PRAGMA synchronous=NORMAL")
                db.execute(_SECURE_DELETE)
                _migrate(db)
            except BaseException:
                db.close()
                raise
            self._db = db
        return self._db

    def _close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def _connection_here(self) -> sqlite3.Connection | None:
        """The event loop's connection, which never waits (busy timeout 0) and never
        checkpoints; None before the worker has connected (and migrated the schema)."""
        if self._db is None:
            return None
        if self._here is None:
            here = sqlite3.connect(
                self.path, timeout=0, isolation_level=None, check_same_thread=False
            )
            try:
                here.execute("PRAGMA wal_autocheckpoint=0")
                here.execute(_SECURE_DELETE)
            except BaseException:
                here.close()
                raise
            self._here = here
        return self._here

    def _read_here(self, sql: str, args: tuple[Any, ...]) -> list[Any] | None:
        """Run a read on the event loop's connection, without waiting: None when it cannot
        (no schema yet, the file busy or failing, another thread's loop using the
        connection), and the caller goes through the worker."""
        if not self._here_lock.acquire(blocking=False):
            return None
        try:
            here = self._connection_here()
            return None if here is None else here.execute(sql, args).fetchall()
        except (sqlite3.Error, OSError):
            self._close_here()
            return None
        finally:
            self._here_lock.release()

    def _write_here(self, rows: Sequence[Row], now: float) -> bool | _Busy:
        """`_put_rows` on the event loop's connection, without waiting: True when written;
        `_BUSY` (nothing written) when another writer holds the file (the worker, another
        process) or another thread's loop uses the connection; False when it cannot (no
        schema yet, the file failing), nothing written, and the caller goes through the
        worker."""
        if not self._here_lock.acquire(blocking=False):
            return _BUSY
        try:
            return self._write_here_locked(rows, now)
        finally:
            self._here_lock.release()

    def _write_here_locked(self, rows: Sequence[Row], now: float) -> bool | _Busy:
        try:
            here = self._connection_here()
            if here is None:
                return False
            here.execute("BEGIN IMMEDIATE")  # busy: raises at once (timeout 0)
        except (sqlite3.Error, OSError) as exc:
            if _busy(exc):
                return _BUSY
            self._close_here()
            return False
        try:
            _put_rows(here, rows, now)
            here.execute("COMMIT")
        except (sqlite3.Error, OSError):
            self._close_here()  # closing rolls back what the transaction wrote
            return False
        except BaseException:
            # Anything else (a value SQLite cannot bind, e.g. an integer past 64 bits) must
            # not leave the transaction open: it would hold the file's write lock, keep
            # every other writer waiting, and show its rows to reads on this connection.
            self._close_here()
            raise
        self._unchecked += sum(len(value) for _, value, _ in rows)
        return True

    async def _write_here_when_free(self, rows: Sequence[Row], now: float) -> bool:
        """`_write_here` tried again after pauses while the file is busy (the loop goes on
        meanwhile); `StoreUnavailable` once the busy timeout has passed."""
        deadline = time.monotonic() + self.busy_timeout
        for pause in itertools.chain(_BUSY_PAUSES, itertools.repeat(_BUSY_PAUSES[-1])):
            if time.monotonic() + pause > deadline:
                break
            await asyncio.sleep(pause)
            written = self._write_here(rows, now)
            if isinstance(written, bool):
                return written
        raise StoreUnavailable(f"sqlite: {self.path}: database is locked")

    def _close_here(self) -> None:
        if self._here is not None:
            self._here.close()
            self._here = None

    # -- keys -----------------------------------------------------------------------------

    async def put_key(self, record: KeyRecord) -> None:
        row = _key_row(record)
        sql = f"INSERT INTO keys ({_KEY_COLUMNS}) VALUES ({', '.join('?' * len(row))})"  # noqa: S608
        await self._run(lambda db: db.execute(sql, row))

    async def key_by_digest(self, digest: str) -> KeyRecord | None:
        return await self._one("digest", digest)

    async def key_by_id(self, key_id: str) -> KeyRecord | None:
        return await self._one("key_id", key_id)

    async def _one(self, column: str, value: str) -> KeyRecord | None:
        sql = f"SELECT {_KEY_COLUMNS} FROM keys WHERE {column} = ?"  # noqa: S608
        rows = await self._run(lambda db: db.execute(sql, (value,)).fetchall())
        return _key_record(rows[0]) if rows else None

    async def list_keys(self) -> Sequence[KeyRecord]:
        sql = f"SELECT {_KEY_COLUMNS} FROM keys ORDER BY created, key_id"  # noqa: S608
        rows = await self._run(lambda db: db.execute(sql).fetchall())
        return [_key_record(row) for row in rows]

    async def revoke(self, key_id: str, now: float) -> bool:
        sql = "UPDATE keys SET revoked = coalesce(revoked, ?) WHERE key_id = ?"
        cursor = await self._run(lambda db: db.execute(sql, (now, key_id)))
        return cursor.rowcount > 0

    async def touch(self, key_id: str, now: float) -> None:
        sql = "UPDATE keys SET last_used = max(coalesce(last_used, 0), ?) WHERE key_id = ?"
        await self._run(lambda db: db.execute(sql, (now, key_id)))

    # -- limits and usage -----------------------------------------------------------------

    async def admit(self, subject: str, limits: Limits, now: float, count: int = 1) -> Decision:
        return await self._run(lambda db: _admit(db, subject, limits, now, count))

    async def record(self, subject: str, now: float, usage: Usage) -> None:
        values = [getattr(usage, field) for field in _USAGE_FIELDS]
        tokens = usage.prompt_tokens + usage.completion_tokens
        day, month = limiter.day_of(now), limiter.month_of(now)
        add = ", ".join(f"{f} = {f} + excluded.{f}" for f in _USAGE_FIELDS)
        usage_sql = (
            f"INSERT INTO usage (subject, day, {', '.join(_USAGE_FIELDS)}) "  # noqa: S608
            f"VALUES (?, ?, {', '.join('?' * len(values))}) "
            f"ON CONFLICT (subject, day) DO UPDATE SET {add}"
        )
        month_sql = (
            "INSERT INTO monthly (subject, month, tokens) VALUES (?, ?, ?) "
            "ON CONFLICT (subject, month) DO UPDATE SET tokens = tokens + excluded.tokens"
        )

        def write(db: sqlite3.Connection) -> None:
            with _immediate(db):
                db.execute(usage_sql, (subject, day, *values))
                if tokens:
                    db.execute(month_sql, (subject, month, tokens))

        await self._run(write)

    async def usage(self, subject: str | None, since: float) -> Sequence[UsageDay]:
        columns = ", ".join(_USAGE_FIELDS)
        sql = f"SELECT subject, day, {columns} FROM usage WHERE day >= ?"  # noqa: S608
        args: tuple[str, ...] = (limiter.day_of(since),)
        if subject is not None:
            sql, args = sql + " AND subject = ?", (*args, subject)
        rows = await self._run(
            lambda db: db.execute(sql + " ORDER BY subject, day", args).fetchall()
        )
        return [UsageDay(*row) for row in rows]

    # -- key-value ------------------------------------------------------------------------

    async def kv_put(self, key: str, value: bytes, ttl: float, now: float) -> None:
        check_kv(key, value)
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        if self._puts.add((key, value, now + ttl), done, now):
            loop.run_in_executor(self._worker(), self._write_puts)
        await done

    def _write_puts(self) -> None:
        """On the worker thread: commit every put waiting now, in one transaction, and tell
        each waiter (on its own event loop) how it went."""
        rows, waiters, now = self._puts.take()
        sweep = self._sweep_due(len(rows))

        def write(db: sqlite3.Connection) -> None:
            with _immediate(db):
                if sweep:
                    db.execute("DELETE FROM kv WHERE expires <= ?", (now,))
                db.executemany(_KV_UPSERT, rows)

        error: StoreUnavailable | None = None
        try:
            self._call(write)
        except StoreUnavailable as exc:
            error = exc
        except Exception as exc:  # never leave a waiter waiting
            error = StoreUnavailable(f"sqlite: {self.path}: {type(exc).__name__}")
        for waiter in waiters:
            waiter.get_loop().call_soon_threadsafe(_settle, waiter, error)

    async def kv_put_many(self, rows: Sequence[Row], now: float) -> None:
        """The upserts, in transactions of at most `_HERE_MAX_ROWS` rows and
        `_HERE_MAX_BYTES` (the loop yields between them), each also deleting at most as
        many expired rows as it stores, on the event loop's connection (see the module
        docstring). While another writer holds the file, it tries again after a pause
        (never holding the loop), up to the busy timeout; where the loop's connection
        cannot be had (no schema yet, a failure), the worker writes."""
        for key, value, _ in rows:
            check_kv(key, value)
        for number, chunk in enumerate(_chunks(rows)):
            if number:
                await asyncio.sleep(0)  # requests go on between transactions
            written = self._write_here(chunk, now)
            if not isinstance(written, bool):
                written = await self._write_here_when_free(chunk, now)
            if not written:
                await self._run(partial(_put_rows_at_once, rows=chunk, now=now))
            elif self._unchecked >= _CHECKPOINT_BYTES:
                self._unchecked = 0
                await self._run(_checkpoint)

    async def kv_add(self, key: str, value: bytes, ttl: float, now: float) -> bool:
        check_kv(key, value)
        # One statement: the upsert replaces only an expired row, so rowcount says who won.
        sql = (
            "INSERT INTO kv (key, value, expires) VALUES (?, ?, ?) ON CONFLICT (key)"
            " DO UPDATE SET value = excluded.value, expires = excluded.expires"
            " WHERE kv.expires <= ?"
        )
        stored = await self._kv_write(
            lambda db: db.execute(sql, (key, value, now + ttl, now)).rowcount, now
        )
        return stored > 0

    async def kv_get(self, key: str, now: float) -> bytes | None:
        check_kv(key)
        sql = "SELECT value FROM kv WHERE key = ? AND expires > ?"
        rows = self._read_here(sql, (key, now))
        if rows is None:
            rows = await self._run(lambda db: db.execute(sql, (key, now)).fetchall())
        return bytes(rows[0][0]) if rows else None

    async def kv_take(self, key: str, now: float) -> bytes | None:
        check_kv(key)
        sql = "DELETE FROM kv WHERE key = ? RETURNING value, expires"
        rows = await self._run(lambda db: db.execute(sql, (key,)).fetchall())
        return bytes(rows[0][0]) if rows and rows[0][1] > now else None

    async def kv_delete(self, key: str) -> None:
        check_kv(key)
        await self._run(lambda db: db.execute("DELETE FROM kv WHERE key = ?", (key,)))

    async def _kv_write(self, write: Callable[[sqlite3.Connection], int], now: float) -> int:
        def write_and_sweep(db: sqlite3.Connection) -> int:
            if self._sweep_due(1):
                db.execute("DELETE FROM kv WHERE expires <= ?", (now,))
            return write(db)

        return await self._run(write_and_sweep)

    def _sweep_due(self, writes: int) -> bool:
        """On the worker thread (the only one counting): True when these `writes` key-value
        writes reach the next multiple of `_SWEEP_EVERY`, i.e. expired rows are due out."""
        before, self._kv_writes = self._kv_writes, self._kv_writes + writes
        return before // _SWEEP_EVERY != self._kv_writes // _SWEEP_EVERY

    async def aclose(self) -> None:
        with self._here_lock:  # not while another thread's loop uses it
            self._close_here()  # not the last connection: the worker's checkpoints on close
        thread, self._thread = self._thread, None
        if thread is not None:
            await asyncio.get_running_loop().run_in_executor(thread, self._close)
            thread.shutdown(wait=True)


_KV_SWEEP_SOME = (
    "DELETE FROM kv WHERE rowid IN"
    " (SELECT rowid FROM kv WHERE expires <= ? ORDER BY expires LIMIT ?)"
)
_KV_UPSERT = (
    "INSERT INTO kv (key, value, expires) VALUES (?, ?, ?) ON CONFLICT (key)"
    " DO UPDATE SET value = excluded.value, expires = excluded.expires"
)


class _PendingPuts:
    """`kv_put`s waiting for the worker, in arrival order (a later put of a key wins, as
    it would one at a time); shared between event loops and the worker, hence the lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: list[tuple[str, bytes, float]] = []
        self._waiters: list[asyncio.Future[None]] = []
        self._now = 0.0

    def add(self, row: tuple[str, bytes, float], waiter: asyncio.Future[None], now: float) -> bool:
        """Queue one put; True when the worker must be asked to write (none is due yet)."""
        with self._lock:
            self._rows.append(row)
            self._waiters.append(waiter)
            self._now = max(self._now, now)
            return len(self._rows) == 1

    def take(self) -> tuple[list[tuple[str, bytes, float]], list[asyncio.Future[None]], float]:
        with self._lock:
            taken = self._rows, self._waiters, self._now
            self._rows, self._waiters = [], []
            return taken


def _settle(waiter: asyncio.Future[None], error: StoreUnavailable | None) -> None:
    if waiter.done():  # its request went away meanwhile
        return
    if error is None:
        waiter.set_result(None)
    else:
        waiter.set_exception(StoreUnavailable(str(error)))


def _admit(
    db: sqlite3.Connection, subject: str, limits: Limits, now: float, count: int
) -> Decision:
    day, month, now_us = limiter.day_of(now), limiter.month_of(now), limiter.us(now)
    with _immediate(db):
        tat, requests, tokens = db.execute(
            "SELECT (SELECT tat FROM rate WHERE subject = ?),"
            " (SELECT requests FROM usage WHERE subject = ? AND day = ?),"
            " (SELECT tokens FROM monthly WHERE subject = ? AND month = ?)",
            (subject, subject, day, subject, month),
        ).fetchone()
        requests, tokens = requests or 0, tokens or 0
        refusal = limiter.quota_refusal(limits, now, requests, tokens)
        if refusal is not None:
            return refusal
        if limits.daily_requests is not None:
            count = min(count, limits.daily_requests - requests)
        step = limiter.gcra(tat, now_us, limits.rpm, count=count)
        if not step.allowed:
            return limiter.rate_refusal(limits, step, requests, tokens)
        db.execute(
            "INSERT INTO rate (subject, tat) VALUES (?, ?)"
            " ON CONFLICT (subject) DO UPDATE SET tat = excluded.tat",
            (subject, step.tat),
        )
        db.execute(
            "INSERT INTO usage (subject, day, requests) VALUES (?, ?, ?)"
            " ON CONFLICT (subject, day) DO UPDATE SET requests = requests + excluded.requests",
            (subject, day, step.granted),
        )
    return limiter.allowed(limits, step, requests + step.granted, tokens)


def _chunks(rows: Sequence[Row]) -> list[Sequence[Row]]:
    """`rows` cut into runs of at most `_HERE_MAX_ROWS` rows and `_HERE_MAX_BYTES` (a row
    larger than that alone)."""
    chunks: list[Sequence[Row]] = []
    start = size = 0
    for end, (_, value, _) in enumerate(rows):
        if end > start and (end - start >= _HERE_MAX_ROWS or size + len(value) > _HERE_MAX_BYTES):
            chunks.append(rows[start:end])
            start, size = end, 0
        size += len(value)
    if start < len(rows):
        chunks.append(rows[start:])
    return chunks


def _put_rows(db: sqlite3.Connection, rows: Sequence[Row], now: float) -> None:
    """In a write transaction: upsert `rows`, and delete as many expired rows at most
    (the oldest first), so the cache's table keeps pace with what expires without a
    sweep of unbounded size."""
    db.execute(_KV_SWEEP_SOME, (now, len(rows)))
    db.executemany(_KV_UPSERT, rows)


def _put_rows_at_once(db: sqlite3.Connection, rows: Sequence[Row], now: float) -> None:
    with _immediate(db):
        _put_rows(db, rows, now)


def _busy(exc: BaseException) -> bool:
    """True for SQLite's "database is locked" (any of its extended codes)."""
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(code, int) and code & 0xFF == sqlite3.SQLITE_BUSY


def _checkpoint(db: sqlite3.Connection) -> None:
    """Copy what the WAL holds into the file, as far as readers allow, never waiting for
    them (PASSIVE); the next writer then starts the WAL over."""
    db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()


class _immediate:
    """`BEGIN IMMEDIATE` … `COMMIT` (or `ROLLBACK` on an exception)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: object, *_: object) -> None:
        if kind is None:
            self.db.execute("COMMIT")
        elif self.db.in_transaction:
            self.db.execute("ROLLBACK")


def _use_wal(db: sqlite3.Connection, busy_timeout: float) -> None:
    """Switch the file to WAL (it stays so). Switching ignores the busy timeout when
    another process is creating the same new file, hence the retries."""
    deadline = time.monotonic() + busy_timeout
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _migrate(db: sqlite3.Connection) -> None:
    """Create the schema on first use; refuse a file written by a newer version."""
    (version,) = db.execute("PRAGMA user_version").fetchone()
    if version == SCHEMA_VERSION:
        return
    if version > SCHEMA_VERSION:
        raise sqlite3.DatabaseError(
            f"schema version {version} is newer than this code's {SCHEMA_VERSION}"
        )
    with _immediate(db):
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                db.execute(statement)
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def _key_row(record: KeyRecord) -> tuple[Any, ...]:
    return (
        record.key_id,
        record.digest,
        record.name,
        record.prefix,
        record.last4,
        record.created,
        ",".join(sorted(record.scopes)),
        ",".join(sorted(record.models)),
        record.rpm,
        record.daily_requests,
        record.monthly_tokens,
        record.expires,
        record.revoked,
        record.last_used,
    )


def _key_record(row: tuple[Any, ...]) -> KeyRecord:
    fields = dict(zip(_KEY_COLUMNS.replace(" ", "").split(","), row, strict=True))
    for name in ("scopes", "models"):
        fields[name] = frozenset(filter(None, fields[name].split(",")))
    return KeyRecord(**fields)
