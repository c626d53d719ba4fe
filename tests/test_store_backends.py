"""What differs per store backend: `STORE_URL` parsing, lazy imports, the schema, and
each backend going away and coming back (StoreUnavailable, then service again)."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from app.store import Limits, StoreUnavailable, open_store
from app.stores import sqlite as sqlite_store
from app.stores.sqlite import _HERE_MAX_ROWS, PAGE_SIZE, SCHEMA_VERSION, SqliteStore

NOW = 1_795_687_200.0
ROOT = Path(__file__).resolve().parent.parent


# -- STORE_URL --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "",
        "state.db",
        "sqlite://",
        "sqlite:///",
        "postgres://user:hunter2-secret@db/x",
        "redis://",
        "redis://:hunter2-secret@127.0.0.1:notaport/0",
        "dynamodb://table",  # no region
        "dynamodb://?region=eu-west-1",
        "hunter2-secret",
    ],
)
def test_a_bad_store_url_names_the_accepted_forms_and_never_echoes_it(url: str) -> None:
    with pytest.raises(ValueError, match="sqlite:///") as caught:
        open_store(url)
    message = str(caught.value)
    assert "redis://" in message and "dynamodb://TABLE?region=" in message
    assert "hunter2" not in message


def test_sqlite_url_paths_are_relative_after_three_slashes_absolute_after_four(
    tmp_path: Path,
) -> None:
    relative = open_store("sqlite:///data/state.db")
    absolute = open_store(f"sqlite:///{tmp_path}/state.db")
    assert isinstance(relative, SqliteStore) and isinstance(absolute, SqliteStore)
    assert relative.path == Path("data/state.db") and absolute.path == tmp_path / "state.db"
    asyncio.run(relative.aclose())
    asyncio.run(absolute.aclose())


@pytest.mark.parametrize(
    ("url", "absent"),
    [
        ("sqlite:///x.db", ("redis", "boto3", "botocore")),
        ("redis://127.0.0.1:1/0", ("boto3", "botocore")),
        ("dynamodb://t?region=eu-west-1", ("redis", "boto3", "botocore")),
    ],
)
def test_backends_import_only_their_own_client(url: str, absent: tuple[str, ...]) -> None:
    code = (
        "import sys; from app.store import open_store; open_store(sys.argv[1]); "
        "print(' '.join(m for m in sys.argv[2:] if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, url, *absent],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == ""


# -- SQLite -----------------------------------------------------------------------------


def test_sqlite_creates_its_folder_file_and_versioned_schema(tmp_path: Path) -> None:
    path = tmp_path / "new" / "folder" / "state.db"

    async def scenario() -> None:
        store = open_store(f"sqlite:///{path}")
        assert not path.exists()  # nothing happens before the first operation
        assert (await store.admit("s", Limits(rpm=1), NOW)).allowed
        await store.aclose()

    asyncio.run(scenario())
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert db.execute("PRAGMA page_size").fetchone() == (PAGE_SIZE,)


def test_sqlite_keeps_the_page_size_of_a_file_it_did_not_create(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA page_size = 4096")
        db.execute("CREATE TABLE earlier (x)")  # the file exists, with its page size

    async def scenario() -> None:
        store = SqliteStore(path)
        await store.kv_put("k", b"v" * 20_000, ttl=60, now=NOW)
        assert await store.kv_get("k", NOW) == b"v" * 20_000
        await store.aclose()

    asyncio.run(scenario())
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA page_size").fetchone() == (4096,)
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_sqlite_refuses_a_file_from_a_newer_schema(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")

    async def scenario() -> None:
        store = SqliteStore(path)
        with pytest.raises(StoreUnavailable, match="newer"):
            await store.list_keys()
        await store.aclose()

    asyncio.run(scenario())


def test_sqlite_unusable_path_is_unavailable_until_it_is_fixed(tmp_path: Path) -> None:
    blocker = tmp_path / "data"
    blocker.write_text("a file where the data folder should be")

    async def scenario() -> None:
        store = SqliteStore(blocker / "state.db")
        with pytest.raises(StoreUnavailable, match="sqlite"):
            await store.admit("s", Limits(rpm=10), NOW)
        blocker.unlink()  # the operator fixes it: the next call connects by itself
        assert (await store.admit("s", Limits(rpm=10), NOW)).allowed
        await store.aclose()

    asyncio.run(scenario())


def test_sqlite_locked_beyond_the_busy_timeout_is_unavailable_then_recovers(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state.db"

    async def scenario() -> None:
        store = SqliteStore(path, busy_timeout=0.2)
        assert (await store.admit("s", Limits(rpm=10), NOW)).allowed
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN EXCLUSIVE")  # a stuck writer in another process
        with pytest.raises(StoreUnavailable, match="locked"):
            await store.admit("s", Limits(rpm=10), NOW)
        other.execute("ROLLBACK")
        other.close()
        decision = await store.admit("s", Limits(rpm=10), NOW)
        assert decision.allowed and decision.remaining == 8  # the failed call took nothing
        await store.aclose()

    asyncio.run(scenario())


def test_sqlite_cache_reads_go_on_while_another_process_writes_and_puts_wait_for_it(
    tmp_path: Path,
) -> None:
    """kv_get reads on the event loop without waiting: a writer holding the file (another
    process mid-transaction) does not stop it. A put waits for the writer like any write,
    fails (StoreUnavailable, to every caller of that commit) past the busy timeout, and
    the next put works once the writer is gone."""
    path = tmp_path / "state.db"

    async def scenario() -> None:
        store = SqliteStore(path, busy_timeout=2.0)
        await store.kv_put("t:a", b"before", ttl=60, now=NOW)
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        other.execute("INSERT INTO kv VALUES ('t:b', x'00', 1e12)")
        started = time.monotonic()
        assert await store.kv_get("t:a", NOW) == b"before"
        assert await store.kv_get("t:b", NOW) is None  # not committed: not seen
        assert time.monotonic() - started < 1.0  # did not wait the 2 s busy timeout
        failed = await asyncio.gather(
            *(store.kv_put(f"t:c{n}", b"x", ttl=60, now=NOW) for n in range(5)),
            return_exceptions=True,
        )
        assert all(isinstance(f, StoreUnavailable) for f in failed), failed
        other.execute("COMMIT")
        other.close()
        await store.kv_put("t:d", b"after", ttl=60, now=NOW)
        assert await store.kv_get("t:d", NOW) == b"after"
        assert await store.kv_get("t:b", NOW) == b"\x00"
        assert await store.kv_get("t:c0", NOW) is None  # the failed commit stored nothing
        await store.aclose()

    asyncio.run(scenario())


def test_sqlite_cache_batches_commit_on_the_event_loop_unless_it_would_wait(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`kv_put_many` (the cache's batches) commits on the event loop's connection, with no
    trip to the worker thread, when the file is free, a large batch in several
    transactions; a batch put while another process holds the write lock waits for it
    (tries again after pauses, the loop free meanwhile) up to the busy timeout, then is
    refused. Every row is stored, and another process sees it at once."""
    path = tmp_path / "state.db"
    trips: list[object] = []

    async def scenario() -> None:
        store = SqliteStore(path, busy_timeout=5.0)
        run = store._run

        async def counted(work: Any) -> Any:
            trips.append(work)
            return await run(work)

        monkeypatch.setattr(store, "_run", counted)
        assert await store.kv_get("t:none", NOW) is None  # connects (and migrates): one trip
        trips.clear()
        await store.kv_put_many([(f"t:a{n}", b"a" * 100, NOW + 60) for n in range(3)], NOW)
        many = [(f"t:c{n}", b"c", NOW + 60) for n in range(2 * _HERE_MAX_ROWS + 1)]
        await store.kv_put_many(many, NOW)
        assert trips == []
        outside = sqlite3.connect(path, isolation_level=None)
        assert outside.execute("SELECT COUNT(*) FROM kv WHERE key LIKE 't:a%'").fetchone() == (3,)
        count = outside.execute("SELECT COUNT(*) FROM kv WHERE key LIKE 't:c%'").fetchone()
        assert count == (len(many),)

        outside.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        put = asyncio.ensure_future(store.kv_put_many([("t:b", b"b", NOW + 60)], NOW))
        await asyncio.sleep(0.3)
        assert not put.done()  # waiting for the lock, the loop free meanwhile
        outside.execute("COMMIT")
        await asyncio.wait_for(put, 5)
        assert outside.execute("SELECT value FROM kv WHERE key = 't:b'").fetchone() == (b"b",)
        assert trips == []

        store.busy_timeout = 0.3
        outside.execute("BEGIN IMMEDIATE")
        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match="locked"):
            await store.kv_put_many([("t:e", b"e", NOW + 60)], NOW)
        assert 0.2 < time.monotonic() - started < 2.0  # gave up after the busy timeout
        outside.execute("ROLLBACK")
        await store.kv_put_many([("t:d", b"d", NOW + 60)], NOW)  # the file is free again
        assert await store.kv_get("t:d", NOW) == b"d"
        assert await store.kv_get("t:e", NOW) is None
        assert trips == []
        outside.close()
        await store.aclose()

    asyncio.run(scenario())


