"""The gate's leases and batched usage (app/allowance.py, app/usage_batch.py), on a real
SQLite store: at high rates admissions need few store trips and usage few writes, while
every limit and every count stays exact; the synchronous fast path (`identify_now`,
`admit_now`) answers only what it can decide without I/O."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from starlette.datastructures import Headers

from app.allowance import Allowance
from app.callers import Caller, Gate
from app.credentials import Credentials
from app.errors import LimitExceeded, StoreDown, Unauthorized
from app.keys import new_key
from app.observability import RequestRecord, _record, current_record
from app.store import Decision, Limits, StoreUnavailable, Usage
from app.stores.sqlite import SqliteStore
from tests.conftest import SECRET, make_settings

NOW = 1_795_000_000.0
ROOT = Path(__file__).resolve().parent.parent


class Counting:
    """A store that counts `admit` and `record` calls, and can be taken down."""

    def __init__(self, store: SqliteStore) -> None:
        self.inner = store
        self.admits = 0
        self.records = 0
        self.down = False

    async def admit(self, subject: str, limits: Limits, now: float, count: int = 1) -> Decision:
        self.admits += 1
        if self.down:
            raise StoreUnavailable("test: down")
        return await self.inner.admit(subject, limits, now, count)

    async def record(self, subject: str, now: float, usage: Usage) -> None:
        self.records += 1
        if self.down:
            raise StoreUnavailable("test: down")
        await self.inner.record(subject, now, usage)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def gate(path: Path, **settings: Any) -> tuple[Gate, Counting]:
    store = Counting(SqliteStore(path))
    made = Gate(
        make_settings(**settings),
        Credentials(bearer_secrets=(SECRET.encode(),)),
        store=store,  # type: ignore[arg-type]
        clock=lambda: NOW,
    )
    return made, store


def test_at_a_high_rate_admissions_and_usage_take_few_store_trips_and_stay_exact(
    tmp_path: Path,
) -> None:
    async def main() -> tuple[int, int, list[Any]]:
        g, store = gate(tmp_path / "s.db", rate_limit_rpm=60_000)
        for _ in range(200):
            admission = await g.admit(g.static_caller())
            await admission.spend(3, 2)
        admits, records = store.admits, store.records
        await g.aclose()
        usage = list(await SqliteStore(tmp_path / "s.db").usage("static", NOW))
        return admits, records, usage

    admits, records, [today] = asyncio.run(main())
    assert admits < 20  # one trip per request before leases: 200
    assert records <= 2  # one write per request before batching: 200
    assert (today.requests, today.prompt_tokens, today.completion_tokens) == (200, 600, 400)


def test_two_gates_sharing_a_store_admit_exactly_the_daily_quota(tmp_path: Path) -> None:
    async def main() -> tuple[int, int]:
        one, _ = gate(tmp_path / "s.db", rate_limit_rpm=60_000)
        two, _ = gate(tmp_path / "s.db", rate_limit_rpm=60_000)
        key = new_key("k", pepper=None, now=NOW, rpm=60_000, daily_requests=1000)
        await one.store.put_key(key.record)
        headers = Headers({"authorization": f"Bearer {key.key}"})
        admitted, refused = 0, {one: 0, two: 0}
        while min(refused.values()) < 3:  # until both refuse, leases held by either used up
            for g in (one, two):
                try:
                    await g.admit(await g.identify(headers, ["podcasts"]))
                    admitted += 1
                except LimitExceeded:
                    refused[g] += 1
        await one.aclose()
        await two.aclose()
        [today] = await SqliteStore(tmp_path / "s.db").usage(key.record.key_id, NOW)
        return admitted, today.requests

    assert asyncio.run(main()) == (1000, 1000)


def test_unused_admissions_of_a_lease_go_back_to_the_days_count(tmp_path: Path) -> None:
    async def main() -> tuple[int, int]:
        g, store = gate(tmp_path / "s.db", rate_limit_rpm=60_000)
        for _ in range(40):  # demand grows the lease
            await g.admit(g.static_caller())
        granted = (await store.inner.usage("static", NOW))[0].requests
        await g.aclose()
        [today] = await SqliteStore(tmp_path / "s.db").usage("static", NOW)
        return granted, today.requests

    granted, counted = asyncio.run(main())
    assert granted > 40  # the store granted more than was used...
    assert counted == 40  # ...and what was not used was given back


def test_a_slow_caller_gets_no_lease(tmp_path: Path) -> None:
    async def main() -> int:
        g, store = gate(tmp_path / "s.db", rate_limit_rpm=599)
        for _ in range(30):
            await g.admit(g.static_caller())
        await g.aclose()
        return store.admits

    assert asyncio.run(main()) == 30  # every admission asked the store, as before


def test_a_lease_serves_while_the_store_is_down_then_keyed_callers_get_503(
    tmp_path: Path,
) -> None:
    async def main() -> int:
        g, store = gate(tmp_path / "s.db")
        key = new_key("k", pepper=None, now=NOW, rpm=60_000)
        await store.put_key(key.record)
        caller = await g.identify(Headers({"authorization": f"Bearer {key.key}"}), ["x"])
        for _ in range(20):
            await g.admit(caller)
        store.down = True
        served = 0
        with pytest.raises(StoreDown):
            while True:
                await g.admit(caller)
                served += 1
        return served

    assert asyncio.run(main()) > 0


def test_identify_now_answers_only_what_needs_no_io(tmp_path: Path) -> None:
    async def main() -> None:
        g, store = gate(tmp_path / "s.db", rate_limit_rpm=60_000)
        key = new_key("k", pepper=None, now=NOW, scopes=frozenset({"podcasts"}))
        gone = new_key("gone", pepper=None, now=NOW)
        await store.put_key(key.record)
        await store.put_key(gone.record)
        keyed = Headers({"authorization": f"Bearer {key.key}"})
        revoked = Headers({"authorization": f"Bearer {gone.key}"})

        assert g.identify_now(keyed, ["podcasts"]) is None  # not looked up yet
        await g.identify(keyed, ["podcasts"])
        _record.set(RequestRecord(request_id="t"))  # as in a request: what the log line says
        await store.revoke(gone.record.key_id, NOW)
        with pytest.raises(Unauthorized):
            await g.identify(revoked, ["podcasts"])  # its record is in the cache now
        assert g.identify_now(revoked, ["podcasts"]) is None
        caller = g.identify_now(keyed, ["podcasts"])
        assert caller is not None and caller.key_id == key.record.key_id
        assert current_record().key_id == key.record.key_id
        assert g.identify_now(keyed, ["openai"]) is None  # out of scope: `identify` says 403

        static = g.identify_now(Headers({"api-key": SECRET}), ["podcasts"])
        assert static is not None and static.subject == "static"
        assert g.identify_now(Headers({"api-key": SECRET + "x"}), ["podcasts"]) is None
        assert g.identify_now(Headers({}), ["podcasts"]) is None
        await g.aclose()

    asyncio.run(main())


def test_admit_now_serves_only_from_a_lease(tmp_path: Path) -> None:
    async def main() -> tuple[int, int]:
        g, store = gate(tmp_path / "s.db", rate_limit_rpm=60_000)
        caller = g.static_caller()
        assert g.admit_now(caller) is None  # no lease yet: that needs the store
        for _ in range(10):
            await g.admit(caller)
        before = store.admits
        _record.set(RequestRecord(request_id="t"))  # as in a request: what the headers say
        now_served = 0
        while (admission := g.admit_now(caller, openai_names=True)) is not None:
            assert admission.decision.allowed
            assert current_record().limits is admission.decision
            assert current_record().openai_limit_names
            now_served += 1
        await g.aclose()
        return now_served, store.admits - before

    served, trips = asyncio.run(main())
    assert served > 0 and trips == 0


def test_a_flush_that_fails_keeps_the_usage_for_the_next_one(tmp_path: Path) -> None:
    async def main() -> int:
        g, store = gate(tmp_path / "s.db")
        await g.record("k1", Usage(refused=2))
        store.down = True
        assert not await g.flush_usage()
        store.down = False
        g._retry_at = 0.0  # the gate retries a down store at most once a second
        assert await g.flush_usage()
        await g.aclose()
        [today] = await SqliteStore(tmp_path / "s.db").usage("k1", NOW)
        return today.refused

    assert asyncio.run(main()) == 2


def test_a_caller_with_a_monthly_token_quota_gets_no_lease(tmp_path: Path) -> None:
    """Each admission of such a caller is checked against the tokens spent so far: a lease
    would admit requests past the quota."""
    caller = Caller("k1", "k1", frozenset(), frozenset(), Limits(rpm=60_000, monthly_tokens=50))

    async def main() -> tuple[int, bool]:
        g, store = gate(tmp_path / "s.db")
        for _ in range(10):
            admission = await g.admit(caller)
            await admission.spend(3, 2)  # 10 admissions, 50 tokens: the quota is spent
        try:
            await g.admit(caller)
            refused = False
        except LimitExceeded:
            refused = True
        await g.aclose()
        return store.admits, refused

    admits, refused = asyncio.run(main())
    assert admits == 11  # one store trip per request, as without leases
    assert refused  # the very next request sees the spent quota


def test_without_a_lease_concurrent_admissions_go_to_the_store_side_by_side(
    tmp_path: Path,
) -> None:
    """Waiting for another request's trip only helps when that trip asks for a lease."""

    class Slow(Counting):
        in_flight = 0
        most = 0

        async def admit(self, subject: str, limits: Limits, now: float, count: int = 1) -> Decision:
            Slow.in_flight += 1
            Slow.most = max(Slow.most, Slow.in_flight)
            try:
                await asyncio.sleep(0.05)
                return await super().admit(subject, limits, now, count)
            finally:
                Slow.in_flight -= 1

    async def main() -> int:
        g = Gate(
            make_settings(rate_limit_rpm=100),
            Credentials(bearer_secrets=(SECRET.encode(),)),
            store=Slow(SqliteStore(tmp_path / "s.db")),  # type: ignore[arg-type]
            clock=lambda: NOW,
        )
        await asyncio.gather(*(g.admit(g.static_caller()) for _ in range(10)))
        await g.aclose()
        return Slow.most

    assert asyncio.run(main()) > 1  # serialised, it was 1


