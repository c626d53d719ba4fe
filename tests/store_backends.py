"""How the store tests open each backend fresh: a new SQLite file, a flushed Redis database
(on the caller's clock), a new DynamoDB table on moto. Servers come from tests/servers.py."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from app.store import Store

__all__ = ["BACKENDS", "Backend", "count_items", "create_table", "open_backend"]

BACKENDS = ["sqlite", "redis", "dynamodb"]
_tables = itertools.count(1)


@dataclass
class Backend:
    name: str
    make: Callable[[], Store]
    """A new store object on the same data (call it inside the event loop that uses it)."""
    server: Any = None


def open_backend(
    name: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Backend]:
    if name == "sqlite":
        from app.stores.sqlite import SqliteStore

        path: Path = request.getfixturevalue("tmp_path") / "data" / "state.db"
        yield Backend(name, lambda: SqliteStore(path))
    elif name == "redis":
        import redis

        from app.stores.redis import RedisStore

        server = request.getfixturevalue("redis_server")
        redis.Redis.from_url(server.url).flushdb()
        yield Backend(name, lambda: RedisStore(server.url, clock="caller"), server)
    elif name == "dynamodb":
        from app.stores.dynamodb import DynamoStore

        server = request.getfixturevalue("moto_server")
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        table = f"store-test-{next(_tables)}"
        create_table(server.endpoint, table)
        yield Backend(
            name, lambda: DynamoStore(table, region="us-east-1", endpoint=server.endpoint), server
        )
    else:
        raise ValueError(name)


def create_table(endpoint: str, table: str) -> None:
    """The table infra/template.yaml declares: pk/sk strings, on demand, TTL on `ttl`."""
    import boto3

    client = boto3.client("dynamodb", region_name="us-east-1", endpoint_url=endpoint)
    client.create_table(
        TableName=table,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        KeySchema=[
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
    )
    client.update_time_to_live(
        TableName=table, TimeToLiveSpecification={"Enabled": True, "AttributeName": "ttl"}
    )


def count_items(endpoint: str, table: str) -> int:
    """How many items `table` holds, expired ones included (moto never deletes them)."""
    import boto3

    client = boto3.client("dynamodb", region_name="us-east-1", endpoint_url=endpoint)
    return int(client.scan(TableName=table, Select="COUNT")["Count"])
