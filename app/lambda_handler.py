"""AWS Lambda entry point: `app.lambda_handler.handler` (API Gateway REST/HTTP, ALB, Function URL).

The app, its settings and its pooled HTTP client are built once per container, when this
module is imported, and reused by every warm invocation. Mangum's lifespan is off: it would
run the ASGI lifespan on every invocation. So the gate's shutdown never runs here, and an
instance may be frozen (or never thawed) between invocations: the usage the gate counts in
memory (app/usage_batch.py), and the response cache's store writes (written behind,
app/stores/behind.py), are written at the end of every invocation instead.
"""

from __future__ import annotations

import gc

# Cold start: no garbage collection while the app is imported and built. Those objects
# live as long as the container, yet a full collection walks all of them at least once
# during the import (tens of ms, measured with bench/cold_start.py); frozen below, warm
# invocations' collections skip them too.
gc.disable()

from typing import TYPE_CHECKING, Any  # noqa: E402

from mangum import Mangum  # noqa: E402
from starlette.types import ASGIApp, Receive, Scope, Send  # noqa: E402

from app.mcp_request_state import stand_in_for_cryptography  # noqa: E402

# Before anything imports the MCP SDK: the Lambda bundle leaves out `cryptography`.
stand_in_for_cryptography()

from app.main import create_app  # noqa: E402
from app.registry import Settings  # noqa: E402
from app.setting_errors import settings_or_exit  # noqa: E402

if TYPE_CHECKING:
    from fastapi import FastAPI

    from app.cache import ResponseCache
    from app.callers import Gate

__all__ = ["handler", "make_handler", "mount_prefix"]


def mount_prefix(event: dict[str, Any]) -> str:
    """The path prefix the caller's URL has and the app's routes do not ('' if none).

    REST API (v1): the stage or custom-domain base path, i.e. what `requestContext.path`
    has in front of `path` (`/prod` for `/prod/api/v2/genres`). HTTP API (v2) on a named
    stage: `/{stage}`, which the raw path carries. `$default` stages, ALBs and Function
    URLs have none.
    """
    context = event.get("requestContext") or {}
    if event.get("version") == "2.0":
        stage = context.get("stage") or "$default"
        path = event.get("rawPath") or ""
        if stage != "$default" and (path == f"/{stage}" or path.startswith(f"/{stage}/")):
            return f"/{stage}"
        return ""
    if "elb" in context or "httpMethod" not in event:
        return ""
    outer = str(context.get("path") or "")
    inner = str(event.get("path") or "")
    if inner and outer.endswith(inner):
        return outer[: len(outer) - len(inner)].rstrip("/")
    stage = context.get("stage")
    return f"/{stage}" if stage and outer.startswith(f"/{stage}") else ""


class _EventPrefix:
    """Sets the ASGI `root_path` from the Lambda event (Mangum leaves it empty), so routes
    match and every absolute URL the app publishes carries the stage or base path."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        event = scope.get("aws.event")
        if scope["type"] == "http" and isinstance(event, dict):
            prefix = mount_prefix(event)
            if prefix:
                path = scope["path"]
                if not (path == prefix or path.startswith(prefix + "/")):
                    path = prefix + path  # ASGI: `path` includes `root_path`
                scope = {**scope, "root_path": prefix, "path": path}
        await self.app(scope, receive, send)


class _WriteUsage:
    """Writes the usage the gate counted and the response cache's pending store writes
    once the request is answered, before the invocation ends (a frozen instance runs no
    background writer)."""

    def __init__(self, app: ASGIApp, gate: Gate, cache: ResponseCache | None) -> None:
        self.app = app
        self.gate = gate
        self.cache = cache

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.app(scope, receive, send)
        finally:
            await self.gate.flush_usage()  # never raises; a failure keeps it pending
            if self.cache is not None:
                await self.cache.flush()  # the same


def make_handler(app: FastAPI) -> Mangum:
    """A Lambda handler serving `app` (from `create_app`), with the stage prefix applied,
    no lifespan, and usage and cache writes written at the end of each invocation."""
    gate: Gate = app.state.services.gate
    cache: ResponseCache | None = app.state.response_cache
    return Mangum(_EventPrefix(_WriteUsage(app, gate, cache)), lifespan="off")


# httpx's own transport: Lambda serves one request at a time, so aiohttp's throughput
# would not show, while its import would lengthen every cold start.
try:
    # Bad settings: one line each in the function's log (an init error), not a traceback.
    # No leases: an instance frozen for good would keep its unused admissions counted.
    handler = make_handler(create_app(settings_or_exit(Settings), network="httpx", leases=False))
    gc.freeze()  # what the container keeps: never scanned again
finally:
    gc.enable()
