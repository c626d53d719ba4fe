"""The store on DynamoDB, for AWS Lambda: one table (`pk`, `sk`; TTL on `ttl`), through
DynamoDB's JSON API over httpx (app/stores/dynamodb_api.py: boto3 would cost ~90 ms of a
cold start).

    item               pk                 sk               attributes
    key record         KEY#<digest>       META             key_id, name, … (KeyRecord)
    key id index       KID#<key_id>       META             digest
    rate and tokens    RL#<subject>       STATE            tat (µs), m#YYYY-MM (tokens), ttl
    usage of one day   RL#<subject>       D#YYYY-MM-DD     requests, refused, …, ttl
    key-value entry    KV#<key>           V                v (binary), exp (epoch s), ttl

- Clock: the caller's `now` (Lambda hosts keep NTP time).
- `admit` (an update expression cannot compute `max(tat, now)`, so GCRA takes one of two
  conditional branches, chosen from the last `tat` this process saw):
  1. UpdateItem STATE: idle `tat = now + inc` if `tat < now`, or busy `tat = tat + inc` if
     `now <= tat <= now + period - inc`; both also require the month's tokens below the
     quota. On failure DynamoDB returns the old item: a refusal needs no other trip, a
     wrong branch tries the other one.
  A lease of k admissions moves `tat` by `k * inc` (k: as many as fit, from the old item
  when the first guess failed).
  2. UpdateItem D#day: `ADD requests k` if k fit below the daily quota (else k shrinks to
     what is left, from the old item). What the quota did not take of the rate taken in 1
     is given back (`tat - inc` each: exact, GCRA is additive), and when none fit this
     process remembers the day as spent for `_SPENT_FOR` seconds, so refusals meanwhile cost
     no trip (only unused lease admissions given back lower a count: they may reopen it).
  So: admitted in 2 round trips (3 on a wrong branch), rate-refused in 1.
  On a quota or rate refusal, `daily_remaining` is from the last count this process saw.
- Expired items may linger (DynamoDB deletes them within days; moto never): reads check
  `ttl` in code (for key-value entries, `exp`: the exact expiry, on the caller's clock).
- Key-value: `kv_add` is a PutItem conditional on no live entry; `kv_take` is one DeleteItem
  returning the old item, so of concurrent takers exactly one gets it. Reads are strongly
  consistent (an OAuth code is read right after it is written).
"""

from __future__ import annotations

import base64
import dataclasses
import time
from collections.abc import Iterator, Sequence
from typing import Any

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
from app.stores.dynamodb_api import DynamoApi, DynamoError, DynamoFailure

__all__ = ["USAGE_DAYS", "DynamoStore"]

USAGE_DAYS = 400
_STATE_TTL = 62 * 86_400
_SPENT_FOR = 2.0  # seconds a day seen spent is refused without asking (leases given back)
_USAGE_FIELDS = (
    "requests",
    "refused",
    "upstream_errors",
    "prompt_tokens",
    "completion_tokens",
    "cache_saved",
)
_KEY_TEXT = ("key_id", "name", "prefix", "last4")
_KEY_NUMBERS = ("rpm", "daily_requests", "monthly_tokens", "expires", "revoked", "last_used")
_INTEGERS = {"rpm", "daily_requests", "monthly_tokens"}


