"""Latency benchmarks of the engine against the business targets (``arengine bench``)."""