def test_sqlite_checkpoints_what_the_event_loop_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The event loop's connection never checkpoints (it would hold the loop): the worker
    does, every `_CHECKPOINT_BYTES` written there, so the WAL stays about that small however
    much the cache writes."""
    monkeypatch.setattr(sqlite_store, "_CHECKPOINT_BYTES", 64 * 1024)
    path = tmp_path / "state.db"
    wal = tmp_path / "state.db-wal"

    async def scenario() -> None:
        store = SqliteStore(path)
        assert await store.kv_get("t:none", NOW) is None
        largest = 0
        for batch in range(40):  # 40 x 32 KB written
            rows = [(f"t:{batch}-{n}", bytes([n]) * 8000, NOW + 60) for n in range(4)]
            await store.kv_put_many(rows, NOW)
            largest = max(largest, wal.stat().st_size)
        assert largest < 400_000, largest  # unchecked, the WAL grows to 2.7 MB
        outside = sqlite3.connect(path, isolation_level=None)
        assert outside.execute("SELECT COUNT(*) FROM kv").fetchone() == (160,)
        outside.close()
        await store.aclose()

    asyncio.run(scenario())


def test_sqlite_cache_batches_delete_as_many_expired_entries_as_they_store(
    tmp_path: Path,
) -> None:
    """Expired key-value rows are read as absent at once; each batch of `kv_put_many`
    then deletes as many of them at most as it stores (the oldest first), so the file
    keeps pace with what expires, in steps the size of a batch."""
    path = tmp_path / "state.db"

    async def scenario() -> None:
        store = SqliteStore(path)
        await store.kv_put_many([(f"t:old{n}", b"o", NOW + 1 + n) for n in range(4)], NOW)
        later = NOW + 100
        assert await store.kv_get("t:old0", later) is None  # expired: absent, still there
        outside = sqlite3.connect(path, isolation_level=None)

        def left() -> list[str]:
            rows = outside.execute("SELECT key FROM kv WHERE expires <= ? ORDER BY key", (later,))
            return [key for (key,) in rows]

        assert left() == ["t:old0", "t:old1", "t:old2", "t:old3"]
        await store.kv_put_many([("t:new0", b"n", later + 60)], later)
        assert left() == ["t:old1", "t:old2", "t:old3"]  # one stored, the oldest gone
        await store.kv_put_many([(f"t:new{n}", b"n", later + 60) for n in range(1, 6)], later)
        assert left() == []
        assert outside.execute("SELECT COUNT(*) FROM kv").fetchone() == (6,)
        outside.close()
        await store.aclose()

    asyncio.run(scenario())


def test_sqlite_leaves_no_trace_of_a_deleted_small_value_in_its_file(tmp_path: Path) -> None:
    """What leaves the key-value space (a one-time code taken, an entry deleted) is zeroed
    in the file, not only unlinked: whoever copies the file later cannot read it back."""
    path = tmp_path / "state.db"
    code, entry = b"one-time-code-7f3a9c51", b"deleted-entry-0b44e2d9"

    async def scenario() -> None:
        store = SqliteStore(path)
        await store.kv_put("t:code", code, ttl=60, now=NOW)
        await store.kv_put_many([("t:entry", entry, NOW + 60)], NOW)
        assert await store.kv_take("t:code", NOW) == code
        await store.kv_delete("t:entry")
        await store.aclose()  # the last connection out checkpoints the WAL into the file

    asyncio.run(scenario())
    assert not (tmp_path / "state.db-wal").exists()
    data = path.read_bytes()
    assert code not in data and entry not in data


def test_sqlite_cache_batch_failing_midway_leaves_no_transaction_open(tmp_path: Path) -> None:
    """A batch whose row SQLite cannot take (an expiry past 64 bits: not an SQLite error)
    fails, and stores none of its rows; the file is free for every other writer at once,
    and no read sees a row of the failed batch."""
    path = tmp_path / "state.db"

    async def scenario() -> None:
        store = SqliteStore(path, busy_timeout=0.3)
        assert await store.kv_get("t:none", NOW) is None  # connects (and migrates)
        with pytest.raises(OverflowError):
            await store.kv_put_many([("t:a", b"a", NOW + 60), ("t:b", b"b", 2**63)], NOW)
        outside = sqlite3.connect(path, timeout=0, isolation_level=None)
        outside.execute("BEGIN IMMEDIATE")  # another process can write (nothing holds the lock)
        outside.execute("ROLLBACK")
        assert outside.execute("SELECT COUNT(*) FROM kv").fetchone() == (0,)
        outside.close()
        assert await store.kv_get("t:a", NOW) is None  # not even on the loop's connection
        assert await store.kv_add("t:c", b"c", 60, NOW)  # the worker writes, without waiting
        await store.kv_put_many([("t:a", b"a2", NOW + 60)], NOW)
        assert await store.kv_get("t:a", NOW) == b"a2"
        await store.aclose()

    asyncio.run(scenario())


def test_sqlite_store_shared_by_event_loops_of_two_threads_keeps_every_row(
    tmp_path: Path,
) -> None:
    """Two threads, each running its own event loop, put batches through one store and
    read each back at once. The process survives (the event loop's connection, used by
    both at once, crashed it), every read finds its row and every row is stored."""
    code = (
        "import asyncio, sqlite3, sys, threading\n"
        "from app.stores.sqlite import SqliteStore\n"
        "now = float(sys.argv[2])\n"
        "store = SqliteStore(sys.argv[1])\n"
        "asyncio.run(store.kv_get('t:none', now))\n"
        "missing = []\n"
        "def loop(tag):\n"
        "    async def puts():\n"
        "        for i in range(500):\n"
        "            rows = [(f't:{tag}{i}-{n}', b'v' * 100, now + 60) for n in range(5)]\n"
        "            await store.kv_put_many(rows, now)\n"
        "            if await store.kv_get(f't:{tag}{i}-4', now) is None:\n"
        "                missing.append((tag, i))\n"
        "    asyncio.run(puts())\n"
        "threads = [threading.Thread(target=loop, args=(tag,)) for tag in 'ab']\n"
        "for thread in threads: thread.start()\n"
        "for thread in threads: thread.join()\n"
        "asyncio.run(store.aclose())\n"
        "(count,) = sqlite3.connect(sys.argv[1]).execute('SELECT COUNT(*) FROM kv').fetchone()\n"
        "print(count, len(missing))\n"
    )
    argv = [sys.executable, "-c", code, str(tmp_path / "state.db"), str(NOW)]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
    assert done.stdout.split() == ["5000", "0"]


# -- Redis ------------------------------------------------------------------------------


def test_redis_down_is_unavailable_fast_then_recovers_on_restart(redis_server: Any) -> None:
    from app.stores.redis import RedisStore

    async def scenario() -> None:
        store = RedisStore(redis_server.url, clock="caller")
        assert (await store.admit("down", Limits(rpm=10), NOW)).allowed
        redis_server.stop()
        try:
            started = time.monotonic()
            with pytest.raises(StoreUnavailable, match="redis") as caught:
                await store.admit("down", Limits(rpm=10), NOW)
            assert time.monotonic() - started < 5  # generous: 1 s timeouts, one retry
            with pytest.raises(StoreUnavailable):
                await store.key_by_digest("0" * 64)
        finally:
            redis_server.start()  # same port, empty (no persistence)
        assert "password" not in str(caught.value)
        # The pool reconnects and the script is loaded again (NOSCRIPT) by itself.
        decision = await store.admit("down", Limits(rpm=10), NOW)
        assert decision.allowed and decision.remaining == 9
        await store.aclose()

    asyncio.run(scenario())


def test_redis_rate_runs_on_the_server_clock_by_default(redis_server: Any) -> None:
    async def scenario() -> None:
        store = open_store(redis_server.url)
        subject = f"server-clock-{time.time()}"
        started = time.monotonic()
        decisions = [await store.admit(subject, Limits(rpm=60), NOW) for _ in range(70)]
        elapsed = time.monotonic() - started
        allowed = sum(d.allowed for d in decisions)
        # 60 at once, plus one per second the loop took (one every 1 s at 60/min).
        assert 60 <= allowed <= 60 + int(elapsed) + 1
        refused = decisions[-1]
        assert not refused.allowed and 0 < refused.retry_after <= 1
        await asyncio.sleep(refused.retry_after + 0.05)
        assert (await store.admit(subject, Limits(rpm=60), NOW)).allowed
        # The caller's clock does not move the server's: an hour "later" is still refused.
        assert (await store.admit(f"{subject}-slow", Limits(rpm=1), NOW)).allowed
        assert not (await store.admit(f"{subject}-slow", Limits(rpm=1), NOW + 3600)).allowed
        await store.aclose()

    asyncio.run(scenario())


# -- DynamoDB ---------------------------------------------------------------------------


@pytest.fixture
def dynamo_table(moto_server: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    from tests.store_backends import create_table

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    table = f"backend-test-{time.monotonic_ns()}"
    create_table(moto_server.endpoint, table)
    return table


def test_dynamodb_down_is_unavailable_then_recovers(moto_server: Any, dynamo_table: str) -> None:
    url = f"dynamodb://{dynamo_table}?region=us-east-1&endpoint={moto_server.endpoint}"

    async def scenario() -> None:
        store = open_store(url)
        assert (await store.admit("down", Limits(rpm=10), NOW)).allowed
        moto_server.stop()
        try:
            started = time.monotonic()
            with pytest.raises(StoreUnavailable, match="dynamodb"):
                await store.admit("down", Limits(rpm=10), NOW)
            assert time.monotonic() - started < 10  # generous: 1 s timeouts, 2 attempts
        finally:
            moto_server.start()  # same port; moto's tables live in this process
        decision = await store.admit("down", Limits(rpm=10), NOW)
        assert decision.allowed and decision.remaining == 8
        await store.aclose()

    asyncio.run(scenario())


def test_dynamodb_missing_table_is_unavailable(moto_server: Any, dynamo_table: str) -> None:
    url = f"dynamodb://no-such-table?region=us-east-1&endpoint={moto_server.endpoint}"

    async def scenario() -> None:
        store = open_store(url)
        with pytest.raises(StoreUnavailable, match="ResourceNotFound"):
            await store.key_by_digest("0" * 64)
        await store.aclose()

    asyncio.run(scenario())


def test_dynamodb_expired_usage_is_ignored_although_moto_keeps_it(
    moto_server: Any, dynamo_table: str
) -> None:
    from app.store import Usage
    from app.stores.dynamodb import USAGE_DAYS, DynamoStore
    from tests.store_backends import count_items

    long_ago = time.time() - (USAGE_DAYS + 2) * 86_400

    async def scenario() -> tuple[int, int]:
        store = DynamoStore(dynamo_table, region="us-east-1", endpoint=moto_server.endpoint)
        await store.record("old", long_ago, Usage(refused=1))
        await store.record("old", time.time(), Usage(refused=2))
        shown = await store.usage("old", long_ago - 86_400)
        await store.aclose()
        return len(shown), count_items(moto_server.endpoint, dynamo_table)

    shown, stored = asyncio.run(scenario())
    assert (shown, stored) == (1, 2)


def test_dynamodb_rate_is_exact_when_moto_threads_switch_often(
    moto_server: Any, dynamo_table: str
) -> None:
    # DynamoDB applies a conditional update atomically; the test server must too, or the
    # exactness tests of tests/test_store.py fail at random under load. Switching threads
    # every 10 µs makes moto's own check-then-write interleave: before the server ran one
    # request at a time, every run of this test failed, each round granting 51-59.
    from app.stores.dynamodb import DynamoStore

    async def scenario() -> list[int]:
        totals = []
        for round_ in range(4):
            store = DynamoStore(dynamo_table, region="us-east-1", endpoint=moto_server.endpoint)
            decisions = await asyncio.gather(
                *(
                    store.admit(f"hot{round_}", Limits(rpm=50), NOW, count=1 + n % 4)
                    for n in range(100)
                )
            )
            totals.append(sum(d.granted for d in decisions))
            await store.aclose()
        return totals

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        totals = asyncio.run(scenario())
    finally:
        sys.setswitchinterval(interval)
    assert totals == [50] * 4


def test_sqlite_limit_holds_across_processes_sharing_the_file(tmp_path: Path) -> None:
    # Two workers on one host, each firing 100 admissions at once on a 50/min limit.
    code = (
        "import asyncio, sys\n"
        "from app.store import Limits\n"
        "from app.stores.sqlite import SqliteStore\n"
        "async def main():\n"
        "    store = SqliteStore(sys.argv[1])\n"
        "    now = float(sys.argv[2])\n"
        "    got = await asyncio.gather(\n"
        "        *(store.admit('shared', Limits(rpm=50), now) for _ in range(100)))\n"
        "    await store.aclose()\n"
        "    print(sum(d.allowed for d in got))\n"
        "asyncio.run(main())\n"
    )
    argv = [sys.executable, "-c", code, str(tmp_path / "state.db"), str(NOW)]
    workers = [
        subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, text=True) for _ in range(2)
    ]
    admitted = [int(w.communicate(timeout=60)[0]) for w in workers]
    assert sum(admitted) == 50, admitted
