"""One structured log line per request, and no secret anywhere in logs or answers."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import threading
import time

import httpx
import pytest
import respx
from starlette.testclient import TestClient

from app.connectors.podcasts.operations import OPERATIONS
from app.observability import JsonFormatter, LineBatchHandler
from app.registry import Settings
from tests import payloads
from tests.conftest import AUTH, OTHER_SECRET, SECRET, UPSTREAM_KEY, AppFactory, LogCapture


def test_one_request_line_with_the_essentials(
    client: TestClient, upstream: respx.MockRouter, logs: LogCapture
) -> None:
    upstream.get("/genres").mock(return_value=httpx.Response(200, json={"genres": []}))
    response = client.get("/api/v2/genres?top_level_only=1", headers=AUTH)
    [line] = [json.loads(line) for line in logs.lines if '"event":"request"' in line]
    assert line["operation"] == "getGenres"
    assert line["status"] == 200
    assert line["upstream_status"] == 200
    assert line["method"] == "GET" and line["path"] == "/api/v2/genres"
    assert isinstance(line["latency_ms"], float)
    assert line["request_id"] == response.headers["x-request-id"]
    assert "top_level_only" not in json.dumps(line)  # query strings are never logged


def test_incoming_request_id_is_kept_when_well_formed(client: TestClient, logs: LogCapture) -> None:
    kept = client.get("/healthz", headers={"X-Request-Id": "trace-abc-12345"})
    assert kept.headers["x-request-id"] == "trace-abc-12345"
    replaced = client.get("/healthz", headers={"X-Request-Id": "bad id\twith junk"})
    assert replaced.headers["x-request-id"] != "bad id\twith junk"
    assert [e["request_id"] for e in logs.events("request")] == [
        "trace-abc-12345",
        replaced.headers["x-request-id"],
    ]


def test_settings_repr_hides_secrets() -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, listen_api_key=UPSTREAM_KEY, chatgpt_secret=f"{SECRET},{OTHER_SECRET}"
    )
    for text in (repr(settings), str(settings), settings.model_dump_json()):
        assert UPSTREAM_KEY not in text and SECRET not in text and OTHER_SECRET not in text


def test_weak_secret_is_refused_without_echoing_it() -> None:
    with pytest.raises(ValueError, match="too weak") as caught:
        Settings(_env_file=None, chatgpt_secret="short")  # type: ignore[call-arg]
    assert "short" not in str(caught.value).replace("too weak", "")
    assert SECRET not in str(caught.value)


def test_no_secret_in_any_log_line_or_answer(
    make_client: AppFactory, upstream: respx.MockRouter, logs: LogCapture
) -> None:
    """Every operation, every auth outcome and every failure: the secrets stay inside."""
    client = make_client(chatgpt_secret=f"{SECRET},{OTHER_SECRET}")
    answers = {"/search": payloads.search_answer(payloads.SEARCH_EPISODE)}
    outcomes = [
        httpx.Response(200, json=answers.get("/search", payloads.EPISODE)),
        httpx.Response(401, json={"error": f"bad key {UPSTREAM_KEY}"}),
        httpx.Response(429, headers={"Retry-After": "5"}),
        httpx.Response(500, text=f"trace with {UPSTREAM_KEY}"),
        httpx.ConnectError(f"cannot reach, key={UPSTREAM_KEY}"),
        httpx.ReadTimeout("slow"),
    ]
    texts: list[str] = []
    for outcome in outcomes:
        upstream.routes.clear()
        route = upstream.route()
        if isinstance(outcome, Exception):
            route.mock(side_effect=outcome)
        else:
            route.mock(return_value=outcome)
        for operation in OPERATIONS:
            path = "/api/v2" + operation.path.format(id=payloads.EPISODE_ID)
            query = "?q=podcasts" if "q" in operation.params.model_fields else ""
            for headers in (
                AUTH,
                {"Authorization": f"Bearer {OTHER_SECRET}"},
                {"Authorization": f"Bearer {SECRET}x"},
                {},
            ):
                response = client.get(path + query, headers=headers)
                texts.append(response.text)
                texts.extend(f"{k}: {v}" for k, v in response.headers.items())
    texts.extend(logs.lines)
    assert len(logs.events("request")) == len(outcomes) * len(OPERATIONS) * 4
    for text in texts:
        for secret in (SECRET, OTHER_SECRET, UPSTREAM_KEY):
            assert secret not in text


class _Stream(io.StringIO):
    """A stream that counts its writes."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


