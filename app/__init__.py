"""A service that holds upstream API keys once and lets each caller use those APIs with a
credential of its own: connectors (Listen Notes podcasts, OpenAI) on a generic core."""

__version__ = "0.1.0"
