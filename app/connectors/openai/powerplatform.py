"""The OpenAI connector's Power Platform export: its actions, declared as data.

Seed 002's list of actions (the "OpenAI GPT" independent-publisher connector's, minus the
retired edits endpoint) on the gateway's `/openai/v1/...` routes, plus the simple chat
action `POST /openai/chat`. Request and answer schemas are written here once, inline (no
`$ref`, whose siblings Swagger 2.0 ignores); every field gets its Title Case label from
`with_summaries`. Model fields offer a dropdown filled by `ModelsGet`.
"""

from __future__ import annotations

from typing import Any

from app.connectors.openai.chat import SIMPLE_CHAT
from app.connectors.openai.connector import CHAT_PATH
from app.connectors.openai.routes import PREFIXES
from app.png import Image, encode
from app.powerplatform import PowerPlatformConnector
from app.swagger2 import (
    connector_operation_id,
    error_responses,
    inline_schema,
    title_case,
    with_summaries,
)

__all__ = ["connector", "paths"]

JSON = dict[str, Any]
PREFIX = PREFIXES[0]
LIST_MODELS = "ModelsGet"


def _s(description: str, **extra: Any) -> JSON:
    return {"type": "string", "description": description, **extra}


def _i(description: str, **extra: Any) -> JSON:
    return {"type": "integer", "format": "int32", "description": description, **extra}


def _n(description: str, **extra: Any) -> JSON:
    return {"type": "number", "format": "double", "description": description, **extra}


def _b(description: str) -> JSON:
    return {"type": "boolean", "description": description}


def _time(description: str) -> JSON:
    return {"type": "integer", "format": "int64", "description": description}


def _list(items: JSON, description: str) -> JSON:
    return {"type": "array", "description": description, "items": items}


def _obj(properties: JSON, description: str = "", required: list[str] | None = None) -> JSON:
    schema: JSON = {"type": "object", "properties": properties}
    if description:
        schema["description"] = description
    if required:
        schema["required"] = required
    return schema


def _model(default: str | None, description: str) -> JSON:
    """A model field whose dropdown lists the models the upstream offers."""
    field = _s(description, **{"x-ms-visibility": "important"})
    if default:
        field["default"] = default
    field["x-ms-dynamic-values"] = {
        "operationId": LIST_MODELS,
        "value-collection": "data",
        "value-path": "id",
        "value-title": "id",
    }
    return field


# What went wrong, in OpenAI's shape (the /openai/v1 routes) and in the project's (/openai/chat).
_OPENAI_ERROR = _obj(
    {
        "error": _obj(
            {
                "message": _s("What went wrong, for people."),
                "type": _s("Error category, e.g. invalid_request_error."),
                "param": _s("The request field at fault, if any."),
                "code": _s("Machine-readable code, if any."),
            },
            "The error.",
        )
    },
    "An error in OpenAI's shape.",
)
_OWN_ERROR = _obj(
    {
        "error": _obj(
            {
                "code": _s("Stable machine-readable code, e.g. upstream_timeout."),
                "message": _s("What went wrong and what to do, in one or two sentences."),
            },
            "The error.",
        )
    },
    "An error: store error.message in a variable to show it.",
)
_ERRORS = {
    400: "The request is malformed or a field is invalid.",
    401: "Missing or wrong credential.",
    404: "No such model, file or job.",
    413: "The request body is too large.",
    429: "Rate limit or quota reached; retry after Retry-After seconds.",
    502: "OpenAI failed or refused the service's key.",
    503: "The service is closed or cannot read its OpenAI key.",
    504: "OpenAI did not answer in time.",
}
_CHAT_ERRORS = {
    401: "Missing or wrong credential.",
    422: "The request is invalid; the message says which field.",
    429: "Rate limit or quota reached; retry after Retry-After seconds.",
    502: "OpenAI failed or answered unusably.",
    503: "The service is closed or cannot read its OpenAI key.",
    504: "OpenAI did not answer in time.",
}


def _responses(ok: JSON, errors: dict[int, str], error_schema: JSON) -> JSON:
    responses = {"200": {"description": "OK", "schema": with_summaries(ok)}}
    responses |= error_responses(errors, with_summaries(error_schema))
    responses["429"]["headers"] = {
        "Retry-After": {"type": "string", "description": "Seconds to wait before retrying."}
    }
    return responses


