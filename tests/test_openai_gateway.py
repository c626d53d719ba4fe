"""The OpenAI-compatible routes, driven by the official `openai` SDK (sync and async) against
the app served by uvicorn on loopback, forwarding to a fake OpenAI upstream on loopback
that records what it received (tests/fake_openai.py)."""

from __future__ import annotations

import asyncio
import http.client
import inspect
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import OPENAI_KEY, SECRET, make_settings
from tests.fake_openai import Answer, FakeOpenAI, Seen, error_answer, json_answer
from tests.live import InThreadServer, free_port

AUDIO = bytes(range(256)) * 64  # binary, every byte value
UPLOAD = b"\x00\xff" + bytes(range(256)) * 40 + b"\r\n--not-a-boundary\r\n"
CALLER_ORG = "org-caller-should-not-pass"
pytestmark = [
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),  # the SDK's, on legacy routes
]


class Served(InThreadServer):
    def __init__(self, fake: FakeOpenAI, **overrides: Any) -> None:
        settings = make_settings(
            openai_api_key=OPENAI_KEY,
            openai_base_url=fake.base_url,
            openai_organization="org-gateway",
            openai_project="proj_gateway",
            openai_timeout=2.0,
            **overrides,
        )
        super().__init__(settings)


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as upstream:
        yield upstream


@pytest.fixture(scope="module")
def served(fake: FakeOpenAI) -> Iterator[Served]:
    with Served(fake) as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh(fake: FakeOpenAI) -> None:
    fake.reset(generic_answer)


def generic_answer(seen: Seen) -> Answer:
    if seen.path.endswith("/audio/speech"):
        return Answer(body=AUDIO, headers={"Content-Type": "audio/mpeg", "x-request-id": "req_1"})
    if seen.method == "GET" and seen.path.endswith(("/models", "/jobs", "/events")):
        return json_answer({"object": "list", "data": [], "has_more": False})
    return json_answer(
        {"id": "x1", "object": "thing", "text": "ok", "data": [], "model": "m"},
        **{"x-request-id": "req_0123456789abcdef"},
    )


def sdk_client(served: Served, mode: str, prefix: str = "/openai/v1", **kw: Any) -> Any:
    cls = openai.OpenAI if mode == "sync" else openai.AsyncOpenAI
    return cls(api_key=SECRET, base_url=served.origin + prefix, max_retries=0, **kw)


def run(served: Served, mode: str, call: Callable[[Any], Any], prefix: str = "/openai/v1") -> Any:
    """`call(client)` with a sync or an async SDK client, its result awaited if need be."""
    if mode == "sync":
        with sdk_client(served, mode, prefix) as client:
            return call(client)

    async def main() -> Any:
        async with sdk_client(served, mode, prefix) as client:
            result = call(client)
            return await result if inspect.isawaitable(result) else result

    return asyncio.run(main())


def image() -> tuple[str, bytes, str]:
    return ("a.png", UPLOAD, "image/png")


