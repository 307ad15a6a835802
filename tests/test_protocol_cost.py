"""The cost formulas of spec §30 (secmoe.protocols.cost) equal the measured cost of each run."""

from __future__ import annotations

import numpy as np
import pytest
from bounded import layer_settings
from costs import assert_cost, assert_warm_cost
from hypothesis import given
from hypothesis import strategies as st

from secmoe.encoding import FixedPoint, Ring
from secmoe.errors import SpecError
from secmoe.model.tables import TABLES
from secmoe.protocols import cost
from secmoe.protocols.b2a import b2a, mux
from secmoe.protocols.compare import equal, lt_public, millionaire, msb, onehot
from secmoe.protocols.mul import and_bits, mul, square
from secmoe.protocols.piecewise import piecewise
from secmoe.protocols.trunc import trunc

# piecewise on GeLU at l = 64, f = 18 (spec §30.5.1): bytes per element (c2s, s2c) per phase.
# Offline is only the "iknp" engine's just-in-time pool refills; a warm pool drops them.
PW_OFFLINE, PW_ONLINE, PW_ROUNDS = (4336.0, 1696.0), (118.0, 632.125), 32
PW_WARM_ROUNDS, PW_COTS = 26, 377.0


@layer_settings(6)
@given(n=st.integers(1, 20), bits=st.sampled_from([8, 16, 64]))
def test_products_and_conversions(n: int, bits: int) -> None:
    z, zb = np.zeros(n, np.uint64), np.zeros(n, np.uint8)
    fxp = FixedPoint(Ring(bits), 0)
    assert_cost(cost.mul_cost(n, bits), lambda c: mul(c, z, z), lambda c: mul(c, z, z), fxp)
    assert_cost(cost.and_bits_cost(n), lambda c: and_bits(c, zb, zb), lambda c: and_bits(c, zb, zb))
    assert_cost(cost.b2a_cost(n, bits), lambda c: b2a(c, zb), lambda c: b2a(c, zb), fxp)
    assert_cost(cost.mux_cost(n, bits), lambda c: mux(c, zb, z), lambda c: mux(c, zb, z), fxp)


@layer_settings(6)
@given(n=st.integers(1, 12), bits=st.integers(1, 40), entries=st.integers(2, 20))
def test_comparisons(n: int, bits: int, entries: int) -> None:
    z = np.zeros(n, np.uint64)
    for fn in (millionaire, equal):
        assert_cost(
            cost.millionaire_cost(n, bits),
            lambda c, f=fn: f(c, z, bits),
            lambda c, f=fn: f(c, z, bits),
        )
    assert_cost(cost.msb_cost(n, 64), lambda c: msb(c, z), lambda c: msb(c, z))
    assert_cost(cost.msb_cost(n, 64), lambda c: lt_public(c, z, z), lambda c: lt_public(c, z, z))
    w = 1 + bits % 40  # any width in [1, 40], the smaller ring of piecewise's comparisons
    assert_cost(cost.msb_cost(n, 64, w), lambda c: msb(c, z, w), lambda c: msb(c, z, w))
    assert_cost(
        cost.msb_cost(n, 64, w), lambda c: lt_public(c, z, z, w), lambda c: lt_public(c, z, z, w)
    )
    assert_cost(
        cost.onehot_cost(n, entries),
        lambda c: onehot(c, z, entries),
        lambda c: onehot(c, z, entries),
    )


@layer_settings(6)
@given(
    n=st.integers(1, 10),
    s=st.integers(1, 30),
    table=st.sampled_from(sorted(TABLES)),
    params=st.sampled_from([(64, 18), (48, 12)]),
)
def test_trunc_and_piecewise(n: int, s: int, table: str, params: tuple[int, int]) -> None:
    z = np.zeros(n, np.uint64)
    assert_cost(cost.trunc_cost(n, 64, s), lambda c: trunc(c, z, s), lambda c: trunc(c, z, s))
    t = TABLES[table]
    fxp = FixedPoint(Ring(params[0]), params[1])
    pattern = cost.piecewise_cost(n, t, *params)
    assert_cost(pattern, lambda c: piecewise(c, t, z), lambda c: piecewise(c, t, z), fxp)


