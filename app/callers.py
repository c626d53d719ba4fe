"""Who is calling, what they may do, and whether their limits let this request through.

Every route goes through the `Gate`, in two steps:

    identify(headers, scopes) -> Caller     401 unknown, expired or revoked; 403 out of scope
    admit(caller, model=...)  -> Admission  403 model not allowed; 429 over a limit; 503 store down

A caller is either a managed key (`app.keys`, looked up by digest in the store, cached in
process for at most `KEY_CACHE_TTL` seconds: the bound on a revocation taking effect) or
the static `CHATGPT_SECRET` (subject "static", every connector, `RATE_LIMIT_RPM`).
`admit` asks the store (`Store.admit`: GCRA rate, daily requests, monthly tokens) for
one admission or, at high rates, a short lease of several (app/allowance.py: its size
policy and what it costs other processes); admissions left from a lease are served
without I/O. A refused request never goes further, so it never reaches an upstream.
Usage (refusals, tokens, upstream errors, cache hits) is added up in memory and written
in batches at most every second (app/usage_batch.py), and on `aclose`.

`identify_now` and `admit_now` are the same steps when they need no I/O (a cached key,
a static secret held in memory, a lease): None instead of an answer otherwise, so a fast
path can try them first and fall back to `identify` / `admit`, which use them too.

When the store cannot be reached, keyed callers get 503 (fail closed) while static-secret
callers are limited in process (`LocalLimiter`); the log says so once per outage, and
each later request tries the store again (at most once a second), so service resumes by
itself. Nothing here names a connector: scopes are the registry's connector names.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import TypeVar

from starlette.datastructures import Headers

from app.allowance import Allowance, Unused
from app.credentials import Credentials
from app.errors import Forbidden, LimitExceeded, StoreDown, Unauthorized
from app.keys import digest, is_key_shaped
from app.limits import LocalLimiter
from app.observability import RequestRecord, current_record
from app.security import API_KEY_HEADER, authenticate, authorize, presented_credential
from app.settings import CoreSettings
from app.store import (
    Decision,
    KeyRecord,
    Limits,
    Store,
    StoreUnavailable,
    Usage,
    open_store,
)
from app.usage_batch import UsageBatch

__all__ = ["STATIC_SUBJECT", "Admission", "Caller", "Gate"]

log = logging.getLogger("app.callers")

STATIC_SUBJECT = "static"
_RETRY_STORE = 1.0  # seconds between attempts while the store is down
_TOUCH_EVERY = 60.0
_CACHE_ENTRIES = 10_000
T = TypeVar("T")


@dataclass(frozen=True)
class Caller:
    """An identified caller: `subject` is what limits and usage are kept under (the key id,
    or "static"); empty `scopes` / `models` mean any."""

    subject: str
    key_id: str | None
    scopes: frozenset[str]
    models: frozenset[str]
    limits: Limits


class _KeyCache:
    """Key lookups by digest, found or not, for `ttl` seconds; at most `_CACHE_ENTRIES`."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._entries: OrderedDict[str, tuple[float, KeyRecord | None]] = OrderedDict()

    def get(self, key: str, now: float) -> tuple[bool, KeyRecord | None]:
        entry = self._entries.get(key)
        if entry is None or entry[0] <= now:
            return False, None
        return True, entry[1]

    def put(self, key: str, record: KeyRecord | None, now: float) -> None:
        if self.ttl <= 0:
            return
        self._entries[key] = (now + self.ttl, record)
        self._entries.move_to_end(key)
        while len(self._entries) > _CACHE_ENTRIES:
            self._entries.popitem(last=False)


@dataclass(frozen=True)
class Admission:
    """An admitted request: its caller and limit state; `spend` records the tokens it used."""

    gate: Gate
    caller: Caller
    decision: Decision

    async def spend(self, prompt_tokens: int, completion_tokens: int) -> None:
        """Add tokens to the caller's usage (and its monthly budget); never raises. With a
        monthly token quota they are written at once, so the next admission sees them."""
        if prompt_tokens or completion_tokens:
            usage = Usage(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)
            await self.gate.record(self.caller.subject, usage)
            if self.caller.limits.monthly_tokens is not None:
                await self.gate.flush_usage(self.caller.subject)


