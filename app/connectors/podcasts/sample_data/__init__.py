"""Bundled sample data for sample-data mode (see `app.sample_transport`)."""
