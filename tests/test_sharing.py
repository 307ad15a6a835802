"""Secret sharing and the run_local runner (spec/03-sharing.md, spec/04-messages.md#run_local)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from secmoe.encoding import FixedPoint, Ring
from secmoe.errors import ProtocolError, SpecError
from secmoe.session import PartyContext, run_local
from secmoe.sharing import (
    add_public,
    arith_reconstruct,
    arith_reveal,
    arith_share,
    bool_reveal,
    bool_share,
    mul_public,
    share_add_reveal,
    xor_public,
)

SEEDS = {"client_seed": bytes(32), "server_seed": bytes([1]) * 32}


@given(bits=st.integers(min_value=1, max_value=64), data=st.data())
def test_share_then_reveal(bits: int, data: st.DataObject) -> None:
    ring = Ring(bits)
    fxp = FixedPoint(ring, 0)
    xs = data.draw(
        st.lists(st.integers(min_value=0, max_value=(1 << bits) - 1), min_size=1, max_size=8)
    )
    x = ring.from_int(xs)
    n = len(xs)
    owner = data.draw(st.sampled_from(["client", "server"]))
    to = data.draw(st.sampled_from(["client", "server", "both"]))

    def party(ctx: PartyContext) -> tuple[np.ndarray, np.ndarray | None]:
        share = arith_share(ctx, owner, x if ctx.party == owner else None, n)  # type: ignore[arg-type]
        return share, arith_reveal(ctx, share, to)  # type: ignore[arg-type]

    res = run_local(party, party, fxp=fxp, **SEEDS)
    (sc, oc), (ss, os_) = res.client, res.server
    assert np.array_equal(arith_reconstruct(sc, ss, ring), x)
    for p, out in (("client", oc), ("server", os_)):
        if to in ("both", p):
            assert out is not None and np.array_equal(out, x)
        else:
            assert out is None
    assert res.cost.total().bytes == n * ring.byte_width * (3 if to == "both" else 2)
    # Only when the owner's peer is the sole recipient does nothing wait on a received message.
    peer = "server" if owner == "client" else "client"
    assert res.cost.rounds == (1 if to == peer else 2)


@given(bits=st.lists(st.integers(min_value=0, max_value=1), min_size=1, max_size=30))
def test_bool_share_then_reveal(bits: list[int]) -> None:
    b = np.array(bits, dtype=np.uint8)

    def party(ctx: PartyContext) -> np.ndarray | None:
        share = bool_share(ctx, "server", b if ctx.party == "server" else None, b.size)
        share = xor_public(ctx.party, share, np.ones_like(b))
        return bool_reveal(ctx, share, "client")

    res = run_local(party, party, **SEEDS)
    assert res.client is not None and np.array_equal(res.client, b ^ 1)
    assert res.server is None


def test_public_operations() -> None:
    fxp = FixedPoint()
    x = fxp.encode([1.5, -2.0])
    c = fxp.ring.from_int([3, 5])

    def party(ctx: PartyContext) -> np.ndarray | None:
        share = arith_share(ctx, "client", x if ctx.party == "client" else None, 2)
        share = add_public(ctx.party, mul_public(share, c, ctx.ring), c, ctx.ring)
        return arith_reveal(ctx, share, "client")

    res = run_local(party, party, **SEEDS)
    assert res.client is not None
    assert np.array_equal(res.client, fxp.ring.add(fxp.ring.mul(x, c), c))


def test_share_add_reveal_and_shares_look_random() -> None:
    fxp = FixedPoint()
    x, y = fxp.encode([1.0, 2.0, 3.0]), fxp.encode([0.5, 0.25, -4.0])
    res = run_local(
        lambda ctx: share_add_reveal(ctx, x),
        lambda ctx: share_add_reveal(ctx, y),
        record="full",
        **SEEDS,
    )
    assert res.client is not None
    assert np.allclose(fxp.decode(res.client), [1.5, 2.25, -1.0])
    assert res.server is None
    assert (
        res.cost.total().bytes_c2s == 24
        and res.cost.total().bytes_s2c == 48
        and res.cost.rounds == 2
    )
    # What the server receives is the PRG's mask, not x: it does not change with x.
    res2 = run_local(
        lambda ctx: share_add_reveal(ctx, fxp.encode([9.0, 9.0, 9.0])),
        lambda ctx: share_add_reveal(ctx, y),
        record="full",
        **SEEDS,
    )
    first = [t for t in res.transcript if t.sender == "client"]
    second = [t for t in res2.transcript if t.sender == "client"]
    assert [t.payload for t in first] == [t.payload for t in second]


def test_runner_reports_the_root_error_not_the_consequence() -> None:
    def client(ctx: PartyContext) -> None:
        raise SpecError("client gave up")

    def server(ctx: PartyContext) -> bytes:
        return ctx.channel.recv("never/sent")

    with pytest.raises(SpecError, match="client gave up"):
        run_local(client, server, **SEEDS)

    def client2(ctx: PartyContext) -> None:
        ctx.channel.send("x/wrong", b"")

    def server2(ctx: PartyContext) -> bytes:
        return ctx.channel.recv("x/right")

    with pytest.raises(ProtocolError) as e:
        run_local(client2, server2, **SEEDS)
    assert e.value.kind == "unexpected_label" and e.value.party == "server"


def test_bad_sharing_calls() -> None:
    def party(ctx: PartyContext) -> np.ndarray:
        return arith_share(ctx, "client", None, 2)

    with pytest.raises(SpecError):
        run_local(party, party, timeout=2, **SEEDS)
