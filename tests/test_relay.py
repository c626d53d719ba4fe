"""The relay (app/connectors/openai/relay.py): the upstream answer is closed and its token
usage recorded to the end, even when the request is cancelled meanwhile, whether that step
waits or not, and whether the body had all arrived with the head or is read as it comes."""

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
    """An upstream answer whose closing takes `close_wait` seconds (0: it never waits), and
    whose body has all `arrived` with its head or not."""

    def __init__(self, close_wait: float, arrived: bool = False) -> None:
        self.arrived = arrived
        self.status_code = 200
        self.headers = {"content-type": "application/json"}
        self.raw_headers: list[tuple[bytes, bytes]] = []
        self.close_wait = close_wait
        self.closed = False

    def received(self) -> bytes | None:
        return BODY if self.arrived else None

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        assert not self.arrived, "a body that has arrived is not read again"
        yield BODY[:10]
        yield BODY[10:]

    async def aclose(self) -> None:
        if self.close_wait:
            await asyncio.sleep(self.close_wait)
        self.closed = True


async def _relay(
    close_wait: float, *, cancel_after: float | None, arrived: bool = False
) -> tuple[_Answer, list[Any]]:
    answer = _Answer(close_wait, arrived)
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
    assert sent[0]["type"] == "http.response.start" and not sent[-1].get("more_body")
    if arrived:  # one message for the whole body
        assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    return answer, spent


@pytest.mark.parametrize("arrived", [False, True])
@pytest.mark.parametrize("close_wait", [0.0, 0.05])
def test_the_answer_is_closed_and_its_usage_recorded(close_wait: float, arrived: bool) -> None:
    answer, spent = asyncio.run(_relay(close_wait, cancel_after=None, arrived=arrived))
    assert answer.closed and spent == [(3, 4)]


@pytest.mark.parametrize("arrived", [False, True])
def test_a_cancellation_while_closing_does_not_stop_it(arrived: bool) -> None:
    # Cancelled while the close waits: it goes on, and the usage is still recorded.
    answer, spent = asyncio.run(_relay(0.05, cancel_after=0.01, arrived=arrived))
    assert answer.closed and spent == [(3, 4)]


@pytest.mark.parametrize(
    "answer",
    [
        BODY,
        # A lone surrogate's escape: JSON that Python's parser reads and pydantic-core's
        # refuses; the usage is read all the same.
        b'{"choices": [{"message": {"content": "\\ud800"}}], "usage": '
        b'{"prompt_tokens": 3, "completion_tokens": 4}}',
    ],
)
def test_a_json_answer_s_usage_is_read_in_pieces_or_whole(answer: bytes) -> None:
    meter = UsageMeter(sse=False)
    meter.body(answer[:7])
    meter.body(answer[7:])
    meter.finish()
    assert meter.tokens == (3, 4)


def test_an_answer_that_is_not_json_has_no_usage() -> None:
    meter = UsageMeter(sse=False)
    meter.body(b'{"usage": {"prompt_tokens": 3, "completion_tokens": 4}')  # cut short
    meter.finish()
    assert meter.tokens is None
