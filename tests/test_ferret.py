"""Ferret silent OT (spec/11-silent-ot.md): correctness, exact cost, obliviousness, bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray
from oblivious import view_shape

from secmoe.errors import Party, ProtocolError, SpecError
from secmoe.ot.ferret import (
    FERRET_128,
    FERRET_TOY,
    LABEL_CORR,
    LABEL_SUMS,
    FerretCost,
    FerretParams,
    FerretReceiver,
    FerretSender,
    ferret_extend_cost,
    ferret_extend_recv,
    ferret_extend_send,
    ferret_setup,
    ferret_setup_cost,
    mpcot_recv,
    mpcot_send,
)
from secmoe.ot.ggm import ggm_expand, ggm_puncture
from secmoe.ot.iknp import IknpSender, iknp_setup
from secmoe.ot.lpn import lpn_code, lpn_encode, lpn_encode_numpy, lpn_encode_pair
from secmoe.randomness import Prg, dst
from secmoe.session import PartyContext, RunResult, run_local

SEEDS = {"client_seed": bytes([7]) * 32, "server_seed": bytes([9]) * 32}
TOY = FERRET_TOY


def run(client: Any, server: Any, record: str = "none", **kw: Any) -> RunResult[Any, Any]:
    return run_local(client, server, record=record, **{**SEEDS, **kw})  # type: ignore[arg-type]


def _sender(ctx: PartyContext, iters: int, params: FerretParams = TOY) -> Any:
    st_ = ferret_setup(ctx, ctx.party, params)
    assert isinstance(st_, FerretSender)
    return st_.delta, [ferret_extend_send(ctx, st_) for _ in range(iters)]


def _receiver(ctx: PartyContext, iters: int, params: FerretParams = TOY) -> Any:
    st_ = ferret_setup(ctx, ctx.channel.peer, params)
    assert isinstance(st_, FerretReceiver)
    return [ferret_extend_recv(ctx, st_) for _ in range(iters)]


@pytest.mark.parametrize("sender", ["client", "server"])
def test_every_output_is_a_cot(sender: Party) -> None:
    def srv(ctx: PartyContext) -> Any:
        return _sender(ctx, 3) if ctx.party == sender else _receiver(ctx, 3)

    res = run(srv, srv)
    send_out, recv_out = (
        (res.client, res.server) if sender == "client" else (res.server, res.client)
    )
    delta, qs = send_out
    assert delta.shape == (16,)
    rs = []
    for q, (t, r) in zip(qs, recv_out, strict=True):
        assert q.shape == t.shape == (TOY.out, 16) and r.shape == (TOY.out,)
        assert set(np.unique(r)) <= {0, 1}
        np.testing.assert_array_equal(t, q ^ (r[:, None] * delta))
        rs.append(r)
    # Different iterations give different bits and rows (fresh noise and secret each time).
    assert not np.array_equal(rs[0], rs[1]) and not np.array_equal(qs[0], qs[1])


def test_delta_is_the_iknp_s() -> None:
    def srv(ctx: PartyContext) -> Any:
        st_ = ferret_setup(ctx, "server", TOY)
        iknp = iknp_setup(ctx, "server")
        assert isinstance(st_, FerretSender) and isinstance(iknp, IknpSender)
        return np.array_equal(st_.delta, iknp.s_row)

    res = run(lambda ctx: ferret_setup(ctx, "server", TOY), srv)
    assert res.server


def test_choice_bits_look_random() -> None:
    """Many iterations: r is balanced and has no fixed positions (a weak check of LPN output)."""

    def srv(ctx: PartyContext) -> Any:
        return _sender(ctx, 40)

    def cli(ctx: PartyContext) -> Any:
        return _receiver(ctx, 40)

    res = run(cli, srv)
    r = np.stack([b for _, b in res.client])
    assert abs(r.mean() - 0.5) < 0.03
    per_position = r.mean(axis=0)
    assert per_position.min() > 0.1 and per_position.max() < 0.9


def test_mpcot_is_regular() -> None:
    """One point per bin, v = w XOR e Delta (spec §11.4)."""
    p = TOY
    m = p.t * p.log_bin
    src = Prg(bytes(32), dst("test", "mpcot"))
    delta = np.frombuffer(src.next_bytes(16), np.uint8)
    q = np.frombuffer(src.next_bytes(16 * m), np.uint8).reshape(m, 16)
    r = src.next_bits(m)
    t = q ^ (r[:, None] * delta)
    res = run(lambda ctx: mpcot_recv(ctx, p, t, r, 5), lambda ctx: mpcot_send(ctx, p, delta, q, 5))
    v, positions = res.client
    w = res.server
    np.testing.assert_array_equal(positions % p.t, np.arange(p.t))
    e = np.zeros(p.n, np.uint8)
    e[positions] = 1
    np.testing.assert_array_equal(v, w ^ (e[:, None] * delta))
    # The noise positions are the complemented tree-COT bits, most significant level first.
    bits = (1 - r.reshape(p.t, p.log_bin)).astype(np.int64)
    want = (bits << np.arange(p.log_bin)).sum(axis=1)  # level l gives bit l - 1
    np.testing.assert_array_equal(positions // p.t, want)


@given(st.integers(1, 6), st.integers(1, 5), st.binary(min_size=32, max_size=32))
@settings(max_examples=25)
def test_ggm_puncture_recovers_all_but_alpha(depth: int, t: int, seed: bytes) -> None:
    src = Prg(seed, dst("test", "ggm"))
    roots = np.frombuffer(src.next_bytes(16 * t), np.uint8).reshape(t, 16)
    leaves, sums = ggm_expand(roots, depth)
    alpha = src.next_below(t, 1 << depth).astype(np.int64)
    bits = (alpha[:, None] >> np.arange(depth)) & 1
    known = sums[np.arange(t)[:, None], np.arange(depth)[None, :], 1 - bits]
    got = ggm_puncture(alpha, known, depth)
    mask = np.ones((1 << depth, t), bool)
    mask[alpha, np.arange(t)] = False
    np.testing.assert_array_equal(got[mask], leaves[mask])
    assert not got[~mask].any()
    # Side sums of the last level: the XOR of the left half's and of the right half's leaves.
    half = 1 << (depth - 1)
    np.testing.assert_array_equal(sums[:, -1, 0], np.bitwise_xor.reduce(leaves[:half], axis=0))
    np.testing.assert_array_equal(sums[:, -1, 1], np.bitwise_xor.reduce(leaves[half:], axis=0))


def test_ggm_child_rule() -> None:
    """Spec §11.1-11.2: node j's children are j (G_L) and j + 2^(l-1) (G_R), G = AES(x) XOR x."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    from secmoe.ot.ggm import KEY_LEFT, KEY_RIGHT

    def g(key: bytes, x: bytes) -> bytes:
        enc = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
        y = enc.update(x) + enc.finalize()
        return bytes(a ^ b for a, b in zip(x, y, strict=True))

    root = bytes(range(16))
    leaves, _ = ggm_expand(np.frombuffer(root, np.uint8).reshape(1, 16), 2)
    want = [g(KEY_LEFT, g(KEY_LEFT, root)), g(KEY_LEFT, g(KEY_RIGHT, root))]
    want += [g(KEY_RIGHT, g(KEY_LEFT, root)), g(KEY_RIGHT, g(KEY_RIGHT, root))]
    # leaf x: level-1 side = bit 0 of x, level-2 side = bit 1 of x.
    assert [leaves[x, 0].tobytes() for x in range(4)] == want