def _body(schema: JSON) -> list[JSON]:
    return [
        {
            "name": "body",
            "in": "body",
            "required": True,
            "x-ms-summary": "Request",
            "description": "The request, as JSON.",
            "schema": with_summaries(schema),
        }
    ]


def _form(name: str, field: JSON, required: bool = False) -> JSON:
    """A multipart form field (Swagger 2.0: one `formData` parameter per field)."""
    parameter = {"name": name, "in": "formData", "required": required, **field}
    parameter.setdefault("x-ms-summary", title_case(name))
    return parameter


def _file(description: str) -> JSON:
    return {"type": "file", "description": description}


def _action(
    operation_id: str,
    summary: str,
    description: str,
    *,
    parameters: list[JSON],
    ok: JSON,
    consumes: list[str] | None = None,
    produces: list[str] | None = None,
    deprecated: bool = False,
    visibility: str | None = None,
) -> JSON:
    action: JSON = {
        "operationId": operation_id,
        "summary": summary,
        "description": description,
        "parameters": parameters,
        "responses": _responses(ok, _ERRORS, _OPENAI_ERROR),
    }
    if consumes:
        action["consumes"] = consumes
    if produces:
        action["produces"] = produces
    if deprecated:
        action["deprecated"] = True
    if visibility:
        action["x-ms-visibility"] = visibility
    return action


_USAGE = _obj(
    {
        "prompt_tokens": _i("Tokens in the prompt."),
        "completion_tokens": _i("Tokens in the answer."),
        "total_tokens": _i("Prompt and answer tokens together."),
    },
    "Tokens used.",
)
_SAMPLING = {
    "temperature": _n("Randomness, 0 to 2: higher is more varied.", minimum=0, maximum=2),
    "top_p": _n("Nucleus sampling, 0 to 1: an alternative to temperature.", minimum=0, maximum=1),
    "n": _i("How many answers to generate.", minimum=1, maximum=10),
    "stop": _s("A sequence where the model stops writing."),
    "presence_penalty": _n("-2 to 2: positive values favour new topics.", minimum=-2, maximum=2),
    "frequency_penalty": _n(
        "-2 to 2: positive values discourage repetition.", minimum=-2, maximum=2
    ),
    "user": _s("An id for the end user, to help OpenAI detect abuse."),
}
_JOB = _obj(
    {
        "id": _s("Fine-tuning job ID."),
        "object": _s("Always fine_tuning.job."),
        "model": _s("The base model."),
        "created_at": _time("Creation time, Unix seconds."),
        "finished_at": _time("Finish time, Unix seconds; empty while running."),
        "fine_tuned_model": _s("The resulting model, once the job succeeded."),
        "organization_id": _s("The organisation that owns the job."),
        "result_files": _list(_s("A file ID."), "Result file IDs."),
        "status": _s("validating_files, queued, running, succeeded, failed or cancelled."),
        "training_file": _s("Training file ID."),
        "validation_file": _s("Validation file ID."),
        "trained_tokens": _i("Tokens trained on, once finished."),
    },
    "A fine-tuning job.",
)
_JOB_ID = {
    "name": "fine_tuning_job_id",
    "in": "path",
    "required": True,
    "type": "string",
    "description": "The fine-tuning job's ID, e.g. ftjob-abc123.",
    "x-ms-summary": "Fine-tuning Job ID",
    "x-ms-url-encoding": "single",
}
_IMAGES = _obj(
    {
        "created": _time("Creation time, Unix seconds."),
        "data": _list(
            _obj(
                {
                    "url": _s("Link to the image (valid for an hour)."),
                    "revised_prompt": _s("The prompt the model actually used, if it changed it."),
                },
                "One image.",
            ),
            "The images.",
        ),
    },
    "Generated images.",
)
_IMAGE_FIELDS = {
    "n": _i("How many images, 1 to 10.", minimum=1, maximum=10, default=1),
    "size": _s("Image size.", enum=["256x256", "512x512", "1024x1024"], default="1024x1024"),
    "response_format": _s(
        "Answer with links.", enum=["url"], default="url", **{"x-ms-visibility": "internal"}
    ),
    "user": _s("An id for the end user, to help OpenAI detect abuse."),
}
_TEXT = _obj({"text": _s("The text.")}, "The text of the audio.")
_CATEGORIES = (
    "harassment", "harassment/threatening", "hate", "hate/threatening", "illicit",
    "illicit/violent", "self-harm", "self-harm/instructions", "self-harm/intent", "sexual",
    "sexual/minors", "violence", "violence/graphic",
)  # fmt: skip
_AUDIO = ["audio/mpeg", "audio/opus", "audio/aac", "audio/flac", "audio/wav", "audio/pcm"]