def test_demand_for_leases_comes_back_down_after_a_busy_spell() -> None:
    """However long a subject stays busy, one lapsed lease halves what the next one asks."""
    allowance = Allowance()
    limits = Limits(rpm=60_000)  # at most 100 admissions a lease
    now = NOW
    for _ in range(200):  # busy: every lease used up in time
        size = allowance.size("s", limits)
        decision = Decision(True, "ok", limits.rpm, 1000, 1.0, granted=size)
        allowance.grant("s", decision, now)
        while allowance.take("s", now) is not None:
            pass
        now += 0.01
    assert allowance.size("s", limits) == 100
    now += 5  # quiet: the lease lapses with admissions left
    allowance.grant("s", Decision(True, "ok", limits.rpm, 1000, 1.0, granted=100), now - 2)
    allowance.grant("s", Decision(True, "ok", limits.rpm, 1000, 1.0, granted=1), now)
    assert allowance.size("s", limits) <= 50


def test_the_lambda_handler_takes_no_leases(tmp_path: Path) -> None:
    """An instance may be frozen for good after any invocation: with leases, the admissions
    it held unused would stay in the day's count. Five invocations, then the process ends
    without shutting down: the day counts exactly five requests."""
    store = tmp_path / "state.db"
    event = json.loads((ROOT / "tests" / "events" / "http-api.json").read_text())
    event.update(rawPath="/healthz", rawQueryString="", cookies=[])
    event["headers"] = {"host": "x", "authorization": f"Bearer {SECRET}"}
    event["requestContext"]["http"].update(method="GET", path="/api/v2/genres")
    event.update(rawPath="/api/v2/genres")
    script = (
        "import json, os, sys\n"
        "from app.lambda_handler import handler\n"
        "event = json.loads(sys.argv[1])\n"
        "codes = [handler(event, None)['statusCode'] for _ in range(5)]\n"
        "print(json.dumps(codes), flush=True)\n"
        "os._exit(0)  # frozen for good: no shutdown\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHATGPT", "STORE", "RATE"))}
    env.update(CHATGPT_SECRET=SECRET, STORE_URL=f"sqlite:///{store}", RATE_LIMIT_RPM="60000")
    env.pop("LISTEN_API_KEY", None)
    done = subprocess.run(
        [sys.executable, "-c", script, json.dumps(event)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(done.stdout.splitlines()[-1]) == [200] * 5

    async def counted() -> int:
        days = await SqliteStore(store).usage("static", 0)
        return sum(day.requests for day in days)

    assert asyncio.run(counted()) == 5
