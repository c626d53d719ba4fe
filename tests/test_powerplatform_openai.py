"""The OpenAI connector's actions: coverage, model dropdowns, multipart, binary speech."""

from __future__ import annotations

from typing import Any

import pytest

from app.connectors.openai.powerplatform import connector
from app.connectors.podcasts.operations import OPERATIONS
from app.connectors.podcasts.powerplatform import connector as podcast_connector
from app.powerplatform import api_definition
from tests.test_powerplatform import OPENAI_ACTIONS, operations


@pytest.fixture(scope="module")
def actions() -> dict[str, dict[str, Any]]:
    definition = api_definition(connector("a@example.com"), "https://gw.example", "1")
    return {op["operationId"]: op for op in operations(definition)}


def path_of(operation_id: str) -> str:
    definition = api_definition(connector("a@example.com"), "https://gw.example", "1")
    return next(
        path
        for path, item in definition["paths"].items()
        if any(op["operationId"] == operation_id for op in item.values())
    )


def test_the_actions_are_exactly_seed_002s_list_plus_simple_chat(actions: dict[str, Any]) -> None:
    assert set(actions) == OPENAI_ACTIONS
    assert path_of("ChatPost") == "/openai/v1/chat/completions"
    assert path_of("SimpleChat") == "/openai/chat"
    assert path_of("ModelsGet") == "/openai/v1/models"
    assert actions["CompletionPost"]["deprecated"] is True
    assert [a for a, op in actions.items() if op.get("deprecated")] == ["CompletionPost"]


def test_podcast_export_keeps_its_nine_operations() -> None:
    definition = api_definition(podcast_connector("a@example.com"), "https://x.example", "1")
    ids = {op["operationId"] for op in operations(definition)}
    assert ids == {op.name[0].upper() + op.name[1:] for op in OPERATIONS}
    assert set(definition["paths"]) == {f"/api/v2{op.path}" for op in OPERATIONS}


def body_schema(action: dict[str, Any]) -> dict[str, Any]:
    [body] = [p for p in action["parameters"] if p["in"] == "body"]
    return body["schema"]  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("action", "default"),
    [
        ("ChatPost", "gpt-4o-mini"),
        ("CompletionPost", "gpt-3.5-turbo-instruct"),
        ("EmbedPost", "text-embedding-3-small"),
        ("SimpleChat", None),  # empty: the service's OPENAI_DEFAULT_MODEL answers
    ],
)
def test_model_fields_are_dropdowns_from_the_list_models_action(
    actions: dict[str, Any], action: str, default: str | None
) -> None:
    model = body_schema(actions[action])["properties"]["model"]
    dynamic = model["x-ms-dynamic-values"]
    assert dynamic["operationId"] in actions
    assert actions[dynamic["operationId"]]["responses"]["200"]["schema"]["properties"]["data"]
    assert dynamic == {
        "operationId": "ModelsGet",
        "value-collection": "data",
        "value-path": "id",
        "value-title": "id",
    }
    assert model.get("default") == default


@pytest.mark.parametrize(
    ("action", "files", "required"),
    [
        ("ImageEditPost", {"image", "mask"}, {"image", "prompt", "response_format"}),
        ("ImageVariationPost", {"image"}, {"image", "response_format"}),
        ("AudioTranscriptionPost", {"file"}, {"file", "model", "response_format"}),
        ("AudioTranslationPost", {"file"}, {"file", "model", "response_format"}),
    ],
)
def test_multipart_actions_take_form_fields_and_files(
    actions: dict[str, Any], action: str, files: set[str], required: set[str]
) -> None:
    operation = actions[action]
    assert operation["consumes"] == ["multipart/form-data"]
    parameters = {p["name"]: p for p in operation["parameters"]}
    assert {p["in"] for p in parameters.values()} == {"formData"}
    assert {name for name, p in parameters.items() if p["type"] == "file"} == files
    assert {name for name, p in parameters.items() if p["required"]} == required


@pytest.mark.parametrize("action", ["AudioTranscriptionPost", "AudioTranslationPost"])
def test_audio_answers_are_pinned_to_json_and_hidden(actions: dict[str, Any], action: str) -> None:
    [fmt] = [p for p in actions[action]["parameters"] if p["name"] == "response_format"]
    assert (fmt["default"], fmt["enum"], fmt["x-ms-visibility"]) == ("json", ["json"], "internal")
    assert set(actions[action]["responses"]["200"]["schema"]["properties"]) == {"text"}


def test_speech_answers_binary_audio(actions: dict[str, Any]) -> None:
    speech = actions["AudioSpeechPost"]
    assert speech["responses"]["200"]["schema"]["type"] == "string"
    assert speech["responses"]["200"]["schema"]["format"] == "binary"
    assert "audio/mpeg" in speech["produces"]


def test_errors_are_declared_in_the_shape_each_route_answers(actions: dict[str, Any]) -> None:
    for name, action in actions.items():
        responses = action["responses"]
        assert {"401", "429", "502", "504"} <= set(responses), name
        assert "Retry-After" in responses["429"]["headers"]
        error = responses["429"]["schema"]["properties"]["error"]["properties"]
        if name == "SimpleChat":
            assert set(error) == {"code", "message"}
        else:
            assert set(error) == {"message", "type", "param", "code"}


def test_simple_chat_declares_its_request_and_answer(actions: dict[str, Any]) -> None:
    body = body_schema(actions["SimpleChat"])
    assert body["required"] == ["prompt"]
    assert set(body["properties"]) == {
        "prompt", "history", "system", "model", "max_tokens", "temperature"
    }  # fmt: skip
    assert body["properties"]["history"]["items"]["properties"]["role"]["enum"] == [
        "user",
        "assistant",
    ]
    answer = actions["SimpleChat"]["responses"]["200"]["schema"]["properties"]
    assert set(answer) == {"text", "model", "finish_reason", "usage"}
    assert set(answer["usage"]["properties"]) == {
        "prompt_tokens", "completion_tokens", "total_tokens"
    }  # fmt: skip