def _audio_form(with_language: bool) -> list[JSON]:
    fields = [
        _form(
            "file", _file("The audio: mp3, mp4, mpeg, mpga, m4a, wav or webm, up to 25 MB."), True
        ),
        _form("model", _s("The speech-to-text model.", default="whisper-1"), True),
    ]
    if with_language:
        fields.append(_form("language", _s("The spoken language, ISO-639-1 (e.g. en).")))
    fields += [
        _form("prompt", _s("Text to guide the style or continue a previous segment.")),
        # Pinned: only json answers {text}, the shape declared below.
        _form(
            "response_format",
            _s("Answer as JSON.", enum=["json"], default="json", **{"x-ms-visibility": "internal"}),
            True,
        ),
        _form("temperature", _n("Randomness, 0 to 1.", minimum=0, maximum=1)),
    ]
    return fields


def _simple_chat() -> JSON:
    """The simple chat action, read off its one definition (`SIMPLE_CHAT`): its title,
    description and the JSON schemas of its parameter and answer models."""
    body = inline_schema(SIMPLE_CHAT.params, "validation")
    body["properties"]["prompt"]["x-ms-visibility"] = "important"
    model = body["properties"]["model"]
    body["properties"]["model"] = model | {
        key: value for key, value in _model(None, model["description"]).items() if key != "type"
    }
    return {
        "operationId": connector_operation_id(SIMPLE_CHAT),
        "summary": SIMPLE_CHAT.title,
        "description": SIMPLE_CHAT.description,
        "x-ms-visibility": "important",
        "parameters": _body(body),
        "responses": _responses(inline_schema(SIMPLE_CHAT.answer), _CHAT_ERRORS, _OWN_ERROR),
    }


