"""What a caller may send to an operation: the base model and the checks connectors share.

A parameter model is the whole contract of an operation's input. Fields carry the upstream
parameter names, so a validated model is forwarded as it is; anything not declared here
is never forwarded. Bounds are checked before any upstream call. Every check is one the
published schema states (`minimum`, `maxLength`, `pattern`, ...), so the spec and the
code accept the same values.
"""

from __future__ import annotations

import re

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
)
from pydantic_core import PydanticCustomError

__all__ = [
    "ASCII_DIGITS",
    "MAX_ITEMS",
    "NO_CONTROL",
    "NoParams",
    "Params",
    "comma_list_pattern",
    "explained",
    "without_spaces",
]

NO_CONTROL = r"^[^\x00-\x1f\x7f]*$"
_DIGITS = re.compile(r"[0-9]{1,18}")
MAX_ITEMS = 20


def _whole_number(value: object) -> object:
    # From a query string, ASCII digits only: pydantic alone would also take "+5", " 5 ",
    # "5.0" and "1_000". JSON numbers (MCP arguments) go on to pydantic's integer check,
    # which takes what JSON Schema calls an integer (5, 5.0) but never a boolean.
    if isinstance(value, bool):
        raise PydanticCustomError("whole_number", "must be a whole number, not true or false")
    if isinstance(value, str):
        if _DIGITS.fullmatch(value) is None:
            raise PydanticCustomError("whole_number", "must be a whole number in digits 0-9")
        return int(value)
    return value


ASCII_DIGITS = BeforeValidator(_whole_number)
"""Last in every integer parameter's `Annotated[int, Field(ge=…, le=…), ASCII_DIGITS]`
(after the bounds, which then stay `minimum` and `maximum` in the published schema)."""


def comma_list_pattern(item: str) -> str:
    """1 to 20 comma-separated `item`s, each with optional spaces around it."""
    return rf"^ *(?:{item}) *(?:, *(?:{item}) *){{0,{MAX_ITEMS - 1}}}$"


def explained(message: str) -> WrapValidator:
    """The field's `pattern` decides; a mismatch is explained in words, not as a regex."""

    def check(value: object, handler: ValidatorFunctionWrapHandler) -> object:
        try:
            return handler(value)
        except ValidationError as error:
            if any(item["type"] == "string_pattern_mismatch" for item in error.errors()):
                raise PydanticCustomError("comma_list", message) from None
            raise

    return WrapValidator(check)


def without_spaces(value: str) -> str:
    return ",".join(item.strip(" ") for item in value.split(","))


class Params(BaseModel):
    """Base of every parameter model: undeclared input is ignored, never forwarded."""

    # defer_build: a model's validator is built on first use, so a cold start pays only
    # for the operation it serves, not for all nine.
    model_config = ConfigDict(extra="ignore", frozen=True, defer_build=True)


class NoParams(Params):
    """Operations that take no parameters."""
