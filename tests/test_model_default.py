"""The default model's deterministic generation (spec/06-models.md#default_weights)."""

from __future__ import annotations

import dataclasses
import hashlib
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from secmoe.errors import SpecError
from secmoe.model.config import MoEConfig
from secmoe.model.default import (
    DEFAULT_SEED,
    default_config,
    default_inputs,
    default_weights,
    fan_in_scale,
    weights_digest,
)
from secmoe.randomness import Prg, dst

SPEC = (Path(__file__).resolve().parent.parent / "spec" / "06-models.md").read_text(
    encoding="utf-8"
)
DEFAULT_SECTION = SPEC[SPEC.index("## 6.5") : SPEC.index("## 6.6")]


def test_default_config() -> None:
    c = default_config()
    assert (c.d_model, c.d_ff, c.n_experts, c.top_k) == (64, 128, 8, 1)
    assert (c.expert_kind, c.gate_norm, c.ring_bits, c.frac_bits) == ("geglu", "softmax", 64, 18)


def test_seed_and_digest_match_the_spec() -> None:
    hexes = re.findall(r"`([0-9a-f]{64})`", DEFAULT_SECTION)
    assert hexes[0] == DEFAULT_SEED.hex() == hashlib.sha256(b"secmoe/v1/default-model").hexdigest()
    assert hexes[1] == weights_digest(default_weights())
    first = re.search(r"first stream bytes of `router` are\s+`([0-9a-f]+)`", DEFAULT_SECTION)
    assert first is not None
    stream = Prg(DEFAULT_SEED, b"secmoe/v1/model.default/router").next_bytes(8)
    assert stream.hex() == first.group(1)
    floats = re.findall(r"`(-?0x[0-9a-f.]+p[-+]?\d+)`", DEFAULT_SECTION)
    assert [float.fromhex(f) for f in floats] == list(default_weights().w_gate.reshape(-1)[:3])


def test_entries_follow_the_recipe() -> None:
    w = default_weights()
    # Recompute expert 3's W2 entries from the wording of §6.5.1, in plain Python.
    n = 8 * 64 * 128
    raw = Prg(DEFAULT_SEED, dst("model.default", "experts/w2")).next_bytes(8 * n)
    flat = w.w2.reshape(-1)
    for i in (0, 3 * 64 * 128 + 1000, n - 1):
        word = int.from_bytes(raw[8 * i : 8 * i + 8], "little")
        assert flat[i] == (2 * ((word >> 11) / 2**53) - 1) * 2.0**-4
    assert fan_in_scale(128) == 2.0**-4 and fan_in_scale(64) == 2.0**-3
    assert fan_in_scale(100) == 2.0**-4 and fan_in_scale(1) == 1.0
    assert np.abs(w.w1).max() <= 2.0**-3 and np.abs(w.w2).max() <= 2.0**-4


@settings(max_examples=10, deadline=None)
@given(seed=st.binary(min_size=32, max_size=32), tokens=st.integers(min_value=1, max_value=5))
def test_generation_is_deterministic_and_seed_dependent(seed: bytes, tokens: int) -> None:
    cfg = MoEConfig(d_model=4, d_ff=6, n_experts=3, n_shared_experts=1, d_ff_shared=5)
    a, b = default_weights(cfg, seed), default_weights(cfg, seed)
    assert weights_digest(a) == weights_digest(b)
    assume(seed != bytes(32))
    assert weights_digest(a) != weights_digest(default_weights(cfg, bytes(32)))
    x = default_inputs(cfg, tokens, seed)
    assert np.array_equal(x, default_inputs(cfg, tokens, seed))
    assert x.shape == (tokens, 4) and np.all((x >= -2) & (x < 2))
    # A longer run extends a shorter one (one stream per tensor, row-major).
    assert np.array_equal(default_inputs(cfg, tokens + 1, seed)[:tokens], x)


def test_tensor_streams_are_independent_of_other_tensors() -> None:
    cfg = MoEConfig(d_model=4, d_ff=6, n_experts=3)
    more = dataclasses.replace(cfg, n_shared_experts=2)
    assert np.array_equal(default_weights(cfg).w1, default_weights(more).w1)
    assert np.array_equal(default_weights(cfg).w_gate, default_weights(more).w_gate)


def test_bad_seed_and_tokens() -> None:
    with pytest.raises(SpecError):
        default_weights(default_config(), b"short")
    with pytest.raises(SpecError):
        default_inputs(default_config(), 0)
