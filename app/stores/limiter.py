"""The limiter's arithmetic, shared by the backends: GCRA in integer microseconds and the
UTC calendar windows (day, month) the quotas count in.

GCRA keeps one number per subject, the theoretical arrival time `tat`: a request at `now`
is admitted when `max(tat, now) + inc - now <= period`, and then `tat` becomes
`max(tat, now) + inc`. With `inc = period // limit` (integer microseconds) a burst admits
exactly `limit` for any limit below ~7700 per minute (above that, one more may pass).
Integer microseconds stay exact in Redis's Lua doubles (epoch µs < 2**53).
"""

from __future__ import annotations

import datetime as dt
import functools
import math
from dataclasses import dataclass, replace
from typing import Literal

from app.store import Decision, Limits

__all__ = [
    "MINUTE_US",
    "Gcra",
    "allowed",
    "day_of",
    "fitting",
    "gcra",
    "month_of",
    "quota_refusal",
    "rate_refusal",
    "us",
]

MINUTE_US = 60_000_000


def us(seconds: float) -> int:
    """Epoch seconds as integer microseconds."""
    return round(seconds * 1_000_000)


@dataclass(frozen=True)
class Gcra:
    """One GCRA step: whether it admits, the new `tat`, and what the headers report."""

    allowed: bool
    tat: int
    """The state to store when allowed (µs); the unchanged state when refused."""
    remaining: int
    reset: float
    retry_after: float
    granted: int = 1
    """Admissions granted (0 when refused)."""


def increment(limit: int, period_us: int = MINUTE_US) -> int:
    return max(1, period_us // max(1, limit))


def gcra(
    tat: int | None, now_us: int, limit: int, period_us: int = MINUTE_US, count: int = 1
) -> Gcra:
    """Decide up to `count` requests against the stored `tat` (None: never seen): as many
    as fit now, each moving `tat` one interval on (all or part of a burst at once)."""
    base = max(tat or now_us, now_us)
    granted = fitting(base, now_us, limit, count, period_us)
    if granted < 1:
        return refused_after(base, now_us, limit, period_us)
    new_tat = base + granted * increment(limit, period_us)
    return replace(decision_after(new_tat, now_us, limit, period_us), granted=granted)


def fitting(base: int, now_us: int, limit: int, count: int, period_us: int = MINUTE_US) -> int:
    """How many of `count` requests fit when `tat` is `base` (>= now): request k fits when
    `base + k * inc - now <= period`."""
    return max(0, min(count, (period_us - (base - now_us)) // increment(limit, period_us)))


def decision_after(new_tat: int, now_us: int, limit: int, period_us: int = MINUTE_US) -> Gcra:
    """The header values once a request has moved `tat` to `new_tat`."""
    inc = increment(limit, period_us)
    remaining = max(0, (period_us - (new_tat - now_us)) // inc)
    return Gcra(True, new_tat, min(remaining, limit), (new_tat - now_us) / 1e6, 0.0)


def refused_after(tat: int, now_us: int, limit: int, period_us: int = MINUTE_US) -> Gcra:
    """The header values of a refusal against a stored `tat` that is too far ahead: the
    request would fit once `tat` has drained to `period - inc` ahead of now."""
    inc = increment(limit, period_us)
    retry = (tat + inc - period_us - now_us) / 1e6
    return Gcra(False, tat, 0, (tat - now_us) / 1e6, retry, granted=0)


def _utc(now: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(now, dt.UTC)


def day_of(now: float) -> str:
    """The UTC day of `now`, YYYY-MM-DD."""
    return _day(int(now // 86_400))


def month_of(now: float) -> str:
    """The UTC month of `now`, YYYY-MM."""
    return _day(int(now // 86_400))[:7]


@functools.lru_cache(maxsize=64)
def _day(number: int) -> str:
    # Unix time has exactly 86,400 s a day, so the day's number names it; formatting a
    # datetime cost ~4 us, on every request that counts usage.
    return _utc(number * 86_400.0).strftime("%Y-%m-%d")


def seconds_to_next_day(now: float) -> float:
    """Seconds from `now` to the next UTC midnight (when a daily quota opens again)."""
    return math.ceil(86_400 - now % 86_400)


def seconds_to_next_month(now: float) -> float:
    """Seconds from `now` to the first of next month, UTC (when a monthly quota opens)."""
    t = _utc(now)
    first = dt.datetime(t.year + t.month // 12, t.month % 12 + 1, 1, tzinfo=dt.UTC)
    return math.ceil(first.timestamp() - now)


def day_start(now: float) -> float:
    """Epoch seconds of the UTC midnight that starts `now`'s day."""
    return now - now % 86_400


def quota_refusal(
    limits: Limits, now: float, day_requests: int, month_tokens: int
) -> Decision | None:
    """The refusal when a quota is spent (daily requests, then monthly tokens), else None.
    `Retry-After` points at the window's end: the quota stays shut until then."""
    if limits.daily_requests is not None and day_requests >= limits.daily_requests:
        wait = seconds_to_next_day(now)
    elif limits.monthly_tokens is not None and month_tokens >= limits.monthly_tokens:
        wait = seconds_to_next_month(now)
    else:
        return None
    refusal = Gcra(False, 0, 0, wait, wait, granted=0)
    return _decision(limits, "quota_exceeded", refusal, day_requests, month_tokens)


def rate_refusal(limits: Limits, step: Gcra, day_requests: int, month_tokens: int) -> Decision:
    return _decision(limits, "rate_limited", step, day_requests, month_tokens)


def allowed(limits: Limits, step: Gcra, day_requests: int, month_tokens: int) -> Decision:
    """An admission of `step.granted` requests; `day_requests` already counts them."""
    return _decision(limits, "ok", step, day_requests, month_tokens)


def _decision(
    limits: Limits,
    reason: Literal["ok", "rate_limited", "quota_exceeded"],
    step: Gcra,
    day_requests: int,
    month_tokens: int,
) -> Decision:
    daily, monthly = limits.daily_requests, limits.monthly_tokens
    return Decision(
        allowed=step.allowed,
        reason=reason,
        rpm=limits.rpm,
        remaining=step.remaining,
        reset=step.reset,
        retry_after=step.retry_after,
        daily_limit=daily,
        daily_remaining=None if daily is None else max(0, daily - day_requests),
        monthly_tokens=monthly,
        tokens_remaining=None if monthly is None else max(0, monthly - month_tokens),
        granted=step.granted if step.allowed else 0,
    )