# (SDK call, method and path the upstream must see)
EVERY_ROUTE: list[tuple[Callable[[Any], Any], str, str]] = [
    (lambda c: c.models.list(), "GET", "/v1/models"),
    (
        lambda c: c.models.retrieve("ft:gpt-4o-mini:org::a1"),
        "GET",
        "/v1/models/ft:gpt-4o-mini:org::a1",
    ),
    (
        lambda c: c.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "hi"}]
        ),
        "POST",
        "/v1/chat/completions",
    ),
    (lambda c: c.responses.create(model="gpt-4o", input="hi"), "POST", "/v1/responses"),
    (
        lambda c: c.completions.create(model="gpt-3.5-turbo-instruct", prompt="hi"),
        "POST",
        "/v1/completions",
    ),
    (
        lambda c: c.embeddings.create(model="e", input="hi", encoding_format="float"),
        "POST",
        "/v1/embeddings",
    ),
    (lambda c: c.moderations.create(input="hi"), "POST", "/v1/moderations"),
    (lambda c: c.images.generate(prompt="a cat"), "POST", "/v1/images/generations"),
    (lambda c: c.images.edit(image=image(), prompt="hat"), "POST", "/v1/images/edits"),
    (lambda c: c.images.create_variation(image=image()), "POST", "/v1/images/variations"),
    (
        lambda c: c.audio.speech.create(model="tts-1", voice="alloy", input="hi"),
        "POST",
        "/v1/audio/speech",
    ),
    (
        lambda c: c.audio.transcriptions.create(model="whisper-1", file=("a.mp3", UPLOAD)),
        "POST",
        "/v1/audio/transcriptions",
    ),
    (
        lambda c: c.audio.translations.create(model="whisper-1", file=("a.mp3", UPLOAD)),
        "POST",
        "/v1/audio/translations",
    ),
    (lambda c: c.files.create(file=("d.jsonl", UPLOAD), purpose="fine-tune"), "POST", "/v1/files"),
    (lambda c: c.files.retrieve("file-abc"), "GET", "/v1/files/file-abc"),
    (
        lambda c: c.fine_tuning.jobs.create(model="gpt-4o-mini", training_file="file-abc"),
        "POST",
        "/v1/fine_tuning/jobs",
    ),
    (lambda c: c.fine_tuning.jobs.list(limit=2, after="ftjob-z"), "GET", "/v1/fine_tuning/jobs"),
    (lambda c: c.fine_tuning.jobs.retrieve("ftjob-abc"), "GET", "/v1/fine_tuning/jobs/ftjob-abc"),
    (
        lambda c: c.fine_tuning.jobs.cancel("ftjob-abc"),
        "POST",
        "/v1/fine_tuning/jobs/ftjob-abc/cancel",
    ),
    (
        lambda c: c.fine_tuning.jobs.list_events("ftjob-abc", limit=5),
        "GET",
        "/v1/fine_tuning/jobs/ftjob-abc/events",
    ),
]


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_every_route_reaches_the_upstream_with_its_key_and_not_the_callers(
    served: Served, fake: FakeOpenAI, mode: str
) -> None:
    for call, method, path in EVERY_ROUTE:
        fake.seen.clear()
        result = run(served, mode, call)
        assert [(s.method, s.path) for s in fake.seen] == [(method, path)]
        seen = fake.seen[0]
        assert seen.headers["authorization"] == f"Bearer {OPENAI_KEY}"
        assert seen.headers["openai-organization"] == "org-gateway"
        assert seen.headers["openai-project"] == "proj_gateway"
        assert SECRET not in json.dumps(seen.headers) and SECRET.encode() not in seen.body
        assert not any(
            name.startswith(("x-stainless", "cookie", "api-key")) for name in seen.headers
        )
        if b"form-data" in seen.headers.get("content-type", "").encode():
            assert UPLOAD in seen.body  # the file's bytes, untouched
        if path.endswith("/speech"):
            assert result.content == AUDIO


def test_query_strings_keep_only_declared_validated_names(served: Served, fake: FakeOpenAI) -> None:
    run(
        served,
        "sync",
        lambda c: c.fine_tuning.jobs.list(limit=2, after="ftjob-z", extra_query={"x": "1"}),
    )
    assert sorted(fake.seen[0].query) == [("after", "ftjob-z"), ("limit", "2")]
    fake.seen.clear()
    answer = httpx.get(
        served.origin + "/openai/v1/fine_tuning/jobs?limit=1000", headers={"api-key": SECRET}
    )
    assert answer.status_code == 400 and answer.json()["error"]["param"] == "limit"
    assert fake.seen == []


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_the_prefix_without_v1_works_too(served: Served, fake: FakeOpenAI, mode: str) -> None:
    run(served, mode, lambda c: c.models.retrieve("gpt-4o"), prefix="/openai")
    assert [(s.method, s.path) for s in fake.seen] == [("GET", "/v1/models/gpt-4o")]


