"""A caller's limit state on the wire, and the in-process limiter used while the store is down.

Every answer to an admitted caller says where it stands (`with_limits`), in the IETF
draft's fields (draft-ietf-httpapi-ratelimit-headers, structured-field lists):

    RateLimit-Policy: "minute";q=100;w=60, "day";q=1000;w=86400
    RateLimit: "minute";r=42;t=17, "day";r=958;t=40213

`t` is the seconds until the policy is fully restored (on a refusal: until the next
request is allowed, equal to `Retry-After`). Routes that OpenAI clients call add OpenAI's
names, `x-ratelimit-{limit,remaining,reset}-requests` (reset as a Go duration, `1.5s`);
a `RateLimit`, `RateLimit-Policy` or `x-ratelimit-*` field from elsewhere (the upstream's,
describing the operator's own account) is dropped from such an answer, so a caller reads
only its own.
The monthly token quota has no standard field; `python -m app keys usage` shows it.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict

from app.observability import RequestRecord
from app.store import Decision, Limits
from app.stores import limiter

__all__ = ["LocalLimiter", "go_duration", "limit_headers", "with_limits"]

_DAY = 86_400
_OURS = (b"ratelimit", b"ratelimit-policy")


def go_duration(seconds: float) -> str:
    """`seconds` as OpenAI writes its reset times: `12ms`, `1.5s`, `6m0s`."""
    if seconds < 1:
        return f"{max(0, round(seconds * 1000))}ms"
    if seconds < 60:
        return f"{round(seconds, 3):g}s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}m{rest}s"


def limit_headers(
    decision: Decision, *, openai_names: bool, now: float | None = None
) -> list[tuple[bytes, bytes]]:
    """The fields describing `decision` (see the module docstring)."""
    now = time.time() if now is None else now
    minute_t = decision.retry_after if decision.reason == "rate_limited" else decision.reset
    policy = [f'"minute";q={decision.rpm};w=60']
    state = [f'"minute";r={max(0, decision.remaining)};t={math.ceil(max(0.0, minute_t))}']
    if decision.daily_limit is not None:
        left = decision.daily_remaining if decision.daily_remaining is not None else 0
        policy.append(f'"day";q={decision.daily_limit};w={_DAY}')
        state.append(f'"day";r={max(0, left)};t={math.ceil(limiter.seconds_to_next_day(now))}')
    headers = [
        (b"ratelimit-policy", ", ".join(policy).encode()),
        (b"ratelimit", ", ".join(state).encode()),
    ]
    if openai_names:
        headers += [
            (b"x-ratelimit-limit-requests", str(decision.rpm).encode()),
            (b"x-ratelimit-remaining-requests", str(max(0, decision.remaining)).encode()),
            (b"x-ratelimit-reset-requests", go_duration(max(0.0, minute_t)).encode()),
        ]
    return headers


def with_limits(
    headers: list[tuple[bytes, bytes]], record: RequestRecord
) -> list[tuple[bytes, bytes]]:
    """An answer's `headers` with the request's limit state (`record.limits`, set when the
    caller was admitted or refused) added at the end, replacing any such fields already
    there; `headers` as they are when the request has none."""
    if record.limits is None:
        return headers
    ours = limit_headers(record.limits, openai_names=record.openai_limit_names)
    kept = [
        (name, value)
        for name, value in headers
        if (lower := name.lower()) not in _OURS and not lower.startswith(b"x-ratelimit-")
    ]
    return kept + ours


class LocalLimiter:
    """GCRA in process, per subject: the per-minute rate only, for the static secret's
    callers while the store cannot be reached (each process then limits on its own)."""

    def __init__(self, max_subjects: int = 1024) -> None:
        self._tat: OrderedDict[str, int] = OrderedDict()
        self._max = max_subjects

    def admit(self, subject: str, limits: Limits, now: float) -> Decision:
        rate_only = Limits(limits.rpm)  # the stores' GCRA, kept here instead of in a store
        step = limiter.gcra(self._tat.get(subject), limiter.us(now), limits.rpm)
        if not step.allowed:
            return limiter.rate_refusal(rate_only, step, 0, 0)
        self._tat[subject] = step.tat
        self._tat.move_to_end(subject)
        while len(self._tat) > self._max:
            self._tat.popitem(last=False)
        return limiter.allowed(rate_only, step, 0, 0)
