"""Benchmarks: ``secmoe bench NAME --json`` (each prints one JSON object)."""
