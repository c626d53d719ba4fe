"""The relay's last step (app/connectors/openai/relay.py): the upstream answer is closed and
its token usage recorded to the end, even when the request is cancelled meanwhile, and
whether that step waits or not."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
from starlette.types import Message

from app.connectors.openai.relay import Relay
from app.connectors.openai.usage import UsageMeter

BODY = b'{"id": "x", "usage": {"prompt_tokens": 3, "completion_tokens": 4}}'


class _Answer:
    """An upstream answer whose closing takes `close_wait` seconds (0: it never waits)."""

    def __init__(self, close_wait: float) -> None:
        self.status_code = 200
        self.headers = {"content-type": "application/json"}
        self.raw_headers: list[tuple[bytes, bytes]] = []
        self.close_wait = close_wait
        self.closed = False

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        yield BODY

    async def aclose(self) -> None:
        if self.close_wait:
            await asyncio.sleep(self.close_wait)
        self.closed = True


async def _relay(close_wait: float, *, cancel_after: float | None) -> tuple[_Answer, list[Any]]:
    answer = _Answer(close_wait)
    spent: list[tuple[int, int]] = []
    sent: list[Message] = []

    async def on_usage(prompt: int, completion: int) -> None:
        await asyncio.sleep(0)
        spent.append((prompt, completion))

    async def receive() -> Message:
        await asyncio.Event().wait()  # the caller never hangs up
        raise AssertionError

    async def send(message: Message) -> None:
        sent.append(message)

    relay = Relay(
        answer,
        status=200,
        headers=[],
        sse=False,
        responses_api=False,
        meter=UsageMeter(sse=False),
        on_usage=on_usage,
    )
    with anyio.CancelScope() as scope:
        if cancel_after is not None:
            asyncio.get_running_loop().call_later(cancel_after, scope.cancel)
        await relay({"type": "http"}, receive, send)
    assert b"".join(m.get("body", b"") for m in sent) == BODY
    return answer, spent


@pytest.mark.parametrize("close_wait", [0.0, 0.05])
def test_the_answer_is_closed_and_its_usage_recorded(close_wait: float) -> None:
    answer, spent = asyncio.run(_relay(close_wait, cancel_after=None))
    assert answer.closed and spent == [(3, 4)]


def test_a_cancellation_while_closing_does_not_stop_it() -> None:
    # Cancelled while the close waits: it goes on, and the usage is still recorded.
    answer, spent = asyncio.run(_relay(0.05, cancel_after=0.01))
    assert answer.closed and spent == [(3, 4)]
