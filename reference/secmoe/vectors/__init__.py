"""Deterministic test vectors: generation, canonical writing and verification (spec/05-test-vectors.md)."""