def test_json_and_multipart_bodies_arrive_byte_for_byte(served: Served, fake: FakeOpenAI) -> None:
    body = (
        b' {"model" :"gpt-4o",\n "messages":[{"role":"user","content":"caf\\u00e9 \xc3\xa9"}],'
        b'"new_param_2031": 1.50e0} '
    )
    answer = httpx.post(
        served.origin + "/openai/v1/chat/completions",
        content=body,
        headers={"Authorization": f"Bearer {SECRET}", "Content-Type": "application/json"},
    )
    assert answer.status_code == 200
    assert fake.seen[0].body == body
    form = (
        b'--b0undary\r\nContent-Disposition: form-data; name="model"\r\n\r\nwhisper-1\r\n'
        b'--b0undary\r\nContent-Disposition: form-data; name="file"; filename="a.mp3"\r\n'
        b"Content-Type: audio/mpeg\r\n\r\n" + UPLOAD + b"\r\n--b0undary--\r\n"
    )
    answer = httpx.post(
        served.origin + "/openai/audio/transcriptions",
        content=form,
        headers={"api-key": SECRET, "Content-Type": "multipart/form-data; boundary=b0undary"},
    )
    assert answer.status_code == 200
    assert fake.seen[1].body == form
    assert fake.seen[1].headers["content-type"] == "multipart/form-data; boundary=b0undary"


def test_a_json_body_without_model_gets_the_default_and_keeps_its_bytes(
    served: Served, fake: FakeOpenAI
) -> None:
    body = b'{ "input" : "hi",  "x": [1,2] }'
    httpx.post(served.origin + "/openai/v1/embeddings", content=body, headers={"api-key": SECRET})
    assert fake.seen[0].body == b'{"model":"gpt-4o-mini", "input" : "hi",  "x": [1,2] }'


def test_json_that_python_reads_is_forwarded_byte_for_byte(
    served: Served, fake: FakeOpenAI
) -> None:
    # A lone surrogate's escape and a huge exponent: JSON, read by Python's parser (the
    # gateway's fast parser refuses the first and falls back), passed on unchanged.
    body = b'{"model": "gpt-4o-mini", "input": "\\ud800 and \\u00e9", "x": 1e999}'
    answer = httpx.post(
        served.origin + "/openai/v1/embeddings", content=body, headers={"api-key": SECRET}
    )
    assert answer.status_code == 200, answer.text
    assert fake.seen[0].body == body


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b"[1, 2]", "application/json", 400),
        (b'{"model": "m", "temperature": Infinity}', "application/json", 400),
        (b'"text"', "application/json", 400),
        (b'{"model": "m", ', "application/json", 400),
        (b'{"model": "m", "temperature": NaN}', "application/json", 400),
        (b'{"model": 3}', "application/json", 400),
        (b"\xff\xfe{}", "application/json", 400),
        (b"{}", "text/plain", 400),
        (b'{"x": "' + b"a" * (2 * 1024 * 1024) + b'"}', "application/json", 413),
    ],
)
def test_bad_json_bodies_are_refused_before_the_upstream(
    served: Served, fake: FakeOpenAI, body: bytes, content_type: str, status: int
) -> None:
    answer = httpx.post(
        served.origin + "/openai/v1/chat/completions",
        content=body,
        headers={"api-key": SECRET, "Content-Type": content_type},
    )
    assert answer.status_code == status
    assert set(answer.json()["error"]) == {"message", "type", "param", "code"}
    assert fake.seen == []


@pytest.mark.parametrize(
    "form",
    [
        b'--b\r\nContent-Disposition: form-data; name="model"\r\n\r\nwhisper-1\r\n',  # unfinished
        b"no boundary at all",
        b"--b\r\n\r\nnameless\r\n--b--\r\n",
    ],
)
def test_malformed_multipart_is_refused_before_the_upstream(
    served: Served, fake: FakeOpenAI, form: bytes
) -> None:
    answer = httpx.post(
        served.origin + "/openai/v1/audio/translations",
        content=form,
        headers={"api-key": SECRET, "Content-Type": "multipart/form-data; boundary=b"},
    )
    assert answer.status_code == 400
    assert fake.seen == []


