"""The OpenAI gateway on each network transport: aiohttp's (what servers use) and httpx's
own (Lambda's). What httpx's client did for the relay that the aiohttp path must do too:
answers arrive chunk by chunk, a caller's hang-up closes the upstream connection, a
finished answer leaves its connection for the next request, a stalled stream or a slow or
unreachable upstream ends as the same error, a compressed answer reaches the caller
decoded. Served by uvicorn on loopback, against tests/fake_openai.py, through the SDK."""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Iterator

import httpx
import openai
import pytest

from tests.conftest import OPENAI_KEY, SECRET, make_settings
from tests.fake_openai import Answer, FakeOpenAI, json_answer
from tests.live import InThreadServer, free_port

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")

SSE = {"Content-Type": "text/event-stream"}
COMPLETION = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1,
    "model": "m",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "hi"},
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
}


class Served(InThreadServer):
    def __init__(self, base_url: str, network: str) -> None:
        settings = make_settings(
            openai_api_key=OPENAI_KEY, openai_base_url=base_url, openai_timeout=2.0
        )
        super().__init__(settings, network=network)


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as upstream:
        yield upstream


@pytest.fixture(scope="module", params=["http1", "aiohttp", "httpx"])
def served(request: pytest.FixtureRequest, fake: FakeOpenAI) -> Iterator[Served]:
    with Served(fake.base_url, request.param) as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh(fake: FakeOpenAI) -> None:
    fake.reset(lambda seen: json_answer(COMPLETION))


def client(served: Served) -> openai.OpenAI:
    return openai.OpenAI(api_key=SECRET, base_url=served.origin + "/openai/v1", max_retries=0)


def chunk(text: str) -> bytes:
    delta = {"index": 0, "delta": {"content": text}, "finish_reason": None}
    event = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    return b"data: " + json.dumps({**event, "choices": [delta]}).encode() + b"\n\n"


def test_a_stream_arrives_chunk_by_chunk(served: Served, fake: FakeOpenAI) -> None:
    words = ["one", "two", "three"]
    chunks = [chunk(word) for word in words] + [b"data: [DONE]\n\n"]
    fake.reset(lambda seen: Answer(headers=SSE, chunks=chunks, pause=0.4))
    arrivals: list[tuple[float, str]] = []
    started = time.monotonic()
    with client(served) as sdk:
        for part in sdk.chat.completions.create(model="m", messages=[], stream=True):
            arrivals.append((time.monotonic() - started, part.choices[0].delta.content or ""))
    assert [text for _, text in arrivals] == words
    assert arrivals[0][0] < arrivals[-1][0] / 2  # the first word came before the last was sent


def test_a_caller_hanging_up_closes_the_upstream_connection(
    served: Served, fake: FakeOpenAI
) -> None:
    chunks = [chunk(str(n)) for n in range(40)]
    fake.reset(lambda seen: Answer(headers=SSE, chunks=chunks, pause=0.25))
    with (
        httpx.Client() as caller,
        caller.stream(
            "POST",
            served.origin + "/openai/v1/chat/completions",
            json={"model": "m", "stream": True},
            headers={"api-key": SECRET},
        ) as answer,
    ):
        next(answer.iter_raw())
    # Read on for the usage for at most OPENAI_TIMEOUT (2 s), then closed: not 10 s later.
    assert fake.hung_up.wait(6), "the upstream never noticed the caller left"
    assert fake.chunks_sent < 40


def test_a_finished_answer_leaves_its_connection_for_the_next_request(
    served: Served, fake: FakeOpenAI
) -> None:
    with client(served) as sdk:
        for _ in range(3):
            assert sdk.chat.completions.create(model="m", messages=[]).id == "chatcmpl-1"
    assert len({seen.peer for seen in fake.seen}) == 1


