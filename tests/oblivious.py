"""Tools for obliviousness tests: a party's view of a run, and a uniformity check of its bytes."""

from __future__ import annotations

import math

import numpy as np

from secmoe.net.channel import TranscriptEntry


def view_shape(transcript: list[TranscriptEntry], party: str) -> list[tuple[str, str, int, int]]:
    """What ``party`` sees of the message sequence: (sender, label, length, round) of every message.

    For an oblivious protocol this list does not depend on the other party's private input.
    """
    del party  # both parties see every message; the shape is the same list for both
    return [(t.sender, t.label, t.length, t.round) for t in transcript]


def received_bytes(transcript: list[TranscriptEntry], party: str) -> bytes:
    """Every payload byte ``party`` received, in order (the transcript must be recorded in full)."""
    out = bytearray()
    for t in transcript:
        if t.sender != party:
            assert t.payload is not None, "record='full' is needed for a uniformity check"
            out += t.payload
    return bytes(out)


def byte_uniformity_z(data: bytes) -> float:
    """A z-score of the chi-square statistic of the byte histogram against uniform (255 dof).

    |z| below ~5 is what uniform bytes give except with negligible probability; structured data
    (small integers, fixed-point values in two's complement) give z in the hundreds.
    """
    if len(data) < 2560:
        raise ValueError("need at least 2560 bytes (10 per bucket) for a meaningful check")
    counts = np.bincount(np.frombuffer(data, dtype=np.uint8), minlength=256).astype(np.float64)
    expected = len(data) / 256.0
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    dof = 255
    return (chi2 - dof) / math.sqrt(2 * dof)


def assert_uniform(data: bytes, limit: float = 6.0) -> None:
    z = byte_uniformity_z(data)
    assert abs(z) < limit, f"bytes are not uniform: chi-square z = {z:.1f}"
