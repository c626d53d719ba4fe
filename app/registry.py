"""The registry: every connector this service hosts, and the settings of them all.

Adding an upstream is a package under `app/connectors/` and one entry in `CONNECTORS`.
This module and `app.main` are the only places the core meets the connectors.
"""

from __future__ import annotations

from typing import cast

from app.connector import Connector
from app.connectors import openai, podcasts
from app.settings import CoreSettings

__all__ = ["CONNECTORS", "Settings"]

CONNECTORS: tuple[Connector, ...] = (podcasts.CONNECTOR, openai.CONNECTOR)


def _compose(connectors: tuple[Connector, ...]) -> type[CoreSettings]:
    # One settings class with every connector's fields (and validators) and the core's:
    # one environment, one `.env`, one validation error listing every bad setting.
    bases: tuple[type, ...] = (*(connector.settings for connector in connectors), CoreSettings)
    doc = "Everything the service can be told: the core's settings and every connector's."
    return cast(
        type[CoreSettings], type("Settings", bases, {"__doc__": doc, "__module__": __name__})
    )


Settings = _compose(CONNECTORS)