def test_a_stream_that_stalls_past_the_timeout_ends_with_an_error(
    served: Served, fake: FakeOpenAI
) -> None:
    # The answer started in time; then the upstream says nothing for longer than
    # OPENAI_TIMEOUT (2 s): the caller gets what came and an error, not a hang.
    chunks = [chunk("one"), chunk("two")]
    fake.reset(lambda seen: Answer(headers=SSE, chunks=chunks, pause=4.0))
    got: list[str] = []
    started = time.monotonic()
    with client(served) as sdk, pytest.raises(openai.APIError, match="upstream stream ended"):
        for part in sdk.chat.completions.create(model="m", messages=[], stream=True):
            got.append(part.choices[0].delta.content or "")
    assert got == ["one"]
    assert time.monotonic() - started < 3.9  # ended by the timeout, not by the upstream


def test_an_answer_that_does_not_start_in_time_is_504(served: Served, fake: FakeOpenAI) -> None:
    fake.reset(lambda seen: Answer(body=json.dumps(COMPLETION).encode(), delay=3.0))
    with client(served) as sdk, pytest.raises(openai.InternalServerError) as caught:
        sdk.chat.completions.create(model="m", messages=[])
    assert caught.value.status_code == 504
    assert caught.value.body["code"] == "upstream_timeout"  # type: ignore[index]


@pytest.mark.parametrize("network", ["http1", "aiohttp", "httpx"])
def test_an_unreachable_upstream_is_502(network: str) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}/v1"
    with (
        Served(nowhere, network) as server,
        client(server) as sdk,
        pytest.raises(openai.InternalServerError) as caught,
    ):
        sdk.chat.completions.create(model="m", messages=[])
    assert caught.value.status_code == 502
    assert caught.value.body["code"] == "upstream_unavailable"  # type: ignore[index]


@pytest.mark.parametrize("stream", [False, True])
def test_a_gzipped_answer_reaches_the_caller_decoded(
    served: Served, fake: FakeOpenAI, stream: bool
) -> None:
    # The gateway asks for `identity`; an upstream that compresses anyway is still relayed
    # readable (Content-Encoding is not relayed, so the caller must get plain bytes).
    if stream:
        body, kind = chunk("zipped") + b"data: [DONE]\n\n", "text/event-stream"
    else:
        body, kind = json.dumps(COMPLETION).encode(), "application/json"
    headers = {"Content-Type": kind, "Content-Encoding": "gzip"}
    fake.reset(lambda seen: Answer(body=gzip.compress(body), headers=headers))
    with client(served) as sdk:
        if stream:
            parts = sdk.chat.completions.create(model="m", messages=[], stream=True)
            assert [part.choices[0].delta.content for part in parts] == ["zipped"]
        else:
            assert sdk.chat.completions.create(model="m", messages=[]).id == "chatcmpl-1"
    assert fake.seen[0].headers["accept-encoding"] == "identity"


def test_the_request_reaches_the_upstream_as_sent_with_only_the_gateways_credential(
    served: Served, fake: FakeOpenAI
) -> None:
    body = b'{"model":"m","messages":[], "x_new": 1.50e0}'
    answer = httpx.post(
        served.origin + "/openai/v1/chat/completions",
        content=body,
        headers={
            "Authorization": f"Bearer {SECRET}",
            "Content-Type": "application/json",
            "OpenAI-Beta": "b=1",
            "Cookie": "c=1",
        },
    )
    assert answer.status_code == 200
    [seen] = fake.seen
    assert seen.body == body
    assert seen.headers["authorization"] == f"Bearer {OPENAI_KEY}"
    assert seen.headers["openai-beta"] == "b=1"
    assert "cookie" not in seen.headers
    assert SECRET not in json.dumps(seen.headers)


def test_query_parameters_reach_the_upstream(served: Served, fake: FakeOpenAI) -> None:
    fake.reset(lambda seen: json_answer({"object": "list", "data": [], "has_more": False}))
    with client(served) as sdk:
        sdk.fine_tuning.jobs.list(limit=2, after="ftjob-z")
    assert sorted(fake.seen[0].query) == [("after", "ftjob-z"), ("limit", "2")]
    assert fake.seen[0].path == "/v1/fine_tuning/jobs"
