"""Galois automorphisms, their key-switching keys, and the expansion of a packed selector
(spec/20-he.md §20.10).

The client packs the E = 2^l entries of a token's one-hot selector into the coefficients of one
polynomial and sends one ciphertext; the server expands it into E ciphertexts, the e-th
encrypting the constant 2^l t_e (the query expansion of single-server PIR: Angel et al.,
"PIR with compressed queries and amortized query processing", IEEE S&P 2018).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache, cached_property

import numpy as np
from numpy.typing import NDArray

from secmoe.errors import SpecError
from secmoe.he import rns
from secmoe.he.bfv import SEED_BYTES, Ciphertext, SecretKey, expand_a
from secmoe.he.kernels import mac_rows
from secmoe.he.params import CBD_ETA, HeParams
from secmoe.randomness import Prg

U64 = NDArray[np.uint64]
I64 = NDArray[np.int64]


def substitute(poly: U64, k: int, primes: tuple[int, ...]) -> U64:
    """a(X) -> a(X^k) mod X^N + 1 for odd k: coefficient j moves to j k mod 2N, negated when
    that exponent is N or more."""
    n = poly.shape[1]
    if k % 2 == 0:
        raise SpecError("a Galois element is odd")
    dest = (np.arange(n, dtype=np.int64) * k) % (2 * n)
    out = np.zeros_like(poly)
    low = dest < n
    out[:, dest[low]] = poly[:, low]
    out[:, dest[~low] - n] = rns.neg(poly[:, ~low], primes)
    return out


def shift_down(poly: U64, m: int, primes: tuple[int, ...]) -> U64:
    """a(X) X^-m mod X^N + 1 (0 <= m < N): X^-m = -X^(N-m)."""
    n = poly.shape[1]
    out = np.empty_like(poly)
    out[:, : n - m] = poly[:, m:]
    out[:, n - m :] = rns.neg(poly[:, :m], primes)
    return out


@dataclass(frozen=True)
class GaloisKey:
    """Key-switching key from s(X^k) to s: for each digit group G (a pair of primes),
    (b_G, seed_G) with b_G = -a_G s + e_G + g_G s(X^k), a_G = expand_a(seed_G), g_G = 1 modulo
    the primes of G and 0 modulo the others."""

    params: HeParams
    k: int
    b: tuple[U64, ...]
    seeds: tuple[bytes, ...]

    @cached_property
    def evaluation_form(self) -> U64:
        """(G, 2, L, N): each group's b_G and a_G in NTT form, computed once per key."""
        t = rns.tables(self.params.n, self.params.q_primes)
        b = rns.ntt_forward(np.stack(self.b), t)
        a = rns.ntt_forward(np.stack([expand_a(self.params, sd) for sd in self.seeds]), t)
        return np.ascontiguousarray(np.stack([b, a], axis=1))