def raw_get(served: Served, path: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", served.port, timeout=5)
    try:
        connection.request(method, path, headers={"Authorization": f"Bearer {SECRET}"})
        answer = connection.getresponse()
        return answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read()
    finally:
        connection.close()


@pytest.mark.parametrize(
    "path",
    [
        "/openai/v1/../api/v2/genres",
        "/openai/v1/models/..",
        "/openai/v1/models/a%2F..%2F..%2Ffiles",
        "/openai/v1/files/file-1/content",
        "/openai/v1/batches",
        "/openai/v1/models/",
        "/openai/v1/v1/models",
        "/openai/v1/models/%2e%2e",
        "/openai/v1/models/org/../files",
        "/openai/v1/models/a/b/c/d",
    ],
)
def test_unknown_and_traversing_paths_are_404_and_reach_nothing(
    served: Served, fake: FakeOpenAI, path: str
) -> None:
    status, _, body = raw_get(served, path)
    assert status == 404
    assert json.loads(body)["error"]["code"] == "unknown_url"
    assert fake.seen == []


def test_a_model_id_with_a_slash_is_one_model(served: Served, fake: FakeOpenAI) -> None:
    # vLLM and other compatible servers name models by their Hugging Face id: org/name.
    status, _, _ = raw_get(served, "/openai/v1/models/meta-llama/Llama-3.1-8B-Instruct")
    assert status == 200
    [seen] = fake.seen
    assert seen.path.endswith("/models/meta-llama/Llama-3.1-8B-Instruct")


def test_a_wrong_method_is_405_with_allow(served: Served, fake: FakeOpenAI) -> None:
    status, headers, body = raw_get(served, "/openai/v1/chat/completions", "GET")
    assert status == 405 and headers["allow"] == "POST"
    assert json.loads(body)["error"]["type"] == "invalid_request_error"
    assert fake.seen == []


def test_api_key_header_works_and_both_headers_or_a_wrong_key_are_401(
    served: Served, fake: FakeOpenAI
) -> None:
    url = served.origin + "/openai/v1/models"
    assert httpx.get(url, headers={"api-key": SECRET}).status_code == 200
    both = httpx.get(url, headers={"api-key": SECRET, "Authorization": f"Bearer {SECRET}"})
    assert both.status_code == 401
    assert both.json()["error"]["code"] == "invalid_api_key"
    assert both.headers["WWW-Authenticate"].startswith("Bearer")
    with (
        pytest.raises(openai.AuthenticationError),
        openai.OpenAI(api_key="wrong-" + SECRET, base_url=served.origin + "/openai/v1") as client,
    ):
        client.models.list()
    assert len(fake.seen) == 1


def test_callers_org_project_and_credentials_never_go_upstream(
    served: Served, fake: FakeOpenAI
) -> None:
    with openai.OpenAI(
        api_key=SECRET,
        base_url=served.origin + "/openai/v1",
        organization=CALLER_ORG,
        project="proj_caller",
        default_headers={
            "Cookie": "a=b",
            "X-Forwarded-For": "1.2.3.4",
            "OpenAI-Beta": "assistants=v2",
        },
    ) as client:
        client.models.list()
    headers = fake.seen[0].headers
    assert headers["openai-organization"] == "org-gateway"
    assert headers["openai-project"] == "proj_gateway"
    assert headers["openai-beta"] == "assistants=v2"
    assert "cookie" not in headers and "x-forwarded-for" not in headers
    assert CALLER_ORG not in json.dumps(headers)


def test_the_upstream_request_id_is_the_one_the_sdk_sees(served: Served) -> None:
    with sdk_client(served, "sync") as client:
        completion = client.chat.completions.create(model="m", messages=[])
    assert completion._request_id == "req_0123456789abcdef"


# --- upstream failures as the SDK user catches them -------------------------------------


@pytest.mark.parametrize(
    ("answer", "exception", "status"),
    [
        (
            error_answer(400, "bad messages", "invalid_request_error", None),
            openai.BadRequestError,
            400,
        ),
        (
            error_answer(404, "no such model", "invalid_request_error", "model_not_found"),
            openai.NotFoundError,
            404,
        ),
        (
            error_answer(
                429,
                "slow down",
                "requests",
                "rate_limit_exceeded",
                **{"retry-after": "7", "retry-after-ms": "7000"},
            ),
            openai.RateLimitError,
            429,
        ),
        (
            error_answer(
                401,
                f"Incorrect API key provided: {OPENAI_KEY[:8]}****{OPENAI_KEY[-4:]}.",
                "invalid_request_error",
                "invalid_api_key",
            ),
            openai.InternalServerError,
            502,
        ),
        (
            error_answer(403, "region", "invalid_request_error", None),
            openai.InternalServerError,
            502,
        ),
        (
            error_answer(500, "The server had an error", "server_error", None),
            openai.InternalServerError,
            500,
        ),
        (
            Answer(503, b"<html>bad gateway</html>", {"Content-Type": "text/html"}),
            openai.InternalServerError,
            502,
        ),
        (Answer(delay=3.0), openai.InternalServerError, 504),
    ],
)
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_upstream_failures_raise_the_sdk_exception_a_user_catches(
    served: Served,
    fake: FakeOpenAI,
    answer: Answer,
    exception: type[Exception],
    status: int,
    mode: str,
) -> None:
    fake.reset(lambda seen: answer)
    with pytest.raises(exception) as caught:
        run(served, mode, lambda c: c.chat.completions.create(model="m", messages=[]))
    error = caught.value
    assert isinstance(error, openai.APIStatusError)
    assert error.status_code == status
    text = str(error) + error.response.text + json.dumps(dict(error.response.headers))
    assert OPENAI_KEY[:8] not in text and OPENAI_KEY[-4:] not in text
    if status == 429:
        assert error.response.headers["retry-after"] == "7"
        assert error.response.headers["retry-after-ms"] == "7000"
    if status == 502 and answer.status in (401, 403):
        assert error.response.headers["x-should-retry"] == "false"


def test_an_unreachable_upstream_is_502(fake: FakeOpenAI) -> None:
    class Nowhere(FakeOpenAI):
        @property
        def base_url(self) -> str:
            return f"http://127.0.0.1:{free_port()}/v1"

    with Served(Nowhere()) as server, pytest.raises(openai.InternalServerError) as caught:
        run(server, "sync", lambda c: c.models.list())
    assert caught.value.status_code == 502


def test_a_refused_upstream_key_is_logged_without_any_part_of_it(
    served: Served, fake: FakeOpenAI, logs: Any
) -> None:
    fake.reset(
        lambda seen: error_answer(
            401,
            f"Incorrect API key provided: {OPENAI_KEY[:8]}***{OPENAI_KEY[-4:]}",
            "x",
            "invalid_api_key",
        )
    )
    with pytest.raises(openai.InternalServerError):
        run(served, "sync", lambda c: c.models.list())
    assert logs.events("upstream_key_rejected")
    assert not any(OPENAI_KEY[-4:] in line or OPENAI_KEY[:8] in line for line in logs.lines)


# --- streaming --------------------------------------------------------------------------


def chat_chunk(text: str) -> bytes:
    chunk = {
        "id": "c1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}],
    }
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


SSE = {"Content-Type": "text/event-stream"}


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_sse_arrives_incrementally(served: Served, fake: FakeOpenAI, mode: str) -> None:
    chunks = [chat_chunk(word) for word in ("one", "two", "three", "four")] + [b"data: [DONE]\n\n"]
    fake.reset(lambda seen: Answer(headers=SSE, chunks=chunks, pause=0.5))
    arrivals: list[float] = []

    def call(client: Any) -> Any:
        started = time.monotonic()
        stream = client.chat.completions.create(model="m", messages=[], stream=True)
        if mode == "sync":
            for _ in stream:
                arrivals.append(time.monotonic() - started)
            return None

        async def consume() -> None:
            async for _ in await stream:
                arrivals.append(time.monotonic() - started)

        return consume()

    run(served, mode, call)
    assert len(arrivals) == 4
    # The first chunk comes long before the last (the upstream pauses 0.5 s between them).
    assert arrivals[0] < arrivals[-1] / 2
    assert json.loads(fake.seen[0].body)["stream"] is True


def test_streamed_answer_headers(served: Served, fake: FakeOpenAI) -> None:
    fake.reset(lambda seen: Answer(headers=SSE, chunks=[b"data: [DONE]\n\n"]))
    answer = httpx.post(
        served.origin + "/openai/v1/chat/completions",
        json={"model": "m", "stream": True},
        headers={"api-key": SECRET},
    )
    assert answer.headers["cache-control"] == "no-cache"
    assert answer.headers["x-accel-buffering"] == "no"
    assert answer.content == b"data: [DONE]\n\n"


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_chat_stream_that_breaks_raises_api_error_after_the_first_chunks(
    served: Served, fake: FakeOpenAI, mode: str
) -> None:
    chunks = [chat_chunk("one"), chat_chunk("two"), b'data: {"id": "trunc']
    fake.reset(lambda seen: Answer(headers=SSE, chunks=[*chunks, chat_chunk("x")], drop_after=3))
    got: list[str] = []

    def call(client: Any) -> Any:
        stream = client.chat.completions.create(model="m", messages=[], stream=True)
        if mode == "sync":
            for chunk in stream:
                got.append(chunk.choices[0].delta.content)
            return None

        async def consume() -> None:
            async for chunk in await stream:
                got.append(chunk.choices[0].delta.content)

        return consume()

    with pytest.raises(openai.APIError, match="upstream stream ended"):
        run(served, mode, call)
    assert got == ["one", "two"]


def test_a_responses_stream_that_breaks_ends_with_an_error_event(
    served: Served, fake: FakeOpenAI
) -> None:
    response = {
        "id": "r",
        "object": "response",
        "created_at": 1,
        "status": "in_progress",
        "model": "m",
        "output": [],
        "tool_choice": "auto",
        "tools": [],
        "parallel_tool_calls": True,
    }
    event = {"type": "response.created", "sequence_number": 0, "response": response}
    created = b"event: response.created\ndata: " + json.dumps(event).encode() + b"\n\n"
    fake.reset(
        lambda seen: Answer(headers=SSE, chunks=[created, b"event: resp", b"x"], drop_after=2)
    )
    with sdk_client(served, "sync") as client:
        events = list(client.responses.create(model="m", input="hi", stream=True))
    assert [event.type for event in events] == ["response.created", "error"]
    assert events[-1].code == "upstream_stream_error"


# --- POST /openai/chat ------------------------------------------------------------------


def test_simple_chat_answers_one_text(served: Served, fake: FakeOpenAI) -> None:
    completion = {
        "id": "c",
        "object": "chat.completion",
        "model": "gpt-4o-mini-2024",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Paris."},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11},
    }
    fake.reset(lambda seen: json_answer(completion))
    answer = httpx.post(
        served.origin + "/openai/chat",
        json={
            "prompt": "Capital of France?",
            "history": [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "hello"},
            ],
            "system": "Be brief.",
            "temperature": 0.2,
        },
        headers={"api-key": SECRET},
    )
    assert answer.status_code == 200
    assert answer.json() == {
        "text": "Paris.",
        "model": "gpt-4o-mini-2024",
        "finish_reason": "stop",
        "usage": {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11},
    }
    sent = json.loads(fake.seen[0].body)
    assert fake.seen[0].path == "/v1/chat/completions"
    assert sent == {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "hello"},
            {"role": "user", "content": "Capital of France?"},
        ],
        "temperature": 0.2,
    }
    assert fake.seen[0].headers["authorization"] == f"Bearer {OPENAI_KEY}"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({}, "prompt"),
        ({"prompt": "x", "temperature": 3}, "temperature"),
        ({"prompt": "x", "history": [{"role": "system", "content": "y"}]}, "history.0.role"),
        ({"prompt": "x", "history": [{"role": "user", "content": "y"}] * 51}, "history"),
    ],
)
def test_simple_chat_refuses_bad_parameters_in_the_projects_shape(
    served: Served, fake: FakeOpenAI, body: dict[str, Any], param: str
) -> None:
    answer = httpx.post(served.origin + "/openai/chat", json=body, headers={"api-key": SECRET})
    assert answer.status_code == 422
    error = answer.json()["error"]
    assert error["code"] == "invalid_parameters"
    assert param in [d["param"] for d in error["details"]]
    assert fake.seen == []