class Gate:
    """The one place callers are identified, scoped and limited (see the module docstring).
    `store` replaces the one `settings.store` names (tests); `clock` gives epoch seconds."""

    def __init__(
        self,
        settings: CoreSettings,
        credentials: Credentials,
        *,
        store: Store | None = None,
        clock: Callable[[], float] = time.time,
        leases: bool = True,
    ) -> None:
        self.credentials = credentials
        self.store_url = settings.store
        # No I/O yet (the first operation connects); a malformed STORE_URL fails here.
        self._store = store if store is not None else open_store(self.store_url)
        self._rpm = settings.rate_limit_rpm
        self._static = Caller(STATIC_SUBJECT, None, frozenset(), frozenset(), Limits(rpm=self._rpm))
        self._pepper = settings.pepper
        self._clock = clock
        self._cache = _KeyCache(settings.key_cache_ttl)
        self._local = LocalLimiter()
        self._down = False
        self._retry_at = 0.0
        self._touched: dict[str, float] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._allowance = Allowance(enabled=leases)
        self._asking: dict[str, asyncio.Future[None]] = {}  # subject -> its store trip
        self._usage = UsageBatch(self._write_usage, on_drop=self._usage_dropped)
        self._dropping = False

    # --- identify ---------------------------------------------------------------------

    async def identify(self, headers: Headers, scopes: Collection[str]) -> Caller:
        """The caller of a request for a connector named in `scopes` (any one will do).

        Raises `Unauthorized` (no, unknown, expired or revoked credential), `Forbidden`
        (a key without any of `scopes`), `StoreDown` (a key, and no store to check it in),
        `ServiceLocked` / `CredentialsUnavailable` (no static secret to check against)."""
        text = _presented(headers)
        known = self._identify_now(headers, text, scopes)
        if known is not None:
            return known
        if not is_key_shaped(text):
            await authenticate(headers, self.credentials)
            return self.static_caller()
        return await self.identify_key(self.key_digest(text), scopes)

    def identify_now(self, headers: Headers, scopes: Collection[str]) -> Caller | None:
        """The caller when it is allowed and that is known without I/O: a static secret
        held in memory (compared in constant time, as `identify` does), or a key whose
        record is in the key cache, neither revoked nor expired, with one of `scopes`.
        None for anything else: `identify` then decides (and raises what it must)."""
        return self._identify_now(headers, _presented(headers), scopes)

    def _identify_now(self, headers: Headers, text: str, scopes: Collection[str]) -> Caller | None:
        # `text`: the credential `headers` present (`_presented`), read once by `identify`.
        if not is_key_shaped(text):
            secrets = self.credentials.bearer_secrets_now()
            if not secrets:
                return None
            try:
                authorize(
                    headers.getlist("authorization"), secrets, headers.getlist(API_KEY_HEADER)
                )
            except Unauthorized:
                return None
            return self.static_caller()
        hit, record = self._cache.get(self.key_digest(text), self._clock())
        if not hit or record is None or not self._usable(record, scopes):
            return None
        current_record().key_id = record.key_id
        return self._caller(record)

    def static_caller(self) -> Caller:
        """The caller of a request that presented a static secret (checked by the caller)."""
        current_record().key_id = STATIC_SUBJECT
        return self._static  # immutable: one for every request

    def key_digest(self, key: str) -> str:
        """The digest a key is stored and looked up under (OAuth grants keep only this)."""
        return digest(key, self._pepper)

    async def identify_key(self, key_digest: str, scopes: Collection[str]) -> Caller:
        """The caller of the key with `key_digest`, through the same cached lookup (and so
        the same revocation bound) as `identify`; raises as `identify` does."""
        record = await self._key(key_digest)
        now = self._clock()
        if record is None:
            raise Unauthorized("Unknown key. Send a key this service issued, or its secret.")
        current_record().key_id = record.key_id
        if record.revoked is not None:
            raise Unauthorized("This key has been revoked. Ask for a new one.")
        if record.expires is not None and record.expires <= now:
            raise Unauthorized("This key has expired. Ask for a new one.")
        caller = self._caller(record)
        if not self._usable(record, scopes):
            await self.record(caller.subject, Usage(refused=1))
            wanted = " or ".join(sorted(scopes))
            allowed = ", ".join(sorted(record.scopes))
            raise Forbidden(f"This key may not use {wanted}; it is limited to: {allowed}.")
        return caller

    def _caller(self, record: KeyRecord) -> Caller:
        limits = Limits(
            rpm=record.rpm or self._rpm,
            daily_requests=record.daily_requests,
            monthly_tokens=record.monthly_tokens,
        )
        return Caller(record.key_id, record.key_id, record.scopes, record.models, limits)

    def _usable(self, record: KeyRecord, scopes: Collection[str]) -> bool:
        """Not revoked, not expired, and in scope."""
        if record.revoked is not None:
            return False
        if record.expires is not None and record.expires <= self._clock():
            return False
        return not record.scopes or bool(record.scopes.intersection(scopes))

    async def _key(self, key_digest: str) -> KeyRecord | None:
        now = self._clock()
        hit, record = self._cache.get(key_digest, now)
        if hit:
            return record
        try:
            record = await self._with_store(lambda store: store.key_by_digest(key_digest))
        except StoreUnavailable:
            raise StoreDown() from None
        self._cache.put(key_digest, record, now)
        return record

    @property
    def store(self) -> Store:
        """The store of keys and limits (also the home of other shared state: the response
        cache, OAuth)."""
        return self._store

    # --- admit ------------------------------------------------------------------------

    async def admit(
        self,
        caller: Caller,
        *,
        model: str | None = None,
        takes_model: bool = False,
        openai_names: bool = False,
    ) -> Admission:
        """Admit one request of `caller`, or raise (see the module docstring).

        `takes_model`: the request names an upstream model (`model`, None when it names
        none): a key limited to some models must name one of them. `openai_names`: the
        answer also carries OpenAI's `x-ratelimit-*` fields."""
        request = current_record()
        request.openai_limit_names = openai_names
        if caller.models and takes_model and model not in caller.models:
            await self.record(caller.subject, Usage(refused=1))
            allowed = ", ".join(sorted(caller.models))
            asked = f"the model '{model}'" if model else "the default model (name one)"
            raise Forbidden(f"This key may not use {asked}; it may use: {allowed}.")
        while True:
            admission = self.admit_now(caller, openai_names=openai_names)
            if admission is not None:
                return admission
            count = self._allowance.size(caller.subject, caller.limits)
            asking = self._asking.get(caller.subject)
            if count == 1 or asking is None or asking.done() or asking.get_loop() is not _loop():
                break
            # Another request of this subject is asking the store for a lease: it may serve
            # this one too (one trip, not one per waiting request). Without leases, trips
            # run side by side: waiting could only serialise them.
            await asyncio.shield(asking)
        return await self._admit_from_store(caller, openai_names, count)

    def admit_now(self, caller: Caller, *, openai_names: bool = False) -> Admission | None:
        """An admission of a request of `caller` that names no model, from the admissions
        its lease holds (sets the request's limit state as `admit` does); None when it
        would need the store (then call `admit`)."""
        now = self._clock()
        decision = self._allowance.take(caller.subject, now)
        if decision is None:
            return None
        return self._admitted(caller, decision, now, openai_names)

    async def _admit_from_store(self, caller: Caller, openai_names: bool, count: int) -> Admission:
        subject, limits = caller.subject, caller.limits
        asking = _loop().create_future()
        if count > 1:
            self._asking[subject] = asking
        try:
            now = self._clock()
            try:
                decision = await self._with_store(
                    lambda store: store.admit(subject, limits, now, count)
                )
            except StoreUnavailable:
                if caller.key_id is not None:
                    raise StoreDown() from None
                decision = self._local.admit(subject, limits, now)
            decision, unused = self._allowance.grant(subject, decision, now)
        finally:
            if self._asking.get(subject) is asking:
                del self._asking[subject]
            asking.set_result(None)
        self._give_back([unused] if unused else [])
        self._give_back(self._allowance.lapsed(now))
        if not decision.allowed:
            current_record().limits = decision
            await self.record(subject, Usage(refused=1))
            raise _refusal(caller, decision)
        return self._admitted(caller, decision, now, openai_names)

    def _admitted(
        self, caller: Caller, decision: Decision, now: float, openai_names: bool
    ) -> Admission:
        request = current_record()
        request.openai_limit_names = openai_names
        request.limits = decision
        if caller.key_id is not None:
            self._touch(caller.key_id, now)
        return Admission(self, caller, decision)

    async def enter(
        self, headers: Headers, scopes: Collection[str], *, openai_names: bool = False
    ) -> Admission:
        """`identify` then `admit`, for requests that name no model."""
        caller = await self.identify(headers, scopes)
        return await self.admit(caller, openai_names=openai_names)

    # --- usage ------------------------------------------------------------------------

    async def record(self, subject: str, usage: Usage) -> None:
        """Add `usage` to `subject`'s counters for today: in memory at once, in the store
        within about a second (app/usage_batch.py); never raises."""
        self._usage.add(subject, self._clock(), usage)

    async def flush_usage(self, subject: str | None = None) -> bool:
        """Write the usage counted so far (only `subject`'s, if given) to the store now
        (AWS Lambda: at the end of each invocation); True when all of it was written, else
        it stays pending."""
        return await self._usage.flush(subject)

    def answered(self, request: RequestRecord) -> None:
        """Count an admitted keyed request's upstream failure (a 5xx answer, or the
        upstream's own 429) in its caller's usage, once its answer is complete (in memory
        at once, as `record` does: no await on every request's way out)."""
        admitted = request.limits is not None and request.limits.allowed
        failed = request.status >= 500 or request.upstream_status == 429
        if admitted and request.key_id and failed:
            self._usage.add(request.key_id, self._clock(), Usage(upstream_errors=1))

    def _give_back(self, unused: Collection[Unused]) -> None:
        for each in unused:
            self._usage.add(each.subject, each.granted_at, Usage(requests=-each.left))

    async def _write_usage(self, subject: str, now: float, usage: Usage) -> None:
        await self._with_store(lambda store: store.record(subject, now, usage))
        self._dropping = False

    def _usage_dropped(self, subject: str) -> None:
        if self._dropping:
            return
        self._dropping = True
        log.warning(
            "usage not recorded: the store is unreachable and too much usage is pending",
            extra={"fields": {"event": "usage_not_recorded", "key_id": subject}},
        )

    def _touch(self, key_id: str, now: float) -> None:
        if now - self._touched.get(key_id, 0.0) < _TOUCH_EVERY:
            return
        self._touched[key_id] = now
        task = asyncio.get_running_loop().create_task(self._touch_now(key_id, now))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _touch_now(self, key_id: str, now: float) -> None:
        try:
            await self._with_store(lambda store: store.touch(key_id, now))
        except StoreUnavailable:
            pass  # last-used is informational; the outage is logged already

    # --- the store --------------------------------------------------------------------

    async def _with_store(self, operation: Callable[[Store], Awaitable[T]]) -> T:
        if self._down and time.monotonic() < self._retry_at:
            raise StoreUnavailable("the store is unreachable (retrying shortly)")
        try:
            result = await operation(self._store)
        except StoreUnavailable as error:
            self._failed(error)
            raise
        if self._down:
            self._down = False
            log.warning(
                "the store is reachable again: keys and shared limits are back",
                extra={"fields": {"event": "store_recovered", "store": self.store_url_safe}},
            )
        return result

    def _failed(self, error: StoreUnavailable) -> None:
        self._retry_at = time.monotonic() + _RETRY_STORE
        if self._down:
            return
        self._down = True
        log.error(
            "the store is unreachable (%s): keyed callers get 503, CHATGPT_SECRET callers "
            "are limited in process until it is back",
            error,
            extra={"fields": {"event": "store_unavailable", "store": self.store_url_safe}},
        )

    @property
    def store_url_safe(self) -> str:
        """The store's URL without any password, for logs."""
        scheme, sep, rest = self.store_url.partition("://")
        host = rest.rsplit("@", 1)[-1]
        return f"{scheme}{sep}{host}"

    async def aclose(self) -> None:
        """Give back unused leases, write pending usage, then close the store."""
        self._give_back(list(self._allowance.release()))
        for task in list(self._tasks):
            await asyncio.gather(task, return_exceptions=True)
        if not await self._usage.aclose():
            log.warning(
                "usage not recorded: the store is unreachable at shutdown",
                extra={"fields": {"event": "usage_not_recorded", "pending": self._usage.pending}},
            )
        await self._store.aclose()


def _loop() -> asyncio.AbstractEventLoop:
    return asyncio.get_running_loop()


def _presented(headers: Headers) -> str:
    token = presented_credential(headers.getlist("authorization"), headers.getlist(API_KEY_HEADER))
    return token.decode("utf-8", "surrogateescape") if token is not None else ""


def _refusal(caller: Caller, decision: Decision) -> LimitExceeded:
    who = "This key" if caller.key_id is not None else "This service's shared secret"
    if decision.reason == "rate_limited":
        wait = max(1, round(decision.retry_after + 0.499))
        message = f"{who} may make {decision.rpm} requests per minute. Retry in {wait} s."
        return LimitExceeded("rate_limited", message, decision.retry_after)
    # The store's quota refusal says when it reopens (the next UTC day or month).
    if decision.daily_limit is not None and not decision.daily_remaining:
        message = f"{who} has used its {decision.daily_limit} requests for today (UTC)."
    else:
        message = f"{who} has used its {decision.monthly_tokens} tokens for this month (UTC)."
    return LimitExceeded(
        "quota_exceeded", message + " Retrying will not help.", decision.retry_after
    )
