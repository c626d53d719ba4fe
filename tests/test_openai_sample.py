"""The OpenAI sample transport, driven by the official `openai` SDK as a caller would.

Each test talks to `OpenAISampleTransport` through `AsyncOpenAI` (or `OpenAI`) with the
legacy httpx escape hatch (`http_client=httpx.AsyncClient(transport=...)`), so answers must
parse into the SDK's own types and errors must map to the SDK's own exceptions.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import math
import struct
import wave
import zlib
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import openai
import pytest

from app.connectors.openai.sample import OpenAISampleTransport

BASE = "http://sample.test/v1"
CHAT = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Tell me a joke"}]


class Recording(httpx.AsyncBaseTransport):
    """Passes requests to the sample transport and keeps them, to see what the SDK sent."""

    def __init__(self) -> None:
        self.inner = OpenAISampleTransport()
        self.sent: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        self.sent.append(request)
        return await self.inner.handle_async_request(request)


def run(test: Callable[[openai.AsyncOpenAI], Awaitable[Any]], transport: Any = None) -> Any:
    async def main() -> Any:
        http = httpx.AsyncClient(transport=transport or OpenAISampleTransport())
        async with openai.AsyncOpenAI(api_key="x", base_url=BASE, http_client=http) as client:
            return await test(client)

    return asyncio.run(main())


async def raw(method: str, path: str, **kwargs: Any) -> httpx.Response:
    async with httpx.AsyncClient(transport=OpenAISampleTransport(), base_url=BASE) as client:
        return await client.request(method, path, **kwargs)


def test_models_list_and_retrieve_and_unknown_model_is_not_found() -> None:
    async def calls(client: openai.AsyncOpenAI) -> Any:
        listed = [m.id async for m in client.models.list()]
        one = await client.models.with_raw_response.retrieve("whisper-1")
        with pytest.raises(openai.NotFoundError) as missing:
            await client.models.retrieve("gpt-nope")
        return listed, one, missing.value

    listed, one, missing = run(calls)
    assert {"gpt-4o-mini", "gpt-4o", "text-embedding-3-small", "omni-moderation-latest"} <= set(
        listed
    )
    assert {"dall-e-2", "tts-1", "whisper-1"} <= set(listed)
    assert one.parse().id == "whisper-1"
    assert one.headers["x-sample-data"] == "true"
    assert one.headers["x-request-id"].startswith("req_")
    assert missing.code == "model_not_found"
    assert missing.request_id and missing.response.headers["x-sample-data"] == "true"


def test_chat_completion_is_deterministic_sample_text_with_usage() -> None:
    async def calls(client: openai.AsyncOpenAI) -> Any:
        first = await client.chat.completions.create(model="gpt-4o", messages=CHAT)
        again = await client.chat.completions.create(model="gpt-4o", messages=CHAT)
        other = await client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "Something else"}]
        )
        return first, again, other

    first, again, other = run(calls)
    text = first.choices[0].message.content
    assert text.startswith("[sample data]") and "Tell me a joke" in text
    assert first.model == "gpt-4o" and first.choices[0].finish_reason == "stop"
    assert again.choices[0].message.content == text and again.id == first.id
    assert other.choices[0].message.content != text
    # Four tokens for every three words: "Be brief." + "Tell me a joke" = 3 + 5.
    assert first.usage.prompt_tokens == 8
    assert first.usage.completion_tokens == round(len(text.split()) * 4 / 3)
    assert first.usage.total_tokens == first.usage.prompt_tokens + first.usage.completion_tokens


def test_chat_max_tokens_cuts_the_reply_with_finish_reason_length() -> None:
    reply = run(lambda c: c.chat.completions.create(model="gpt-4o", messages=CHAT, max_tokens=5))
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage.completion_tokens <= 5


def test_chat_stream_yields_pieces_then_usage_only_when_asked() -> None:
    async def chunks(client: openai.AsyncOpenAI, **extra: Any) -> list[Any]:
        stream = await client.chat.completions.create(
            model="gpt-4o-mini", messages=CHAT, stream=True, **extra
        )
        return [chunk async for chunk in stream]

    async def calls(client: openai.AsyncOpenAI) -> Any:
        whole = await client.chat.completions.create(model="gpt-4o-mini", messages=CHAT)
        plain = await chunks(client)
        counted = await chunks(client, stream_options={"include_usage": True})
        return whole, plain, counted

    whole, plain, counted = run(calls)
    assert plain[0].choices[0].delta.role == "assistant"
    pieces = [c.choices[0].delta.content for c in plain[1:-1]]
    assert len(pieces) >= 3
    assert "".join(pieces) == whole.choices[0].message.content
    assert plain[-1].choices[0].finish_reason == "stop"
    assert all(c.usage is None for c in plain)
    assert counted[-1].choices == [] and counted[-1].usage == whole.usage
    assert all(c.usage is None for c in counted[:-1])


def test_streams_arrive_as_separate_chunks_ending_with_done() -> None:
    async def chunks(path: str, body: dict[str, Any]) -> tuple[httpx.Response, list[bytes]]:
        async with httpx.AsyncClient(transport=OpenAISampleTransport(), base_url=BASE) as client:
            async with client.stream("POST", path, json=body) as response:
                return response, [chunk async for chunk in response.aiter_raw()]

    chat, chat_chunks = asyncio.run(
        chunks("/chat/completions", {"model": "m", "messages": CHAT, "stream": True})
    )
    legacy, legacy_chunks = asyncio.run(
        chunks("/completions", {"model": "m", "prompt": "Once", "stream": True})
    )
    for response, got in ((chat, chat_chunks), (legacy, legacy_chunks)):
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["x-sample-data"] == "true"
        assert len(got) >= 4
        assert all(c.startswith(b"data: ") and c.endswith(b"\n\n") for c in got)
        assert got[-1] == b"data: [DONE]\n\n"


def test_responses_json_and_event_stream() -> None:
    async def calls(client: openai.AsyncOpenAI) -> Any:
        whole = await client.responses.create(model="gpt-4o-mini", input="Name a colour")
        stream = await client.responses.create(
            model="gpt-4o-mini", input="Name a colour", stream=True
        )
        return whole, [event async for event in stream]

    whole, events = run(calls)
    assert whole.output_text.startswith("[sample data]") and "Name a colour" in whole.output_text
    assert whole.status == "completed" and whole.usage.total_tokens > 0
    kinds = [e.type for e in events]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    assert kinds.count("response.output_text.delta") >= 3
    assert kinds.index("response.output_text.done") < kinds.index("response.completed")
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas == whole.output_text
    assert events[-1].response.usage == whole.usage
    assert [e.sequence_number for e in events] == list(range(len(events)))


def test_legacy_completion_json_and_stream() -> None:
    async def calls(client: openai.AsyncOpenAI) -> Any:
        whole = await client.completions.create(model="gpt-3.5-turbo-instruct", prompt="Once")
        stream = await client.completions.create(
            model="gpt-3.5-turbo-instruct",
            prompt="Once",
            stream=True,
            stream_options={"include_usage": True},
        )
        return whole, [chunk async for chunk in stream]

    whole, chunks = run(calls)
    assert "[sample data]" in whole.choices[0].text and whole.usage.prompt_tokens == 1
    assert "".join(c.choices[0].text for c in chunks if c.choices) == whole.choices[0].text
    assert chunks[-1].usage == whole.usage


def test_embeddings_are_deterministic_unit_vectors_in_both_encodings() -> None:
    recording = Recording()

    async def calls(client: openai.AsyncOpenAI) -> Any:
        default = await client.embeddings.create(model="text-embedding-3-small", input=["a", "b"])
        floats = await client.embeddings.create(
            model="text-embedding-3-small", input="a", encoding_format="float"
        )
        short = await client.embeddings.create(
            model="text-embedding-3-small", input=[[1, 2, 3]], dimensions=64
        )
        return default, floats, short

    default, floats, short = run(calls, recording)
    # The SDK asks for base64 by default and decodes it itself.
    assert json.loads(recording.sent[0].content)["encoding_format"] == "base64"
    first, second = (d.embedding for d in default.data)
    assert len(first) == 1536 and first != second
    assert first == floats.data[0].embedding
    assert math.isclose(math.sqrt(sum(v * v for v in first)), 1.0, abs_tol=1e-5)
    assert len(short.data[0].embedding) == 64 and short.usage.prompt_tokens == 3
    assert math.isclose(math.sqrt(sum(v * v for v in short.data[0].embedding)), 1.0, abs_tol=1e-5)


def test_embeddings_refuse_empty_input_in_openai_shape() -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        run(lambda c: c.embeddings.create(model="text-embedding-3-small", input=""))
    assert refused.value.param == "input"


def test_moderation_flags_only_obvious_words() -> None:
    async def calls(client: openai.AsyncOpenAI) -> Any:
        return await client.moderations.create(input=["have a nice day", "I will kill it"])

    result = run(calls)
    calm, violent = result.results
    assert result.model == "omni-moderation-latest"
    assert not calm.flagged and violent.flagged and violent.categories.violence
    assert len(calm.categories.model_dump()) >= 13
    assert violent.category_scores.violence > calm.category_scores.violence


def png_size(data: bytes) -> tuple[int, int]:
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = struct.unpack(">II", data[16:24])
    idat = data.index(b"IDAT")
    (length,) = struct.unpack(">I", data[idat - 4 : idat])
    assert len(zlib.decompress(data[idat + 4 : idat + 4 + length])) == height * (1 + 3 * width)
    return width, height


@pytest.mark.filterwarnings("ignore:deprecated:DeprecationWarning")  # variations
def test_images_generate_edit_and_vary_as_png() -> None:
    async def calls(client: openai.AsyncOpenAI) -> Any:
        as_b64 = await client.images.generate(prompt="a red fox", response_format="b64_json", n=2)
        as_url = await client.images.generate(prompt="a red fox")
        edit = await client.images.edit(
            image=("in.png", b"\x89PNG fake", "image/png"), prompt="add a hat", model="dall-e-2"
        )
        vary = await client.images.create_variation(
            image=("in.png", b"\x89PNG fake", "image/png"), response_format="b64_json"
        )
        return as_b64, as_url, edit, vary

    as_b64, as_url, edit, vary = run(calls)
    assert len(as_b64.data) == 2
    assert png_size(base64.b64decode(as_b64.data[0].b64_json)) == (16, 16)
    prefix = "data:image/png;base64,"
    assert as_url.data[0].url.startswith(prefix)
    png_size(base64.b64decode(as_url.data[0].url.removeprefix(prefix)))
    png_size(base64.b64decode(edit.data[0].url.removeprefix(prefix)))
    png_size(base64.b64decode(vary.data[0].b64_json))


def test_image_edit_without_prompt_is_a_bad_request() -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        run(lambda c: c.images.edit(image=("in.png", b"x", "image/png"), prompt=""))
    assert refused.value.param == "prompt"


def test_speech_is_a_short_wav_whatever_the_format() -> None:
    async def speak(client: openai.AsyncOpenAI) -> Any:
        return await client.audio.speech.with_raw_response.create(
            model="tts-1", voice="alloy", input="Hello", response_format="mp3"
        )

    response = run(speak)
    audio = response.content
    assert audio.startswith(b"RIFF") and response.headers["content-type"] == "audio/wav"
    with wave.open(io.BytesIO(audio)) as sound:
        assert sound.getnchannels() == 1
        assert math.isclose(sound.getnframes() / sound.getframerate(), 0.5)


@pytest.mark.filterwarnings("ignore:deprecated:DeprecationWarning")  # translations
def test_transcriptions_and_translations_honour_response_format() -> None:
    audio = ("a.wav", b"RIFF....WAVE", "audio/wav")

    async def calls(client: openai.AsyncOpenAI) -> Any:
        make = client.audio.transcriptions.create
        return (
            await make(model="whisper-1", file=audio),
            await make(model="whisper-1", file=audio, response_format="text"),
            await make(model="whisper-1", file=audio, response_format="srt"),
            await make(model="whisper-1", file=audio, response_format="vtt"),
            await make(model="whisper-1", file=audio, response_format="verbose_json"),
            await client.audio.translations.create(model="whisper-1", file=audio),
        )

    as_json, text, srt, vtt, verbose, translated = run(calls)
    assert as_json.text.startswith("[sample data]")
    assert text.strip() == as_json.text
    assert srt.startswith("1\n00:00:00,000 --> 00:00:00,500\n") and as_json.text in srt
    assert vtt.startswith("WEBVTT\n\n00:00:00.000 --> 00:00:00.500\n")
    assert verbose.segments[0].text == as_json.text and verbose.duration == 0.5
    assert "translation" in translated.text


def test_files_round_trip_and_unknown_file_is_not_found() -> None:
    async def calls(client: openai.AsyncOpenAI) -> Any:
        made = await client.files.create(file=("train.jsonl", b'{"a": 1}\n'), purpose="fine-tune")
        again = await client.files.retrieve(made.id)
        with pytest.raises(openai.NotFoundError):
            await client.files.retrieve("file-unknown")
        return made, again

    made, again = run(calls)
    assert made == again
    assert (again.filename, again.bytes, again.purpose) == ("train.jsonl", 9, "fine-tune")


def test_fine_tuning_job_moves_one_state_per_retrieve() -> None:
    async def calls(client: openai.AsyncOpenAI) -> Any:
        jobs = client.fine_tuning.jobs
        made = await jobs.create(model="gpt-4o-mini", training_file="file-abc")
        states = [made.status] + [(await jobs.retrieve(made.id)).status for _ in range(4)]
        done = await jobs.retrieve(made.id)
        events = await jobs.list_events(made.id)
        other = await jobs.create(model="gpt-4o-mini", training_file="file-abc")
        cancelled = await jobs.cancel(other.id)
        page = await jobs.list(limit=1)
        with pytest.raises(openai.BadRequestError):
            await jobs.cancel(made.id)
        with pytest.raises(openai.NotFoundError):
            await jobs.retrieve("ftjob-unknown")
        return states, done, events, cancelled, page

    states, done, events, cancelled, page = run(calls)
    assert states == ["validating_files", "queued", "running", "succeeded", "succeeded"]
    assert done.fine_tuned_model and done.fine_tuned_model.startswith("ft:gpt-4o-mini:")
    assert events.data[0].message == "The job has successfully completed"
    assert len(events.data) == 4
    assert cancelled.status == "cancelled"
    assert [j.id for j in page.data] == [cancelled.id] and page.has_more


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/chat/completions", {"model": "gpt-4o"}, "messages"),
        ("/chat/completions", {"messages": CHAT}, "model"),
        ("/responses", {"model": "gpt-4o"}, "input"),
        ("/embeddings", {"model": "text-embedding-3-small"}, "input"),
    ],
)
def test_missing_required_field_is_openai_shaped_400(
    path: str, body: dict[str, Any], param: str
) -> None:
    response = asyncio.run(raw("POST", path, json=body))
    assert response.status_code == 400
    assert response.json() == {
        "error": {
            "message": f"Missing required parameter: '{param}'.",
            "type": "invalid_request_error",
            "param": param,
            "code": "missing_required_parameter",
        }
    }
    with pytest.raises(openai.BadRequestError) as refused:
        run(lambda c: c.post(path, body=body, cast_to=httpx.Response))
    assert refused.value.param == param


def test_bad_json_and_unknown_path_are_openai_shaped() -> None:
    bad = asyncio.run(raw("POST", "/chat/completions", content=b"{not json"))
    unknown = asyncio.run(raw("GET", "/assistants"))
    outside = asyncio.run(raw("GET", "http://sample.test/models"))
    assert bad.status_code == 400 and bad.json()["error"]["type"] == "invalid_request_error"
    assert set(bad.json()["error"]) == {"message", "type", "param", "code"}
    assert unknown.status_code == 404 and outside.status_code == 404
    assert unknown.json()["error"]["message"] == "Invalid URL (GET /v1/assistants)"
    assert unknown.headers["x-sample-data"] == "true"


def test_sync_client_works_streaming_included() -> None:
    http = httpx.Client(transport=OpenAISampleTransport())
    with openai.OpenAI(api_key="x", base_url=BASE, http_client=http) as client:
        stream = client.chat.completions.create(model="gpt-4o", messages=CHAT, stream=True)
        text = "".join(c.choices[0].delta.content or "" for c in stream)
        model = client.models.retrieve("gpt-4o")
    assert text.startswith("[sample data]") and model.id == "gpt-4o"