@pytest.mark.parametrize("params", [TOY, TOY.boot, FERRET_128.boot])
def test_lpn_kernel_equals_numpy(params: FerretParams | None) -> None:
    assert params is not None
    code = lpn_code(params.n, params.k, params.d)
    assert code.idx.shape == (params.n, params.d) and int(code.idx.max()) < params.k
    src = Prg(bytes(32), dst("test", params.name))
    rows = np.frombuffer(src.next_bytes(16 * params.n), np.uint8).reshape(params.n, 16)
    table = np.frombuffer(src.next_bytes(16 * params.k), np.uint8).reshape(params.k, 16)
    np.testing.assert_array_equal(
        lpn_encode(rows, table, code), lpn_encode_numpy(rows, table, code)
    )
    bits, tbits = src.next_bits(params.n), src.next_bits(params.k)
    want_bits = lpn_encode_numpy(bits[:, None], tbits[:, None], code).reshape(-1)
    np.testing.assert_array_equal(lpn_encode(bits, tbits, code), want_bits)
    pair = lpn_encode_pair(rows, table, bits, tbits, code)
    np.testing.assert_array_equal(pair[0], lpn_encode_numpy(rows, table, code))
    np.testing.assert_array_equal(pair[1], want_bits)


def test_lpn_code_rule_on_extreme_words() -> None:
    """The compiled acceptance loop does uint64 arithmetic (w mod k for w near 2^64)."""
    from secmoe.ot.lpn import _accept_jit, _accept_py

    k = 452_000
    limit = k * ((1 << 64) // k) - 1
    words = np.array([2**64 - 1, limit, limit + 1, 2**63 + 12345, 5, 2**64 - 3 * k], np.uint64)
    want = [int(w) % k for w in words if int(w) <= limit]
    for fn in (_accept_jit, _accept_py):
        out = np.zeros(len(want), np.uint32)
        assert fn(words, np.uint64(limit), np.uint64(k), out, 0) == (len(want), len(words))
        assert out.tolist() == want
    # Stops at the last acceptance: the words after it are not examined.
    out = np.zeros(1, np.uint32)
    assert _accept_jit(words, np.uint64(limit), np.uint64(k), out, 0) == (1, 2)


@pytest.mark.parametrize(
    "params",
    [TOY, FERRET_128.boot, FerretParams("odd-k-INSECURE", 8192, 3531, 128, 6, 10, True)],
)
def test_lpn_code_is_next_below(params: FerretParams | None) -> None:
    """Spec §11.5.1: the code is code_prg(n, k, d).next_below(n d, k), column by column."""
    from secmoe.ot.lpn import code_prg

    assert params is not None
    p = params
    want = code_prg(p.n, p.k, p.d).next_below(p.n * p.d, p.k).reshape(p.n, p.d)
    np.testing.assert_array_equal(lpn_code(p.n, p.k, p.d).idx, want)


def test_lpn_encode_rejects_wrong_table() -> None:
    code = lpn_code(TOY.n, TOY.k, TOY.d)
    with pytest.raises(SpecError):
        lpn_encode(np.zeros((TOY.n, 16), np.uint8), np.zeros((TOY.k - 1, 16), np.uint8), code)


def _measured(res: RunResult[Any, Any], phase: str) -> tuple[int, int]:
    ph = res.cost.phases[phase]
    return ph.bytes_c2s, ph.bytes_s2c


@pytest.mark.parametrize("sender", ["client", "server"])
def test_cost_formulas_equal_the_channel(sender: Party) -> None:
    iters = 2

    def party(ctx: PartyContext) -> Any:
        if ctx.party == sender:
            return _sender(ctx, iters)
        return _receiver(ctx, iters)

    res = run(party, party, record="hash")
    setup = ferret_setup_cost(TOY, sender, fresh=True)
    ext = ferret_extend_cost(TOY, sender)
    want_setup = (setup.bytes_from("client"), setup.bytes_from("server"))
    assert _measured(res, "offline") == want_setup
    assert _measured(res, "main") == (
        iters * ext.bytes_from("client"),
        iters * ext.bytes_from("server"),
    )
    # Labels and lengths, message by message.
    msgs = FerretCost(setup.messages + iters * ext.messages)
    assert [(e.label, e.sender, e.length) for e in res.transcript] == [
        (m.label, m.sender, m.nbytes) for m in msgs.messages
    ]
    assert res.cost.rounds == msgs.rounds() == setup.rounds() == 4
    assert ext.rounds() == 1 and ext.rounds(last_sender=sender) == 0
    assert ext.bytes_from(sender) == 32 * TOY.t * TOY.log_bin + 16 * TOY.t


def test_setup_cost_with_a_warm_iknp_session() -> None:
    def party(ctx: PartyContext) -> Any:
        iknp_setup(ctx, "server")
        before = (ctx.channel.cost.total().bytes_c2s, ctx.channel.cost.total().bytes_s2c)
        rounds = ctx.channel.cost.rounds
        ferret_setup(ctx, "server", TOY)
        t = ctx.channel.cost.total()
        return (t.bytes_c2s - before[0], t.bytes_s2c - before[1]), ctx.channel.cost.rounds - rounds

    res = run(party, party)
    cost = ferret_setup_cost(TOY, "server", fresh=False)
    assert res.client[0] == (cost.bytes_from("client"), cost.bytes_from("server"))
    # After the base OTs (last message from S = server), the set-up adds its rounds.
    assert res.client[1] == cost.rounds(last_sender="server") == 2


def test_real_set_cost_numbers() -> None:
    """The figures spec §11.8 states for ferret-b13."""
    setup = ferret_setup_cost(FERRET_128, "server")
    assert (setup.bytes_from("client"), setup.bytes_from("server")) == (656_544, 283_168)
    ext = ferret_extend_cost(FERRET_128, "server")
    assert ext.bytes_from("server") == 552_960 and FERRET_128.out == 10_017_120
    assert ext.bytes_from("server") / FERRET_128.out < 0.1
    assert FERRET_128.reserve == 468_640 and FERRET_128.boot is not None
    assert FERRET_128.boot.reserve == 41_030 and FERRET_128.boot.n >= FERRET_128.reserve
    assert not FERRET_128.insecure and TOY.insecure and "INSECURE" in TOY.name


def test_sender_view_is_independent_of_the_receiver() -> None:
    """S receives only IKNP's U (in the set-up) and nothing in iterations; shapes do not depend
    on R's seed, and the same seeds replay the same transcript."""

    def views(client_seed: bytes) -> Any:
        res = run(
            lambda ctx: _receiver(ctx, 2),
            lambda ctx: _sender(ctx, 2),
            record="full",
            client_seed=client_seed,
        )
        return res

    a, b, a2 = views(bytes([1]) * 32), views(bytes([2]) * 32), views(bytes([1]) * 32)
    assert view_shape(a.transcript, "server") == view_shape(b.transcript, "server")
    from_r = [e for e in a.transcript if e.sender == "client"]
    assert [e.label for e in from_r] == ["ot/base/a", "ot/iknp/u"]
    assert all(e.phase == "offline" for e in from_r)
    assert [e.payload for e in a.transcript] == [e.payload for e in a2.transcript]
    assert [e.payload for e in a.transcript] != [e.payload for e in b.transcript]


@pytest.mark.parametrize("label,cut", [(LABEL_SUMS, 1), (LABEL_CORR, 16)])
def test_wrong_length_messages_are_rejected(label: str, cut: int) -> None:
    p = TOY

    def bad_sender(ctx: PartyContext) -> None:
        ferret_setup(ctx, "server", p)
        sums, corr = 32 * p.t * p.log_bin, 16 * p.t
        ctx.channel.send(LABEL_SUMS, bytes(sums - (cut if label == LABEL_SUMS else 0)))
        if label == LABEL_CORR:
            ctx.channel.send(LABEL_CORR, bytes(corr - cut))

    with pytest.raises(ProtocolError) as err:
        run(lambda ctx: _receiver(ctx, 1), bad_sender)
    assert err.value.kind == "wrong_length" and err.value.label == label
    assert err.value.party == "client"


def test_bad_parameters() -> None:
    with pytest.raises(SpecError):
        FerretParams("bad", 100, 10, 4, 5, 10, True)  # n != t 2^h
    with pytest.raises(SpecError):
        FerretParams("bad", 64, 60, 2, 5, 10, True)  # reserve above n
    with pytest.raises(SpecError):
        small_boot = FerretParams("b", 32, 8, 1, 5, 4, True)  # outputs 32 < TOY's reserve 52
        FerretParams("bad", 128, 32, 4, 5, 10, True, small_boot)


# --- the committed vectors, replayed independently (spec §11.11) --------------------------------

VECTORS = Path(__file__).resolve().parent.parent / "vectors" / "ot"


def _case(name: str) -> dict[str, Any]:
    data = json.loads((VECTORS / name).read_text())
    case: dict[str, Any] = data["testGroups"][0]["tests"][0]
    return case


def _unhex_rows(text: str) -> NDArray[np.uint8]:
    return np.frombuffer(bytes.fromhex(text), np.uint8).reshape(-1, 16)


def test_vector_ggm_replays() -> None:
    c = _case("ferret_ggm.json")
    roots = _unhex_rows(c["inputs"]["roots"])
    leaves, sums = ggm_expand(roots, 3)
    assert leaves.tobytes().hex() == c["outputs"]["leaves"]
    assert sums.tobytes().hex() == c["outputs"]["sums"]
    alpha = np.array(c["inputs"]["alpha"], dtype=np.int64)
    known = _unhex_rows(c["intermediates"]["known"]).reshape(2, 3, 16)
    assert ggm_puncture(alpha, known, 3).tobytes().hex() == c["outputs"]["punctured"]


def test_vector_lpn_replays_with_the_numpy_reference() -> None:
    c = _case("ferret_lpn.json")
    inp = c["inputs"]
    code = lpn_code(inp["n"], inp["k"], inp["d"])
    assert code.idx.tolist() == c["outputs"]["code"]
    rows, table = _unhex_rows(inp["rows"]), _unhex_rows(inp["table"])
    assert lpn_encode_numpy(rows, table, code).tobytes().hex() == c["outputs"]["rows"]


def test_vector_extension_is_a_cot_with_the_stated_cost() -> None:
    c = _case("ferret_extend.json")
    delta = np.frombuffer(bytes.fromhex(c["intermediates"]["server"]["delta"]), np.uint8)
    for q_hex, t_hex, r_hex in zip(
        c["outputs"]["server"]["q"],
        c["outputs"]["client"]["t"],
        c["outputs"]["client"]["r"],
        strict=True,
    ):
        q, t = _unhex_rows(q_hex), _unhex_rows(t_hex)
        r = np.unpackbits(np.frombuffer(bytes.fromhex(r_hex), np.uint8), bitorder="little")
        np.testing.assert_array_equal(t, q ^ (r[: len(q), None] * delta))
    ext = ferret_extend_cost(TOY, "server")
    msgs = ferret_setup_cost(TOY, "server").messages + 2 * ext.messages
    got = [(e["label"], e["from"], e["len"]) for e in c["transcript"]]
    assert got == [(m.label, m.sender, m.nbytes) for m in msgs]
    assert c["cost"]["rounds"] == FerretCost(msgs).rounds()
