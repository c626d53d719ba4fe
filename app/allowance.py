"""Admissions the store granted ahead of use (leases), served to later requests without I/O.

`Store.admit(..., count=k)` grants up to k admissions in one round trip, each counted in the
rate (GCRA) and in the day's requests as if admitted one by one. The gate uses one of them
at once and keeps the rest here, per subject, for `LEASE_SECONDS`; the requests that follow
take from it (`take`) instead of asking the store.

Lease size (`size`), so that the store is asked far less often at high rates while every
limit stays what it was:
- 1, exactly one admission per store trip as without leases, when leases are off (AWS
  Lambda: an instance may be frozen for good with admissions in hand), when the subject's
  rate is below `MIN_RPM` (600 a minute: at most 10 a second, where a store trip per
  request costs little and every admission may matter to another process), when it has a
  monthly token quota (each admission is checked against the tokens spent so far, which
  a lease would skip), or when its daily quota is near its end (less than 200 left, or not
  known yet: 1% of it would be below 2);
- otherwise it follows demand: 1 at first, then twice what the last grant was when it was
  used up before it lapsed, half of it when it lapsed unused; at most ~100 ms worth of the
  rate (rpm // 600) and 1% of what is left of the daily quota.

What a lease costs: totals never exceed a limit (the store granted every admission served),
but what one process holds, another cannot have: another process (or host, or Lambda
instance) sharing the subject may be refused up to one lease early, i.e. up to ~100 ms of
the rate or 1% of the day's remainder, per process holding a lease. What is left of a
lease when it lapses goes back to the day's `requests` count (the gate writes a negative
`requests`, see app/usage_batch.py), so usage counts only what was served; the rate it
took is not given back, which only makes the rate stricter, by at most one lease.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from app.store import Decision, Limits

__all__ = ["LEASE_SECONDS", "MIN_RPM", "Allowance", "Unused"]

LEASE_SECONDS = 1.0
MIN_RPM = 600
_DAILY_SHARE = 100  # a lease takes at most 1/100 of the day's remainder
_MAX_SUBJECTS = 10_000


@dataclass
class _Lease:
    left: int
    """Granted, not yet used."""
    expires: float
    granted_at: float
    """The `now` of the grant: unused admissions go back to that UTC day's count."""
    decision: Decision
    """The store's answer: header values after the whole lease was taken."""
    size: int
    """What the next lease asks for (demand)."""


@dataclass(frozen=True)
class Unused:
    """Admissions of a lapsed (or released) lease never used: `left` of `subject`, granted
    on the UTC day of `granted_at`."""

    subject: str
    granted_at: float
    left: int


class Allowance:
    """Leases per subject (see the module docstring). Every method is synchronous: no I/O."""

    def __init__(self, seconds: float = LEASE_SECONDS, *, enabled: bool = True) -> None:
        self.seconds = seconds
        self.enabled = enabled
        self._leases: dict[str, _Lease] = {}
        self._swept = 0.0

    def take(self, subject: str, now: float) -> Decision | None:
        """One admission from `subject`'s lease (what its limit headers report), or None
        when it holds none that is live."""
        lease = self._leases.get(subject)
        if lease is None or lease.left <= 0 or now >= lease.expires:
            return None
        lease.left -= 1
        return _after(lease.decision, lease.left)

    def size(self, subject: str, limits: Limits) -> int:
        """How many admissions to ask the store for (1: no lease)."""
        if not self.enabled or limits.rpm < MIN_RPM or limits.monthly_tokens is not None:
            return 1
        cap = limits.rpm // MIN_RPM
        lease = self._leases.get(subject)
        if limits.daily_requests is not None:
            known = lease.decision.daily_remaining if lease is not None else None
            cap = min(cap, (known or 0) // _DAILY_SHARE)
        return max(1, min(cap, lease.size if lease is not None else 1))

    def grant(self, subject: str, decision: Decision, now: float) -> tuple[Decision, Unused | None]:
        """Keep what `decision` granted beyond the one admission of the request that asked;
        returns that request's header values and what a lapsed lease it replaces left."""
        if not decision.allowed:
            return decision, None
        lease = self._leases.get(subject)
        unused: Unused | None = None
        size = 1
        if lease is not None:
            live = now < lease.expires
            # Demand follows what the store granted (never more than `size` asked for), so it
            # stays within twice the cap however long a subject stays busy.
            if live and lease.left <= 0:
                size = decision.granted * 2  # used up in time: more demand
            elif not live and lease.left > 0:
                size = max(1, lease.decision.granted // 2)
                unused = Unused(subject, lease.granted_at, lease.left)
            else:
                size = lease.size
            if live and lease.left > 0:  # granted to a concurrent request meanwhile: keep both
                left = lease.left + decision.granted - 1
                self._leases[subject] = _Lease(left, now + self.seconds, now, decision, size)
                return _after(decision, left), None
        elif len(self._leases) >= _MAX_SUBJECTS:
            unused = self._drop(next(iter(self._leases)))
        left = decision.granted - 1
        self._leases[subject] = _Lease(left, now + self.seconds, now, decision, size)
        return _after(decision, left), unused

    def lapsed(self, now: float) -> list[Unused]:
        """Forget leases that lapsed (at most once per lease period; else []), returning
        what they left unused."""
        if now - self._swept < self.seconds:
            return []
        self._swept = now
        gone = [s for s, lease in self._leases.items() if now >= lease.expires]
        return [u for u in (self._drop(s) for s in gone) if u is not None]

    def release(self) -> Iterator[Unused]:
        """Forget every lease (shutdown), yielding what each left unused."""
        for subject in list(self._leases):
            unused = self._drop(subject)
            if unused is not None:
                yield unused

    def _drop(self, subject: str) -> Unused | None:
        lease = self._leases.pop(subject)
        return Unused(subject, lease.granted_at, lease.left) if lease.left > 0 else None


def _after(decision: Decision, left: int) -> Decision:
    """The header values for a request that leaves `left` of its lease unused: those left
    are still this caller's to use. (Built field by field: `dataclasses.replace` cost
    ~10 us, on every request a lease serves.)"""
    daily = decision.daily_remaining
    if left > 0:
        remaining = min(decision.remaining + left, decision.rpm)
        daily = None if daily is None else daily + left
    else:
        remaining = decision.remaining
    return Decision(
        allowed=decision.allowed,
        reason=decision.reason,
        rpm=decision.rpm,
        remaining=remaining,
        reset=decision.reset,
        retry_after=decision.retry_after,
        daily_limit=decision.daily_limit,
        daily_remaining=daily,
        monthly_tokens=decision.monthly_tokens,
        tokens_remaining=decision.tokens_remaining,
        granted=1,
    )