class DynamoStore:
    """The `Store` on DynamoDB table `table` (created by infra/template.yaml)."""

    name = "dynamodb"

    def __init__(self, table: str, *, region: str, endpoint: str | None = None) -> None:
        self.table = table
        self._api = DynamoApi(region, endpoint)
        self._tat_seen: dict[str, int] = {}
        self._requests_seen: dict[tuple[str, str], int] = {}
        self._day_spent: dict[tuple[str, str], tuple[int, float]] = {}  # count, until
        # A key id names one digest for the key's life: once seen, `touch` and `revoke`
        # need no KID# read (a round trip on each key's first request in a process).
        self._digests: dict[str, str] = {}

    async def _call(self, operation: str, *, table: bool = True, **params: Any) -> Any:
        """DynamoDB's answer to `operation` on the table (`table=False`: a transaction,
        whose items name it). A failed condition raises _ConditionFailed; anything else
        that goes wrong, StoreUnavailable."""
        request = {"TableName": self.table, **params} if table else params
        try:
            return await self._api.call(operation, request)
        except DynamoError as exc:
            if exc.code == "ConditionalCheckFailedException":
                raise _ConditionFailed(exc.item or {}) from None
            raise StoreUnavailable(f"dynamodb: {operation}: {exc}") from None
        except DynamoFailure as exc:
            raise StoreUnavailable(f"dynamodb: {operation}: {exc}") from None

    # -- keys -----------------------------------------------------------------------------

    async def put_key(self, record: KeyRecord) -> None:
        item = {"pk": _s(f"KEY#{record.digest}"), "sk": _s("META"), **_key_item(record)}
        index = {"pk": _s(f"KID#{record.key_id}"), "sk": _s("META"), "digest": _s(record.digest)}
        await self._call(
            "TransactWriteItems",
            table=False,
            TransactItems=[
                {"Put": {"TableName": self.table, "Item": item}},
                {"Put": {"TableName": self.table, "Item": index}},
            ],
        )
        self._digests[record.key_id] = record.digest

    async def key_by_digest(self, digest: str) -> KeyRecord | None:
        item = await self._get(f"KEY#{digest}", "META")
        if not item:
            return None
        record = _key_record(digest, item)
        self._digests[record.key_id] = digest
        return record

    async def key_by_id(self, key_id: str) -> KeyRecord | None:
        digest = await self._digest(key_id)
        return await self.key_by_digest(digest) if digest else None

    async def list_keys(self) -> Sequence[KeyRecord]:
        items = await self._scan("begins_with(pk, :p) AND sk = :m", {":p": "KEY#", ":m": "META"})
        records = [_key_record(item["pk"]["S"][4:], item) for item in items]
        return sorted(records, key=lambda r: (r.created, r.key_id))

    async def revoke(self, key_id: str, now: float) -> bool:
        return await self._update_key(key_id, "SET revoked = if_not_exists(revoked, :t)", now)

    async def touch(self, key_id: str, now: float) -> None:
        await self._update_key(key_id, "SET last_used = :t", now)

    async def _digest(self, key_id: str) -> str | None:
        if key_id in self._digests:
            return self._digests[key_id]
        item = await self._get(f"KID#{key_id}", "META")
        if not item:
            return None
        digest: str = item["digest"]["S"]
        self._digests[key_id] = digest
        return digest

    async def _update_key(self, key_id: str, expression: str, now: float) -> bool:
        digest = await self._digest(key_id)
        if digest is None:
            return False
        try:
            await self._call(
                "UpdateItem",
                Key={"pk": _s(f"KEY#{digest}"), "sk": _s("META")},
                UpdateExpression=expression,
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeValues={":t": _n(now)},
            )
        except _ConditionFailed:
            return False
        return True

    async def _get(self, pk: str, sk: str) -> dict[str, Any] | None:
        answer = await self._call("GetItem", Key={"pk": _s(pk), "sk": _s(sk)}, ConsistentRead=True)
        item: dict[str, Any] | None = answer.get("Item")
        return item

    async def _scan(self, condition: str, values: dict[str, str]) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {
            "FilterExpression": condition,
            "ExpressionAttributeValues": {k: _s(v) for k, v in values.items()},
        }
        while True:
            page = await self._call("Scan", **kwargs)
            items += page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return items
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    # -- limits and usage -----------------------------------------------------------------

    async def admit(self, subject: str, limits: Limits, now: float, count: int = 1) -> Decision:
        day, month = limiter.day_of(now), limiter.month_of(now)
        seen = self._requests_seen.get((subject, day), 0)
        spent = self._day_spent.get((subject, day))
        if spent is not None and now < spent[1] and limits.daily_requests is not None:
            refusal = limiter.quota_refusal(limits, now, spent[0], 0)
            if refusal is not None and refusal.reason == "quota_exceeded":
                return refusal
        if limits.daily_requests is not None:  # `seen`: about what is counted already
            count = max(1, min(count, limits.daily_requests - seen))
        now_us, inc = limiter.us(now), limiter.increment(limits.rpm)
        state_key = {"pk": _s(f"RL#{subject}"), "sk": _s("STATE")}
        tat_seen = self._tat_seen.get(subject, 0)
        busy = tat_seen >= now_us
        # A guess from the last `tat` seen; a failed condition returns the real one.
        granted = max(1, limiter.fitting(max(tat_seen, now_us), now_us, limits.rpm, count))
        for _ in range(4):
            update = self._gcra_branch(busy, now, now_us, granted * inc, month, limits)
            try:
                answer = await self._call(
                    "UpdateItem",
                    Key=state_key,
                    ReturnValues="ALL_NEW",
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                    **update,
                )
            except _ConditionFailed as exc:
                old = exc.item
                tokens = _int(old.get(f"m#{month}"))
                tat = _int(old.get("tat")) if "tat" in old else None
                self._tat_seen[subject] = tat or 0
                refusal = limiter.quota_refusal(
                    Limits(limits.rpm, None, limits.monthly_tokens), now, seen, tokens
                )
                if refusal is not None:
                    return limiter.quota_refusal(limits, now, seen, tokens) or refusal
                step = limiter.gcra(tat, now_us, limits.rpm, count=count)
                if not step.allowed:
                    return limiter.rate_refusal(limits, step, seen, tokens)
                busy, granted = (tat or 0) >= now_us, step.granted
                continue
            new = answer["Attributes"]
            new_tat, tokens = _int(new["tat"]), _int(new.get(f"m#{month}"))
            self._tat_seen[subject] = new_tat
            break
        else:
            raise StoreUnavailable("dynamodb: rate state kept changing (contention)")
        requests, counted = await self._count_requests(subject, day, now, limits, granted)
        if counted < granted:  # the daily quota had less left: give that rate back
            back = (granted - counted) * inc
            await self._call(
                "UpdateItem",
                Key=state_key,
                UpdateExpression="ADD tat :back",
                ExpressionAttributeValues={":back": _n(-back)},
            )
            new_tat -= back
        if counted == 0:
            spent = (limits.daily_requests or 0, now + _SPENT_FOR)
            self._day_spent[(subject, day)] = spent
            return limiter.quota_refusal(limits, now, spent[0], tokens) or _never()
        self._requests_seen[(subject, day)] = requests
        step = limiter.decision_after(new_tat, now_us, limits.rpm)
        step = dataclasses.replace(step, granted=counted)
        return limiter.allowed(limits, step, requests, tokens)

    def _gcra_branch(
        self, busy: bool, now: float, now_us: int, inc: int, month: str, limits: Limits
    ) -> dict[str, Any]:
        """The conditional update moving `tat` on by `inc` (all the granted intervals)."""
        values = {":now": _n(now_us), ":ttl": _n(int(now) + _STATE_TTL)}
        if busy:
            expression, condition = "SET tat = tat + :inc", "tat >= :now AND tat <= :max"
            values[":inc"] = _n(inc)
            values[":max"] = _n(now_us + limiter.MINUTE_US - inc)
        else:
            expression, condition = "SET tat = :next", "(attribute_not_exists(tat) OR tat < :now)"
            values[":next"] = _n(now_us + inc)
        names = {"#ttl": "ttl"}
        if limits.monthly_tokens is not None:
            condition += " AND (attribute_not_exists(#m) OR #m < :quota)"
            values[":quota"] = _n(limits.monthly_tokens)
            names["#m"] = f"m#{month}"
        return {
            "UpdateExpression": expression + ", #ttl = :ttl",
            "ConditionExpression": condition,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }

    async def _count_requests(
        self, subject: str, day: str, now: float, limits: Limits, count: int
    ) -> tuple[int, int]:
        """Count up to `count` admitted requests in the day's usage, as many as the daily
        quota has left: (the day's count after, how many were counted; 0 if none was)."""
        for _ in range(8):
            kwargs: dict[str, Any] = {
                "Key": {"pk": _s(f"RL#{subject}"), "sk": _s(f"D#{day}")},
                "UpdateExpression": "ADD requests :k SET #ttl = if_not_exists(#ttl, :ttl)",
                "ExpressionAttributeNames": {"#ttl": "ttl"},
                "ExpressionAttributeValues": {
                    ":k": _n(count),
                    ":ttl": _n(int(now) + USAGE_DAYS * 86_400),
                },
                "ReturnValues": "UPDATED_NEW",
            }
            if limits.daily_requests is not None:
                kwargs["ConditionExpression"] = "attribute_not_exists(requests) OR requests <= :max"
                kwargs["ExpressionAttributeValues"][":max"] = _n(limits.daily_requests - count)
                kwargs["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
            try:
                answer = await self._call("UpdateItem", **kwargs)
            except _ConditionFailed as exc:
                left = (limits.daily_requests or 0) - _int(exc.item.get("requests"))
                if left <= 0:
                    return 0, 0
                count = min(count, left)
                continue
            return _int(answer["Attributes"]["requests"]), count
        raise StoreUnavailable("dynamodb: the day's count kept changing (contention)")

    async def record(self, subject: str, now: float, usage: Usage) -> None:
        day, month = limiter.day_of(now), limiter.month_of(now)
        if usage.requests < 0:  # admissions given back: the day may have room again
            self._day_spent.pop((subject, day), None)
            self._requests_seen.pop((subject, day), None)
        adds = {f: getattr(usage, f) for f in _USAGE_FIELDS if getattr(usage, f)}
        expression = "SET #ttl = if_not_exists(#ttl, :ttl)"
        if adds:
            expression += " ADD " + ", ".join(f"{f} :{f}" for f in adds)
        values = {f":{f}": _n(v) for f, v in adds.items()}
        await self._call(
            "UpdateItem",
            Key={"pk": _s(f"RL#{subject}"), "sk": _s(f"D#{day}")},
            UpdateExpression=expression,
            ExpressionAttributeNames={"#ttl": "ttl"},
            ExpressionAttributeValues={**values, ":ttl": _n(int(now) + USAGE_DAYS * 86_400)},
        )
        tokens = usage.prompt_tokens + usage.completion_tokens
        if tokens:
            await self._call(
                "UpdateItem",
                Key={"pk": _s(f"RL#{subject}"), "sk": _s("STATE")},
                UpdateExpression="ADD #m :n SET #ttl = :ttl",
                ExpressionAttributeNames={"#m": f"m#{month}", "#ttl": "ttl"},
                ExpressionAttributeValues={
                    ":n": _n(tokens),
                    ":ttl": _n(int(max(now, time.time())) + _STATE_TTL),
                },
            )

    async def usage(self, subject: str | None, since: float) -> Sequence[UsageDay]:
        first = f"D#{limiter.day_of(since)}"
        if subject is None:
            items = await self._scan(
                "begins_with(pk, :p) AND sk BETWEEN :first AND :last",
                {":p": "RL#", ":first": first, ":last": "D#9999"},
            )
        else:
            items = list(await self._query(f"RL#{subject}", first))
        alive = time.time()
        return sorted(
            (
                UsageDay(
                    item["pk"]["S"][3:],
                    item["sk"]["S"][2:],
                    **{f: _int(item.get(f)) for f in _USAGE_FIELDS},
                )
                for item in items
                if _int(item.get("ttl")) > alive  # TTL deletion lags (never, on moto)
            ),
            key=lambda u: (u.subject, u.day),
        )

    async def _query(self, pk: str, first: str) -> Iterator[dict[str, Any]]:
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": "pk = :pk AND sk BETWEEN :first AND :last",
            "ExpressionAttributeValues": {
                ":pk": _s(pk),
                ":first": _s(first),
                ":last": _s("D#9999"),
            },
        }
        pages = []
        while True:
            page = await self._call("Query", **kwargs)
            pages += page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return iter(pages)
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    # -- key-value ------------------------------------------------------------------------

    async def kv_put(self, key: str, value: bytes, ttl: float, now: float) -> None:
        await self._call("PutItem", Item=_kv_item(key, value, ttl, now))

    async def kv_put_many(self, rows: Sequence[Row], now: float) -> None:
        """One PutItem each, in order (BatchWriteItem would save round trips but hands
        back unprocessed items to retry; Lambda's batches are small)."""
        for key, value, expires in rows:
            await self._call("PutItem", Item=_kv_item(key, value, expires - now, now))

    async def kv_add(self, key: str, value: bytes, ttl: float, now: float) -> bool:
        try:
            await self._call(
                "PutItem",
                Item=_kv_item(key, value, ttl, now),
                ConditionExpression="attribute_not_exists(pk) OR #exp <= :now",
                ExpressionAttributeNames={"#exp": "exp"},
                ExpressionAttributeValues={":now": _n(now)},
            )
        except _ConditionFailed:  # a live entry is there
            return False
        return True

    async def kv_get(self, key: str, now: float) -> bytes | None:
        answer = await self._call("GetItem", Key=_kv_key(key), ConsistentRead=True)
        return _kv_live(answer.get("Item"), now)

    async def kv_take(self, key: str, now: float) -> bytes | None:
        answer = await self._call("DeleteItem", Key=_kv_key(key), ReturnValues="ALL_OLD")
        return _kv_live(answer.get("Attributes"), now)

    async def kv_delete(self, key: str) -> None:
        await self._call("DeleteItem", Key=_kv_key(key))

    async def aclose(self) -> None:
        await self._api.aclose()


