"""The podcast connector's Power Platform export: its nine operations as connector actions."""

from __future__ import annotations

from app.connectors.podcasts.operations import OPERATIONS
from app.connectors.podcasts.plugin import API_PREFIX, PLUGIN
from app.manifest import well_known_asset
from app.powerplatform import PowerPlatformConnector
from app.problems import ERROR_STATUSES, ErrorBody
from app.swagger2 import (
    connector_operation_id,
    error_responses,
    get_operation_paths,
    inline_schema,
)

__all__ = ["MODEL_ONLY", "connector", "connector_operation_id"]

MODEL_ONLY = ("Never invent links.",)
"""Field descriptions meant for a model reading the GPT spec, not for makers."""

_IMPORTANT = frozenset({"q", "id", "genre_id", "language", "region", "page_size"})
_TITLES = {"q": "Search Terms"}


def connector(contact_email: str) -> PowerPlatformConnector:
    """The podcast connector, with `contact_email` as its support contact."""
    ids = {operation.name: connector_operation_id(operation) for operation in OPERATIONS}
    paths = get_operation_paths(
        OPERATIONS,
        prefix=API_PREFIX,
        connector_id=ids,
        errors=error_responses(ERROR_STATUSES, inline_schema(ErrorBody)),
        important=_IMPORTANT,
        titles=_TITLES,
    )
    return PowerPlatformConnector(
        title=PLUGIN.name_for_human,
        description=PLUGIN.description_for_human,
        publisher=PLUGIN.name_for_human,
        stack_owner="Listen Notes",
        brand_color="#582CA0",
        categories="Lifestyle and Entertainment",
        contact_name=f"{PLUGIN.name_for_human} support",
        contact_email=contact_email,
        logo=well_known_asset("logo.png"),
        paths=paths,
        credential_help="The service's secret (CHATGPT_SECRET), without 'Bearer'.",
        model_only=MODEL_ONLY,
        renames=ids,
    )
