"""`POST /openai/chat`: one prompt in, one text out, for makers and bots (seed 000's
`APIChat`, seed 001's bot action). Calls the upstream's chat/completions, not streamed.

Errors are in the project's shape, `{"error": {"code", "message"}}`, not OpenAI's: a bot
stores the message in a variable and shows it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import Response

from app.answers import Answer
from app.callers import Admission, Gate
from app.connectors.openai.bodies import BadBody, read_body
from app.connectors.openai.upstream import OpenAIUpstream
from app.errors import LimitExceeded, ParameterProblem, ServiceError, Unauthorized
from app.observability import current_record
from app.operations import Operation
from app.params import Params
from app.problems import ParamError, error_response

__all__ = ["SIMPLE_CHAT", "ChatAnswer", "ChatParams", "ChatTurn", "ChatUsage", "SimpleChat"]

log = logging.getLogger("app.openai.chat")

MAX_PROMPT = 32_000
MAX_TURNS = 50
_MAX_REQUEST = 1024 * 1024
_MAX_ANSWER = 8 * 1024 * 1024


class ChatTurn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["user", "assistant"] = Field(description="Who said it.")
    content: str = Field(max_length=MAX_PROMPT, description="What was said.")


class ChatParams(Params):
    """The request body of `POST /openai/chat`. Only `prompt` is required."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    prompt: str = Field(min_length=1, max_length=MAX_PROMPT, description="The user's message.")
    history: list[ChatTurn] = Field(
        default_factory=list, max_length=MAX_TURNS, description="Earlier turns, oldest first."
    )
    system: str | None = Field(None, max_length=MAX_PROMPT, description="Instructions.")
    model: str | None = Field(
        None, min_length=1, max_length=128, description="Model id; the configured default if unset."
    )
    max_tokens: int | None = Field(None, ge=1, le=128_000, description="Longest answer, in tokens.")
    temperature: float | None = Field(None, ge=0, le=2, description="0 focused .. 2 random.")


class ChatUsage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class ChatAnswer(Answer):
    """The answer of `POST /openai/chat`."""

    text: str = Field(description="The model's answer.")
    model: str = Field(description="The model that answered.")
    finish_reason: str | None = Field(description="stop, length, content_filter ...")
    usage: ChatUsage = Field(description="Tokens used.")


SIMPLE_CHAT = Operation(
    name="simpleChat",
    title="Ask a question",
    description=(
        "Sends a prompt, with optional history and system instructions, to the chat model "
        "and answers one text, or one error whose message a flow or bot can store."
    ),
    path="/chat",
    upstream_path="/chat/completions",
    params=ChatParams,
    answer=ChatAnswer,
    method="POST",
)
"""The one definition of the simple chat: its route, its spec and its Power Platform action."""


def _messages(params: ChatParams) -> list[dict[str, str]]:
    messages = [{"role": "system", "content": params.system}] if params.system else []
    messages += [{"role": turn.role, "content": turn.content} for turn in params.history]
    messages.append({"role": "user", "content": params.prompt})
    return messages


def _fail(status: int, code: str, message: str, **headers: str) -> Response:
    current_record().error = code
    return error_response(status, code, message, headers=headers or None)


def _refused(error: ServiceError) -> Response:
    """A caller not identified or not admitted, in the project's shape."""
    if isinstance(error, Unauthorized):
        message = (
            error.message
            if type(error).message != error.message
            else "Send this service's key as 'Authorization: Bearer <key>' or in 'api-key'."
        )
        return _fail(401, "unauthorized", message, **{"WWW-Authenticate": 'Bearer realm="api"'})
    if isinstance(error, LimitExceeded):
        return _fail(429, error.code, error.message, **error.headers)
    return _fail(403 if error.code == "forbidden" else 503, error.code, error.message)


def _invalid(error: ValidationError) -> Response:
    problems = [
        ParameterProblem(".".join(str(p) for p in item["loc"]) or "body", item["msg"])
        for item in error.errors(include_url=False, include_input=False)
    ]
    current_record().error = "invalid_parameters"
    summary = "; ".join(f"{p.param}: {p.message}" for p in problems)
    return error_response(
        422,
        "invalid_parameters",
        f"Invalid parameters: {summary}.",
        details=[ParamError(param=p.param, message=p.message) for p in problems],
    )


