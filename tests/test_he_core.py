"""HE engine (spec/20-he.md): NTT, BFV operations against plaintext arithmetic mod 2^64,
noise bounds, the deepest circuit, circuit privacy, parameters, serialization, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from bounded import layer_settings
from hypothesis import given
from hypothesis import strategies as st

from secmoe.encoding import Ring
from secmoe.errors import ProtocolError, SpecError
from secmoe.he import bfv, galois, noise, packing, respack, rns
from secmoe.he.matmul import he_matmul, he_matmul_bytes, he_setup_messages
from secmoe.he.modswitch import mod_switch, switch_key, switched_params
from secmoe.he.ntt import ntt_forward, ntt_inverse, ntt_tables
from secmoe.he.params import (
    HE_STANDARD_128,
    HeParams,
    check_security,
    make_params,
    ntt_primes,
    preset,
)
from secmoe.he.privacy import ClientKeys, decrypt_share, mask_and_flood
from secmoe.he.serialize import ct_bytes, ct_decode, ct_encode, poly_decode
from secmoe.randomness import Prg, dst
from secmoe.session import run_local

TOY = preset("toy")
RING = Ring(64)


def prg(tag: str, seed: int = 0) -> Prg:
    return Prg(bytes([seed]) * 32, dst("test", tag))


def negacyclic(a: list[int], b: list[int], n: int) -> list[int]:
    out = [0] * n
    for i, x in enumerate(a):
        if x:
            for j, y in enumerate(b):
                k = i + j
                out[k % n] += x * y if k < n else -x * y
    return out


def small_plain(src: Prg, n: int, count: int, bits: int) -> np.ndarray:
    out = np.zeros(n, dtype=np.int64)
    out[:count] = src.next_below(count, 1 << bits).astype(np.int64) - (1 << (bits - 1))
    return out


@given(seed=st.integers(0, 255))
@layer_settings(10)
def test_ntt_matches_schoolbook(seed: int) -> None:
    primes = TOY.q_primes[:3]
    t = ntt_tables(TOY.n, primes)
    src = prg("ntt", seed)
    a = np.stack([src.next_below(TOY.n, p) for p in primes])
    b = np.stack([src.next_below(TOY.n, p) for p in primes])
    got = ntt_inverse(ntt_forward(a, t) * ntt_forward(b, t) % t.primes, t)
    for i, p in enumerate(primes):
        want = negacyclic([int(x) for x in a[i]], [int(x) for x in b[i]], TOY.n)
        assert [int(x) for x in got[i]] == [w % p for w in want]
    assert np.array_equal(ntt_inverse(ntt_forward(a, t), t), a)


@layer_settings(12)
@given(seed=st.integers(0, 255))
def test_bfv_operations_match_plaintext_arithmetic(seed: int) -> None:
    src = prg("ops", seed)
    sk = bfv.keygen(TOY, src)
    pk = bfv.public_key(sk, src)
    m1 = src.next_u64(TOY.n)  # arbitrary plaintexts: additions wrap mod 2^64
    m2 = src.next_u64(TOY.n)
    c1, c2 = bfv.encrypt_sk(sk, m1, src), bfv.encrypt_pk(pk, m2, src)
    assert np.array_equal(bfv.decrypt(sk, c1), m1) and np.array_equal(bfv.decrypt(sk, c2), m2)
    assert np.array_equal(bfv.decrypt(sk, bfv.ct_add(c1, c2)), RING.add(m1, m2))
    assert np.array_equal(bfv.decrypt(sk, bfv.ct_add_plain(c1, m2)), RING.add(m1, m2))
    w = small_plain(src, TOY.n, 6, 18)
    want = np.array(
        [v % 2**64 for v in negacyclic([int(x) for x in m1], [int(x) for x in w], TOY.n)],
        dtype=np.uint64,
    )
    prod = bfv.ct_mul_plain(c1, w)
    assert np.array_equal(bfv.decrypt(sk, prod), want)
    # ct x ct with small centered messages (the products the MoE protocol forms).
    a = small_plain(src, TOY.n, 5, 24)
    b = small_plain(src, TOY.n, 5, 24)
    ca, cb = bfv.encrypt_sk(sk, a.view(np.uint64), src), bfv.encrypt_pk(pk, b.view(np.uint64), src)
    ab = np.array(
        [v % 2**64 for v in negacyclic([int(x) for x in a], [int(x) for x in b], TOY.n)],
        dtype=np.uint64,
    )
    cm = bfv.ct_mul(ca, cb)
    assert cm.degree == 2 and np.array_equal(bfv.decrypt(sk, cm), ab)
    # An operand lifted ahead (step 1 done once, with or without its NTT form mod q) gives the
    # same product bit for bit.
    a_ntt = rns.ntt_forward(np.stack(ca.parts), rns.tables(TOY.n, TOY.q_primes))
    for x, y in ((bfv.lift(ca), cb), (ca, bfv.lift(cb)), (bfv.lift(ca, a_ntt), bfv.lift(cb))):
        got = bfv.ct_mul(x, y)
        assert all(np.array_equal(u, v) for u, v in zip(got.parts, cm.parts, strict=True))
    # Measured noise never exceeds the spec's bounds.
    assert bfv.noise_bits(sk, c1, m1) <= noise.fresh_sk_bits()
    assert bfv.noise_bits(sk, c2, m2) <= noise.fresh_pk_bits(TOY)
    assert bfv.noise_bits(sk, prod, want) <= noise.mul_plain_bits(
        noise.fresh_sk_bits(), float(np.abs(w).sum())
    )
    bound = noise.mul_bits(TOY, noise.fresh_sk_bits(), noise.fresh_pk_bits(TOY), 23, 23)
    assert bfv.noise_bits(sk, cm, ab) <= bound


def test_deepest_circuit_128_experts_at_he16384() -> None:
    """Selection over 128 experts, ct x ct with the input, mask, re-randomise, flood: correct,
    within the analytic bound, and >= 20 bits of decryption margin (spec §20.5)."""
    p = preset("he16384")
    src = prg("deep")
    server = prg("deep-server")
    sk = bfv.keygen(p, src)
    keys = ClientKeys(bfv.public_key(sk, src, 1), bfv.public_key(sk, src, 2))
    d_in, d_out, experts, chosen = 8, 4, 128, 77
    shape = packing.unpacked_shape(p, 1, d_in, d_out)
    weights = [
        (server.next_below(d_in * d_out, 1 << 18).astype(np.int64) - (1 << 17)).reshape(d_out, d_in)
        for _ in range(experts)
    ]
    # The selector: one ciphertext per expert, each the constant polynomial t_e.
    selector = []
    for e in range(experts):
        m = np.zeros(p.n, dtype=np.uint64)
        m[0] = 1 if e == chosen else 0
        selector.append(packing.ntt_parts(bfv.encrypt_sk(sk, m, src)))
    w_ntt = np.stack([packing.weights_ntt(p, shape, w)[0, 0] for w in weights])
    w_sel = packing.dot_ntt(p, w_ntt, np.stack(selector))
    x = server.next_below(d_in, 1 << 26).astype(np.int64) - (1 << 25)
    cx = bfv.encrypt_sk(sk, packing.encode_input(p, shape, x.view(np.uint64), 0, 0), src)
    prod = bfv.ct_mul(w_sel, cx)
    plain = bfv.decrypt(sk, prod)
    got = packing.decode_output(shape, plain, 0, 0)[0].view(np.int64)
    assert [int(v) for v in got] == [
        int(v) for v in weights[chosen].astype(object) @ x.astype(object)
    ]
    sel_bound = noise.mul_plain_bits(noise.fresh_sk_bits(), float(2**17 * d_in * d_out)) + np.log2(
        experts
    )
    bound = noise.mul_bits(p, float(sel_bound), noise.fresh_sk_bits(), 17, 25)
    assert bfv.noise_bits(sk, prod, plain) <= bound <= noise.max_floodable_bits(p)
    out, share = mask_and_flood(prod, keys, server, bound)
    client = decrypt_share(sk, out)
    assert np.array_equal(RING.add(client, share), plain)
    assert bfv.margin_bits(sk, out, client) >= 20


def test_flooding_hides_the_noise_and_refuses_what_it_cannot_hide() -> None:
    src, server = prg("flood"), prg("flood-server")
    sk = bfv.keygen(TOY, src)
    keys = ClientKeys(bfv.public_key(sk, src, 1))
    m = small_plain(src, TOY.n, 4, 10).view(np.uint64)
    ct = bfv.encrypt_sk(sk, m, src)
    out, share = mask_and_flood(ct, keys, server, noise.fresh_sk_bits())
    assert np.array_equal(RING.add(decrypt_share(sk, out), share), m)
    # After flooding the noise is of the flooding width, whatever it was before.
    assert bfv.noise_bits(sk, out, decrypt_share(sk, out)) > noise.flood_bits(TOY) - 3
    assert bfv.margin_bits(sk, out, decrypt_share(sk, out)) >= 20
    # The client's share is masked: it does not reveal m.
    assert not np.array_equal(decrypt_share(sk, out), m)
    with pytest.raises(SpecError, match="too large to flood"):
        mask_and_flood(ct, keys, server, noise.max_floodable_bits(TOY) + 1)
    deg2 = bfv.ct_mul(ct, ct)
    with pytest.raises(SpecError, match="pk2"):
        mask_and_flood(deg2, keys, server, 100)


def test_he8192_cannot_flood_the_ct_x_ct_result() -> None:
    p = preset("he8192")
    sel = noise.mul_plain_bits(noise.fresh_sk_bits(), float(2**17 * 32)) + 7
    assert noise.mul_bits(p, sel, noise.fresh_sk_bits(), 17, 25) > noise.max_floodable_bits(p)


def test_security_table_is_enforced() -> None:
    for name in ("he4096", "he8192", "he16384"):
        p = preset(name)
        assert p.log_q <= HE_STANDARD_128[p.n]
        check_security(p)
    with pytest.raises(SpecError, match="exceeds the 128-bit bound"):
        make_params("too-big", 8192, 8)  # 8 x 31 bits > 218
    with pytest.raises(SpecError, match="exceeds the 128-bit bound"):
        make_params("too-big", 4096, 4)
    with pytest.raises(SpecError):
        HeParams("bad", 64, (97,), ())  # 97 is not 1 mod 128
    assert all(p % (2 * 8192) == 1 for p in ntt_primes(8192, 10))
    assert TOY.insecure and preset("he8192").n == 8192


@layer_settings(6)
@given(
    seed=st.integers(0, 255),
    tokens=st.integers(1, 5),
    d_in=st.integers(1, 40),
    d_out=st.integers(1, 40),
)
def test_matmul_protocol(seed: int, tokens: int, d_in: int, d_out: int) -> None:
    src = prg("matmul", seed)
    w = (src.next_below(d_in * d_out, 1 << 19).astype(np.int64) - (1 << 18)).reshape(d_out, d_in)
    xc = src.next_ring(tokens * d_in).reshape(tokens, d_in)
    xs = src.next_ring(tokens * d_in).reshape(tokens, d_in)
    shape = packing.matmul_shape(TOY, tokens, d_in, d_out)
    assert shape.n_t * shape.n_i * shape.n_o <= TOY.n
    res = run_local(
        lambda ctx: he_matmul(ctx, TOY, shape, xc),
        lambda ctx: he_matmul(ctx, TOY, shape, xs, w),
        client_seed=bytes([seed]) * 32,
        server_seed=bytes(32),
    )
    x = RING.add(xc, xs).view(np.int64).astype(object)
    want = np.array(
        [[int(v) % 2**64 for v in row] for row in x @ w.T.astype(object)], dtype=np.uint64
    )
    assert np.array_equal(RING.add(res.client, res.server), want)
    t = res.cost.total()
    n_in = shape.token_blocks * shape.in_blocks
    up, down = he_matmul_bytes(TOY, tokens, d_in, d_out, 20)
    assert up == n_in * ct_bytes(TOY, 1, True)
    assert t.bytes_c2s == up + sum(he_setup_messages(TOY))  # + pk and the Galois keys
    assert t.bytes_s2c == down
    # One packed response per group of products, each smaller than one unpacked response.
    plan = packing.pack_plan_for(TOY, shape)
    groups = plan.groups(shape.token_blocks * shape.out_blocks)
    small = switched_params(TOY, plan.keep)
    assert down == sum(4 * plan.keep * TOY.n for _ in groups) + 4 * plan.keep * tokens * d_out
    assert (
        down < shape.token_blocks * shape.out_blocks * ct_bytes(small, 1) + 4 * len(groups) * TOY.n
    )
    assert res.cost.phases["main"].rounds == 2


@layer_settings(3)
@given(seed=st.integers(0, 255), tokens=st.integers(1, 3), d_in=st.integers(1, 9))
def test_matmul_protocol_64_bit_multipliers(seed: int, tokens: int, d_in: int) -> None:
    """w_max_bits = 64 (a share as the multiplier): four 20-bit digits, recombined exactly."""
    src = prg("matmul64", seed)
    d_out = 3
    w = src.next_u64(d_in * d_out).view(np.int64).reshape(d_out, d_in)
    xc = src.next_ring(tokens * d_in).reshape(tokens, d_in)
    xs = src.next_ring(tokens * d_in).reshape(tokens, d_in)
    shape = packing.matmul_shape(TOY, tokens, d_in, d_out)
    res = run_local(
        lambda ctx: he_matmul(ctx, TOY, shape, xc, None, 64),
        lambda ctx: he_matmul(ctx, TOY, shape, xs, w, 64),
        client_seed=bytes([seed]) * 32,
        server_seed=bytes(32),
    )
    x = RING.add(xc, xs).view(np.int64).astype(object)
    want = np.array(
        [[int(v) % 2**64 for v in row] for row in x @ w.T.astype(object)], dtype=np.uint64
    )
    assert np.array_equal(RING.add(res.client, res.server), want)
    assert res.cost.phases["main"].bytes_s2c == he_matmul_bytes(TOY, tokens, d_in, d_out, 64)[1]


def test_weight_digits_recombine() -> None:
    src = prg("digits")
    w = src.next_u64(200).view(np.int64)
    digits = respack.weight_digits(w, 4)
    assert all(np.all(np.abs(d) <= 1 << 20) for d in digits)
    total = sum((d.view(np.uint64) << np.uint64(20 * i)) for i, d in enumerate(digits))
    assert np.array_equal(total, w.view(np.uint64))
    with pytest.raises(SpecError):
        respack.weight_digits(w, 2)


def test_pack_group_places_and_removes() -> None:
    """pack_group: 2^a times coefficient m 2^a of ct_k at m 2^a + k g, zero elsewhere."""
    src = prg("pack")
    sk = bfv.keygen(TOY, src)
    keys = {k: galois.galois_keygen(sk, k, src) for k in respack.pack_elements(TOY)}
    a = 3
    for count in (1, 3, 8):
        ms = [src.next_u64(TOY.n) for _ in range(count)]
        cts = [
            respack.add_plain_scaled(bfv.encrypt_sk(sk, np.zeros(TOY.n, np.uint64), src), m, a)
            for m in ms
        ]
        dec = bfv.decrypt(sk, respack.pack_group(cts, a, keys))
        g = (1 << a) >> (count - 1).bit_length()
        want = np.zeros(TOY.n, dtype=np.uint64)
        for k, m in enumerate(ms):
            want[np.arange(0, TOY.n, 1 << a) + k * g] = m[:: 1 << a]
        assert np.array_equal(dec, want)
    with pytest.raises(SpecError):
        respack.pack_group(cts + cts, a, keys)


def test_matmul_shape_for_the_switch_ffn() -> None:
    s = packing.matmul_shape(preset("he8192"), 1, 768, 3072)
    assert (s.n_t, s.n_i, s.n_o, s.in_blocks, s.out_blocks) == (1, 1024, 8, 1, 384)
    plan = packing.pack_plan_for(preset("he8192"), s)
    assert (plan.max_ell, plan.flood_bits, plan.keep) == (10, 112, 4)
    assert he_matmul_bytes(preset("he8192"), 1, 768, 3072, 20) == (229_408, 180_224)
    s = packing.unpacked_shape(preset("he8192"), 8, 768, 3072)
    assert (s.n_t, s.n_i, s.n_o, s.token_blocks * (s.in_blocks + s.out_blocks)) == (8, 16, 64, 96)


def test_serialization_round_trip_and_rejection() -> None:
    src = prg("ser")
    sk = bfv.keygen(TOY, src)
    m = src.next_u64(TOY.n)
    ct = bfv.encrypt_sk(sk, m, src)
    for seeded in (True, False):
        data = ct_encode(ct, seeded=seeded)
        assert len(data) == ct_bytes(TOY, 1, seeded)
        back = ct_decode(TOY, data, seeded=seeded, label="x", party="server")
        assert np.array_equal(bfv.decrypt(sk, back), m)
    data = ct_encode(ct)
    with pytest.raises(ProtocolError) as e:
        ct_decode(TOY, data[:-1], label="x", party="server")
    assert e.value.kind == "wrong_length"
    bad = bytearray(data)
    bad[0:4] = (0xFFFFFFFF).to_bytes(4, "little")  # >= p_0
    with pytest.raises(ProtocolError) as e:
        ct_decode(TOY, bytes(bad), label="x", party="server")
    assert e.value.kind == "out_of_range"
    other = preset("he4096")
    with pytest.raises(ProtocolError) as e:
        poly_decode(other, data[: 4 * len(TOY.q_primes) * TOY.n], label="x", party="client")
    assert e.value.kind == "wrong_length"
    with pytest.raises(SpecError):
        bfv.ct_add(ct, bfv.encrypt_sk(bfv.keygen(other, src), np.zeros(other.n, np.uint64), src))
    with pytest.raises(SpecError):
        bfv.encrypt_sk(sk, np.zeros(3, np.uint64), src)


def test_rounding_encoding_makes_share_wraps_free() -> None:
    src = prg("wrap")
    sk = bfv.keygen(TOY, src)
    x = small_plain(src, TOY.n, TOY.n, 20).view(np.uint64)
    share_c = src.next_u64(TOY.n)
    share_s = RING.sub(x, share_c)  # adding the shares wraps mod 2^64 about half the time
    ct = bfv.ct_add_plain(bfv.encrypt_sk(sk, share_c, src), share_s)
    assert np.array_equal(bfv.decrypt(sk, ct), x)
    assert bfv.noise_bits(sk, ct, x) <= noise.add_bits(noise.fresh_sk_bits(), 0)


def test_crt_round_trip() -> None:
    vals = [0, 1, -1, TOY.q // 2, -(TOY.q // 2) + 1, 12345678901234567890]
    res = rns.from_int(vals, TOY.q_primes)
    assert [int(v) for v in rns.to_int(res, TOY.q_primes)] == vals


def test_packed_matmul_noise_within_the_plan() -> None:
    """The server's steps of he_matmul by hand at he8192: the packed ciphertext's measured noise
    stays below pack_plan's bound, which leaves >= MARGIN bits (spec §20.13.1)."""
    p = preset("he8192")
    src = prg("packed-noise")
    sk = bfv.keygen(p, src)
    pk = bfv.public_key(sk, src, 1)
    shape = packing.matmul_shape(p, 1, 64, 96)
    plan = packing.pack_plan_for(p, shape)
    a = shape.n_i.bit_length() - 1
    needed = respack.pack_elements(p)[:a]
    keys = {k: galois.galois_keygen(sk, k, src) for k in needed}
    w = (src.next_below(96 * 64, 1 << 21).astype(np.int64) - (1 << 20)).reshape(96, 64)
    x = src.next_u64(64)
    zero = np.zeros(p.n, dtype=np.uint64)
    ct = respack.add_plain_scaled(
        bfv.encrypt_sk(sk, zero, src), packing.encode_input(p, shape, x, 0, 0), a
    )
    cts = np.stack([packing.ntt_parts(ct)])
    wn = packing.weights_ntt(p, shape, w)
    members = [
        respack.flood(
            respack.shift_outputs(packing.dot_ntt(p, wn[bo], cts), shape.n_i),
            pk,
            src,
            plan.flood_bits,
        )
        for bo in range(shape.out_blocks)
    ]
    packed = respack.pack_group(members, a, keys)
    want_vals = (w.astype(object) @ x.astype(object)) % 2**64
    ell = (len(members) - 1).bit_length()
    g = shape.n_i >> ell
    want = np.zeros(p.n, dtype=np.uint64)
    for bo in range(shape.out_blocks):
        for i in range(shape.n_o):
            want[i * shape.n_i + bo * g] = int(want_vals[bo * shape.n_o + i])
    got = bfv.decrypt(sk, packed)
    positions = np.flatnonzero(
        np.isin(
            np.arange(p.n),
            [i * shape.n_i + bo * g for bo in range(shape.out_blocks) for i in range(shape.n_o)],
        )
    )
    assert np.array_equal(got[positions], want[positions])
    measured = bfv.noise_bits(sk, packed, got)
    assert measured <= plan.final_bits <= noise.capacity_bits(p) - noise.MARGIN
    small = mod_switch(packed, plan.keep)
    assert np.array_equal(bfv.decrypt(switch_key(sk, small.params), small), got)


def test_packed_decode_rejects_bad_residues() -> None:
    positions = np.arange(4, dtype=np.intp)
    wire = bytearray(respack.packed_bytes(TOY, 4))
    respack.packed_ct_decode(TOY, bytes(wire), positions, label="y", party="client")
    wire[:4] = (TOY.q_primes[0]).to_bytes(4, "little")
    with pytest.raises(ProtocolError, match="out_of_range"):
        respack.packed_ct_decode(TOY, bytes(wire), positions, label="y", party="client")
    with pytest.raises(ProtocolError, match="wrong_length"):
        respack.packed_ct_decode(TOY, bytes(wire) + b"\0", positions, label="y", party="client")
