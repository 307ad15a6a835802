"""The deepest circuit of the MoE layer at 128-bit parameters (spec/20-he.md §20.5, §20.10):
one packed selector ciphertext expanded into 128 constants, selection of a full block of
expert weights, ct x ct with the encrypted input, mask, re-randomise, flood, switch down."""

from __future__ import annotations

import numpy as np

from secmoe.encoding import Ring
from secmoe.he import bfv, galois, modswitch, noise, packing, rns
from secmoe.he.params import HE_STANDARD_128, preset
from secmoe.he.privacy import ClientKeys, decrypt_share, mask_and_flood
from secmoe.randomness import Prg, dst

RING = Ring(64)
LEVELS = 7  # 128 experts
W_BITS = 17  # |W_ij| < 2^17
X_BITS = 25  # |x_j| < 2^25


def test_he_deepest_circuit() -> None:
    p = preset("he16384")
    assert p.log_q <= HE_STANDARD_128[p.n] and not p.insecure
    client = Prg(bytes([7]) * 32, dst("test", "deepest/client"))
    server = Prg(bytes([8]) * 32, dst("test", "deepest/server"))
    sk = bfv.keygen(p, client)
    keys = ClientKeys(bfv.public_key(sk, client, 1), bfv.public_key(sk, client, 2))
    gks = {k: galois.galois_keygen(sk, k, client) for k in galois.expansion_elements(p, LEVELS)}
    experts, chosen, n_i = 1 << LEVELS, 77, 128
    n_o = p.n // n_i
    # Client: its share of the one-hot selector in one ciphertext; server: adds its share.
    share_c = np.zeros(p.n, dtype=np.uint64)
    share_c[:experts] = client.next_u64(experts)
    onehot = np.zeros(p.n, dtype=np.uint64)
    onehot[chosen] = 1
    packed = bfv.ct_add_plain(bfv.encrypt_sk(sk, share_c, client), RING.sub(onehot, share_c))
    selectors = galois.expand_selector(packed, gks, LEVELS)
    # Server: sum_e W_e [[2^l t_e]] over a full block (n_o x n_i = N weights per expert).
    tables = rns.tables(p.n, p.q_primes)
    mats, blocks = [], []
    for _ in range(experts):
        w = server.next_below(n_o * n_i, 1 << (W_BITS + 1)).astype(np.int64) - (1 << W_BITS)
        w = w.reshape(n_o, n_i)
        poly = np.zeros(p.n, dtype=np.int64)
        for i in range(n_o):
            poly[i * n_i + n_i - 1 - np.arange(n_i)] = w[i]
        mats.append(w)
        blocks.append(rns.ntt_forward(rns.from_signed(poly, p.q_primes), tables))
    selected = packing.dot_ntt(
        p, np.stack(blocks), np.stack([packing.ntt_parts(c) for c in selectors])
    )
    x = np.zeros(p.n, dtype=np.int64)
    x[:n_i] = client.next_below(n_i, 1 << (X_BITS + 1)).astype(np.int64) - (1 << X_BITS)
    prod = bfv.ct_mul(selected, bfv.encrypt_sk(sk, x.view(np.uint64), client))
    plain = bfv.decrypt(sk, prod)
    want = [(int(v) << LEVELS) % 2**64 for v in mats[chosen].astype(object) @ x[:n_i]]
    assert [int(plain[i * n_i + n_i - 1]) for i in range(n_o)] == want
    # Measured noise within the analytic bound, which flooding can hide.
    sel_bound = noise.expand_bits(p, noise.add_bits(noise.fresh_sk_bits(), 0), LEVELS)
    summed = noise.mul_plain_bits(sel_bound, float(2**W_BITS * p.n)) + LEVELS
    bound = noise.mul_bits(p, summed, noise.fresh_sk_bits(), W_BITS + LEVELS, X_BITS)
    assert bfv.noise_bits(sk, prod, plain) <= bound <= noise.max_floodable_bits(p)
    # Mask, re-randomise, flood; then shrink the response: >= 20 bits of margin at each step.
    out, share = mask_and_flood(prod, keys, server, bound)
    got = decrypt_share(sk, out)
    assert np.array_equal(RING.add(got, share), plain)
    assert bfv.margin_bits(sk, out, got) >= noise.MARGIN
    small = modswitch.mod_switch(out, modswitch.response_keep(p, 2))
    sk_small = modswitch.switch_key(sk, small.params)
    got_small = bfv.decrypt(sk_small, small)
    assert np.array_equal(got_small, got)
    assert bfv.margin_bits(sk_small, small, got_small) >= noise.MARGIN
