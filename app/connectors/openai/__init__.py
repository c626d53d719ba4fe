"""The OpenAI connector: OpenAI-compatible routes under /openai/v1 (and /openai) that the
official SDKs call with only `base_url` changed, a simple chat operation for makers and
bots at /openai/chat, and in-process sample data when no OpenAI key is set."""

from __future__ import annotations

from app.connector import Connector, Surface
from app.connectors.openai.chat import SIMPLE_CHAT
from app.connectors.openai.connector import API_PREFIX, NAME, start
from app.connectors.openai.settings import OpenAISettings

__all__ = ["CONNECTOR"]

CONNECTOR = Connector(
    name=NAME,
    title="OpenAI",
    settings=OpenAISettings,
    surfaces=frozenset({Surface.OPENAI_COMPATIBLE, Surface.POWER_PLATFORM}),
    start=start,
    sample_mode=lambda settings: (
        isinstance(settings, OpenAISettings) and settings.openai_sample_mode
    ),
    powerplatform="app.connectors.openai.powerplatform",
    operations=(SIMPLE_CHAT,),
    api_prefix=API_PREFIX,
)