def paths() -> JSON:
    """Swagger 2.0 `paths` of every OpenAI action, under the gateway's routes."""
    chat = _obj(
        {
            "model": _model("gpt-4o-mini", "The chat model."),
            "messages": _list(
                _obj(
                    {
                        "role": _s(
                            "Who speaks.",
                            enum=["system", "developer", "user", "assistant"],
                            default="user",
                        ),
                        "content": _s("The message text."),
                    },
                    "One message.",
                    ["role", "content"],
                ),
                "The conversation so far, oldest first.",
            ),
            "max_completion_tokens": _i("Longest answer, in tokens.", minimum=1),
            **_SAMPLING,
            "seed": _i("Same seed and input: the same answer, as far as possible."),
        },
        required=["model", "messages"],
    )
    chat_answer = _obj(
        {
            "id": _s("Completion ID."),
            "object": _s("Always chat.completion."),
            "created": _time("Creation time, Unix seconds."),
            "model": _s("The model that answered."),
            "choices": _list(
                _obj(
                    {
                        "index": _i("Position of this choice."),
                        "message": _obj(
                            {"role": _s("Always assistant."), "content": _s("The answer text.")},
                            "The answer.",
                        ),
                        "finish_reason": _s("stop, length, tool_calls or content_filter."),
                    },
                    "One answer.",
                ),
                "The answers (one unless n is set).",
            ),
            "usage": _USAGE,
        }
    )
    completion = _obj(
        {
            "model": _model("gpt-3.5-turbo-instruct", "The completion model."),
            "prompt": _s("The text to continue.", **{"x-ms-visibility": "important"}),
            "max_tokens": _i("Longest answer, in tokens.", minimum=1),
            **{key: _SAMPLING[key] for key in ("temperature", "top_p", "n", "stop", "user")},
        },
        required=["model", "prompt"],
    )
    completion_answer = _obj(
        {
            "id": _s("Completion ID."),
            "object": _s("Always text_completion."),
            "created": _time("Creation time, Unix seconds."),
            "model": _s("The model that answered."),
            "choices": _list(
                _obj(
                    {
                        "text": _s("The generated text."),
                        "index": _i("Position of this choice."),
                        "finish_reason": _s("stop or length."),
                    },
                    "One answer.",
                ),
                "The answers.",
            ),
            "usage": _USAGE,
        }
    )
    embeddings = _obj(
        {
            "input": _s("The text to embed.", **{"x-ms-visibility": "important"}),
            "model": _model("text-embedding-3-small", "The embedding model."),
            "encoding_format": _s(
                "Numbers, as declared below.",
                enum=["float"],
                default="float",
                **{"x-ms-visibility": "internal"},
            ),
            "dimensions": _i("Vector length (text-embedding-3 models only).", minimum=1),
            "user": _SAMPLING["user"],
        },
        required=["input", "model"],
    )
    embeddings_answer = _obj(
        {
            "object": _s("Always list."),
            "data": _list(
                _obj(
                    {
                        "object": _s("Always embedding."),
                        "index": _i("Position of the input."),
                        "embedding": _list(_n("One coordinate."), "The vector."),
                    },
                    "One embedding.",
                ),
                "The embeddings.",
            ),
            "model": _s("The model used."),
            "usage": _obj(
                {
                    "prompt_tokens": _i("Tokens in the input."),
                    "total_tokens": _i("Tokens billed."),
                },
                "Tokens used.",
            ),
        }
    )
    moderation = _obj(
        {
            "input": _s("The text to check.", **{"x-ms-visibility": "important"}),
            "model": _s(
                "The moderation model.",
                enum=["omni-moderation-latest", "text-moderation-latest", "text-moderation-stable"],
                default="omni-moderation-latest",
            ),
        },
        required=["input"],
    )
    moderation_answer = _obj(
        {
            "id": _s("Moderation ID."),
            "model": _s("The model used."),
            "results": _list(
                _obj(
                    {
                        "flagged": _b("Whether any category was flagged."),
                        "categories": _obj(
                            {key: _b(f"Flagged as {key}.") for key in _CATEGORIES},
                            "Flag per category.",
                        ),
                        "category_scores": _obj(
                            {key: _n(f"Score for {key}, 0 to 1.") for key in _CATEGORIES},
                            "Score per category.",
                        ),
                    },
                    "The verdict on one input.",
                ),
                "One verdict per input.",
            ),
        }
    )
    image = _obj(
        {
            "prompt": _s("What to draw.", **{"x-ms-visibility": "important"}),
            "model": _s("The image model.", enum=["dall-e-2", "dall-e-3"], default="dall-e-3"),
            "n": _IMAGE_FIELDS["n"],
            "quality": _s("Image quality (dall-e-3).", enum=["standard", "hd"], default="standard"),
            "response_format": _IMAGE_FIELDS["response_format"],
            "size": _s(
                "Image size; dall-e-3 takes 1024x1024, 1792x1024 or 1024x1792.",
                enum=["256x256", "512x512", "1024x1024", "1792x1024", "1024x1792"],
                default="1024x1024",
            ),
            "style": _s("Image style (dall-e-3).", enum=["vivid", "natural"]),
            "user": _IMAGE_FIELDS["user"],
        },
        required=["prompt", "response_format"],
    )
    image_form = [
        _form(name, field, required=name == "response_format")
        for name, field in _IMAGE_FIELDS.items()
    ]
    speech = _obj(
        {
            "model": _s("The text-to-speech model.", default="tts-1"),
            "input": _s("The text to speak, up to 4096 characters.", maxLength=4096),
            "voice": _s(
                "The voice.",
                enum=["alloy", "ash", "coral", "echo", "fable", "onyx", "nova", "sage", "shimmer"],
                default="alloy",
            ),
            "response_format": _s(
                "Audio format.",
                enum=["mp3", "opus", "aac", "flac", "wav", "pcm"],
                default="mp3",
            ),
            "speed": _n("Speed, 0.25 to 4.", minimum=0.25, maximum=4, default=1),
        },
        required=["model", "input", "voice"],
    )
    models_answer = _obj(
        {
            "object": _s("Always list."),
            "data": _list(
                _obj(
                    {
                        "id": _s("Model ID, as other actions take it."),
                        "object": _s("Always model."),
                        "created": _time("Creation time, Unix seconds."),
                        "owned_by": _s("The model's owner."),
                    },
                    "One model.",
                ),
                "The models.",
            ),
        }
    )
    fine_tune = _obj(
        {
            "model": _s("The base model, e.g. gpt-4o-mini-2024-07-18."),
            "training_file": _s("ID of an uploaded JSONL training file."),
            "validation_file": _s("ID of an uploaded JSONL validation file."),
            "hyperparameters": _obj(
                {"n_epochs": _i("Passes over the training data.", minimum=1, maximum=50)},
                "Training settings.",
            ),
            "suffix": _s("Up to 64 characters added to the fine-tuned model's name.", maxLength=64),
        },
        required=["model", "training_file"],
    )
    events_answer = _obj(
        {
            "object": _s("Always list."),
            "data": _list(
                _obj(
                    {
                        "id": _s("Event ID."),
                        "object": _s("Always fine_tuning.job.event."),
                        "created_at": _time("Event time, Unix seconds."),
                        "level": _s("info, warn or error."),
                        "message": _s("What happened."),
                        "type": _s("message or metrics."),
                    },
                    "One event.",
                ),
                "The events, newest first.",
            ),
            "has_more": _b("Whether more events follow (page with After)."),
        }
    )
    multipart = ["multipart/form-data"]
    return {
        CHAT_PATH: {"post": _simple_chat()},
        f"{PREFIX}/chat/completions": {
            "post": _action(
                "ChatPost",
                "Create chat completion",
                "Answers a conversation with the chosen chat model (OpenAI chat completions).",
                parameters=_body(chat),
                ok=chat_answer,
                visibility="important",
            )
        },
        f"{PREFIX}/completions": {
            "post": _action(
                "CompletionPost",
                "Create completion (legacy)",
                "Continues a prompt with a legacy completion model. Use ChatPost instead.",
                parameters=_body(completion),
                ok=completion_answer,
                deprecated=True,
            )
        },
        f"{PREFIX}/embeddings": {
            "post": _action(
                "EmbedPost",
                "Create embedding",
                "Turns a text into a vector of numbers, for search and similarity.",
                parameters=_body(embeddings),
                ok=embeddings_answer,
            )
        },
        f"{PREFIX}/moderations": {
            "post": _action(
                "ModerationPost",
                "Create moderation",
                "Checks a text against OpenAI's usage policies, category by category.",
                parameters=_body(moderation),
                ok=moderation_answer,
            )
        },
        f"{PREFIX}/images/generations": {
            "post": _action(
                "ImagePost",
                "Create image",
                "Draws images from a text prompt and answers links to them.",
                parameters=_body(image),
                ok=_IMAGES,
            )
        },
        f"{PREFIX}/images/edits": {
            "post": _action(
                "ImageEditPost",
                "Create image edit",
                "Edits an image as a prompt says, optionally only where a mask is clear.",
                parameters=[
                    _form("image", _file("The image to edit: a square PNG under 4 MB."), True),
                    _form("prompt", _s("What the edited image should show."), True),
                    _form("mask", _file("A PNG whose transparent areas mark where to edit.")),
                    _form("model", _s("The image model.", default="dall-e-2")),
                    *image_form,
                ],
                ok=_IMAGES,
                consumes=multipart,
            )
        },
        f"{PREFIX}/images/variations": {
            "post": _action(
                "ImageVariationPost",
                "Create image variation",
                "Draws variations of an image.",
                parameters=[
                    _form("image", _file("The image: a square PNG under 4 MB."), True),
                    _form("model", _s("The image model.", default="dall-e-2")),
                    *image_form,
                ],
                ok=_IMAGES,
                consumes=multipart,
            )
        },
        f"{PREFIX}/audio/speech": {
            "post": _action(
                "AudioSpeechPost",
                "Create speech",
                "Reads a text aloud and answers the audio file itself.",
                parameters=_body(speech),
                ok={"type": "string", "format": "binary", "description": "The audio."},
                produces=[*_AUDIO, "application/json"],
            )
        },
        f"{PREFIX}/audio/transcriptions": {
            "post": _action(
                "AudioTranscriptionPost",
                "Create transcription",
                "Writes down what is said in an audio file, in its own language.",
                parameters=_audio_form(with_language=True),
                ok=_TEXT,
                consumes=multipart,
            )
        },
        f"{PREFIX}/audio/translations": {
            "post": _action(
                "AudioTranslationPost",
                "Create translation",
                "Writes down what is said in an audio file, translated into English.",
                parameters=_audio_form(with_language=False),
                ok=_TEXT,
                consumes=multipart,
            )
        },
        f"{PREFIX}/models": {
            "get": _action(
                LIST_MODELS,
                "List models",
                "Lists the models the service's OpenAI key can use; fills the model dropdowns.",
                parameters=[],
                ok=models_answer,
            )
        },
        f"{PREFIX}/fine_tuning/jobs": {
            "post": _action(
                "FineTuningPost",
                "Create fine-tuning job",
                "Starts training a custom model from an uploaded training file.",
                parameters=_body(fine_tune),
                ok=_JOB,
            )
        },
        f"{PREFIX}/fine_tuning/jobs/{{fine_tuning_job_id}}": {
            "get": _action(
                "FineTuningGet",
                "Get fine-tuning job",
                "Gets a fine-tuning job's status and results.",
                parameters=[dict(_JOB_ID)],
                ok=_JOB,
            )
        },
        f"{PREFIX}/fine_tuning/jobs/{{fine_tuning_job_id}}/cancel": {
            "post": _action(
                "FineTuningCancelPost",
                "Cancel fine-tuning job",
                "Stops a fine-tuning job that is still running.",
                parameters=[dict(_JOB_ID)],
                ok=_JOB,
            )
        },
        f"{PREFIX}/fine_tuning/jobs/{{fine_tuning_job_id}}/events": {
            "get": _action(
                "FineTuningEventsGet",
                "List fine-tuning events",
                "Lists what happened during a fine-tuning job, newest first.",
                parameters=[
                    dict(_JOB_ID),
                    {
                        "name": "after",
                        "in": "query",
                        "required": False,
                        "type": "string",
                        "description": "Only events after this event ID.",
                        "x-ms-summary": "After",
                        "x-ms-visibility": "advanced",
                    },
                    {
                        "name": "limit",
                        "in": "query",
                        "required": False,
                        "type": "integer",
                        "format": "int32",
                        "minimum": 1,
                        "maximum": 100,
                        "description": "How many events, 1 to 100 (default 20).",
                        "x-ms-summary": "Limit",
                        "x-ms-visibility": "advanced",
                    },
                ],
                ok=events_answer,
            )
        },
    }


