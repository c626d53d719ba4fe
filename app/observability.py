"""What one request did (`RequestRecord`), and its one structured log line; never a header,
a query string or a secret. The request layer (app/edge.py) opens and closes the record."""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import re
import sys
import time
from contextvars import ContextVar, Token
from dataclasses import dataclass
from typing import TYPE_CHECKING, TextIO

from pydantic_core import to_json
from starlette.types import Scope

if TYPE_CHECKING:
    from app.store import Decision

__all__ = [
    "LineBatchHandler",
    "RequestRecord",
    "begin_request",
    "configure_logging",
    "current_record",
    "end_request",
]

log = logging.getLogger("app.access")


@dataclass
class RequestRecord:
    """What one request did, filled in as it goes and logged when it ends."""

    request_id: str
    operation: str | None = None
    upstream_status: int | None = None
    error: str | None = None
    key_id: str | None = None
    """The caller's key id ("static" for CHATGPT_SECRET), never the key."""
    limits: Decision | None = None
    """The caller's limit state once admitted or refused (`app.limits.with_limits`)."""
    openai_limit_names: bool = False
    """Whether the answer also carries OpenAI's `x-ratelimit-*` names."""
    status: int = 500
    """The answer's status once it has started (500 if it never did: an unhandled error)."""


_record: ContextVar[RequestRecord | None] = ContextVar("request_record", default=None)
_INCOMING_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


def current_record() -> RequestRecord:
    """The running request's record; a detached one outside a request (e.g. in a test)."""
    record = _record.get()
    return record if record is not None else RequestRecord(request_id="-")


class JsonFormatter(logging.Formatter):
    """`{"ts", "level", "logger", "msg", ...extra fields}` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": round(record.created, 3),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return _encoded(entry)


def _encoded(entry: dict[str, object]) -> str:
    # What `json.dumps(entry, separators=(",", ":"), default=str)` writes (ASCII only), in
    # ~1 us instead of ~2.6: pydantic-core's encoder. Types JSON has no form for are
    # written as pydantic-core knows them (sets as lists, datetimes in ISO 8601), else str().
    return to_json(entry, ensure_ascii=True, fallback=str).decode()


_INFO = logging.INFO


class LineBatchHandler(logging.StreamHandler[TextIO]):
    """A stream handler that writes the lines of one event-loop turn in one `write`.

    Why: the access line is written for every request, and a `write` system call per line
    cost a cache hit ~6 us of its ~65 (py-spy, 16 connections); at such rates one turn of
    the loop ends several requests. A line logged on a thread running an event loop waits
    for the end of that turn (`loop.call_soon`); anything else is written at once: a
    warning or worse (after what is waiting, so the order holds), and every line logged
    where no loop runs (the store's worker thread, the CLI, Lambda's start). A loop that
    stops when its task ends (Mangum's, each Lambda invocation) runs the write first: it
    was scheduled before the task's end. Waiting lines are also written by `flush`
    (logging's shutdown calls it). What a killed process loses: its last turn's lines."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self._waiting: list[str] = []
        self._flush_due = False

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:  # logging's contract: report it, never raise
            self.handleError(record)
            return
        self._queue(line, record.levelno)

    def write_info(self, line: str) -> None:
        """Write `line`, already formatted, as `emit` writes an INFO record's."""
        with self.lock:  # type: ignore[union-attr]
            self._queue(line, _INFO)

    def _queue(self, line: str, level: int) -> None:
        self._waiting.append(line + self.terminator)
        if level < logging.WARNING:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                pass
            else:
                if not self._flush_due:
                    self._flush_due = True
                    loop.call_soon(self.flush)
                return
        self.flush()

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            self._flush_due = False
            if self._waiting:
                text = "".join(self._waiting)
                self._waiting.clear()
                try:
                    self.stream.write(text)
                except Exception:  # a closed stream loses lines, never fails a request
                    return
            super().flush()


def configure_logging(level: str = "INFO") -> None:
    """JSON lines on stderr for the `app` loggers (`LineBatchHandler`). Idempotent."""
    # No line shows a thread, process or multiprocessing name: don't look them up for each
    # record (~1 us of every request's access line).
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    logger = logging.getLogger("app")
    logger.setLevel(level.upper())
    if not any(isinstance(handler, LineBatchHandler) for handler in logger.handlers):
        handler = LineBatchHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        logger.addHandler(handler)
        logger.propagate = False


def begin_request(scope: Scope) -> tuple[RequestRecord, Token[RequestRecord | None]]:
    """A new record for the request of `scope`, made the running one (`current_record`) until
    `end_request`. Its id is the caller's `X-Request-Id` when well-formed, else a new one."""
    record = RequestRecord(request_id=_request_id(scope))
    return record, _record.set(record)


def end_request(
    token: Token[RequestRecord | None], scope: Scope, record: RequestRecord, started: float
) -> None:
    """Detach `record` and write the request's one `request` line: method, path, operation,
    key id, status, upstream status and latency since `started` (`time.perf_counter`)."""
    _record.reset(token)
    fields = {
        "event": "request",
        "request_id": record.request_id,
        "method": scope.get("method"),
        "path": scope.get("path"),
        "operation": record.operation,
        "key_id": record.key_id,
        "status": record.status,
        "upstream_status": record.upstream_status,
        "latency_ms": round((time.perf_counter() - started) * 1000, 2),
    }
    if record.error:
        fields["error"] = record.error
    if not log.isEnabledFor(_INFO):
        return
    handler = _sole_handler()
    if handler is None:
        log.info("request", extra={"fields": fields})
        return
    entry = {"ts": round(time.time(), 3), "level": "INFO", "logger": log.name, "msg": "request"}
    entry.update(fields)
    handler.write_info(_encoded(entry))


def _sole_handler() -> LineBatchHandler | None:
    """The handler when the access line would reach it alone, unfiltered, formatted by a
    `JsonFormatter`, as `configure_logging` sets it up; else None. Then `end_request`
    writes the line JsonFormatter would write, without a `LogRecord` and the logging
    machinery around it (~5 us of every request: a record, the stack walk to find the
    caller, each logger's and handler's checks, the formatting of a dict of the record)."""
    app = log.parent
    if log.handlers or log.filters or not log.propagate or app is None or app.filters:
        return None
    if app.propagate or len(app.handlers) != 1:
        return None
    handler = app.handlers[0]
    if (
        type(handler) is not LineBatchHandler
        or handler.filters
        or handler.level > _INFO
        or type(handler.formatter) is not JsonFormatter
    ):
        return None
    return handler


# A new request's id: this process's random half, then a counter. Unique (to 64 random
# bits across processes) without a system call per request (os.urandom cost ~5 us); ids
# name requests in logs and are no secret.
_ID_PREFIX = os.urandom(8).hex()
_ids = itertools.count(1)


def _new_id_prefix() -> None:  # a forked worker draws its own half
    global _ID_PREFIX
    _ID_PREFIX = os.urandom(8).hex()


os.register_at_fork(after_in_child=_new_id_prefix)


def _request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", []):
        if name == b"x-request-id":
            candidate: str = value.decode("latin-1")
            if _INCOMING_ID.match(candidate):
                return candidate
            break
    return f"{_ID_PREFIX}{next(_ids):016x}"
