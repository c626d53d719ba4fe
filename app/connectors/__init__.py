"""Upstream connectors: one package per upstream API."""
