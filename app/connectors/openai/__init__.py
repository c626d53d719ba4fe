"""The OpenAI connector: OpenAI-compatible routes, a simple chat operation, sample data."""
