"""One conformance suite for every store backend (app/store.py): SQLite on a file, Redis on
a real `redis-server`, DynamoDB on moto in server mode (tests/servers.py starts both).

Time is passed in (`now`), so windows are crossed without sleeping. The Redis backend
runs here on the caller's clock like the others; its production default, the server's
clock, has its own tests (tests/test_store_backends.py).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import replace
from typing import Any, TypeVar

import pytest

from app.store import KV_MAX_BYTES, KV_MAX_KEY, KeyRecord, Limits, Store, Usage, UsageDay
from tests.store_backends import BACKENDS, Backend, open_backend

T = TypeVar("T")

NOW = dt.datetime(2026, 11, 26, 10, tzinfo=dt.UTC).timestamp()
DAY = 86_400.0


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Backend]:
    yield from open_backend(request.param, request, monkeypatch)


def run(backend: Backend, scenario: Callable[[Store], Awaitable[T]]) -> T:
    """Run `scenario` on a fresh store of `backend`, in its own event loop."""

    async def main() -> T:
        store = backend.make()
        try:
            return await scenario(store)
        finally:
            await store.aclose()

    return asyncio.run(main())


def key(n: int, **fields: Any) -> KeyRecord:
    base = KeyRecord(
        key_id=f"k{n:03d}",
        digest=f"{n:064x}",
        name=f"bot {n}",
        prefix="pp_live_Ab",
        last4=f"{n:04d}"[-4:],
        created=NOW + n,
    )
    return replace(base, **fields)


# -- keys -------------------------------------------------------------------------------


def test_keys_round_trip_list_revoke_and_touch(backend: Backend) -> None:
    full = key(
        1,
        scopes=frozenset({"podcasts", "openai"}),
        models=frozenset({"gpt-4o-mini"}),
        rpm=100,
        daily_requests=1000,
        monthly_tokens=2_000_000,
        expires=NOW + 30 * DAY,
    )
    bare = key(2)

    async def scenario(store: Store) -> None:
        await store.put_key(full)
        await store.put_key(bare)
        assert await store.key_by_digest(full.digest) == full
        assert await store.key_by_id(bare.key_id) == bare
        assert await store.key_by_digest("f" * 64) is None
        assert await store.key_by_id("nope") is None
        assert [k.key_id for k in await store.list_keys()] == ["k001", "k002"]

        assert await store.revoke(full.key_id, NOW + 5) is True
        assert await store.revoke(full.key_id, NOW + 9) is True  # the first time stays
        assert await store.revoke("nope", NOW) is False
        await store.touch(bare.key_id, NOW + 7)
        assert await store.key_by_digest(full.digest) == replace(full, revoked=NOW + 5)
        assert await store.key_by_id(bare.key_id) == replace(bare, last_used=NOW + 7)
        listed = {k.key_id: k for k in await store.list_keys()}
        assert listed["k001"].revoked == NOW + 5 and listed["k002"].last_used == NOW + 7

    run(backend, scenario)


# -- the per-minute rate (GCRA) ----------------------------------------------------------


def test_rate_admits_the_limit_then_refuses_until_one_interval_passes(backend: Backend) -> None:
    limits = Limits(rpm=5)  # one request every 12 s, a burst of 5

    async def scenario(store: Store) -> None:
        burst = [await store.admit("s", limits, NOW) for _ in range(5)]
        assert [d.allowed for d in burst] == [True] * 5
        assert [d.remaining for d in burst] == [4, 3, 2, 1, 0]
        assert burst[0].reset == pytest.approx(12) and burst[-1].reset == pytest.approx(60)
        refused = await store.admit("s", limits, NOW + 1)
        assert (refused.allowed, refused.reason, refused.remaining) == (False, "rate_limited", 0)
        assert refused.retry_after == pytest.approx(11)  # the next slot opens at NOW + 12
        assert not (await store.admit("s", limits, NOW + 11.9)).allowed
        again = await store.admit("s", limits, NOW + 12)
        assert again.allowed and again.remaining == 0
        rested = await store.admit("s", limits, NOW + 12 + 60)
        assert rested.allowed and rested.remaining == 4
        assert (await store.admit("other", limits, NOW + 1)).remaining == 4  # per subject

    run(backend, scenario)


def test_rate_is_exact_under_200_concurrent_admissions(backend: Backend) -> None:
    async def scenario(store: Store) -> list[bool]:
        decisions = await asyncio.gather(
            *(store.admit("hot", Limits(rpm=50), NOW) for _ in range(200))
        )
        return [d.allowed for d in decisions]

    allowed = run(backend, scenario)
    assert allowed.count(True) == 50


def test_a_lease_grants_what_the_rate_allows_and_refuses_beyond(backend: Backend) -> None:
    limits = Limits(rpm=10)  # one every 6 s, a burst of 10

    async def scenario(store: Store) -> None:
        first = await store.admit("s", limits, NOW, count=4)
        assert (first.allowed, first.granted, first.remaining) == (True, 4, 6)
        assert first.reset == pytest.approx(24)
        edge = await store.admit("s", limits, NOW, count=8)  # only 6 are left
        assert (edge.allowed, edge.granted, edge.remaining) == (True, 6, 0)
        refused = await store.admit("s", limits, NOW + 1, count=5)
        assert (refused.allowed, refused.reason, refused.granted) == (False, "rate_limited", 0)
        assert refused.retry_after == pytest.approx(5)
        later = await store.admit("s", limits, NOW + 12, count=5)  # two intervals drained
        assert (later.granted, later.remaining) == (2, 0)
        [today] = await store.usage("s", NOW)
        assert today.requests == 12  # admit counts what it granted

    run(backend, scenario)


def test_a_lease_takes_at_most_what_is_left_of_the_daily_quota(backend: Backend) -> None:
    limits = Limits(rpm=6000, daily_requests=10)

    async def scenario(store: Store) -> None:
        assert (await store.admit("s", limits, NOW, count=7)).granted == 7
        edge = await store.admit("s", limits, NOW + 1, count=7)
        assert (edge.granted, edge.daily_remaining) == (3, 0)
        spent = await store.admit("s", limits, NOW + 2, count=7)
        assert (spent.allowed, spent.reason, spent.granted) == (False, "quota_exceeded", 0)
        # Unused admissions given back reopen the quota for exactly that many.
        await store.record("s", NOW + 3, Usage(requests=-2))
        back = await store.admit("s", limits, NOW + 4, count=7)
        assert (back.granted, back.daily_remaining) == (2, 0)
        [today] = await store.usage("s", NOW)
        assert today.requests == 10

    run(backend, scenario)


@pytest.mark.parametrize(
    ("limits", "total"),
    [(Limits(rpm=50), 50), (Limits(rpm=6000, daily_requests=37), 37)],
    ids=["rate", "daily"],
)
def test_leases_are_exact_under_100_concurrent_admissions(
    backend: Backend, limits: Limits, total: int
) -> None:
    async def scenario(store: Store) -> list[int]:
        decisions = await asyncio.gather(
            *(store.admit("hot", limits, NOW, count=1 + n % 4) for n in range(100))
        )
        return [d.granted for d in decisions]

    granted = run(backend, scenario)
    assert sum(granted) == total
    assert all(0 <= g <= 1 + n % 4 for n, g in enumerate(granted))


def test_a_refused_request_changes_no_counter(backend: Backend) -> None:
    limits = Limits(rpm=2, daily_requests=10, monthly_tokens=1000)

    async def scenario(store: Store) -> None:
        assert (await store.admit("s", limits, NOW)).allowed
        assert (await store.admit("s", limits, NOW)).allowed
        for _ in range(5):
            assert (await store.admit("s", limits, NOW + 1)).reason == "rate_limited"
        # Had the refusals consumed the rate, the slot at NOW + 30 would still be taken.
        after = await store.admit("s", limits, NOW + 30)
        assert after.allowed and after.daily_remaining == 7
        assert [(u.requests, u.refused) for u in await store.usage("s", NOW)] == [(3, 0)]

    run(backend, scenario)


# -- quotas -----------------------------------------------------------------------------


def test_daily_quota_counts_admitted_requests_only_and_reopens_next_day(backend: Backend) -> None:
    limits = Limits(rpm=1000, daily_requests=3)

    async def scenario(store: Store) -> None:
        ok = [await store.admit("s", limits, NOW + i) for i in range(3)]
        assert [d.daily_remaining for d in ok] == [2, 1, 0] and all(d.allowed for d in ok)
        for _ in range(4):
            refused = await store.admit("s", limits, NOW + 10)
            assert (refused.allowed, refused.reason) == (False, "quota_exceeded")
        midnight = dt.datetime(2026, 11, 27, tzinfo=dt.UTC).timestamp()
        assert refused.retry_after == pytest.approx(midnight - (NOW + 10), abs=1)
        assert refused.daily_limit == 3 and refused.daily_remaining == 0
        [today] = await store.usage("s", NOW)
        assert today.requests == 3  # the refused four consumed nothing
        tomorrow = await store.admit("s", limits, midnight + 1)
        assert tomorrow.allowed and tomorrow.daily_remaining == 2

    run(backend, scenario)


def test_monthly_tokens_admit_while_recorded_tokens_are_below_the_quota(
    backend: Backend,
) -> None:
    limits = Limits(rpm=1000, monthly_tokens=100)

    async def scenario(store: Store) -> None:
        first = await store.admit("s", limits, NOW)
        assert first.allowed and first.tokens_remaining == 100
        await store.record("s", NOW, Usage(prompt_tokens=40, completion_tokens=20))
        second = await store.admit("s", limits, NOW + 1)
        assert second.allowed and second.tokens_remaining == 40
        # Earlier in the month counts too; the quota may be overshot by what is in flight.
        await store.record("s", NOW - 5 * DAY, Usage(completion_tokens=50))
        refused = await store.admit("s", limits, NOW + 2)
        assert (refused.allowed, refused.reason, refused.tokens_remaining) == (
            False,
            "quota_exceeded",
            0,
        )
        december = dt.datetime(2026, 12, 1, tzinfo=dt.UTC).timestamp()
        assert refused.retry_after == pytest.approx(december - (NOW + 2), abs=1)
        assert (await store.admit("s", limits, december + 60)).allowed

    run(backend, scenario)


# -- usage ------------------------------------------------------------------------------


def test_usage_per_subject_and_day_from_since(backend: Backend) -> None:
    limits = Limits(rpm=1000)

    async def scenario(store: Store) -> None:
        for when, subject in ((NOW - 2 * DAY, "a"), (NOW - DAY, "a"), (NOW, "a"), (NOW, "b")):
            assert (await store.admit(subject, limits, when)).allowed
        await store.record("a", NOW, Usage(refused=2, upstream_errors=1, prompt_tokens=7))
        await store.record("a", NOW + 60, Usage(completion_tokens=5, cache_saved=1))
        await store.record("b", NOW - DAY, Usage(refused=1))

        today = dt.datetime.fromtimestamp(NOW, dt.UTC).date()
        days = [(today - dt.timedelta(days=n)).isoformat() for n in (2, 1, 0)]
        everyone = sorted(await store.usage(None, NOW - DAY), key=lambda u: (u.subject, u.day))
        assert everyone == [
            UsageDay("a", days[1], requests=1),
            UsageDay("a", days[2], 1, 2, 1, 7, 5, 1),
            UsageDay("b", days[1], refused=1),
            UsageDay("b", days[2], requests=1),
        ]
        a = sorted(await store.usage("a", NOW - 2 * DAY), key=lambda u: u.day)
        assert [u.day for u in a] == days and [u.requests for u in a] == [1, 1, 1]
        assert await store.usage("c", NOW - 9 * DAY) == []

    run(backend, scenario)


# -- key-value (the response cache, OAuth state) ------------------------------------------


def test_kv_values_live_until_their_ttl_on_the_callers_clock(backend: Backend) -> None:
    async def scenario(store: Store) -> None:
        await store.kv_put("t:a", b"one", ttl=10, now=NOW)
        assert await store.kv_get("t:a", NOW + 9.9) == b"one"
        assert await store.kv_get("t:a", NOW + 10) is None
        assert await store.kv_take("t:a", NOW + 10) is None  # expired: nobody takes it
        assert await store.kv_get("t:missing", NOW) is None
        await store.kv_put("t:b", b"old", ttl=10, now=NOW)
        await store.kv_put("t:b", b"new", ttl=60, now=NOW + 5)  # replaced, ttl too
        assert await store.kv_get("t:b", NOW + 30) == b"new"

    run(backend, scenario)


def test_kv_put_many_stores_each_row_in_order_until_its_expiry(backend: Backend) -> None:
    async def scenario(store: Store) -> None:
        await store.kv_put("t:old", b"replaced", ttl=60, now=NOW)
        rows = [
            ("t:old", b"first", NOW + 60),
            ("t:short", b"brief", NOW + 5),
            ("t:old", b"second", NOW + 60),  # a later row of a key lands last
        ]
        await store.kv_put_many(rows, NOW)
        assert await store.kv_get("t:old", NOW + 30) == b"second"
        assert await store.kv_get("t:short", NOW + 4) == b"brief"
        assert await store.kv_get("t:short", NOW + 5) is None
        await store.kv_put_many([], NOW)  # nothing to write: no error

    run(backend, scenario)


def test_kv_add_stores_only_where_no_live_value_is(backend: Backend) -> None:
    async def scenario(store: Store) -> None:
        assert await store.kv_add("t:a", b"first", ttl=10, now=NOW) is True
        assert await store.kv_add("t:a", b"second", ttl=10, now=NOW + 1) is False
        assert await store.kv_get("t:a", NOW + 1) == b"first"
        # An expired value no longer counts: the key can be added again.
        assert await store.kv_add("t:a", b"third", ttl=10, now=NOW + 10) is True
        assert await store.kv_get("t:a", NOW + 11) == b"third"

    run(backend, scenario)


def test_kv_add_has_one_winner_among_50_concurrent_adders(backend: Backend) -> None:
    async def scenario(store: Store) -> list[bool]:
        stores = [store] + [backend.make() for _ in range(4)]
        try:
            return list(
                await asyncio.gather(
                    *(stores[i % 5].kv_add("t:race", b"%d" % i, ttl=60, now=NOW) for i in range(50))
                )
            )
        finally:
            for other in stores[1:]:
                await other.aclose()

    assert run(backend, scenario).count(True) == 1


def test_kv_take_has_exactly_one_winner_among_50_concurrent_takers(backend: Backend) -> None:
    async def scenario(store: Store) -> list[bytes | None]:
        await store.kv_put("t:code", b"single-use", ttl=60, now=NOW)
        # Five store objects (five SQLite connections, Redis pools, boto3 clients) at once.
        stores = [store] + [backend.make() for _ in range(4)]
        try:
            taken = await asyncio.gather(
                *(stores[i % 5].kv_take("t:code", NOW + 1) for i in range(50))
            )
            assert await store.kv_get("t:code", NOW + 1) is None
            return list(taken)
        finally:
            for other in stores[1:]:
                await other.aclose()

    taken = run(backend, scenario)
    assert [t for t in taken if t is not None] == [b"single-use"]


def test_kv_puts_made_at_once_are_each_stored_when_they_return(backend: Backend) -> None:
    """20 concurrent puts (the SQLite store commits them together): each one is readable
    by another store object on the same data as soon as its own call has returned. Two
    concurrent puts of one key leave one of them whole; SQLite's group commit keeps them
    in call order (Redis and DynamoDB may run them on two connections, in either order)."""

    async def scenario(store: Store) -> None:
        other = backend.make()
        try:

            async def put_then_read(n: int) -> bytes | None:
                await store.kv_put(f"t:many:{n}", b"v%d" % n, ttl=60, now=NOW)
                return await other.kv_get(f"t:many:{n}", NOW)

            read = await asyncio.gather(*(put_then_read(n) for n in range(20)))
            assert read == [b"v%d" % n for n in range(20)]
            await asyncio.gather(
                store.kv_put("t:twice", b"first", ttl=60, now=NOW),
                store.kv_put("t:twice", b"second", ttl=60, now=NOW),
            )
            last = await other.kv_get("t:twice", NOW)
            kept = (b"second",) if backend.name == "sqlite" else (b"first", b"second")
            assert last in kept
        finally:
            await other.aclose()

    run(backend, scenario)


def test_kv_delete_removes_and_ignores_a_missing_key(backend: Backend) -> None:
    async def scenario(store: Store) -> None:
        await store.kv_put("t:a", b"x", ttl=60, now=NOW)
        await store.kv_delete("t:a")
        await store.kv_delete("t:never")
        assert await store.kv_get("t:a", NOW) is None
        assert await store.kv_take("t:a", NOW) is None

    run(backend, scenario)


def test_kv_values_are_any_bytes_up_to_the_limit_and_larger_ones_refused(
    backend: Backend,
) -> None:
    binary = bytes(range(256)) * 3 + b"\x00\xff\xfe" + "é".encode()
    largest = (b"\x00\x01\x80\xff" * KV_MAX_BYTES)[:KV_MAX_BYTES]

    async def scenario(store: Store) -> None:
        await store.kv_put("t:bin", binary, ttl=60, now=NOW)
        assert await store.kv_get("t:bin", NOW) == binary
        assert await store.kv_add("t:big", largest, ttl=60, now=NOW) is True
        assert await store.kv_take("t:big", NOW) == largest
        assert await store.kv_add("t:empty", b"", ttl=60, now=NOW) is True
        assert await store.kv_get("t:empty", NOW) == b""
        for write in (store.kv_put, store.kv_add):
            with pytest.raises(ValueError, match="at most"):
                await write("t:huge", largest + b"!", 60, NOW)
        with pytest.raises(ValueError, match="at most"):
            await store.kv_get("k" * (KV_MAX_KEY + 1), NOW)
        assert await store.kv_get("t:huge", NOW) is None

    run(backend, scenario)
