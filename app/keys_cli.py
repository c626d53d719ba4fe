"""`python -m app keys ...`: create, list, revoke caller keys and read their usage.

Works against whatever `STORE_URL` names (the default SQLite file, Redis, DynamoDB).
`create` prints the key once; nothing else ever shows it (the store holds its digest).
With `--json`, each command prints one JSON document on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import sys
import time
from collections.abc import Sequence
from typing import Any

from app.keys import new_key
from app.settings import CoreSettings
from app.store import KeyRecord, Store, StoreUnavailable, UsageDay, open_store

__all__ = ["add_parser", "run"]


def _positive(text: str) -> int:
    if not text.isascii() or not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, not {text!r}")
    return int(text)


def _names(text: str) -> frozenset[str]:
    names = frozenset(part.strip() for part in text.split(",") if part.strip())
    if not names:
        raise argparse.ArgumentTypeError("give at least one name, comma-separated")
    return names


def _date(text: str) -> float:
    """`2026-12-31` (end of that day, UTC) or an ISO date-time (UTC unless it says)."""
    try:
        if len(text) == 10:
            day = dt.date.fromisoformat(text)
            moment = dt.datetime.combine(day, dt.time.max, dt.UTC)
        else:
            moment = dt.datetime.fromisoformat(text)
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=dt.UTC)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a date (2026-12-31) or date-time (2026-12-31T18:00Z), not {text!r}"
        ) from None
    return moment.timestamp()


def add_parser(commands: Any) -> None:
    """The `keys` command and its subcommands, on `commands` (an argparse subparsers)."""
    keys = commands.add_parser("keys", help="caller keys: create, list, revoke, usage")
    actions = keys.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="make a key (printed once)")
    create.add_argument("--name", required=True, help="who or what it is for")
    create.add_argument("--scopes", type=_names, help="connectors it may use (default: all)")
    create.add_argument("--models", type=_names, help="OpenAI models it may ask for (default: any)")
    create.add_argument(
        "--rpm", type=_positive, help="requests per minute (default RATE_LIMIT_RPM)"
    )
    create.add_argument("--daily-requests", type=_positive, help="requests per UTC day")
    create.add_argument("--monthly-tokens", type=_positive, help="OpenAI tokens per UTC month")
    create.add_argument("--expires", type=_date, help="YYYY-MM-DD (end of day, UTC) or ISO time")
    create.add_argument("--json", action="store_true", help="one JSON document on stdout")
    listing = actions.add_parser("list", help="every key (never the key itself)")
    listing.add_argument("--json", action="store_true")
    revoke = actions.add_parser("revoke", help="stop a key (within KEY_CACHE_TTL seconds)")
    revoke.add_argument("key_id")
    revoke.add_argument("--json", action="store_true")
    usage = actions.add_parser("usage", help="requests, refusals, errors and tokens per day")
    usage.add_argument("key_id", nargs="?", help="one key (default: every caller)")
    usage.add_argument("--days", type=_positive, default=7, help="days back, today included")
    usage.add_argument("--json", action="store_true")


def _when(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return dt.datetime.fromtimestamp(epoch, dt.UTC).isoformat(timespec="seconds")


def _public(record: KeyRecord) -> dict[str, Any]:
    return {
        "id": record.key_id,
        "name": record.name,
        "shown": f"{record.prefix}…{record.last4}",
        "scopes": sorted(record.scopes),
        "models": sorted(record.models),
        "rpm": record.rpm,
        "daily_requests": record.daily_requests,
        "monthly_tokens": record.monthly_tokens,
        "created": _when(record.created),
        "last_used": _when(record.last_used),
        "expires": _when(record.expires),
        "revoked": _when(record.revoked),
    }


def _table(rows: Sequence[Sequence[object]], header: Sequence[str]) -> str:
    text = [[str(cell) if cell is not None else "-" for cell in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in text)) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in text]
    return "\n".join(line.rstrip() for line in lines)


def _usage_json(days: Sequence[UsageDay]) -> list[dict[str, Any]]:
    return [
        {
            "subject": d.subject,
            "day": d.day,
            "requests": d.requests,
            "refused": d.refused,
            "upstream_errors": d.upstream_errors,
            "prompt_tokens": d.prompt_tokens,
            "completion_tokens": d.completion_tokens,
            "cache_saved": d.cache_saved,
        }
        for d in days
    ]


async def _run(args: argparse.Namespace, settings: CoreSettings, store: Store) -> int:
    now = time.time()
    if args.action == "create":
        made = new_key(
            args.name,
            pepper=settings.pepper,
            now=now,
            scopes=args.scopes or frozenset(),
            models=args.models or frozenset(),
            rpm=args.rpm,
            daily_requests=args.daily_requests,
            monthly_tokens=args.monthly_tokens,
            expires=args.expires,
        )
        await store.put_key(made.record)
        if args.json:
            print(json.dumps({**_public(made.record), "key": made.key}))
        else:
            print(f"Created {made.record.key_id} ({args.name}). The key, shown only this once:")
            print(f"\n    {made.key}\n")
            print("Send it as 'Authorization: Bearer <key>' or in an 'api-key' header.")
        return 0
    if args.action == "list":
        records = await store.list_keys()  # oldest first, as every backend returns them
        if args.json:
            print(json.dumps([_public(r) for r in records]))
            return 0
        rows = [
            [
                (p := _public(r))["id"],
                r.name,
                p["shown"],
                ",".join(p["scopes"]) or "all",
                ",".join(p["models"]) or "any",
                r.rpm or f"{settings.rate_limit_rpm} (default)",
                r.daily_requests,
                r.monthly_tokens,
                p["created"],
                p["last_used"],
                p["expires"],
                p["revoked"],
            ]
            for r in records
        ]
        header = ["id", "name", "key", "scopes", "models", "rpm", "daily", "monthly tokens"]
        print(_table(rows, [*header, "created", "last used", "expires", "revoked"]))
        return 0
    if args.action == "revoke":
        found = await store.revoke(args.key_id, now)
        if args.json:
            print(json.dumps({"id": args.key_id, "revoked": found}))
        elif found:
            print(
                f"Revoked {args.key_id}: it stops working within KEY_CACHE_TTL "
                f"({settings.key_cache_ttl:g} s)."
            )
        else:
            print(f"No key {args.key_id}.", file=sys.stderr)
        return 0 if found else 1
    since = now - (args.days - 1) * 86_400
    days = await store.usage(args.key_id, since)  # by caller, then day
    if args.json:
        print(json.dumps(_usage_json(days)))
        return 0
    header = ["caller", "day", "requests", "refused", "upstream errors", "prompt", "completion"]
    header.append("saved by cache")
    rows = [
        [
            d.subject,
            d.day,
            d.requests,
            d.refused,
            d.upstream_errors,
            d.prompt_tokens,
            d.completion_tokens,
            d.cache_saved,
        ]
        for d in days
    ]
    print(_table(rows, header) if rows else "No usage recorded in that period.")
    return 0


def run(args: argparse.Namespace, settings: CoreSettings, scopes: Sequence[str]) -> int:
    """Run a parsed `keys` command; `scopes` are the connector names a key may be given.
    Exit status 0 done, 1 no such key, 2 bad input, 3 the store cannot be reached."""
    unknown = sorted(((args.action == "create" and args.scopes) or frozenset()) - set(scopes))
    if unknown:
        print(
            f"unknown scope {', '.join(unknown)}: the connectors are {', '.join(scopes)}",
            file=sys.stderr,
        )
        return 2
    if args.action == "create" and args.expires is not None and args.expires <= time.time():
        print("--expires is in the past", file=sys.stderr)
        return 2
    try:
        store = open_store(settings.store)
    except ValueError as error:
        print(error, file=sys.stderr)
        return 2

    async def main() -> int:
        try:
            return await _run(args, settings, store)
        finally:
            await store.aclose()

    try:
        return asyncio.run(main())
    except StoreUnavailable as error:
        print(f"the store cannot be reached: {error}", file=sys.stderr)
        return 3
