"""galois as an independent oracle (spec/20-he.md §20.1, §20.2): the RNS primes of every
parameter set are primes with 2N | p - 1 and a psi of order exactly 2N (the smallest-g rule), and
the NTT, its inverse and the negacyclic product agree with evaluation and polynomial arithmetic
over GF(p) computed by galois."""

from __future__ import annotations

import functools
import itertools
import subprocess
import sys
import tomllib
from pathlib import Path

import galois
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from secmoe.he import rns
from secmoe.he.ntt import (
    _bit_reverse,
    _primitive_2n_root,
    ntt_forward,
    ntt_forward_numpy,
    ntt_inverse,
    ntt_inverse_numpy,
    ntt_tables,
)
from secmoe.he.params import ntt_primes, preset

PRESETS = ["toy", "he4096", "he8192", "he16384"]


@pytest.mark.parametrize("name", PRESETS)
def test_primes_and_roots_of_every_set(name: str) -> None:
    p = preset(name)
    primes = p.q_primes + p.aux_primes
    for q in primes:
        assert galois.is_prime(q)
        assert q < 1 << 31 and (q - 1) % (2 * p.n) == 0
        # psi has order exactly 2N (2N is a power of two: psi^N = -1 suffices), and is the
        # power of the smallest g that gives one; galois' primitive root gives one too.
        psi = _primitive_2n_root(q, p.n)
        assert pow(psi, p.n, q) == q - 1
        g = next(g for g in range(2, q) if pow(g, (q - 1) // (2 * p.n), q) == psi)
        for smaller in range(2, g):
            assert pow(pow(smaller, (q - 1) // (2 * p.n), q), p.n, q) != q - 1
        root = galois.primitive_root(q)
        assert galois.is_primitive_root(root, q)
        assert pow(pow(root, (q - 1) // (2 * p.n), q), p.n, q) == q - 1
    # The primes are the largest below 2^31 with 2N | p - 1, in decreasing order.
    assert list(primes) == sorted(primes, reverse=True)
    step = 2 * p.n
    for hi, lo in itertools.pairwise(primes):
        assert not any(galois.is_prime(c) for c in range(lo + step, hi, step))
    assert not any(galois.is_prime(c) for c in range(primes[0] + step, 1 << 31, step))


# One prime serves every size up to 1024 (2N divides q - 1), so galois builds one field.
FIELD_PRIME = ntt_primes(1024, 1)[0]


@functools.cache
def field() -> type:
    return galois.GF(FIELD_PRIME, verify=False)  # type: ignore[no-any-return]


def _case(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.integers(0, FIELD_PRIME, (1, n), dtype=np.uint64)
    b = rng.integers(0, FIELD_PRIME, (1, n), dtype=np.uint64)
    a[:, :3] = FIELD_PRIME - 1  # the largest residues exercise the lazy bounds
    return a, b


def _poly(gf: type, row: np.ndarray) -> galois.Poly:
    return galois.Poly(gf(row.astype(np.int64))[::-1])  # highest degree first


@settings(max_examples=4, deadline=None)
@given(st.sampled_from([8, 32, 256]), st.integers(0, 2**32 - 1))
def test_ntt_is_evaluation_at_odd_powers_of_psi(n: int, seed: int) -> None:
    a, _ = _case(n, seed)
    t = ntt_tables(n, (FIELD_PRIME,))
    got = ntt_forward(a, t)
    assert np.array_equal(got, ntt_forward_numpy(a, t))
    gf = field()
    psi = gf(_primitive_2n_root(FIELD_PRIME, n))
    want = _poly(gf, a[0])(psi ** (2 * np.arange(n) + 1))
    assert np.array_equal(got[0, _bit_reverse(n)], np.asarray(want, dtype=np.uint64))


@settings(max_examples=4, deadline=None)
@given(st.sampled_from([8, 128, 1024]), st.integers(0, 2**32 - 1))
def test_negacyclic_product_matches_galois(n: int, seed: int) -> None:
    a, b = _case(n, seed)
    primes = (FIELD_PRIME,)
    t = ntt_tables(n, primes)
    got = ntt_inverse(rns.mul_eval(ntt_forward(a, t), ntt_forward(b, t), primes), t)
    assert np.array_equal(got, rns.mul(a, b, primes))
    gf = field()
    modulus = galois.Poly.Degrees([n, 0], coeffs=[1, 1], field=gf)
    prod = (_poly(gf, a[0]) * _poly(gf, b[0])) % modulus
    want = np.zeros(n, dtype=np.uint64)
    coeffs = np.asarray(prod.coeffs, dtype=np.uint64)[::-1]
    want[: coeffs.size] = coeffs
    assert np.array_equal(got[0], want)


@pytest.mark.parametrize("name", PRESETS)
def test_compiled_transforms_equal_the_numpy_ones(name: str) -> None:
    p = preset(name)
    rng = np.random.default_rng(7)
    for primes in (p.q_primes, p.q_primes + p.aux_primes):
        t = ntt_tables(p.n, primes)
        col = np.array(primes, dtype=np.uint64).reshape(-1, 1)
        a = rng.integers(0, 1 << 31, (2, len(primes), p.n), dtype=np.uint64) % col
        a[0, :, :7] = col - 1
        f = ntt_forward(a, t)
        assert np.array_equal(f, ntt_forward_numpy(a, t))
        assert np.array_equal(ntt_inverse(f, t), ntt_inverse_numpy(f, t))
        assert np.array_equal(ntt_inverse(f, t), a)


def test_the_library_runs_without_galois() -> None:
    """§20.2.3's decision: galois is a test dependency only. Every secmoe module imports, and a
    compiled NTT round trip runs, with galois made unimportable; the runtime dependencies do not
    name it."""
    script = (
        "import sys, importlib, pkgutil\n"
        "sys.modules['galois'] = None\n"
        "import numpy as np, secmoe\n"
        "for m in pkgutil.walk_packages(secmoe.__path__, 'secmoe.'):\n"
        "    importlib.import_module(m.name)\n"
        "from secmoe.he.ntt import ntt_forward, ntt_inverse, ntt_tables\n"
        "from secmoe.he.params import preset\n"
        "p = preset('he4096')\n"
        "t = ntt_tables(p.n, p.q_primes)\n"
        "a = np.arange(len(p.q_primes) * p.n, dtype=np.uint64).reshape(len(p.q_primes), p.n)\n"
        "assert np.array_equal(ntt_inverse(ntt_forward(a, t), t), a)\n"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    project = project["project"]
    assert not [d for d in project["dependencies"] if d.startswith("galois")]
    assert [d for d in project["optional-dependencies"]["dev"] if d.startswith("galois")]