class SimpleChat:
    """The endpoint. `gate` identifies and admits callers for the connector `scope`."""

    def __init__(
        self,
        upstream: OpenAIUpstream | None,
        gate: Gate,
        *,
        scope: str,
        default_model: str,
    ) -> None:
        self.upstream = upstream
        self.gate = gate
        self.scopes = (scope,)
        self.default_model = default_model

    async def __call__(self, request: Request) -> Response:
        current_record().operation = SIMPLE_CHAT.name
        try:
            caller = await self.gate.identify(request.headers, self.scopes)
        except ServiceError as error:
            return _refused(error)
        try:
            raw = await read_body(
                request.stream(), request.headers.get("content-length"), _MAX_REQUEST
            )
            params = ChatParams.model_validate_json(raw)
        except BadBody as bad:
            return _fail(bad.status, "invalid_body", bad.message)
        except ValidationError as error:
            return _invalid(error)
        model = params.model or self.default_model
        try:
            admission = await self.gate.admit(caller, model=model, takes_model=True)
        except ServiceError as error:
            return _refused(error)
        if self.upstream is None:
            return _fail(503, "service_unavailable", "No OpenAI key or sample data is configured.")
        return await self._ask(params, self.upstream, admission)

    async def _ask(
        self, params: ChatParams, upstream: OpenAIUpstream, admission: Admission
    ) -> Response:
        request: dict[str, Any] = {
            "model": params.model or self.default_model,
            "messages": _messages(params),
        }
        if params.max_tokens is not None:
            request["max_tokens"] = params.max_tokens
        if params.temperature is not None:
            request["temperature"] = params.temperature
        try:
            answer = await upstream.open(
                "POST",
                SIMPLE_CHAT.upstream_path,
                headers={"content-type": "application/json", "accept": "application/json"},
                body=json.dumps(request).encode(),
            )
            try:
                body = await read_body(answer.aiter_bytes(), None, _MAX_ANSWER)
            finally:
                await answer.aclose()
        except BadBody:
            return _fail(502, "upstream_unavailable", "The model's answer was too large.")
        except ServiceError as error:
            return _fail(503, error.code, error.message)
        except (TimeoutError, httpx.TimeoutException):
            return _fail(504, "upstream_timeout", "The model took too long to answer. Try again.")
        except httpx.HTTPError:
            return _fail(502, "upstream_unavailable", "The model service could not be reached.")
        current_record().upstream_status = answer.status_code
        if answer.status_code != 200:
            return self._upstream_error(answer.status_code, answer.headers, body)
        try:
            completion = json.loads(body)
            choice = completion["choices"][0]
            result = ChatAnswer(
                text=choice["message"].get("content") or "",
                model=completion.get("model") or request["model"],
                finish_reason=choice.get("finish_reason"),
                usage=ChatUsage.model_validate(completion.get("usage") or {}),
            )
        except (ValueError, KeyError, IndexError, TypeError, AttributeError, ValidationError):
            return _fail(502, "upstream_unavailable", "The model service answered unusably.")
        await admission.spend(result.usage.prompt_tokens, result.usage.completion_tokens)
        return Response(result.model_dump_json(), media_type="application/json")

    def _upstream_error(self, status: int, headers: Mapping[str, str], body: bytes) -> Response:
        if status in (401, 403):
            log.error(
                "the OpenAI upstream refused the configured key (HTTP %s): check OPENAI_API_KEY",
                status,
                extra={"fields": {"event": "upstream_key_rejected", "upstream_status": status}},
            )
            return _fail(502, "upstream_unavailable", "The model service is unavailable.")
        if status == 429:
            retry = headers.get("retry-after", "")
            extra = {"Retry-After": retry} if retry.isdigit() else {}
            return _fail(
                429,
                "rate_limited",
                "The model service is busy or out of quota. Try later.",
                **extra,
            )
        if status in (400, 404, 422):
            # The model refused the request (unknown model, too long ...): say why.
            try:
                message = str(json.loads(body)["error"]["message"])[:500]
            except (ValueError, KeyError, TypeError):
                message = "The model service refused the request."
            return _fail(422, "model_refused", message)
        log.warning(
            "OpenAI upstream answered HTTP %s",
            status,
            extra={"fields": {"event": "upstream_failed", "upstream_status": status}},
        )
        return _fail(502, "upstream_unavailable", "The model service failed. Try again shortly.")
