"""Galois automorphisms, key switching and the packed-selector expansion (spec/20-he.md §20.10)."""

from __future__ import annotations

import numpy as np
import pytest
from bounded import layer_settings
from hypothesis import given
from hypothesis import strategies as st

from secmoe.encoding import Ring
from secmoe.errors import ProtocolError, SpecError
from secmoe.he import bfv, galois, noise, rns
from secmoe.he.params import preset
from secmoe.he.serialize import gk_bytes, gk_decode, gk_encode
from secmoe.randomness import Prg, dst

TOY = preset("toy")
RING = Ring(64)


def prg(tag: str, seed: int = 0) -> Prg:
    return Prg(bytes([seed]) * 32, dst("test", tag))


def expansion_keys(sk: bfv.SecretKey, levels: int, src: Prg) -> dict[int, galois.GaloisKey]:
    return {
        k: galois.galois_keygen(sk, k, src) for k in galois.expansion_elements(sk.params, levels)
    }


@layer_settings(10)
@given(seed=st.integers(0, 255), k=st.sampled_from([3, 5, 17, 33, 63]))
def test_substitution_is_a_ring_automorphism(seed: int, k: int) -> None:
    src = prg("subst", seed)
    ps = TOY.q_primes
    a = np.stack([src.next_below(TOY.n, p) for p in ps])
    b = np.stack([src.next_below(TOY.n, p) for p in ps])
    lhs = galois.substitute(rns.mul(a, b, ps), k, ps)
    rhs = rns.mul(galois.substitute(a, k, ps), galois.substitute(b, k, ps), ps)
    assert np.array_equal(lhs, rhs)
    # X^-m times X^m is the identity.
    m = seed % TOY.n
    x_m = np.zeros((len(ps), TOY.n), dtype=np.uint64)
    x_m[:, m] = 1
    assert np.array_equal(galois.shift_down(rns.mul(a, x_m, ps), m, ps), a)
    with pytest.raises(SpecError):
        galois.substitute(a, 2, ps)


@layer_settings(4)
@given(seed=st.integers(0, 255), levels=st.integers(1, 5))
def test_expansion_yields_scaled_constants_within_the_bound(seed: int, levels: int) -> None:
    src = prg("expand", seed)
    sk = bfv.keygen(TOY, src)
    keys = expansion_keys(sk, levels, src)
    count = 1 << levels
    share_c, share_s = src.next_u64(count), src.next_u64(count)  # shares of arbitrary entries
    pc, ps_ = np.zeros(TOY.n, np.uint64), np.zeros(TOY.n, np.uint64)
    pc[:count], ps_[:count] = share_c, share_s
    ct = bfv.ct_add_plain(bfv.encrypt_sk(sk, pc, src), ps_)
    outs = galois.expand_selector(ct, keys, levels)
    assert len(outs) == count
    bound = noise.expand_bits(TOY, noise.add_bits(noise.fresh_sk_bits(), 0), levels)
    entries = RING.add(share_c, share_s)
    for e, c in enumerate(outs):
        want = np.zeros(TOY.n, dtype=np.uint64)
        want[0] = (int(entries[e]) << levels) % 2**64
        assert np.array_equal(bfv.decrypt(sk, c), want)
        assert bfv.noise_bits(sk, c, want) <= bound
    with pytest.raises(SpecError, match="Galois key"):
        galois.expand_selector(ct, {}, 1)


@layer_settings(3)
@given(seed=st.integers(0, 255), levels=st.integers(1, 3))
def test_expansion_with_the_last_levels_key_alone(seed: int, levels: int) -> None:
    # k_i^2 = k_(i-1) mod 2N: the key of k_(L-1) applied 2^(L-1-j) times serves level j.
    src = prg("expand-one-key", seed)
    sk = bfv.keygen(TOY, src)
    needed = galois.keys_needed(TOY, levels)
    assert needed == (galois.expansion_elements(TOY, levels)[-1],)
    keys = {k: galois.galois_keygen(sk, k, src) for k in needed}
    plan = galois.automorphism_plan(TOY, levels, needed)
    assert [m for _, m in plan] == [1 << (levels - 1 - j) for j in range(levels)]
    count = 1 << levels
    entries = src.next_u64(count)
    packed = np.zeros(TOY.n, np.uint64)
    packed[:count] = entries
    outs = galois.expand_selector(bfv.encrypt_sk(sk, packed, src), keys, levels)
    bound = noise.expand_bits(TOY, noise.fresh_sk_bits(), levels, [m for _, m in plan])
    # More key switches, more noise (one level needs just one switch either way).
    assert (bound > noise.expand_bits(TOY, noise.fresh_sk_bits(), levels)) == (levels > 1)
    for e, c in enumerate(outs):
        want = np.zeros(TOY.n, dtype=np.uint64)
        want[0] = (int(entries[e]) << levels) % 2**64
        assert np.array_equal(bfv.decrypt(sk, c), want)
        assert bfv.noise_bits(sk, c, want) <= bound


