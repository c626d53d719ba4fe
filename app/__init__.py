"""Podcast plugin proxy: the Listen Notes Podcast API for AI assistants, without its key."""

__version__ = "0.1.0"
