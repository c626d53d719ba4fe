"""The OpenAI connector: an OpenAI-compatible gateway and its sample-data transport."""