def expansion_elements(params: HeParams, levels: int) -> tuple[int, ...]:
    """The Galois elements N / 2^j + 1 for j = 0 .. levels - 1."""
    if not 0 <= levels <= params.n.bit_length() - 1:
        raise SpecError(f"at most log2 N = {params.n.bit_length() - 1} expansion levels")
    return tuple(params.n // (1 << j) + 1 for j in range(levels))


def galois_keygen(sk: SecretKey, k: int, prg: Prg) -> GaloisKey:
    """The client's key-switching key for X -> X^k.

    Implements spec §20.10.1 `galois_keygen` (spec/20-he.md#galois_keygen).
    """
    ps = sk.params.q_primes
    return switching_key(sk, substitute(rns.from_signed(sk.s, ps), k, ps), k, prg)


def switching_key(sk: SecretKey, target: U64, element: int, prg: Prg) -> GaloisKey:
    """A key from ``target`` (RNS form) to s in the Galois-key layout: per digit group one RLWE
    sample under s carrying ``target`` on that group's residues only (spec §20.10.1 step 1; the
    relinearisation key of §20.14.1 is the same with target s^2)."""
    p = sk.params
    ps = p.q_primes
    s = rns.from_signed(sk.s, ps)
    bs, seeds = [], []
    # Step 1: one RLWE sample per digit group, carrying the target on that group's residues only.
    for group in digit_groups(len(ps)):
        seed = prg.next_bytes(SEED_BYTES)
        a = expand_a(p, seed)
        e = rns.from_signed(rns.cbd(prg, p.n, CBD_ETA), ps)
        b = rns.add(rns.neg(rns.mul(a, s, ps), ps), e, ps)
        for i in group:
            b[i] = (b[i] + target[i]) % np.uint64(ps[i])
        bs.append(b)
        seeds.append(seed)
    return GaloisKey(p, element, tuple(bs), tuple(seeds))


def digit_groups(count: int) -> list[tuple[int, ...]]:
    """Prime indices in consecutive pairs (the last alone when L is odd): one digit per pair."""
    return [tuple(range(i, min(i + 2, count))) for i in range(0, count, 2)]


def digits(c: U64, primes: tuple[int, ...]) -> list[U64]:
    """The RNS gadget decomposition with one digit per pair of primes (p_a, p_b): the residues
    of c at p_a and p_b joined by the CRT into x in [0, p_a p_b) (below 2^62), centered in
    (-p_a p_b / 2, p_a p_b / 2], as a polynomial over every prime; so sum_G g_G d_G = c mod q."""
    out = []
    for group in digit_groups(len(primes)):
        x = c[group[0]].astype(np.int64)
        modulus = primes[group[0]]
        if len(group) == 2:
            pa, pb = primes[group[0]], primes[group[1]]
            inv = np.uint64(pow(pa, -1, pb))
            ra, rb = c[group[0]], c[group[1]]
            lift = (rb + np.uint64(pb) - ra % np.uint64(pb)) % np.uint64(pb) * inv % np.uint64(pb)
            x = (ra + np.uint64(pa) * lift).astype(np.int64)
            modulus = pa * pb
        centered = np.where(x > modulus // 2, x - modulus, x)
        out.append(rns.from_signed(centered, primes))
    return out


def apply_galois(ct: Ciphertext, key: GaloisKey) -> Ciphertext:
    """A ciphertext of m(X^k) under s from a degree-1 ciphertext of m(X) under s.

    Implements spec §20.10.2 `apply_galois` (spec/20-he.md#apply_galois).
    """
    p = ct.params
    if key.params != p:
        raise SpecError("Galois key and ciphertext use different parameters")
    if ct.degree != 1:
        raise SpecError("only degree-1 ciphertexts are substituted")
    ps = p.q_primes
    # Step 1: substitute both parts; (c0(X^k), c1(X^k)) decrypts under s(X^k).
    c0 = substitute(ct.parts[0], key.k, ps)
    c1 = substitute(ct.parts[1], key.k, ps)
    # Step 2: key-switch c1: sum_G d_G (b_G, a_G) with d_G the digits of c1(X^k).
    acc = key_switch(c1, key)
    return Ciphertext(p, [rns.add(c0, acc[0], ps), acc[1]])


def key_switch(c: U64, key: GaloisKey) -> U64:
    """sum_G d_G (b_G, a_G) in coefficient form, (2, L, N), d_G the digits of ``c``: the core of
    ``apply_galois`` (§20.10.2) and ``relinearise`` (§20.14.2). The sums over the groups run in
    the compiled multiply-accumulate of the selection (§40.7.3)."""
    p = key.params
    ps = p.q_primes
    t = rns.tables(p.n, ps)
    dn = rns.ntt_forward(np.stack(digits(c, ps)), t)
    acc = np.empty((2, len(ps), p.n), dtype=np.uint64)
    mac_rows((dn,), key.evaluation_form, np.array(ps, dtype=np.uint64), acc[None], 0, len(ps))
    return rns.ntt_inverse(acc, t)


def _reach(
    params: HeParams, have: Iterable[int], target: int, levels: int
) -> tuple[int, int] | None:
    """(k, m) with k^m = target (mod 2N) for an element k of ``have`` and the least
    m <= 2^(levels - 1) (the applications the last level's key needs for the first level)."""
    two_n = 2 * params.n
    best: tuple[int, int] | None = None
    for k in sorted(set(have)):
        power = k % two_n
        for m in range(1, (1 << max(levels - 1, 0)) + 1):
            if power == target:
                if best is None or m < best[1]:
                    best = (k, m)
                break
            power = power * k % two_n
    return best


def automorphism_plan(
    params: HeParams, levels: int, available: Iterable[int]
) -> list[tuple[int, int]]:
    """For each expansion level j: (k, m) such that applying the key for k m times substitutes
    X -> X^(k^m) = X^(k_j) (mod 2N), with the fewest applications (m = 1 when the key of k_j
    itself is available). ``SpecError`` if a level is out of reach."""
    have = list(available)
    plan = []
    for kj in expansion_elements(params, levels):
        step = _reach(params, have, kj, levels)
        if step is None:
            raise SpecError(f"no available Galois key reaches X -> X^{kj}")
        plan.append(step)
    return plan


def keys_needed(params: HeParams, levels: int) -> tuple[int, ...]:
    """The fewest Galois elements whose keys reach every level, chosen from the last level
    down: k_{L-1} = N / 2^(L-1) + 1 reaches them all while 2^(2L-1) <= N, since
    k_i^2 = k_{i-1} (mod 2N) when N / 4^i is even."""
    chosen: list[int] = []
    for kj in reversed(expansion_elements(params, levels)):
        if _reach(params, chosen, kj, levels) is None:
            chosen.append(kj)
    return tuple(sorted(chosen))


@cache
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="expand")


def expand_selector(ct: Ciphertext, keys: dict[int, GaloisKey], levels: int) -> list[Ciphertext]:
    """2^levels ciphertexts, the e-th encrypting the constant 2^levels m_e, from a ciphertext of
    sum_e m_e X^e (e < 2^levels; every other coefficient must be zero).

    Implements spec §20.10.3 `expand_selector` (spec/20-he.md#expand_selector).
    """
    p = ct.params
    ps = p.q_primes
    cts = [ct]
    plan = automorphism_plan(p, levels, keys)
    for j, (k, times) in enumerate(plan):
        step = 1 << j

        # Step 1: at level j, cts[b] holds the entries b, b + 2^j, ... at exponents 0, 2^j, ...
        # X -> X^(N/2^j + 1) fixes exponents = 0 mod 2^(j+1) and negates those = 2^j.
        def split(
            c: Ciphertext, k: int = k, times: int = times, step: int = step
        ) -> tuple[Ciphertext, Ciphertext]:
            sub = c
            for _ in range(times):  # (X -> X^k) applied `times` times is X -> X^(k_j)
                sub = apply_galois(sub, keys[k])
            lo = Ciphertext(p, [rns.add(x, y, ps) for x, y in zip(c.parts, sub.parts, strict=True)])
            diff = [rns.sub(x, y, ps) for x, y in zip(c.parts, sub.parts, strict=True)]
            return lo, Ciphertext(p, [shift_down(x, step, ps) for x in diff])

        # The ciphertexts of a level are independent: one thread per core (the transforms and
        # most numpy loops release the GIL); the results do not depend on the order.
        pairs = list(_pool().map(split, cts)) if len(cts) > 1 else [split(cts[0])]
        # Step 2: entry b stays at index b; entry b + 2^j goes to index b + 2^j.
        cts = [lo for lo, _ in pairs] + [hi for _, hi in pairs]
    return cts