@pytest.mark.parametrize(
    ("answer", "status", "code"),
    [
        (
            error_answer(429, "slow", "requests", "rate_limit_exceeded", **{"retry-after": "3"}),
            429,
            "rate_limited",
        ),
        (
            error_answer(401, f"Incorrect API key provided: {OPENAI_KEY[:8]}", "x", None),
            502,
            "upstream_unavailable",
        ),
        (
            error_answer(404, "The model `nope` does not exist", "invalid_request_error", None),
            422,
            "model_refused",
        ),
        (Answer(delay=3.0), 504, "upstream_timeout"),
    ],
)
def test_simple_chat_upstream_failures_in_the_projects_shape(
    served: Served, fake: FakeOpenAI, answer: Answer, status: int, code: str
) -> None:
    fake.reset(lambda seen: answer)
    reply = httpx.post(
        served.origin + "/openai/chat",
        json={"prompt": "x"},
        headers={"api-key": SECRET},
        timeout=10,
    )
    assert reply.status_code == status
    assert reply.json()["error"]["code"] == code
    assert set(reply.json()["error"]) <= {"code", "message", "details"}
    assert OPENAI_KEY[:8] not in reply.text
    if status == 429:
        assert reply.headers["retry-after"] == "3"


def test_simple_chat_needs_the_callers_credential(served: Served, fake: FakeOpenAI) -> None:
    reply = httpx.post(served.origin + "/openai/chat", json={"prompt": "x"})
    assert reply.status_code == 401 and reply.json()["error"]["code"] == "unauthorized"
    assert fake.seen == []


def test_many_long_streams_at_once_all_complete(served: Served, fake: FakeOpenAI) -> None:
    # Each stream lasts longer than OPENAI_TIMEOUT (2 s here) and holds its upstream
    # connection throughout: a connection pool of 100 left callers 101+ waiting for one
    # until the timeout, and they got 504 (800 of 1,000 in the throughput bench).
    chunks = [chat_chunk(str(n)) for n in range(6)] + [b"data: [DONE]\n\n"]
    fake.reset(lambda seen: Answer(headers=SSE, chunks=chunks, pause=0.5))

    async def one(client: httpx.AsyncClient) -> tuple[int, bytes]:
        answer = await client.post(
            served.origin + "/openai/v1/chat/completions",
            json={"model": "m", "stream": True},
            headers={"api-key": SECRET},
        )
        return answer.status_code, answer.content

    async def main() -> list[tuple[int, bytes]]:
        limits = httpx.Limits(max_connections=None)
        async with httpx.AsyncClient(limits=limits, timeout=30) as client:
            return await asyncio.gather(*(one(client) for _ in range(130)))

    answers = asyncio.run(main())
    assert [status for status, _ in answers] == [200] * 130
    assert all(body.endswith(b"data: [DONE]\n\n") for _, body in answers)
