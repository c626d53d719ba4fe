"""The store on Redis (7+), for several hosts: redis-py's asyncio client.

- `admit` is one registered Lua script (EVALSHA, one round trip): daily and monthly quota
  checks, GCRA, and the daily counter, atomic on the server.
- Clock: by default the rate limiter reads the server's clock (`TIME`), so the hosts'
  clocks need not agree. The UTC day and month a request counts in come from the caller's
  `now` (the keys must be named before the script runs, for Redis Cluster). `clock="caller"`
  uses `now` for the rate too (the conformance tests, which move time).
- All keys of one subject share a `{subject}` hash tag, so the script also runs on a
  cluster. Key records are hashes (`HSET`) named by the key's digest, with an id index.
- `BlockingConnectionPool`: redis-py 8's plain pool raises at once when its connections
  are all busy; this one waits. Short socket timeouts and a single retry make a dead
  server fail fast (StoreUnavailable); the pool reconnects when it is back.
- Daily usage and its index expire after `USAGE_DAYS`; monthly token totals after 62 days.
- Key-value entries are plain strings on a second, binary-safe client (the first decodes
  replies as text): `SET … PX`, `SET NX` by a small script, `GETDEL` (Redis 6.2+). Each value
  starts with its expiry (16 digits of epoch ms, the caller's clock), checked on every read,
  so expiry follows the caller's `now` as on the other backends; `PX` lets Redis drop it.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator, Sequence
from typing import Any, Literal

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

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

__all__ = ["USAGE_DAYS", "RedisStore"]

USAGE_DAYS = 400
_MONTH_TTL = 62 * 86_400
_USAGE_FIELDS = (
    "requests",
    "refused",
    "upstream_errors",
    "prompt_tokens",
    "completion_tokens",
    "cache_saved",
)

# KEYS: rate, day hash, month tokens, days index.
# ARGV: caller now (µs), clock, period (µs), inc (µs), daily limit, monthly quota (-1: none),
#       day (epoch days), day name, usage ttl (s), count (admissions wanted).
# Returns {code, day requests, month tokens, µs of tat ahead of now, granted}; code 1 admitted,
# 0 rate-limited, 2 daily quota spent, 3 monthly tokens spent. A refusal writes nothing.
_ADMIT = """
local now
if ARGV[2] == 'server' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
else
  now = tonumber(ARGV[1])
