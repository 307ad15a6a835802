"""BFV parameter sets and their 128-bit security check (spec/20-he.md#heparams)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache

from secmoe.errors import SpecError

# HomomorphicEncryption.org security standard (Albrecht et al., 2018), Table 1, ternary
# (uniform in {-1, 0, 1}) secret, classical 128-bit security: max log2(q) for each N.
HE_STANDARD_128 = {1024: 27, 2048: 54, 4096: 109, 8192: 218, 16384: 438, 32768: 881}
PRIME_BITS = 31  # every RNS prime is below 2^31, so products fit in 64-bit words
T_BITS = 64  # plaintext modulus t = 2^64
CBD_ETA = 21  # error: centered binomial, variance 10.5 >= 3.2^2


def _is_prime(n: int) -> bool:
    if n < 2:
        return False
    for p in (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37):
        if n % p == 0:
            return n == p
    d, r = n - 1, 0
    while d % 2 == 0:
        d //= 2
        r += 1
    for a in (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37):  # deterministic below 3.3e24
        x = pow(a, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(r - 1):
            x = x * x % n
            if x == n - 1:
                break
        else:
            return False
    return True


@cache
def ntt_primes(n: int, count: int) -> tuple[int, ...]:
    """The ``count`` largest primes p < 2^31 with p = 1 mod 2N, in decreasing order."""
    step = 2 * n
    k = ((1 << PRIME_BITS) - 2) // step
    out: list[int] = []
    while len(out) < count and k > 0:
        p = k * step + 1
        if _is_prime(p):
            out.append(p)
        k -= 1
    if len(out) < count:
        raise SpecError(f"not enough NTT primes for N = {n}")
    return tuple(out)


@dataclass(frozen=True)
class HeParams:
    """A BFV parameter set: ring degree N, RNS primes of q, t = 2^64.

    Implements spec §20.1.1 `HeParams` (spec/20-he.md#heparams). ``aux`` primes extend the
    basis for the exact ct x ct product; ``insecure`` marks the toy set used in vectors.
    """

    name: str
    n: int
    q_primes: tuple[int, ...]
    aux_primes: tuple[int, ...]
    insecure: bool = False

    def __post_init__(self) -> None:
        if self.n < 8 or self.n & (self.n - 1):
            raise SpecError("N must be a power of two >= 8")
        for p in self.q_primes + self.aux_primes:
            if p % (2 * self.n) != 1 or p >= 1 << PRIME_BITS:
                raise SpecError(f"{p} is not an NTT prime below 2^31 for N = {self.n}")
        if len(set(self.q_primes + self.aux_primes)) != len(self.q_primes) + len(self.aux_primes):
            raise SpecError("RNS primes must be distinct")
        if not self.insecure:
            check_security(self)

    @property
    def q(self) -> int:
        return math.prod(self.q_primes)

    @property
    def log_q(self) -> float:
        return math.log2(self.q)

    @property
    def t(self) -> int:
        return 1 << T_BITS

    @property
    def delta_bits(self) -> float:
        """log2(q / t): the scale of the message inside a ciphertext."""
        return self.log_q - T_BITS

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "N": self.n,
            "log_q": round(self.log_q, 2),
            "t": f"2^{T_BITS}",
            "primes": len(self.q_primes),
        }


def check_security(p: HeParams) -> None:
    """Refuse a set whose log2 q exceeds the HE standard's 128-bit bound for its N.

    Implements spec §20.1.2 `check_security` (spec/20-he.md#check_security).
    """
    bound = HE_STANDARD_128.get(p.n)
    if bound is None:
        raise SpecError(f"no 128-bit bound is tabulated for N = {p.n}")
    if p.log_q > bound:
        raise SpecError(
            f"{p.name}: log2 q = {p.log_q:.1f} exceeds the 128-bit bound {bound} for N = {p.n}"
        )


def _aux_count(n: int, n_q: int) -> int:
    """Aux primes so that q P > 2 N q^2 * 4 (the exact tensor product fits, spec §20.3)."""
    return n_q + math.ceil((math.log2(n) + 4) / (PRIME_BITS - 1))


def make_params(name: str, n: int, n_q: int, insecure: bool = False) -> HeParams:
    primes = ntt_primes(n, n_q + _aux_count(n, n_q))
    return HeParams(name, n, primes[:n_q], primes[n_q:], insecure)


@cache
def preset(name: str) -> HeParams:
    """The named parameter sets of spec §20.1: toy, he4096, he8192, he16384."""
    table = {
        "toy": (32, 10, True),
        "he4096": (4096, 3, False),
        "he8192": (8192, 7, False),
        "he16384": (16384, 14, False),
    }
    if name not in table:
        raise SpecError(f"unknown HE parameter set {name!r}; known: {', '.join(table)}")
    n, n_q, insecure = table[name]
    return make_params(name, n, n_q, insecure)
