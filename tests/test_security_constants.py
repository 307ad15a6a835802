"""Security constants checked against sources independent of the code that uses them.

Each test here guards one security parameter of the lattice HE (spec/20-he.md) with a value
written literally in this file (from the published standard or the spec's text) or with a direct
computation, never with the constant or function under test:

- the HomomorphicEncryption.org 128-bit table and every parameter set at every N it uses;
- the flooding's statistical distance, computed from the flood's width and the noise it hides;
- the secret and error distributions, sampled through key generation and encryption.

A change that weakens any of them (a raised bound, fewer bits of statistical security, a
narrower error) fails one of these tests by name, even when no vector byte changes.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from secmoe.errors import SpecError
from secmoe.he import bfv, noise, respack, rns
from secmoe.he.modswitch import switched_params
from secmoe.he.params import HE_STANDARD_128, HeParams, make_params, preset
from secmoe.he.privacy import ClientKeys, decrypt_share, mask_and_flood
from secmoe.randomness import Prg, dst

SPEC = Path(__file__).resolve().parents[1] / "spec"

# HomomorphicEncryption.org security standard (Albrecht et al., 2018), Table 1: ternary secret,
# classical 128-bit security, max log2 q per N. Written here as published, not imported.
PUBLISHED_128 = {1024: 27, 2048: 54, 4096: 109, 8192: 218, 16384: 438, 32768: 881}
SECURE_SETS = ("he4096", "he8192", "he16384")  # spec §20.1.1's table, every set but `toy`
STAT_SECURITY_BITS = 40  # spec §20.5: flooding's statistical security
CBD_ETA_SPEC = 21  # spec §20.1.1: error CBD(21), variance eta / 2 = 10.5, support [-21, 21]


def _prg(tag: str) -> Prg:
    return Prg(bytes(32), dst("test", "security-constants"), tag.encode())


# --- the HE standard's table ---------------------------------------------------------------------


def test_the_128_bit_table_is_the_published_one() -> None:
    """Guards the code's table (he/params.py) and the spec's text (§20.1.2) against any edit of a
    bound: both must equal the standard's values written above."""
    assert dict(HE_STANDARD_128) == PUBLISHED_128
    text = (SPEC / "20-he.md").read_text(encoding="utf-8")
    section = text.split("### `check_security`", 1)[1].split("\n## ", 1)[0]
    in_spec = {int(n): int(b) for n, b in re.findall(r"`B\((\d+)\) = (\d+)`", section)}
    assert in_spec == PUBLISHED_128


@pytest.mark.parametrize("n", sorted(PUBLISHED_128))
def test_check_security_refuses_one_prime_above_the_published_bound(n: int) -> None:
    """Guards `check_security` at every tabulated N, whatever table it reads: the largest prime
    count whose log2 q is within the published bound is accepted, one more prime is refused."""
    bound = PUBLISHED_128[n]
    k = 0
    while math.log2(math.prod(_largest_primes(n, k + 1))) <= bound:
        k += 1
    if k > 0:
        assert make_params("at-bound", n, k).log_q <= bound
    with pytest.raises(SpecError, match="exceeds the 128-bit bound"):
        make_params("above-bound", n, k + 1)


def _largest_primes(n: int, count: int) -> list[int]:
    """The ``count`` largest primes below 2^31 that are 1 mod 2N (spec §20.1.1), by trial
    division: independent of the code's prime search."""
    sieve = np.ones(1 << 16, dtype=bool)
    sieve[:2] = False
    for d in range(2, 1 << 8):
        sieve[d * d :: d] = False
    small = np.flatnonzero(sieve).astype(np.int64)  # every prime below 2^16 > sqrt(2^31)
    out, p = [], ((1 << 31) - 2) // (2 * n) * (2 * n) + 1
    while len(out) < count:
        if np.all(p % small[small < p]):
            out.append(p)
        p -= 2 * n
    return out


@pytest.mark.parametrize("name", SECURE_SETS)
def test_every_secure_parameter_set_is_within_the_published_bound(name: str) -> None:
    """Guards every parameter set at every N it uses, the modulus-switched response sets of
    spec §20.11 included: log2 q (the primes' product, recomputed here) within the standard's
    bound for that N, and never marked insecure."""
    p = preset(name)
    assert not p.insecure
    for keep in range(1, len(p.q_primes) + 1):
        s = switched_params(p, keep)
        assert s.n == p.n and not s.insecure
        assert math.log2(math.prod(s.q_primes)) <= PUBLISHED_128[s.n], (s.name, s.n)


def test_the_toy_set_is_marked_insecure() -> None:
    """Guards the one set above the bound: it is flagged, and the same primes unflagged are refused."""
    toy = preset("toy")
    assert toy.insecure
    with pytest.raises(SpecError):
        HeParams("toy-unflagged", toy.n, toy.q_primes, toy.aux_primes)


# --- flooding ------------------------------------------------------------------------------------


def _statistical_distance(a: dict[int, Fraction], b: dict[int, Fraction]) -> Fraction:
    keys = set(a) | set(b)
    return sum((abs(a.get(k, Fraction(0)) - b.get(k, Fraction(0))) for k in keys), Fraction(0)) / 2