end
local period, inc = tonumber(ARGV[3]), tonumber(ARGV[4])
local dlim, mlim = tonumber(ARGV[5]), tonumber(ARGV[6])
local requests = tonumber(redis.call('HGET', KEYS[2], 'requests') or '0')
local tokens = tonumber(redis.call('GET', KEYS[3]) or '0')
if dlim >= 0 and requests >= dlim then return {2, requests, tokens, 0, 0} end
if mlim >= 0 and tokens >= mlim then return {3, requests, tokens, 0, 0} end
local count = tonumber(ARGV[10])
if dlim >= 0 and dlim - requests < count then count = dlim - requests end
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local k = math.floor((period - (tat - now)) / inc)
if k > count then k = count end
if k < 1 then return {0, requests, tokens, tat - now, 0} end
local new_tat = tat + k * inc
-- %.0f: Lua's default number format keeps 14 digits, and epoch µs have 16.
local ttl_ms = math.ceil((new_tat - now) / 1000) + 1
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', ttl_ms)
requests = redis.call('HINCRBY', KEYS[2], 'requests', k)
redis.call('EXPIRE', KEYS[2], ARGV[9])
redis.call('ZADD', KEYS[4], ARGV[7], ARGV[8])
redis.call('EXPIRE', KEYS[4], ARGV[9])
return {1, requests, tokens, new_tat - now, k}
"""

# KEYS: the entry. ARGV: the new stored value, caller now (ms), ttl (ms).
# Stores unless a live value is there (its first 16 bytes: expiry in epoch ms); 1 if stored.
_KV_ADD = """
local old = redis.call('GET', KEYS[1])
if old and tonumber(string.sub(old, 1, 16)) > tonumber(ARGV[2]) then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
return 1
"""


class RedisStore:
    """The `Store` on the Redis server `url` names (nothing is connected before first use)."""

    name = "redis"

    def __init__(
        self,
        url: str,
        *,
        clock: Literal["server", "caller"] = "server",
        prefix: str = "pp",
        timeout: float = 1.0,
        max_connections: int = 64,
    ) -> None:
        self.clock, self.prefix = clock, prefix
        self._pool = BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=timeout * 2,  # waiting for a free connection
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 1),
            decode_responses=True,
        )
        # Any: with decode_responses every reply is a str, which redis-py's types do not say.
        self._redis: Any = Redis(connection_pool=self._pool, retry=Retry(NoBackoff(), 1))
        self._admit = self._redis.register_script(_ADMIT)
        self._kv_pool = BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=timeout * 2,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 1),
        )
        self._kv: Any = Redis(connection_pool=self._kv_pool, retry=Retry(NoBackoff(), 1))
        self._kv_add = self._kv.register_script(_KV_ADD)

    # -- names ----------------------------------------------------------------------------

    def _subject(self, subject: str, suffix: str) -> str:
        return f"{self.prefix}:{{{subject}}}:{suffix}"

    def _key(self, digest: str) -> str:
        return f"{self.prefix}:key:{digest}"

    def _kid(self, key_id: str) -> str:
        return f"{self.prefix}:kid:{key_id}"

    # -- keys -----------------------------------------------------------------------------

    async def put_key(self, record: KeyRecord) -> None:
        with _unavailable():
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.hset(self._key(record.digest), mapping=_key_fields(record))
                pipe.set(self._kid(record.key_id), record.digest)
                pipe.sadd(f"{self.prefix}:keys", record.digest)
                await pipe.execute()

    async def key_by_digest(self, digest: str) -> KeyRecord | None:
        with _unavailable():
            fields = await self._redis.hgetall(self._key(digest))
        return _key_record(digest, fields) if fields else None

    async def key_by_id(self, key_id: str) -> KeyRecord | None:
        with _unavailable():
            digest = await self._redis.get(self._kid(key_id))
        return await self.key_by_digest(digest) if digest else None

    async def list_keys(self) -> Sequence[KeyRecord]:
        with _unavailable():
            digests = sorted(await self._redis.smembers(f"{self.prefix}:keys"))
            async with self._redis.pipeline(transaction=False) as pipe:
                for digest in digests:
                    pipe.hgetall(self._key(digest))
                rows = await pipe.execute()
        records = [_key_record(d, f) for d, f in zip(digests, rows, strict=True) if f]
        return sorted(records, key=lambda r: (r.created, r.key_id))

    async def revoke(self, key_id: str, now: float) -> bool:
        with _unavailable():
            digest = await self._redis.get(self._kid(key_id))
            if not digest:
                return False
            await self._redis.hsetnx(self._key(digest), "revoked", repr(now))
        return True

    async def touch(self, key_id: str, now: float) -> None:
        with _unavailable():
            digest = await self._redis.get(self._kid(key_id))
            if digest:
                await self._redis.hset(self._key(digest), "last_used", repr(now))

    # -- limits and usage -----------------------------------------------------------------

    async def admit(self, subject: str, limits: Limits, now: float, count: int = 1) -> Decision:
        day, month = limiter.day_of(now), limiter.month_of(now)
        keys = [
            self._subject(subject, "rate"),
            self._subject(subject, f"d:{day}"),
            self._subject(subject, f"m:{month}"),
            self._subject(subject, "days"),
        ]
        args = [
            limiter.us(now),
            self.clock,
            limiter.MINUTE_US,
            limiter.increment(limits.rpm),
            -1 if limits.daily_requests is None else limits.daily_requests,
            -1 if limits.monthly_tokens is None else limits.monthly_tokens,
            int(now // 86_400),
            day,
            USAGE_DAYS * 86_400,
            count,
        ]
        with _unavailable():
            code, requests, tokens, ahead, granted = await self._admit(keys=keys, args=args)
        if code == 1:
            step = limiter.decision_after(int(ahead), 0, limits.rpm)
            step = dataclasses.replace(step, granted=int(granted))
            return limiter.allowed(limits, step, int(requests), int(tokens))
        if code == 0:
            step = limiter.refused_after(int(ahead), 0, limits.rpm)
            return limiter.rate_refusal(limits, step, int(requests), int(tokens))
        refusal = limiter.quota_refusal(limits, now, int(requests), int(tokens))
        assert refusal is not None  # noqa: S101  (the script saw a spent quota)
        return refusal

    async def record(self, subject: str, now: float, usage: Usage) -> None:
        day, month = limiter.day_of(now), limiter.month_of(now)
        day_key, days = self._subject(subject, f"d:{day}"), self._subject(subject, "days")
        tokens = usage.prompt_tokens + usage.completion_tokens
        with _unavailable():
            async with self._redis.pipeline(transaction=True) as pipe:
                for field in _USAGE_FIELDS:
                    pipe.hincrby(day_key, field, getattr(usage, field))
                pipe.expire(day_key, USAGE_DAYS * 86_400)
                pipe.zadd(days, {day: int(now // 86_400)})
                pipe.expire(days, USAGE_DAYS * 86_400)
                if tokens:
                    month_key = self._subject(subject, f"m:{month}")
                    pipe.incrby(month_key, tokens)
                    pipe.expire(month_key, _MONTH_TTL)
                await pipe.execute()

    async def usage(self, subject: str | None, since: float) -> Sequence[UsageDay]:
        first = int(since // 86_400)
        with _unavailable():
            if subject is None:
                subjects = await self._subjects()
            else:
                subjects = [subject]
            found: list[tuple[str, str]] = []
            for each in subjects:
                days = await self._redis.zrangebyscore(self._subject(each, "days"), first, "+inf")
                found += [(each, day) for day in days]
            async with self._redis.pipeline(transaction=False) as pipe:
                for each, day in found:
                    pipe.hgetall(self._subject(each, f"d:{day}"))
                rows = await pipe.execute()
        return sorted(
            (
                UsageDay(each, day, **{f: int(row.get(f, 0)) for f in _USAGE_FIELDS})
                for (each, day), row in zip(found, rows, strict=True)
                if row
            ),
            key=lambda u: (u.subject, u.day),
        )

    async def _subjects(self) -> list[str]:
        head, tail = f"{self.prefix}:{{", "}:days"
        names = [name async for name in self._redis.scan_iter(match=f"{head}*{tail}", count=500)]
        return sorted({name[len(head) : -len(tail)] for name in names})

    # -- key-value ------------------------------------------------------------------------

    def _entry(self, key: str) -> str:
        check_kv(key)
        return f"{self.prefix}:kv:{key}"

    async def kv_put(self, key: str, value: bytes, ttl: float, now: float) -> None:
        name, (stored, px) = self._entry(key), _kv_stored(value, ttl, now)
        with _unavailable():
            await self._kv.set(name, stored, px=px)

    async def kv_put_many(self, rows: Sequence[Row], now: float) -> None:
        """One pipeline (one round trip, not a transaction)."""
        with _unavailable():
            async with self._kv.pipeline(transaction=False) as pipe:
                for key, value, expires in rows:
                    stored, px = _kv_stored(value, expires - now, now)
                    pipe.set(self._entry(key), stored, px=px)
                await pipe.execute()

    async def kv_add(self, key: str, value: bytes, ttl: float, now: float) -> bool:
        name, (stored, px) = self._entry(key), _kv_stored(value, ttl, now)
        with _unavailable():
            added = await self._kv_add(keys=[name], args=[stored, _ms(now), px])
        return bool(added)

    async def kv_get(self, key: str, now: float) -> bytes | None:
        name = self._entry(key)
        with _unavailable():
            stored = await self._kv.get(name)
        return _kv_live(stored, now)

    async def kv_take(self, key: str, now: float) -> bytes | None:
        name = self._entry(key)
        with _unavailable():
            stored = await self._kv.getdel(name)
        return _kv_live(stored, now)

    async def kv_delete(self, key: str) -> None:
        name = self._entry(key)
        with _unavailable():
            await self._kv.delete(name)

    async def aclose(self) -> None:
        await self._redis.aclose()
        await self._pool.disconnect()
        await self._kv.aclose()
        await self._kv_pool.disconnect()


@contextlib.contextmanager
def _unavailable() -> Iterator[None]:
    try:
        yield
    except RedisError as exc:
        # redis-py's messages name the host and the failure, never the password.
        raise StoreUnavailable(f"redis: {type(exc).__name__}: {exc}") from None


def _ms(seconds: float) -> int:
    return int(seconds * 1000)


def _kv_stored(value: bytes, ttl: float, now: float) -> tuple[bytes, int]:
    """The stored form (expiry, then the value) and the `PX` that lets Redis drop it."""
    check_kv("", value)
    return b"%016d" % _ms(now + ttl) + value, max(1, _ms(ttl))


def _kv_live(stored: bytes | None, now: float) -> bytes | None:
    if stored is None or int(stored[:16]) <= _ms(now):
        return None
    return bytes(stored[16:])


def _key_fields(record: KeyRecord) -> dict[str, str]:
    fields: dict[str, Any] = {
        "key_id": record.key_id,
        "name": record.name,
        "prefix": record.prefix,
        "last4": record.last4,
        "created": repr(record.created),
        "scopes": ",".join(sorted(record.scopes)),
        "models": ",".join(sorted(record.models)),
    }
    for name in ("rpm", "daily_requests", "monthly_tokens", "expires", "revoked", "last_used"):
        value = getattr(record, name)
        if value is not None:
            fields[name] = repr(value)
    return fields


def _key_record(digest: str, fields: dict[str, str]) -> KeyRecord:
    def number(name: str, kind: type[int] | type[float]) -> Any:
        return kind(fields[name]) if name in fields else None

    return KeyRecord(
        key_id=fields["key_id"],
        digest=digest,
        name=fields["name"],
        prefix=fields["prefix"],
        last4=fields["last4"],
        created=float(fields["created"]),
        scopes=frozenset(filter(None, fields.get("scopes", "").split(","))),
        models=frozenset(filter(None, fields.get("models", "").split(","))),
        rpm=number("rpm", int),
        daily_requests=number("daily_requests", int),
        monthly_tokens=number("monthly_tokens", int),
        expires=number("expires", float),
        revoked=number("revoked", float),
        last_used=number("last_used", float),
    )