class _ConditionFailed(Exception):
    """A conditional write found its condition false; `item` is the old item when the
    request asked for it (`ReturnValuesOnConditionCheckFailure`), else empty."""

    def __init__(self, item: dict[str, Any]) -> None:
        super().__init__("the condition failed")
        self.item = item


def _never() -> Decision:
    raise AssertionError("a spent daily quota always refuses")


def _s(text: str) -> dict[str, str]:
    return {"S": text}


def _n(number: float) -> dict[str, str]:
    return {"N": repr(number)}


def _int(value: dict[str, str] | None) -> int:
    return int(value["N"]) if value else 0


def _kv_key(key: str) -> dict[str, Any]:
    check_kv(key)
    return {"pk": _s(f"KV#{key}"), "sk": _s("V")}


def _kv_item(key: str, value: bytes, ttl: float, now: float) -> dict[str, Any]:
    check_kv(key, value)
    expires = now + ttl
    v = {"B": base64.b64encode(value).decode()}  # binary attributes are base64 in JSON
    return {**_kv_key(key), "v": v, "exp": _n(expires), "ttl": _n(int(expires) + 1)}


def _kv_live(item: dict[str, Any] | None, now: float) -> bytes | None:
    if not item or float(item["exp"]["N"]) <= now:
        return None
    return base64.b64decode(item["v"]["B"])


def _key_item(record: KeyRecord) -> dict[str, Any]:
    item: dict[str, Any] = {name: _s(getattr(record, name)) for name in _KEY_TEXT}
    item["created"] = _n(record.created)
    item["scopes"] = _s(",".join(sorted(record.scopes)))
    item["models"] = _s(",".join(sorted(record.models)))
    for name in _KEY_NUMBERS:
        value = getattr(record, name)
        if value is not None:
            item[name] = _n(value)
    return item


def _key_record(digest: str, item: dict[str, Any]) -> KeyRecord:
    numbers: dict[str, Any] = {}
    for name in _KEY_NUMBERS:
        if name in item:
            text = item[name]["N"]
            numbers[name] = int(text) if name in _INTEGERS else float(text)
    return KeyRecord(
        digest=digest,
        **{name: item[name]["S"] for name in _KEY_TEXT},
        created=float(item["created"]["N"]),
        scopes=frozenset(filter(None, item["scopes"]["S"].split(","))),
        models=frozenset(filter(None, item["models"]["S"].split(","))),
        **numbers,
    )