def test_warm_pools_send_the_warm_patterns() -> None:
    n, z, zb = 7, np.zeros(7, np.uint64), np.zeros(7, np.uint8)
    t = TABLES["gelu"]
    cases = [
        (cost.mul_cost(n, 64), lambda c: mul(c, z, z)),
        (cost.square_cost(n, 64), lambda c: square(c, z)),
        (cost.and_bits_cost(n), lambda c: and_bits(c, zb, zb)),
        (cost.mux_cost(n, 64), lambda c: mux(c, zb, z)),
        (cost.trunc_cost(n, 64, 18), lambda c: trunc(c, z)),
        (cost.msb_cost(n, 64), lambda c: msb(c, z)),
        (cost.piecewise_cost(n, t, 64, 18), lambda c: piecewise(c, t, z)),
    ]
    for pattern, fn in cases:
        assert_warm_cost(pattern, fn, fn)


def test_piecewise_gelu_cost_per_element() -> None:
    # The figures of spec §30.5.1 and §34.1.2 (l = 64, f = 18, n = 4096).
    n = 4096
    p = cost.piecewise_cost(n, TABLES["gelu"], 64, 18)
    got = {
        ph: (p.bytes("client", ph) / n, p.bytes("server", ph) / n) for ph in ("offline", "online")
    }
    assert got == {"offline": PW_OFFLINE, "online": PW_ONLINE} and p.rounds() == PW_ROUNDS
    warm = p.warm()
    assert warm.bytes("client", "offline") == warm.bytes("server", "offline") == 0
    assert (warm.c2s, warm.s2c) == (p.bytes("client", "online"), p.bytes("server", "online"))
    assert warm.rounds() == PW_WARM_ROUNDS and p.cots() / n == PW_COTS


def test_sigmoid_cost_per_element() -> None:
    # The sigmoid row of spec §30.5.1's table (l = 64, f = 18, n = 4096).
    n = 4096
    p = cost.piecewise_cost(n, TABLES["sigmoid"], 64, 18)
    got = {
        ph: (p.bytes("client", ph) / n, p.bytes("server", ph) / n) for ph in ("offline", "online")
    }
    assert got == {"offline": (4336.0, 1680.0), "online": (110.0, 632.0)}
    assert (p.rounds(), p.warm().rounds(), p.cots() / n) == (32, 26, 376.0)


def test_pattern_rounds_follow_the_causal_rule() -> None:
    # Two one-way messages from the same sender share a round; a reply needs the next one.
    same = cost.seq(cost.send("client", 1, "online"), cost.send("client", 2, "online"))
    assert same.rounds() == 1 and same.c2s == 3 and same.s2c == 0
    reply = cost.seq(cost.send("client", 1, "online"), cost.send("server", 1, "online"))
    assert reply.rounds() == 2
    # An exchange after a server message: the server's half goes in the same round.
    mixed = cost.seq(cost.send("server", 1, "online"), cost.exchange(1, 1, "online"))
    assert mixed.rounds() == 2
    assert cost.Pattern().rounds() == 0


def test_a_deadlocking_pattern_is_an_error() -> None:
    recv_only = cost.Pattern((cost.Message("client", 1, "online"),), (), (("recv", 0),))
    with pytest.raises(SpecError, match="deadlock"):
        recv_only.rounds()


def test_the_ot_setup_pattern_is_what_a_fresh_session_sends() -> None:
    from secmoe.ot.pool import ot_setup
    from secmoe.session import run_local

    res = run_local(ot_setup, ot_setup, client_seed=bytes(32), server_seed=bytes([1]) * 32)
    want = cost.summary(cost.ot_setup_pattern())
    off = res.cost.phases["offline"]
    assert {"offline": (off.bytes_c2s, off.bytes_s2c)} == want.bytes
    assert res.cost.rounds == want.rounds == 3
