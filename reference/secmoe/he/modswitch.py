"""Modulus switching: shrink a flooded response before it is sent (spec/20-he.md §20.11).

After `mask_and_flood` the server may drop RNS primes from the response: the client decrypts the
same value from a ciphertext a fraction of the size. Switching is a public, deterministic
function of the flooded ciphertext, so it keeps circuit privacy (the client could compute it).
"""

from __future__ import annotations

import math
from functools import cache

from secmoe.errors import SpecError
from secmoe.he import baseconv
from secmoe.he.bfv import Ciphertext, SecretKey
from secmoe.he.noise import MARGIN, flood_bits
from secmoe.he.params import T_BITS, HeParams


@cache
def switched_params(params: HeParams, keep: int) -> HeParams:
    """The set with only the first ``keep`` primes of q (same N, same auxiliary primes)."""
    if not 1 <= keep <= len(params.q_primes):
        raise SpecError(f"keep must be in [1, {len(params.q_primes)}], got {keep}")
    if keep == len(params.q_primes):
        return params
    return HeParams(
        f"{params.name}/q{keep}",
        params.n,
        params.q_primes[:keep],
        params.aux_primes,
        params.insecure,
    )


def switch_key(sk: SecretKey, params: HeParams) -> SecretKey:
    """The client's key for a switched set: the same s."""
    if params.n != sk.params.n or params.q_primes != sk.params.q_primes[: len(params.q_primes)]:
        raise SpecError("not a switched set of the key's parameters")
    return SecretKey(params, sk.s)


def switch_noise_bits(params: HeParams, degree: int) -> float:
    """Rounding noise of mod_switch: each part's rounding error (<= 1/2 per coefficient) times
    s^k: at most (1 + N + ... + N^degree) / 2, since ||s^k||_1 <= N^k for ternary s."""
    return math.log2(sum(params.n**k for k in range(degree + 1)) / 2)


def response_keep(params: HeParams, degree: int) -> int:
    """The fewest primes that keep >= MARGIN bits of decryption margin after switching a
    flooded ciphertext (noise below 2^F, F = flood_bits; scaled by q'/q) of this degree."""
    for keep in range(1, len(params.q_primes) + 1):
        small = switched_params(params, keep)
        scaled = 2.0 ** (flood_bits(params) + small.log_q - params.log_q)
        total = scaled + 2.0 ** switch_noise_bits(params, degree)
        if small.log_q - (T_BITS + 1) - math.log2(total) >= MARGIN:
            return keep
    return len(params.q_primes)


def mod_switch(ct: Ciphertext, keep: int) -> Ciphertext:
    """Every part c -> round(q' c / q) mod q', with q' the product of the first ``keep`` primes.

    Implements spec §20.11.1 `mod_switch` (spec/20-he.md#mod_switch).
    """
    p = ct.params
    small = switched_params(p, keep)
    if small is p:
        return Ciphertext(p, list(ct.parts))
    # Steps 1-2: floor((q' c + floor(q/2)) / q) mod each kept prime, in RNS (spec §20.12.4).
    parts = [baseconv.divide_round(part, p.q_primes, keep) for part in ct.parts]
    return Ciphertext(small, parts)