def test_keys_needed_at_he16384_up_to_256_experts() -> None:
    p = preset("he16384")
    for levels in range(1, 8):  # up to 128 experts: one key, the last level's
        assert galois.keys_needed(p, levels) == (p.n // (1 << (levels - 1)) + 1,)
    # At 8 levels N / 4^7 is odd: k_7^2 is not k_6, so a second key joins.
    assert galois.keys_needed(p, 8) == (129, 257)
    with pytest.raises(SpecError, match="reaches"):
        galois.automorphism_plan(p, 3, [3])


def test_expansion_at_he16384_and_the_deepest_bound_with_it() -> None:
    p = preset("he16384")
    src = prg("expand16384")
    sk = bfv.keygen(p, src)
    levels = 2
    keys = expansion_keys(sk, levels, src)
    m = np.zeros(p.n, dtype=np.uint64)
    m[:4] = [1, 0, 0, 0]
    outs = galois.expand_selector(bfv.encrypt_sk(sk, m, src), keys, levels)
    bound = noise.expand_bits(p, noise.fresh_sk_bits(), levels)
    for e, c in enumerate(outs):
        want = np.zeros(p.n, dtype=np.uint64)
        want[0] = 4 if e == 0 else 0
        assert np.array_equal(bfv.decrypt(sk, c), want)
        assert bfv.noise_bits(sk, c, want) <= bound
    # The deepest circuit with a 7-level expansion in front (128 experts, |W| < 2^17 over a
    # full block of N coefficients, input below 2^25) stays floodable with >= 20 bits of margin.
    sel = noise.expand_bits(p, noise.add_bits(noise.fresh_sk_bits(), 0), 7)
    summed = noise.mul_plain_bits(sel, float(2**17 * p.n)) + 7
    deep = noise.mul_bits(p, summed, noise.fresh_sk_bits(), 17 + 7, 25)
    assert deep <= noise.max_floodable_bits(p)
    assert noise.capacity_bits(p) - noise.flood_bits(p) >= noise.MARGIN


def test_packed_selection_then_ct_x_ct_on_toy() -> None:
    """One packed selector ciphertext, expanded, selects expert r's block; times [[x]]."""
    src, server = prg("packed"), prg("packed-server")
    sk = bfv.keygen(TOY, src)
    levels, chosen, n_i = 3, 5, 4
    keys = expansion_keys(sk, levels, src)
    onehot = np.zeros(TOY.n, dtype=np.uint64)
    onehot[chosen] = 1
    share_c = np.zeros(TOY.n, dtype=np.uint64)
    share_c[: 1 << levels] = src.next_u64(1 << levels)
    ct = bfv.ct_add_plain(bfv.encrypt_sk(sk, share_c, src), RING.sub(onehot, share_c))
    selectors = galois.expand_selector(ct, keys, levels)
    weights = [server.next_below(n_i, 1 << 10).astype(np.int64) - 512 for _ in selectors]
    # Weight block: coefficient n_i - 1 - j = w_j, so coefficient n_i - 1 of w x is w . x.
    acc = None
    for w, sel in zip(weights, selectors, strict=True):
        poly = np.zeros(TOY.n, dtype=np.int64)
        poly[n_i - 1 - np.arange(n_i)] = w
        term = bfv.ct_mul_plain(sel, poly)
        acc = term if acc is None else bfv.ct_add(acc, term)
    assert acc is not None
    x = np.zeros(TOY.n, dtype=np.int64)
    x[:n_i] = src.next_below(n_i, 1 << 12).astype(np.int64) - 2048
    out = bfv.decrypt(sk, bfv.ct_mul(acc, bfv.encrypt_sk(sk, x.view(np.uint64), src)))
    want = (int(weights[chosen] @ x[:n_i]) << levels) % 2**64
    assert int(out[n_i - 1]) == want


def test_galois_key_serialization() -> None:
    src = prg("gk")
    sk = bfv.keygen(TOY, src)
    key = galois.galois_keygen(sk, TOY.n + 1, src)
    data = gk_encode(key)
    groups = (len(TOY.q_primes) + 1) // 2
    assert len(data) == gk_bytes(TOY) == groups * (32 + 4 * len(TOY.q_primes) * TOY.n)
    back = gk_decode(TOY, data, key.k, label="he/keys/galois", party="server")
    m = np.zeros(TOY.n, dtype=np.uint64)
    m[1] = 7
    got = bfv.decrypt(sk, galois.apply_galois(bfv.encrypt_sk(sk, m, src), back))
    want = np.zeros(TOY.n, dtype=np.uint64)
    # X -> X^(N+1) sends X to X^(N+1) = -X.
    want[1] = RING.neg(np.array([7], dtype=np.uint64))[0]
    assert np.array_equal(got, want)
    with pytest.raises(ProtocolError) as e:
        gk_decode(TOY, data[:-1], key.k, label="he/keys/galois", party="server")
    assert e.value.kind == "wrong_length"
    bad = bytearray(data)
    bad[32:36] = (0xFFFFFFFF).to_bytes(4, "little")
    with pytest.raises(ProtocolError) as e:
        gk_decode(TOY, bytes(bad), key.k, label="he/keys/galois", party="server")
    assert e.value.kind == "out_of_range"
