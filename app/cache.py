"""The response cache: successful upstream answers kept for a TTL the route declares, in two
levels, so that callers spend less of the upstream's quota than they would calling it directly.

    1. an in-process LRU, bounded in entries and in bytes (`MAX_ENTRIES`, `MAX_BYTES`);
    2. the store's key-value space (`STORE_URL`: SQLite, Redis or DynamoDB), shared by every
       process, host and Lambda instance on that store, written behind (app/stores/behind.py,
       `Store.kv_put_many`): a miss does not wait for the store's write, which is batched
       with others within a short window (25 ms) and written on shutdown and at the end of
       each Lambda invocation (`flush`);
    3. the upstream: concurrent misses for one key make one call per process (the others
       wait for it: request coalescing); across processes it is one call per process, and
       within the write-behind window other processes do not see the answer yet (they ask
       the upstream too).

Only what `produce` returns is cached, and it returns only successful answers: errors are
raised (`Uncacheable` carries an answer to serve without caching it). Callers choose keys
that hold everything an answer depends on (see `ResponseCache.scoped`); the cache hashes
them. A store that fails never fails a request: the cache logs the outage once, answers
from level 1 and the upstream, and tries the store again at most once a second. A miss's
`stored` means stored in this cache (level 1, the store's write queued); `detail=
store-unavailable` is added while the store is known to fail (a read or its last write
failed, or too many writes wait for it).

Level 2 holds each answer LZ4-compressed (`_pack`): a search answer of ~10 KB is ~2 KB
there, which on SQLite fits in the table's own page instead of two overflow pages (a miss's
write there cost ~33 us a row, in and out, against ~19 compressed, for ~3 us of
compressing), and on DynamoDB and Redis costs a fifth of the write units and memory.
Entry names carry the layout (`_LAYOUT`), so entries an earlier version wrote are never
read; an entry that does not unpack (corrupt, or written by someone else) is a miss. A
name is 128 bits of SHA-256, in base64url (`_name`): 28 characters where 64 hex digits made
70, so SQLite's index of the names is less than half the size, and each miss's write and
read touch fewer pages of it (measured alone on a 100,000-row file: ~25 -> ~20 us a row
written, ~4.8 -> ~4.0 us a read of an absent name).

Answers say what happened (RFC 9211 `Cache-Status`, RFC 9111 `Age`), see `Served`.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import struct
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import NamedTuple

import lz4.block
from starlette.requests import Request

from app.store import KV_MAX_BYTES, Store, StoreUnavailable
from app.stores.behind import WriteBehind

__all__ = [
    "CACHE_NAME",
    "MAX_BYTES",
    "MAX_ENTRIES",
    "ResponseCache",
    "Served",
    "Uncacheable",
    "cache_of",
]

log = logging.getLogger("app.cache")

CACHE_NAME = "keyless"
"""How `Cache-Status` names this cache."""
MAX_ENTRIES = 5_000
MAX_BYTES = 32 * 1024 * 1024
_RETRY_STORE = 1.0  # seconds between store attempts while it is down
# A stored entry: stored at, expires (epoch s), codec, the body's length, then the body
# (compressed with the codec).
_HEAD = struct.Struct(">ddBI")
_RAW, _LZ4 = 0, 1
_LAYOUT = "2"  # in every entry's name; bump it when the stored entry's layout changes
_MAX_INFLATED = 16 * 1024 * 1024
"""The largest body level 2 keeps: an entry that claims more is not one this cache wrote."""


@dataclass(frozen=True)
class Served:
    """An answer's body and what the cache did for it."""

    body: bytes
    cache_status: str | None = None
    """The `Cache-Status` member, e.g. `keyless; hit; ttl=3590`; None without a cache."""
    age: int | None = None
    """Seconds since the upstream produced it (hits only)."""
    saved: bool = False
    """True when this request made no upstream call (a hit, or collapsed into another's
    call): what usage counts as `cache_saved`."""
    entry: str | None = None
    """The name of the cache entry the answer is kept under (`ResponseCache.fresh` reads
    it); None when the answer is not cached."""

    @property
    def headers(self) -> dict[str, str]:
        headers = {}
        if self.cache_status is not None:
            headers["Cache-Status"] = self.cache_status
        if self.age is not None:
            headers["Age"] = str(self.age)
        return headers


class Uncacheable(Exception):
    """Raised by a `produce` function with an answer to serve but not to cache (nor to share
    with coalesced requests, which then ask the upstream themselves)."""

    def __init__(self, answer: object) -> None:
        super().__init__("uncacheable answer")
        self.answer = answer


class _Abandoned(Exception):
    """The request whose upstream call others waited for went away (cancelled)."""


class _Entry(NamedTuple):
    stored: float
    expires: float
    body: bytes


