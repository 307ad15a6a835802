"""Obliviousness of the foundations: what the server sees of sharing does not depend on the input."""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from oblivious import assert_uniform, byte_uniformity_z, received_bytes, view_shape
from server_view import assert_server_view

from secmoe.encoding import FixedPoint
from secmoe.session import PartyContext, RunResult, run_local
from secmoe.sharing import share_add_reveal

FXP = FixedPoint()
reals = st.floats(min_value=-1000, max_value=1000, allow_nan=False)


def run(x: np.ndarray, y: np.ndarray, client_seed: bytes) -> RunResult[Any, Any]:
    def client(ctx: PartyContext) -> object:
        return share_add_reveal(ctx, x)

    def server(ctx: PartyContext) -> object:
        return share_add_reveal(ctx, y)

    return run_local(client, server, client_seed=client_seed, server_seed=bytes(32), record="full")


@settings(max_examples=20)
@given(xs=st.lists(reals, min_size=400, max_size=400), seed=st.binary(min_size=32, max_size=32))
def test_server_view_is_input_independent_and_uniform(xs: list[float], seed: bytes) -> None:
    y = FXP.encode(np.zeros(400))
    real = run(FXP.encode(xs), y, seed)
    fixed = run(FXP.encode(np.full(400, 7.0)), y, seed)
    assert view_shape(real.transcript, "server") == view_shape(fixed.transcript, "server")
    assert_server_view(real.transcript, "share_add_reveal")
    assert_uniform(received_bytes(real.transcript, "server"))


def test_the_uniformity_check_can_fail() -> None:
    # Fixed-point encodings of small reals are far from uniform bytes: the check must see it.
    plain = FXP.ring.encode_vec(FXP.encode(np.linspace(-3, 3, 400)))
    assert byte_uniformity_z(plain) > 50
