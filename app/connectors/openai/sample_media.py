"""Sample answers for the image and audio routes, with media generated in code (no blobs).

- Images (`/images/generations`, `/images/edits`, `/images/variations`): a 16x16 PNG whose
  colour is derived from the prompt. `response_format=b64_json` (and every `gpt-image-*` model)
  gives `b64_json`; `url` (the default for dall-e models) gives a `data:image/png;base64,...`
  URL, since there is nowhere to host a file. `size` and `quality` are accepted and ignored.
- Speech (`/audio/speech`): 0.5 s of a quiet 440 Hz tone as 8 kHz mono 16-bit WAV, with
  `Content-Type: audio/wav` whatever `response_format` asked for (mp3, opus... are not
  produced). `stream_format=sse` is not supported.
- Transcriptions and translations: a fixed text that says it is sample data, in the asked
  `response_format` (json, text, srt, vtt, verbose_json); `stream` is ignored.
"""

from __future__ import annotations

import base64
import io
import math
import struct
import wave
import zlib
from functools import cache

from app.connectors.openai.sample_wire import (
    JSON,
    SAMPLE_EPOCH,
    Reply,
    SampleForm,
    SampleRequest,
    digest,
    invalid,
    json_reply,
    missing,
)

__all__ = [
    "image_edit",
    "image_generation",
    "image_variation",
    "png",
    "speech",
    "transcription",
    "translation",
    "wav",
]

_SIDE = 16
_SECONDS = 0.5
_RATE = 8000
_TRANSCRIPT = "[sample data] This is a sample transcription; no audio was processed."
_TRANSLATION = "[sample data] This is a sample translation into English; no audio was processed."


def png(seed: str) -> bytes:
    """A valid 16x16 RGB PNG, one colour derived from `seed`."""
    colour = bytes.fromhex(digest(seed)[:6])
    rows = b"".join(b"\x00" + colour * _SIDE for _ in range(_SIDE))

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", _SIDE, _SIDE, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


@cache
def wav() -> bytes:
    """Half a second of a quiet 440 Hz tone: a valid 8 kHz mono 16-bit WAV file."""
    frames = b"".join(
        struct.pack("<h", int(2000 * math.sin(2 * math.pi * 440 * n / _RATE)))
        for n in range(int(_RATE * _SECONDS))
    )
    out = io.BytesIO()
    with wave.open(out, "wb") as sound:
        sound.setnchannels(1)
        sound.setsampwidth(2)
        sound.setframerate(_RATE)
        sound.writeframes(frames)
    return out.getvalue()


def _images(model: str, prompt: str, count: object, response_format: object) -> Reply:
    if not isinstance(count, int) or not 1 <= count <= 10:
        raise invalid("n", "Invalid value for 'n': expected an integer from 1 to 10.")
    if response_format not in (None, "url", "b64_json"):
        raise invalid("response_format", "Invalid value for 'response_format': url or b64_json.")
    as_url = response_format == "url" or (
        response_format is None and not model.startswith("gpt-image")
    )
    data: list[JSON] = []
    for index in range(count):
        encoded = base64.b64encode(png(f"{model}\x00{prompt}\x00{index}")).decode()
        key, value = (
            ("url", "data:image/png;base64," + encoded) if as_url else ("b64_json", encoded)
        )
        data.append({key: value, "revised_prompt": f"[sample data] {prompt}".rstrip()})
    return json_reply({"created": SAMPLE_EPOCH, "data": data})


def _form_count(form: SampleForm) -> int | str:
    given = form.fields.get("n", "1")
    return int(given) if given.isdigit() else given


def image_generation(request: SampleRequest) -> Reply:
    """`POST /images/generations` (JSON): sample PNGs, as b64_json or data: URLs."""
    body = request.json()
    prompt = body.get("prompt")
    if not prompt or not isinstance(prompt, str):
        raise missing("prompt")
    model = str(body.get("model") or "dall-e-2")
    return _images(model, prompt, body.get("n", 1), body.get("response_format"))


def image_edit(request: SampleRequest) -> Reply:
    """`POST /images/edits` (multipart: `image` or `image[]`, `prompt`): sample PNGs."""
    form = request.form()
    form.file("image", "image[]")
    prompt = form.text("prompt")
    model = form.fields.get("model") or "dall-e-2"
    return _images(model, prompt, _form_count(form), form.fields.get("response_format"))


def image_variation(request: SampleRequest) -> Reply:
    """`POST /images/variations` (multipart: `image`): sample PNGs seeded by the image bytes."""
    form = request.form()
    image = form.file("image")
    model = form.fields.get("model") or "dall-e-2"
    seed = "variation " + digest(image.data)[:8]
    return _images(model, seed, _form_count(form), form.fields.get("response_format"))


def speech(request: SampleRequest) -> Reply:
    """`POST /audio/speech`: a short WAV, `audio/wav`, whatever `response_format` asked for."""
    body = request.json()
    for name in ("model", "input", "voice"):
        if not body.get(name):
            raise missing(name)
    if not isinstance(body["input"], str) or len(body["input"]) > 4096:
        raise invalid("input", "Invalid value for 'input': a string of at most 4096 characters.")
    return Reply(200, "audio/wav", wav())


def _timestamp(seconds: float, separator: str) -> str:
    millis = round(seconds * 1000)
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    return f"{hours:02d}:{minutes:02d}:{rest // 1000:02d}{separator}{rest % 1000:03d}"


def _spoken(request: SampleRequest, text: str, task: str) -> Reply:
    form = request.form()
    form.file("file")
    form.text("model")
    kind = form.fields.get("response_format", "json")
    start, end = _timestamp(0, ","), _timestamp(_SECONDS, ",")
    if kind == "json":
        return json_reply({"text": text, "usage": {"type": "duration", "seconds": 1}})
    if kind == "text":
        return Reply(200, "text/plain; charset=utf-8", f"{text}\n".encode())
    if kind == "srt":
        return Reply(200, "text/plain; charset=utf-8", f"1\n{start} --> {end}\n{text}\n\n".encode())
    if kind == "vtt":
        start, end = _timestamp(0, "."), _timestamp(_SECONDS, ".")
        return Reply(
            200, "text/vtt; charset=utf-8", f"WEBVTT\n\n{start} --> {end}\n{text}\n\n".encode()
        )
    if kind == "verbose_json":
        segment = {
            "id": 0,
            "seek": 0,
            "start": 0.0,
            "end": _SECONDS,
            "text": text,
            "tokens": [],
            "temperature": 0.0,
            "avg_logprob": -0.1,
            "compression_ratio": 1.0,
            "no_speech_prob": 0.0,
        }
        return json_reply(
            {
                "task": task,
                "language": "english",
                "duration": _SECONDS,
                "text": text,
                "segments": [segment],
            }
        )
    raise invalid(
        "response_format",
        "Invalid value for 'response_format': json, text, srt, vtt or verbose_json.",
    )


def transcription(request: SampleRequest) -> Reply:
    """`POST /audio/transcriptions` (multipart: `file`, `model`): a fixed sample text."""
    return _spoken(request, _TRANSCRIPT, "transcribe")


def translation(request: SampleRequest) -> Reply:
    """`POST /audio/translations` (multipart: `file`, `model`): a fixed sample text."""
    return _spoken(request, _TRANSLATION, "translate")