class _Shared:
    """The state every scoped view of one cache shares."""

    def __init__(self, store: Store | None, max_entries: int, max_bytes: int) -> None:
        self.store = store
        self.behind = None if store is None else WriteBehind(store.kv_put_many, store.name)
        self.max_entries, self.max_bytes = max_entries, max_bytes
        self.lru: OrderedDict[str, _Entry] = OrderedDict()
        self.lru_bytes = 0
        self.in_flight: dict[str, asyncio.Future[bytes]] = {}
        self.store_down = False
        self.retry_store_at = 0.0


class ResponseCache:
    """The cache (see the module docstring) on `store` (None: in-process only), reading the
    time from `clock` (epoch seconds)."""

    def __init__(
        self,
        store: Store | None,
        *,
        max_entries: int = MAX_ENTRIES,
        max_bytes: int = MAX_BYTES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._shared = _Shared(store, max_entries, max_bytes)
        self._clock = clock
        self._scope = ""

    def scoped(self, scope: str) -> ResponseCache:
        """A view whose keys all start with `scope` (e.g. the connector, its mode and its
        upstream, so that sample answers never serve a live deployment on the same store)."""
        view = ResponseCache.__new__(ResponseCache)
        view._shared, view._clock, view._scope = self._shared, self._clock, self._scope + scope
        return view

    @property
    def bypass(self) -> Served:
        """What an uncacheable route's answer says (pair it with its body)."""
        return _BYPASS

    async def fetch(self, key: str, ttl: float, produce: Callable[[], Awaitable[bytes]]) -> Served:
        """The answer for `key`: cached, or `produce()`d (and then kept for `ttl` seconds).
        Exceptions of `produce` propagate (to coalesced requests too, except `Uncacheable`)."""
        shared = self._shared
        name = _name(f"{_LAYOUT}\0{self._scope}\0{key}")
        now = self._clock()
        entry = self._remembered(name, now)
        if entry is None and name not in shared.in_flight:
            entry = await self._stored(name, now)
            entry = entry or self._remembered(name, now)  # filled while we waited
        if entry is not None:
            return _hit(name, entry, now)
        flight = shared.in_flight.get(name)
        if flight is not None:
            try:
                body = await asyncio.shield(flight)
            except (Uncacheable, _Abandoned):
                return await self.fetch(key, ttl, produce)
            return Served(body, f"{CACHE_NAME}; fwd=uri-miss; collapsed", saved=True, entry=name)
        return await self._produce(name, ttl, produce)

    def fresh(self, entry: str) -> Served | None:
        """The hit `fetch` would answer for the entry named `entry` (`Served.entry`) when
        the in-process level holds it fresh; None otherwise. Never reads the store."""
        now = self._clock()
        found = self._remembered(entry, now)
        return None if found is None else _hit(entry, found, now)

    async def _produce(
        self, name: str, ttl: float, produce: Callable[[], Awaitable[bytes]]
    ) -> Served:
        shared = self._shared
        flight: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        shared.in_flight[name] = flight
        try:
            body = await produce()
        except Exception as exc:
            flight.set_exception(exc)
            raise
        except BaseException:
            flight.set_exception(_Abandoned())
            raise
        finally:
            if flight.done() and flight.exception() is not None:
                del shared.in_flight[name]  # (reading the exception marks it retrieved)
        now = self._clock()
        entry = _Entry(now, now + ttl, body)
        self._remember(name, entry)  # before the flight ends: later requests find it here
        flight.set_result(body)
        del shared.in_flight[name]
        shared_ok = self._store(name, entry, ttl, now)
        detail = "" if shared_ok else "; detail=store-unavailable"
        return Served(body, f"{CACHE_NAME}; fwd=uri-miss; stored{detail}", entry=name)

    # -- level 1: in process --------------------------------------------------------------

    def _remembered(self, name: str, now: float) -> _Entry | None:
        shared = self._shared
        entry = shared.lru.get(name)
        if entry is None:
            return None
        if entry.expires <= now:
            self._forget(name)
            return None
        shared.lru.move_to_end(name)
        return entry

    def _remember(self, name: str, entry: _Entry) -> None:
        shared = self._shared
        if len(entry.body) > shared.max_bytes // 4:
            return  # one answer may not push out most of the others
        self._forget(name)
        shared.lru[name] = entry
        shared.lru_bytes += len(entry.body)
        while len(shared.lru) > shared.max_entries or shared.lru_bytes > shared.max_bytes:
            _, old = shared.lru.popitem(last=False)
            shared.lru_bytes -= len(old.body)

    def _forget(self, name: str) -> None:
        old = self._shared.lru.pop(name, None)
        if old is not None:
            self._shared.lru_bytes -= len(old.body)

    # -- level 2: the shared store --------------------------------------------------------

    async def _stored(self, name: str, now: float) -> _Entry | None:
        store = self._usable_store(now)
        if store is None:
            return None
        try:
            value = await store.kv_get(name, now)
        except Exception as exc:  # a cache never fails a request
            self._store_failed(exc, now)
            return None
        self._store_worked()
        entry = None if value is None else _unpack(value)
        if entry is None or entry.expires <= now:
            return None
        self._remember(name, entry)
        return entry

    def _store(self, name: str, entry: _Entry, ttl: float, now: float) -> bool:
        """Queue the entry's write to the store (written behind: the request does not wait);
        False when the store is known to be failing (its last write failed, or too many
        writes wait for it), which `Cache-Status` then says."""
        value = _pack(entry)
        if value is None or len(value) > KV_MAX_BYTES:
            return True  # too large to share: kept in process only, not an outage
        store, behind = self._usable_store(now), self._shared.behind
        if store is None or behind is None:
            return False
        try:
            written = behind.put(name, value, now + ttl, now)
        except Exception as exc:
            self._store_failed(exc, now)
            return False
        if not written:
            self._store_failed(StoreUnavailable(f"{store.name}: its last write failed"), now)
            return False
        self._store_worked()
        return True

    def _usable_store(self, now: float) -> Store | None:
        shared = self._shared
        if shared.store is None or (shared.store_down and now < shared.retry_store_at):
            return None
        return shared.store

    def _store_failed(self, exc: Exception, now: float) -> None:
        shared = self._shared
        shared.retry_store_at = now + _RETRY_STORE
        if not shared.store_down:
            shared.store_down = True
            # StoreUnavailable's message names the backend and the failure, never a secret.
            log.warning(
                "response cache: the store is unavailable, answering from the upstream until "
                "it is back: %s",
                exc if isinstance(exc, StoreUnavailable) else type(exc).__name__,
                extra={"fields": {"event": "cache_store_unavailable"}},
            )

    def _store_worked(self) -> None:
        if self._shared.store_down:
            self._shared.store_down = False
            log.info(
                "response cache: the store is back",
                extra={"fields": {"event": "cache_store_back"}},
            )

    async def flush(self) -> bool:
        """Write the store writes still pending (AWS Lambda: at the end of each invocation);
        True when all of them were written. Never raises: what failed stays pending."""
        behind = self._shared.behind
        if behind is None:
            return True
        try:
            return await behind.flush()
        except Exception:  # a cache never fails a request
            return False

    async def aclose(self) -> None:
        """Write the store writes still pending (logged when the store cannot take them), at
        shutdown, before the store (the gate's) is closed."""
        if self._shared.behind is not None:
            await self._shared.behind.aclose()


_BYPASS = Served(b"", f"{CACHE_NAME}; fwd=bypass")


def _name(key: str) -> str:
    """The entry name of `key`: 128 bits of its SHA-256 (a collision among even 10^12
    entries has odds of ~10^-15; finding one on purpose takes ~2^64 hashes, and could only
    pair two names of the finder's own choosing), in base64url without padding."""
    digest = hashlib.sha256(key.encode()).digest()[:16]
    return "cache:" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _pack(entry: _Entry) -> bytes | None:
    """`entry` as level 2 stores it, compressed unless that does not make it smaller; None
    when its body is too large to share."""
    body = entry.body
    if len(body) > _MAX_INFLATED:
        return None
    packed: bytes = lz4.block.compress(body, store_size=False)
    if len(packed) < len(body):
        return _HEAD.pack(entry.stored, entry.expires, _LZ4, len(body)) + packed
    return _HEAD.pack(entry.stored, entry.expires, _RAW, len(body)) + body


def _unpack(value: bytes) -> _Entry | None:
    """The entry `_pack` made `value` from; None when `value` is not one (corrupt,
    truncated, or written by something else), which the cache treats as a miss."""
    if len(value) < _HEAD.size:
        return None
    stored, expires, codec, size = _HEAD.unpack_from(value)
    payload = memoryview(value)[_HEAD.size :]
    if codec == _RAW:
        body = bytes(payload)
    elif codec == _LZ4 and size <= _MAX_INFLATED:
        try:
            body = lz4.block.decompress(payload, uncompressed_size=size)
        except Exception:  # LZ4BlockError, or whatever else: a cache never fails a request
            return None
    else:
        return None
    return _Entry(stored, expires, body) if len(body) == size else None


def _hit(name: str, entry: _Entry, now: float) -> Served:
    return Served(
        entry.body,
        f"{CACHE_NAME}; hit; ttl={int(entry.expires - now)}",
        age=max(0, int(now - entry.stored)),
        saved=True,
        entry=name,
    )


def cache_of(request: Request) -> ResponseCache | None:
    """The response cache of the app serving `request`; None when `CACHE_ENABLED` is off."""
    cache: ResponseCache | None = getattr(request.app.state, "response_cache", None)
    return cache
