"""Upstream connectors: one package per upstream, the generic core beside them."""