def _inside_triangle(x: float, y: float, corners: tuple[tuple[int, int], ...]) -> bool:
    signs = [
        (x - bx) * (ay - by) - (ax - bx) * (y - by) >= 0
        for (ax, ay), (bx, by) in zip(corners, corners[1:] + corners[:1], strict=True)
    ]
    return all(signs) or not any(signs)


def _logo(size: int = 230) -> bytes:
    """A white speech bubble with three dots, on transparency: drawn, not shipped."""
    white, clear = b"\xff\xff\xff\xff", b"\x00\x00\x00\x00"
    dots = ((80, 100), (115, 100), (150, 100))
    tail = ((70, 135), (110, 150), (50, 190))
    rows = []
    for y in range(size):
        row = bytearray()
        for x in range(size):
            bubble = ((x - 115) / 85) ** 2 + ((y - 100) / 65) ** 2 <= 1
            bubble = bubble or _inside_triangle(x, y, tail)
            dot = any((x - dx) ** 2 + (y - dy) ** 2 <= 100 for dx, dy in dots)
            row += white if bubble and not dot else clear
        rows.append(bytes(row))
    return encode(Image(size, size, 4, rows))


def connector(contact_email: str) -> PowerPlatformConnector:
    """The OpenAI connector, with `contact_email` as its support contact."""
    return PowerPlatformConnector(
        title="OpenAI Gateway",
        description=(
            "Chat, embeddings, moderation, images, speech, transcription and fine-tuning "
            "through your organisation's OpenAI gateway: makers use a credential of this "
            "service, never the OpenAI key itself."
        ),
        publisher="OpenAI Gateway",
        stack_owner="OpenAI",
        brand_color="#0F6B5C",
        categories="AI",
        contact_name="OpenAI Gateway support",
        contact_email=contact_email,
        logo=_logo(),
        paths=paths(),
        credential_help="A credential of this service (not an OpenAI key), without 'Bearer'.",
    )