def test_shifted_uniform_distance_is_shift_over_width() -> None:
    """The formula the flooding test relies on, by enumeration: a uniform variable on W integers
    and the same shifted by v are at statistical distance exactly |v| / W."""
    for width in (8, 64):
        uniform = {k: Fraction(1, width) for k in range(-width // 2, width // 2)}
        for v in (-5, -1, 0, 1, 3, width // 2):
            shifted = {k + v: p for k, p in uniform.items()}
            assert _statistical_distance(uniform, shifted) == Fraction(abs(v), width)


@pytest.mark.parametrize("name", ("toy", *SECURE_SETS))
def test_flooding_statistical_distance(name: str) -> None:
    """Guards the flooding's 40 bits of statistical security (spec §20.5): with the flood's width
    F computed here from q and the spec's margin, and B = 2^max_floodable_bits the largest noise
    `mask_and_flood` accepts, every flooded coefficient is within |v|/2^F <= 2^-41 / N of the
    flood alone, so the whole ciphertext (N coefficients) is within 2^-41, as the spec states."""
    p = preset(name)
    q, t = math.prod(p.q_primes), 1 << 64
    width_bits = (q // (2 * t)).bit_length() - 1 - 21  # F = floor(log2(q / 2t)) - 21
    assert noise.flood_bits(p) == width_bits
    accepted = Fraction(2) ** noise.max_floodable_bits(p)
    per_coefficient = accepted / Fraction(2) ** width_bits
    assert per_coefficient <= Fraction(1, p.n * 2 ** (STAT_SECURITY_BITS + 1))
    whole = 1 - (1 - per_coefficient) ** p.n
    assert whole <= Fraction(1, 2 ** (STAT_SECURITY_BITS + 1))


@pytest.mark.parametrize("name", ("he8192", "he16384"))  # the sets that pack responses
def test_packed_flood_is_per_ciphertext(name: str) -> None:
    """Guards the packed responses' flood (spec §20.13.1): F exceeds the packed coefficient's
    circuit noise 2^(a + l + B_pre) by 41 + log2 N bits, so a packed ciphertext's N coefficients
    together stay within 2^-41 of the floods alone."""
    p = preset(name)
    a = 6
    pre = noise.add_bits(40.0, noise.fresh_pk_bits(p))
    plan = respack.pack_plan(p, a, 40.0)
    assert plan.flood_bits >= a + plan.max_ell + pre + STAT_SECURITY_BITS + 1 + math.log2(p.n)


def test_the_flood_has_the_width_it_claims() -> None:
    """Guards the flood itself (toy set, sampled): after `mask_and_flood` of a fresh ciphertext
    the noise spans the full width 2^(F-1) and never exceeds it (plus the fresh noise), and a
    noise bound above max_floodable_bits is refused."""
    p, src = preset("toy"), _prg("flood")
    sk = bfv.keygen(p, src)
    keys = ClientKeys(bfv.public_key(sk, src, 1))
    width_bits = noise.flood_bits(p)
    worst = 0.0
    for _ in range(8):
        ct = bfv.encrypt_sk(sk, np.zeros(p.n, np.uint64), src)
        out, _ = mask_and_flood(ct, keys, src, noise.fresh_sk_bits())
        worst = max(worst, bfv.noise_bits(sk, out, decrypt_share(sk, out)))
    assert width_bits - 2 < worst < width_bits
    with pytest.raises(SpecError, match="too large to flood"):
        mask_and_flood(ct, keys, src, noise.max_floodable_bits(p) + 0.5)


# --- secret and error distributions --------------------------------------------------------------


def _errors(p: HeParams, samples: int) -> np.ndarray:
    """Error coefficients of secret-key encryptions of zero and of public keys: e = c_0 + a s."""
    src = _prg("errors")
    sk = bfv.keygen(p, src)
    s = rns.from_signed(sk.s, p.q_primes)
    out = []
    while sum(len(e) for e in out) < samples:
        ct = bfv.encrypt_sk(sk, np.zeros(p.n, np.uint64), src)
        pk = bfv.public_key(sk, src, 1)
        for c0, a in ((ct.parts[0], ct.parts[1]), (pk.b, pk.a)):
            e = rns.add(c0, rns.mul(a, s, p.q_primes), p.q_primes)
            out.append(np.array([int(v) for v in rns.to_int(e, p.q_primes)], dtype=np.int64))
    return np.concatenate(out)


def test_error_distribution_is_cbd_21() -> None:
    """Guards the error distribution (spec §20.1.1, CBD(21): mean 0, variance 10.5, support
    [-21, 21]) by sampling 2^16 coefficients of encryptions and public keys at he4096; a narrower
    error (eta = 3, variance 1.5) or a wider one fails. Deterministic: the PRG seed is fixed."""
    e = _errors(preset("he4096"), 1 << 16)
    var, se_var = CBD_ETA_SPEC / 2, CBD_ETA_SPEC / 2 * math.sqrt(2 / len(e))
    assert abs(e.mean()) < 6 * math.sqrt(var / len(e))
    assert abs(e.var() - var) < 6 * se_var
    assert e.min() >= -CBD_ETA_SPEC and e.max() <= CBD_ETA_SPEC
    assert max(-e.min(), e.max()) >= 12  # P(|e| >= 12) ~ 2e-4: seen in 2^16 samples


def test_secret_distribution_is_ternary() -> None:
    """Guards the secret distribution (spec §20.1.1, uniform ternary: support {-1, 0, 1}, mean 0,
    variance 2/3, each value a third of the time), sampled from 16 keys at he4096."""
    p, src = preset("he4096"), _prg("secrets")
    s = np.concatenate([bfv.keygen(p, src).s for _ in range(16)])
    assert set(np.unique(s).tolist()) == {-1, 0, 1}
    assert abs(s.mean()) < 6 * math.sqrt(2 / 3 / len(s))
    assert abs(s.var() - 2 / 3) < 0.02
    for v in (-1, 0, 1):
        assert abs(np.mean(s == v) - 1 / 3) < 0.01