def _batch_logger(name: str) -> tuple[logging.Logger, _Stream]:
    stream = _Stream()
    handler = LineBatchHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger = logging.getLogger(f"tests.batch.{name}")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger, stream


def test_the_lines_of_one_loop_turn_leave_in_one_write() -> None:
    logger, stream = _batch_logger("turn")

    async def serve() -> None:
        for n in range(3):
            logger.info("request %d", n)
        assert stream.writes == 0  # not yet: the turn is not over
        await asyncio.sleep(0)
        assert stream.writes == 1
        logger.info("next turn")
        await asyncio.sleep(0)

    asyncio.run(serve())
    assert stream.getvalue() == "INFO request 0\nINFO request 1\nINFO request 2\nINFO next turn\n"
    assert stream.writes == 2


def test_a_warning_is_written_at_once_after_the_lines_before_it() -> None:
    logger, stream = _batch_logger("warning")

    async def serve() -> None:
        logger.info("request")
        logger.warning("store down")
        assert stream.getvalue() == "INFO request\nWARNING store down\n"

    asyncio.run(serve())
    assert stream.writes == 1


def test_without_a_running_loop_each_line_is_written_at_once() -> None:
    logger, stream = _batch_logger("no-loop")
    logger.info("from the CLI")
    assert stream.getvalue() == "INFO from the CLI\n"
    holder: list[str] = []
    thread = threading.Thread(target=lambda: (logger.info("worker"), holder.append("done")))
    thread.start()
    thread.join()
    assert stream.getvalue().endswith("INFO worker\n")


def test_flush_writes_what_waits_for_a_turn_that_never_comes() -> None:
    logger, stream = _batch_logger("stopped")
    loop = asyncio.new_event_loop()

    def last_request() -> None:
        logger.info("answered")
        loop.stop()  # as a loop does when its last task ends: no further turn

    loop.call_soon(last_request)
    loop.run_forever()
    loop.close()
    assert stream.getvalue() == ""
    logger.handlers[0].flush()  # logging's shutdown does this; Lambda: `flush_logs`
    assert stream.getvalue() == "INFO answered\n"


def test_the_access_line_is_written_the_same_with_or_without_a_log_record(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from app import observability

    stream = io.StringIO()
    handler = LineBatchHandler(stream)
    handler.setFormatter(observability.JsonFormatter())
    monkeypatch.setattr(logging.getLogger("app"), "handlers", [handler])
    scope = {"type": "http", "method": "POST", "path": "/openai/v1/chat/completions"}

    def request() -> None:
        record, token = observability.begin_request({**scope, "headers": []})
        record.operation, record.status, record.error = "chat", 429, "rate_limited"
        observability.end_request(token, scope, record, time.perf_counter())

    def no_record(*args: object, **kwargs: object) -> None:
        raise AssertionError("the sole handler's line is written without a record")

    with monkeypatch.context() as direct:
        direct.setattr(observability.log, "info", no_record)
        request()
    handler.addFilter(lambda record: True)  # a filter: the line goes through logging
    request()
    handler.flush()
    direct_line, logged_line = (json.loads(line) for line in stream.getvalue().splitlines())
    for line in (direct_line, logged_line):
        assert isinstance(line.pop("ts"), float) and isinstance(line.pop("latency_ms"), float)
        line.pop("request_id")
    assert list(direct_line.items()) == list(logged_line.items())  # same fields, same order
    assert direct_line["status"] == 429 and direct_line["error"] == "rate_limited"


class _Opaque:
    def __str__(self) -> str:
        return "opaque"


def test_a_line_is_json_in_ascii_whatever_its_fields_hold() -> None:
    record = logging.LogRecord("app.test", logging.WARNING, "", 0, "odd %s", ("é",), None)
    fields = {"path": "/c\u00f6\u2028\x00", "missing": None, "ratio": 1.5, "n": 7, "o": _Opaque()}
    record.fields = fields
    line = JsonFormatter().format(record)
    assert line.isascii() and "\n" not in line
    parsed = json.loads(line)
    assert parsed["msg"] == "odd é" and parsed["path"] == "/c\u00f6\u2028\x00"
    assert parsed["o"] == "opaque"  # str() of a type JSON has no form for
    entry = {"ts": round(record.created, 3), "level": "WARNING", "logger": "app.test"}
    entry |= {"msg": "odd é", **fields}
    # The standard library's encoding, byte for byte.
    assert line == json.dumps(entry, separators=(",", ":"), default=str)
