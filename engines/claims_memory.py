"""Kept for ``benchmarks/run.py``: the RSS probe is :mod:`syncviz.engines.claims.rss` now."""

from .claims.rss import rss_per_connection, vm_rss_kb

__all__ = ["rss_per_connection", "vm_rss_kb"]
