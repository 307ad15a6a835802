"""The PRG and its samplers (spec/02-randomness.md)."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given
from hypothesis import strategies as st

from secmoe.errors import SpecError
from secmoe.randomness import Prg, derive_seed, dst, instance_prg, lp

SEED = bytes(range(32))


def spec_stream(seed: bytes, tag: bytes, binder: bytes, n: int) -> bytes:
    """The stream exactly as §2.1.2 words it, block by block."""
    key = hashlib.shake_256(lp(b"secmoe/v1/prg-key") + lp(seed) + lp(tag) + lp(binder)).digest(16)
    out = b""
    j = 0
    while len(out) < n:
        enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
        out += enc.update(j.to_bytes(16, "big"))
        j += 1
    return out[:n]


def test_stream_matches_spec_wording() -> None:
    tag = dst("test", "stream")
    assert Prg(SEED, tag, b"x").next_bytes(100) == spec_stream(SEED, tag, b"x", 100)


@given(cuts=st.lists(st.integers(min_value=0, max_value=70), max_size=6))
def test_stream_is_independent_of_chunking(cuts: list[int]) -> None:
    tag = dst("test", "chunks")
    whole = Prg(SEED, tag).next_bytes(sum(cuts))
    p = Prg(SEED, tag)
    assert b"".join(p.next_bytes(c) for c in cuts) == whole
    assert p.position == sum(cuts)


def test_domain_separation_and_determinism() -> None:
    a = Prg(SEED, dst("p", "u")).next_bytes(32)
    assert a == Prg(SEED, dst("p", "u")).next_bytes(32)
    assert a != Prg(SEED, dst("p", "v")).next_bytes(32)
    assert a != Prg(SEED, dst("p", "u"), b"\x00").next_bytes(32)
    assert a != Prg(bytes(32), dst("p", "u")).next_bytes(32)
    assert instance_prg(SEED, "p", "u", 0).next_bytes(32) != instance_prg(
        SEED, "p", "u", 1
    ).next_bytes(32)
    assert derive_seed(SEED, "a") != derive_seed(SEED, "b")


def test_next_ring_and_bits_follow_the_stream() -> None:
    tag = dst("test", "ring")
    raw = spec_stream(SEED, tag, b"", 24 + 2)
    p = Prg(SEED, tag)
    words = [int.from_bytes(raw[8 * i : 8 * i + 8], "little") for i in range(3)]
    assert [int(v) for v in p.next_ring(3, 13)] == [w & 0x1FFF for w in words]
    bits = p.next_bits(11)
    assert [int(b) for b in bits] == [(raw[24 + i // 8] >> (i % 8)) & 1 for i in range(11)]
    assert p.position == 26


@pytest.mark.parametrize("q", [1, 3, 12289, 2**61 - 1, 2**63 + 5, 2**64])
def test_next_below_consumes_exactly_the_examined_candidates(q: int) -> None:
    tag = dst("test", "below")
    n = 50
    p = Prg(SEED, tag)
    got = [int(v) for v in p.next_below(n, q)]
    # The spec's wording, one candidate at a time.
    raw = spec_stream(SEED, tag, b"", 8 * 400)
    limit = q * ((1 << 64) // q)
    want: list[int] = []
    pos = 0
    while len(want) < n:
        w = int.from_bytes(raw[pos : pos + 8], "little")
        pos += 8
        if w < limit:
            want.append(w % q)
    assert got == want
    assert p.position == pos
    assert all(0 <= v < q for v in got)


def test_next_below_is_roughly_uniform() -> None:
    counts = np.bincount(
        Prg(SEED, dst("test", "uniform")).next_below(30000, 3).astype(np.int64), minlength=3
    )
    assert counts.min() > 9500 and counts.max() < 10500


def test_bad_arguments() -> None:
    with pytest.raises(SpecError):
        Prg(b"short", dst("a", "b"))
    with pytest.raises(SpecError):
        dst("", "x")
    with pytest.raises(SpecError):
        dst("a b", "x")
    with pytest.raises(SpecError):
        Prg(SEED, b"").next_below(1, 0)
    with pytest.raises(SpecError):
        Prg(SEED, b"").next_ring(1, 65)
