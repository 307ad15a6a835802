"""Input ranges (spec §40.0, §3.4.1, §6.3.0): refused before sharing, exact inside, and the
fixed-point model raises instead of wrapping."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
from servers import SECMOE

from secmoe.encoding import FixedPoint
from secmoe.errors import SpecError
from secmoe.model.default import default_config, default_inputs, default_weights
from secmoe.model.fixed import encode_weights, moe_fixed
from secmoe.moe.demo import demo_client, demo_server, party_seeds
from secmoe.session import PartyContext, run_local
from secmoe.sharing import share_add_reveal

SEED = bytes(range(32))


def _demo(x: np.ndarray) -> tuple[object, object]:
    config = default_config()
    fw = encode_weights(config, default_weights(config))
    cs, ss = party_seeds(SEED)
    run = run_local(
        lambda ctx: demo_client(ctx, config, x),
        lambda ctx: demo_server(ctx, config, fw),
        client_seed=cs,
        server_seed=ss,
        fxp=config.fxp,
        timeout=120,
        record="hash",
    )
    return run, moe_fixed(config, fw, config.fxp.encode(x))


def test_client_refuses_inputs_beyond_the_bound_before_sharing() -> None:
    config = default_config()
    x = default_inputs(config, 1)
    x[0, 3] = 4096.0
    with pytest.raises(SpecError, match="4096"):
        _demo(x)
    # The check runs before the first message: the client's channel never sent a byte.
    sent: list[int] = []

    def client(ctx: PartyContext) -> object:
        try:
            return demo_client(ctx, config, x)
        finally:
            sent.append(ctx.channel.cost.total().bytes_c2s)

    with pytest.raises(SpecError):
        run_local(client, lambda ctx: None, client_seed=SEED, server_seed=SEED)
    assert sent == [0]


def test_secure_layer_is_bit_exact_up_to_the_bound() -> None:
    config = default_config()
    x = default_inputs(config, 1) * 2000.0  # |x| up to ~3964 < 4096
    assert np.abs(x).max() < 4096
    run, fixed = _demo(x)
    view = run.client  # type: ignore[attr-defined]
    assert np.array_equal(view.y, fixed.y) and np.array_equal(view.gates, fixed.gates)
    assert np.array_equal(view.experts, fixed.experts)


def test_fixed_model_raises_where_its_arithmetic_would_wrap() -> None:
    config = default_config()
    fw = encode_weights(config, default_weights(config))
    x = default_inputs(config, 2)
    moe_fixed(config, fw, config.fxp.encode(x * 4000.0))  # still exact in the model
    with pytest.raises(SpecError, match="2\\^62"):
        moe_fixed(config, fw, config.fxp.encode(x * 8000.0))


def test_share_add_reveal_refuses_what_could_wrap() -> None:
    fxp = FixedPoint()

    def party(v: float) -> object:
        return lambda ctx: share_add_reveal(ctx, fxp.encode([v]))

    run = run_local(party(1.7e13), party(1.7e13), client_seed=SEED, server_seed=SEED)
    assert fxp.decode(run.client)[0] == 3.4e13  # the largest inputs: the sum is still exact
    for c, s in ((3e13, 1.0), (1.0, 3e13)):
        with pytest.raises(SpecError, match="2\\^62"):
            run_local(party(c), party(s), client_seed=SEED, server_seed=SEED, timeout=5)
    r = subprocess.run(
        [*SECMOE, "client", "--values", "3e13,1", "--connect-timeout", "0.2"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2 and "2^44" in r.stderr and "Traceback" not in r.stderr
