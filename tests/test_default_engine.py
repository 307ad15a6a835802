"""The default OT engine of real runs, exercised end to end (spec §10.4, §11).

The rest of the suite runs on the "iknp" engine (tests/conftest.py) so that every measured cost
is a closed formula, and Ferret's own tests use its INSECURE toy set. This module guards the
path a real session takes: the pool's default engine is Ferret at its 128-bit set, and a
protocol on shares run on it is exact and takes its correlations from Ferret iterations, with
IKNP only as the bootstrap.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from secmoe.encoding import FixedPoint
from secmoe.ot.ferret import FERRET_128
from secmoe.ot.pool import DEFAULT_ENGINE, engine, set_engine
from secmoe.protocols.mul import mul
from secmoe.protocols.trunc import trunc
from secmoe.randomness import Prg, dst
from secmoe.session import PartyContext, run_local
from secmoe.sharing import arith_reconstruct


def test_the_default_engine_is_ferret_at_its_128_bit_set() -> None:
    """Guards the default: a real session's correlations come from Ferret's B13 set."""
    assert DEFAULT_ENGINE == "ferret"
    assert not FERRET_128.insecure and FERRET_128.n == 10_485_760 and FERRET_128.t == 1280


def test_a_product_with_truncation_on_the_default_engine_is_exact() -> None:
    """x * y then trunc on 64 values, both parties on the default engine (FERRET_128): the
    result equals the fixed-point product exactly, and the transcript holds Ferret's messages
    (its sums), with IKNP's U only as the bootstrap."""
    fxp = FixedPoint()
    ring = fxp.ring
    src = Prg(bytes(32), dst("tests", "default-engine"))
    x = fxp.encode(src.next_ring(64, 64).astype(np.int64) % 4096 / 64.0 - 32.0)
    y = fxp.encode(src.next_ring(64, 64).astype(np.int64) % 4096 / 64.0 - 32.0)
    xc, yc = src.next_ring(64, 64), src.next_ring(64, 64)
    xs, ys = ring.sub(x, xc), ring.sub(y, yc)

    def party(xp: Any, yp: Any) -> Any:
        def run(ctx: PartyContext) -> Any:
            set_engine(ctx, DEFAULT_ENGINE)
            assert engine(ctx) == "ferret"
            return trunc(ctx, mul(ctx, xp, yp), fxp.frac_bits)

        return run

    res = run_local(
        party(xc, yc),
        party(xs, ys),
        client_seed=bytes(range(32)),
        server_seed=bytes(range(1, 33)),
        record="full",
        timeout=600,
    )
    got = fxp.decode(arith_reconstruct(res.client, res.server, ring))
    want = fxp.decode(fxp.trunc(ring.mul(x, y)))
    assert np.array_equal(got, want)
    labels = {t.label for t in res.transcript}
    assert "ot/ferret/sums" in labels
