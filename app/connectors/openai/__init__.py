"""The OpenAI connector: an OpenAI-compatible gateway and its surfaces."""
