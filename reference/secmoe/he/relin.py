"""Relinearisation: a degree-2 ciphertext back to degree 1 with a key from s^2 to s
(spec/20-he.md §20.14).

The key has the layout of a Galois key (one RLWE sample per digit group of two primes, spec
§20.10.1) with s^2 in place of s(X^k); the key switch is that of ``apply_galois`` without the
substitution.
"""

from __future__ import annotations

from secmoe.errors import SpecError
from secmoe.he import galois, rns
from secmoe.he.bfv import Ciphertext, SecretKey
from secmoe.he.galois import GaloisKey
from secmoe.randomness import Prg

RELIN_ELEMENT = 0  # the ``k`` a relinearisation key carries in its GaloisKey layout


def relin_keygen(sk: SecretKey, prg: Prg) -> GaloisKey:
    """The client's key from s^2 to s: per digit group G, b_G = -a_G s + e_G + g_G s^2.

    Implements spec §20.14.1 `relin_keygen` (spec/20-he.md#relin_keygen).
    """
    ps = sk.params.q_primes
    s = rns.from_signed(sk.s, ps)
    return galois.switching_key(sk, rns.mul(s, s, ps), RELIN_ELEMENT, prg)


def relinearise(ct: Ciphertext, key: GaloisKey) -> Ciphertext:
    """(c_0 + sum_G d_G b_G, c_1 + sum_G d_G a_G), d_G the digits of c_2.

    Implements spec §20.14.2 `relinearise` (spec/20-he.md#relinearise).
    """
    p = ct.params
    if key.params != p or key.k != RELIN_ELEMENT:
        raise SpecError("not a relinearisation key of these parameters")
    if ct.degree != 2:
        raise SpecError("only degree-2 ciphertexts are relinearised")
    ps = p.q_primes
    acc = galois.key_switch(ct.parts[2], key)
    return Ciphertext(p, [rns.add(ct.parts[0], acc[0], ps), rns.add(ct.parts[1], acc[1], ps)])
