"""The OpenAI connector: OpenAI-compatible routes and a simple chat operation."""
