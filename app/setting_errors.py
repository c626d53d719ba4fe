"""Bad settings, told as a person fixes them: one line per environment variable, never a
traceback and never the value.

    CHATGPT_SECRET: secret #1 is too weak: use at least 16 random characters, e.g. ...
    LOG_LEVEL: must be one of 'CRITICAL', 'ERROR', 'WARNING', 'INFO' or 'DEBUG'

`python -m app serve` (so `dev.py serve` and the container) and `app.main:app` (uvicorn's
own command, the Lambda handler) both load their settings through `settings_or_exit`.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from typing import TypeVar

from pydantic import ValidationError
from pydantic_settings import SettingsError

__all__ = ["bad_settings", "settings_or_exit"]

T = TypeVar("T")

_FIXES = {
    "url_parsing": "write the whole URL with its scheme, e.g. https://podcasts.example.com",
    "url_scheme": "write the whole URL with its scheme, e.g. https://podcasts.example.com",
    "literal_error": "",
}
_FIELD = re.compile(r'field "(\w+)"')


def _message(item_type: str, message: str) -> str:
    message = message.removeprefix("Value error, ")
    if item_type == "literal_error":
        return "must be one of " + message.removeprefix("Input should be ")
    fix = _FIXES.get(item_type)
    return f"{message} ({fix})" if fix else message


def bad_settings(error: ValidationError) -> list[str]:
    """One line per bad setting, named as its environment variable, with what to do.

    Built from pydantic's messages without the input (the settings also hide it), so a
    secret's value never appears."""
    found: dict[str, list[str]] = {}
    for item in error.errors(include_input=False, include_url=False, include_context=False):
        name = str(item["loc"][0]).upper() if item["loc"] else "settings"
        message = _message(item["type"], item["msg"])
        if message not in found.setdefault(name, []):
            found[name].append(message)
    return [f"{name}: {'; '.join(messages)}" for name, messages in found.items()]


def settings_or_exit(load: Callable[[], T]) -> T:
    """`load()`, or exit with status 2 after one line per bad setting on stderr."""
    try:
        return load()
    except ValidationError as error:
        lines = bad_settings(error)
    except SettingsError as error:  # a value that is not even parseable (e.g. bad JSON)
        field = _FIELD.search(str(error))
        name = field.group(1).upper() if field else "A setting"
        lines = [f"{name}: cannot be read; check its format in the README's Settings table"]
    for line in lines:
        print(f"Bad setting {line}", file=sys.stderr)
    raise SystemExit(2)
