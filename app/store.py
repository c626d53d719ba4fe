"""The shared store: caller keys, rate limits, quotas and usage, one interface, three backends.

`STORE_URL` picks the backend (`open_store`):

    sqlite:///path/to/state.db      the default: one file, WAL, safe for several workers on
                                    one host (app/stores/sqlite.py); the path after the
                                    third slash is relative (`sqlite:////var/lib/x.db` is
                                    absolute, as in SQLAlchemy)
    redis://host:port/0             several hosts (app/stores/redis.py)
    dynamodb://TABLE?region=R       AWS Lambda (app/stores/dynamodb.py); `endpoint=URL`
                                    for a local DynamoDB-compatible server (tests: moto)

Every method is one atomic operation on the store (or as close as the backend allows,
said in its module), so that N workers, hosts or Lambda instances together enforce the
same limits. Nothing outside app/stores/ knows which backend is in use. A store that
cannot be reached raises `StoreUnavailable`; callers fail closed on it.

Time is passed in (`now`, epoch seconds) rather than read, so tests can move it; the
Redis backend may use the server's clock for the rate limiter instead (said there).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol
from urllib.parse import parse_qs, urlsplit

__all__ = [
    "KV_MAX_BYTES",
    "KV_MAX_KEY",
    "Decision",
    "KeyRecord",
    "Limits",
    "Row",
    "Store",
    "StoreUnavailable",
    "Usage",
    "UsageDay",
    "check_kv",
    "open_store",
]

KV_MAX_BYTES = 350 * 1024
"""The largest value the key-value methods take: DynamoDB's 400 KB item, less room for the
key and attributes (its binary counts raw bytes)."""
KV_MAX_KEY = 1000
"""The longest key, in bytes of UTF-8 (DynamoDB's partition key takes 2,048)."""
Row = tuple[str, bytes, float]
"""One put of `Store.kv_put_many`: key, value, expires (epoch seconds, the caller's clock)."""


class StoreUnavailable(Exception):
    """The store could not be reached or answered an error. The message names the backend
    and the failure, never a key, a digest or a secret."""


@dataclass(frozen=True)
class KeyRecord:
    """A caller key as stored: never the key itself, only its digest."""

    key_id: str
    """Public and stable: what `keys list`, `keys revoke` and the access log name."""
    digest: str
    """Keyed hash of the key (hex); the only way to find a record from a presented key."""
    name: str
    prefix: str
    """The key's first characters (its recognisable prefix and a few more), for people."""
    last4: str
    created: float
    scopes: frozenset[str] = frozenset()
    """Connector names this key may use; empty means every connector."""
    models: frozenset[str] = frozenset()
    """OpenAI models this key may ask for; empty means any."""
    rpm: int | None = None
    """Requests per minute; None means the service default (`RATE_LIMIT_RPM`)."""
    daily_requests: int | None = None
    monthly_tokens: int | None = None
    expires: float | None = None
    revoked: float | None = None
    last_used: float | None = None


@dataclass(frozen=True)
class Limits:
    """What `admit` enforces for one subject (a key id, or the static secret's subject)."""

    rpm: int
    daily_requests: int | None = None
    monthly_tokens: int | None = None


@dataclass(frozen=True)
class Decision:
    """The outcome of `admit`, with what the rate-limit headers report."""

    allowed: bool
    reason: Literal["ok", "rate_limited", "quota_exceeded"]
    rpm: int
    remaining: int
    """Requests left in the per-minute policy after this one."""
    reset: float
    """Seconds until the per-minute policy is fully restored."""
    retry_after: float = 0.0
    """Seconds to wait when refused (0 when allowed)."""
    daily_limit: int | None = None
    daily_remaining: int | None = None
    monthly_tokens: int | None = None
    tokens_remaining: int | None = None
    granted: int = 1
    """How many admissions `admit` granted (of its `count`): 0 when refused. The header
    values above are those after the last of them."""


@dataclass(frozen=True)
class UsageDay:
    """One subject's usage on one UTC day (`day` is YYYY-MM-DD)."""

    subject: str
    day: str
    requests: int = 0
    refused: int = 0
    upstream_errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cache_saved: int = 0


@dataclass(frozen=True)
class Usage:
    """Increments to one subject's usage counters (see `Store.record`)."""

    requests: int = 0
    refused: int = 0
    upstream_errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cache_saved: int = 0


class Store(Protocol):
    """The operations the service needs, each atomic (see the module docstring)."""

    name: str
    """The backend, for logs: "sqlite", "redis" or "dynamodb"."""

    async def put_key(self, record: KeyRecord) -> None:
        """Store a new key record (its `key_id` and `digest` are new)."""

    async def key_by_digest(self, digest: str) -> KeyRecord | None: ...

    async def key_by_id(self, key_id: str) -> KeyRecord | None: ...

    async def list_keys(self) -> Sequence[KeyRecord]:
        """Every key, oldest first."""

    async def revoke(self, key_id: str, now: float) -> bool:
        """Mark the key revoked at `now`; False if there is no such key."""

    async def touch(self, key_id: str, now: float) -> None:
        """Set the key's `last_used` (callers write it at most once a minute per key)."""

    async def admit(self, subject: str, limits: Limits, now: float, count: int = 1) -> Decision:
        """Admit up to `count` requests of `subject` (a lease: `Decision.granted` says how
        many) or refuse, in one store round trip:

        - the per-minute rate, by GCRA (exact under concurrency, no window-edge burst):
          as many of `count` as the rate allows now, `tat` advancing by one interval each;
        - the daily request quota (UTC day), at most what is left of it, counted only for
          admitted requests (the granted number, at once): the same
          counter is the day's `requests` in `usage`, so an admitted request needs no
          other write;
        - the monthly token quota (UTC month): admitted while the tokens recorded so far
          are below it (so concurrent requests overshoot by at most what is in flight).

        A refused request changes nothing: it neither consumes the rate nor the quotas.
        Granted admissions left unused are given back by `record` with a negative
        `requests` (the daily count); their rate is not (that only makes limits stricter).
        """

    async def record(self, subject: str, now: float, usage: Usage) -> None:
        """Add `usage` to the subject's counters for the UTC day of `now` (and its tokens
        to the UTC month's total that `admit` checks). `requests` is normally 0 here:
        `admit` counts admitted requests itself; a negative one gives back unused ones."""

    async def usage(self, subject: str | None, since: float) -> Sequence[UsageDay]:
        """Usage per subject and day from the UTC day of `since` on; every subject if None.
        Ordered by subject, then day."""

    # A small key-value space with expiry, for the response cache and OAuth state.
    # Keys are the caller's own strings of at most KV_MAX_KEY bytes (they choose a prefix
    # per use, e.g. "cache:", "oauth:code:"); values are bytes of at most KV_MAX_BYTES
    # (ValueError above either). Expiry is judged against the caller's `now` on every backend.

    async def kv_put(self, key: str, value: bytes, ttl: float, now: float) -> None:
        """Store `value` under `key` until `now + ttl`, replacing any value."""

    async def kv_put_many(self, rows: Sequence[Row], now: float) -> None:
        """`kv_put` of each row, in order, in as few round trips as the backend allows (the
        response cache's writes behind, app/stores/behind.py). Not atomic: a failure may
        leave some of them stored."""

    async def kv_add(self, key: str, value: bytes, ttl: float, now: float) -> bool:
        """Store `value` only if `key` holds no live value; True if stored (atomic)."""

    async def kv_get(self, key: str, now: float) -> bytes | None:
        """The live value under `key`, or None (expired values are never returned)."""

    async def kv_take(self, key: str, now: float) -> bytes | None:
        """The live value under `key`, deleting it in the same atomic step: of concurrent
        takers exactly one gets it (single-use codes, rotating refresh tokens)."""

    async def kv_delete(self, key: str) -> None:
        """Remove `key`'s value, if any."""

    async def aclose(self) -> None:
        """Disconnect."""


def check_kv(key: str, value: bytes = b"") -> None:
    """Raise ValueError if `key` or `value` is larger than the key-value space takes."""
    if len(key.encode()) > KV_MAX_KEY:
        raise ValueError(f"a key of the key-value space is at most {KV_MAX_KEY} bytes")
    if len(value) > KV_MAX_BYTES:
        raise ValueError(f"a stored value is at most {KV_MAX_BYTES} bytes, not {len(value)}")


URL_FORMS = (
    "sqlite:///relative/path.db or sqlite:////absolute/path.db, "
    "redis://[:password@]host:port/db or rediss://…, "
    "dynamodb://TABLE?region=REGION[&endpoint=http://host:port]"
)


def open_store(url: str) -> Store:
    """The store `url` names (no I/O yet: the first operation connects, so a store that is
    down fails requests, not startup). Raises ValueError, naming the accepted forms and
    never echoing the URL (a Redis URL may carry a password), when `url` is not one."""
    scheme, _, rest = url.partition("://")
    if scheme == "sqlite" and rest.startswith("/") and rest.strip("/"):
        from app.stores.sqlite import SqliteStore

        return SqliteStore(rest[1:])
    if scheme in ("redis", "rediss") and rest:
        try:
            from app.stores.redis import RedisStore
        except ImportError:
            raise ValueError(
                "STORE_URL is a redis:// URL but the redis client is not installed: "
                "install the project's `redis` extra (pip install '.[redis]')"
            ) from None
        try:
            return RedisStore(url)
        except ValueError:  # redis-py's own parse errors; not echoed (passwords)
            pass
    if scheme == "dynamodb":
        parts = urlsplit(url)
        query = {name: values[-1] for name, values in parse_qs(parts.query).items()}
        region, endpoint = query.get("region"), query.get("endpoint")
        if parts.hostname and region and not parts.path.strip("/"):
            from app.stores.dynamodb import DynamoStore

            # The netloc, not `hostname`: table names are case-sensitive.
            return DynamoStore(parts.netloc, region=region, endpoint=endpoint)
    got = (
        f"a {scheme}:// URL" if rest and scheme.isalpha() and len(scheme) < 12 else "something else"
    )
    raise ValueError(f"STORE_URL must be one of: {URL_FORMS} (got {got})")
