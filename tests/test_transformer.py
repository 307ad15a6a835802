"""The secure MoE transformer (spec/50-transformer.md): the plaintext models, the secure model
bit-exact against transformer_fixed, costs equal to the formulas, the server's view independent
of the token ids, and the demo."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from costs import measured_run
from oblivious import view_shape
from server_view import assert_server_view

from secmoe.cli import main
from secmoe.errors import SpecError
from secmoe.model.fixed import matmul_fixed
from secmoe.model.transformer import (
    TINY_SEED,
    TransformerConfig,
    block_fixed,
    encode_transformer,
    onehot_fixed,
    tiny_config,
    tiny_weights,
    transformer_digest,
    transformer_fixed,
    transformer_float,
    transformer_weights,
)
from secmoe.protocols.cost import Pattern, Summary, ot_setup_pattern, seq, summary
from secmoe.randomness import Prg, dst
from secmoe.session import PartyContext, run_local
from secmoe.transformer.block import transformer_block, transformer_block_cost
from secmoe.transformer.demo import model_inputs, transformer_client, transformer_server
from secmoe.transformer.model import model_keys, model_keys_cost, transformer, transformer_cost

TINY = tiny_config()
ONE_BLOCK = replace(TINY, n_blocks=1)
LM = replace(TINY, n_blocks=1, head="lm", causal=True)


def formula(pattern: Pattern) -> Summary:
    return Summary(summary(pattern).bytes, seq(ot_setup_pattern(), pattern).rounds())


# --- plaintext ------------------------------------------------------------------------------------


def test_config_rejects_bad_fields() -> None:
    moe = TINY.moe
    with pytest.raises(SpecError, match="n_heads"):
        TransformerConfig(vocab_size=16, n_heads=3, n_blocks=1, moe=moe)
    with pytest.raises(SpecError, match="vocab_size"):
        TransformerConfig(vocab_size=0, n_heads=2, n_blocks=1, moe=moe)
    with pytest.raises(SpecError, match="n_blocks"):
        TransformerConfig(vocab_size=4, n_heads=2, n_blocks=True, moe=moe)
    with pytest.raises(SpecError, match="head"):
        TransformerConfig(vocab_size=4, n_heads=2, n_blocks=1, moe=moe, head="seq2seq")  # type: ignore[arg-type]
    assert (TINY.d_head, TINY.n_out, LM.n_out, LM.pooled_rows(5)) == (4, 3, 16, 5)


def test_weights_are_deterministic_with_the_spec_check_values() -> None:
    w = tiny_weights()
    assert TINY_SEED.hex() == "c37e7a060136bbc44b0ded9e72330ce0a76150db86c7b41db75d1046e7256993"
    assert [v.hex() for v in w.embed.reshape(-1)[:3]] == [
        "0x1.d698f409153b8p-2",
        "0x1.53f1f3a70beaap-1",
        "-0x1.7ea3e6a7ca8e0p-5",
    ]
    assert transformer_digest(w) == (
        "128cd201e7ee5a96f63badb0af4f630a4f456580c1a762dc644388834bb94aaa"
    )
    other = transformer_weights(TINY, bytes(32))
    assert transformer_digest(other) != transformer_digest(w)
    # Every block has its own MoE weights (a child seed per block).
    assert not np.array_equal(w.blocks[0].moe.w1, w.blocks[1].moe.w1)


def test_embedding_product_selects_the_rows() -> None:
    fw = encode_transformer(TINY, tiny_weights())
    ids = np.array([0, 15, 3, 3], dtype=np.int64)
    got = matmul_fixed(TINY.fxp, onehot_fixed(TINY, ids), fw.embed)
    assert np.array_equal(got, fw.embed[ids])


@pytest.mark.parametrize("config", [TINY, LM], ids=["classify", "lm-causal"])
def test_fixed_point_prediction_equals_float(config: TransformerConfig) -> None:
    weights = tiny_weights(config)
    fw = encode_transformer(config, weights)
    for ids in model_inputs(config, 16, 4, TINY_SEED):
        fixed = config.fxp.decode(transformer_fixed(config, fw, ids))
        flt = transformer_float(config, weights, ids)
        assert np.abs(fixed - flt).max() < 1e-2
        assert np.array_equal(fixed.argmax(axis=1), flt.argmax(axis=1))


def test_causal_mask_hides_later_tokens_exactly() -> None:
    weights = tiny_weights(LM)
    a, b = np.array([1, 2, 3, 4]), np.array([1, 2, 9, 0])
    fa, fb = transformer_fixed(LM, weights, a), transformer_fixed(LM, weights, b)
    assert np.array_equal(fa[:2], fb[:2]) and not np.array_equal(fa[2:], fb[2:])
    la, lb = transformer_float(LM, weights, a), transformer_float(LM, weights, b)
    assert np.allclose(la[:2], lb[:2], rtol=0, atol=1e-12)


def test_bad_tokens_are_rejected() -> None:
    weights = tiny_weights()
    for bad in ([], [16], [-1], list(range(9)), [[1, 2]]):
        with pytest.raises(SpecError, match="token"):
            transformer_fixed(TINY, weights, np.array(bad, dtype=np.int64))


# --- secure ---------------------------------------------------------------------------------------


def run_model(config: TransformerConfig, ids: np.ndarray) -> tuple[Summary, Any]:
    fw = encode_transformer(config, tiny_weights(config))
    t = int(ids.size)
    return measured_run(
        lambda c: transformer(c, config, ids, t, None),
        lambda c: transformer(c, config, None, t, fw),
        config.fxp,
    )


def test_tiny_model_equals_the_fixed_point_model_and_costs_its_formula() -> None:
    ids = model_inputs(TINY, 2, 4, TINY_SEED)[1]
    got, res = run_model(TINY, ids)
    weights = tiny_weights()
    fixed = transformer_fixed(TINY, weights, ids)
    assert np.array_equal(TINY.fxp.ring.add(res.client, res.server), fixed)
    assert np.array_equal(
        TINY.fxp.decode(fixed).argmax(axis=1), transformer_float(TINY, weights, ids).argmax(axis=1)
    )
    assert got == formula(transformer_cost(TINY, 4))


def test_causal_lm_model_equals_the_fixed_point_model() -> None:
    ids = np.array([5, 0, 12], dtype=np.int64)
    got, res = run_model(LM, ids)
    assert np.array_equal(
        LM.fxp.ring.add(res.client, res.server), transformer_fixed(LM, tiny_weights(LM), ids)
    )
    assert got == formula(transformer_cost(LM, 3))


def test_one_block_equals_block_fixed_and_costs_its_formula() -> None:
    fb = encode_transformer(TINY, tiny_weights()).blocks[1]
    ring = TINY.fxp.ring
    prg = Prg(bytes(32), dst("test", "transformer-block"))
    x = TINY.fxp.encode((prg.next_below(3 * 8, 64).astype(np.float64) - 32) / 16).reshape(3, 8)
    xc = prg.next_ring(x.size).reshape(x.shape)
    xs = ring.sub(x, xc)

    def party(xp: np.ndarray, w: Any) -> Any:
        def fn(ctx: PartyContext) -> Any:
            model_keys(ctx, TINY)
            return transformer_block(ctx, TINY, xp, w)

        return fn

    got, res = measured_run(party(xc, None), party(xs, fb), TINY.fxp)
    assert np.array_equal(ring.add(res.client, res.server), block_fixed(TINY, fb, x))
    assert got == formula(seq(model_keys_cost(TINY), transformer_block_cost(TINY, 3)))


def test_server_view_does_not_depend_on_the_token_ids() -> None:
    fw = encode_transformer(ONE_BLOCK, tiny_weights(ONE_BLOCK))
    views = []
    for seed, ids in ((3, np.array([0, 0])), (4, np.array([15, 7]))):
        res = run_local(
            lambda c, ids=ids: transformer_client(c, ONE_BLOCK, ids),
            lambda c: transformer_server(c, ONE_BLOCK, fw),
            client_seed=bytes([seed]) * 32,
            server_seed=bytes([seed + 1]) * 32,
            fxp=ONE_BLOCK.fxp,
            record="full",
        )
        assert np.array_equal(res.client, transformer_fixed(ONE_BLOCK, fw, ids))
        assert res.server == 2
        assert_server_view(res.transcript, "transformer_client")
        views.append(view_shape(res.transcript, "server"))
    assert views[0] == views[1]
    labels = {v[1] for v in views[0]}
    assert "transformer/output" in labels and "transformer/tokens" in labels


def test_secure_protocols_reject_misplaced_inputs() -> None:
    fw = encode_transformer(ONE_BLOCK, tiny_weights(ONE_BLOCK))
    ids = np.array([1, 2])
    with pytest.raises(SpecError, match="weights"):
        run_local(
            lambda c: transformer(c, ONE_BLOCK, ids, 2, fw),
            lambda c: transformer(c, ONE_BLOCK, None, 2, fw),
            client_seed=bytes(32),
            server_seed=bytes(32),
            fxp=ONE_BLOCK.fxp,
        )
    with pytest.raises(SpecError, match="tokens"):
        run_local(
            lambda c: transformer(c, ONE_BLOCK, ids, 9, None),
            lambda c: transformer(c, ONE_BLOCK, None, 9, fw),
            client_seed=bytes(32),
            server_seed=bytes(32),
            fxp=ONE_BLOCK.fxp,
        )
    x = np.zeros((2, 4), dtype=np.uint64)
    with pytest.raises(SpecError, match="shape"):
        run_local(
            lambda c: transformer_block(c, ONE_BLOCK, x, None),
            lambda c: transformer_block(c, ONE_BLOCK, x, fw.blocks[0]),
            client_seed=bytes(32),
            server_seed=bytes(32),
            fxp=ONE_BLOCK.fxp,
        )


def test_demo_model_tiny_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--model", "tiny", "--tokens", "2", "--json", "--quiet"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["model"] == "tiny" and d["secure"] is True
    assert d["bit_exact_fixed"] is True
    assert d["prediction"] == d["prediction_fixed"] == d["prediction_float"]
    assert d["token_ids"] == [int(v) for v in model_inputs(TINY, 1, 2, TINY_SEED)[0]]
    assert d["bytes_c2s"] > 0 and d["rounds"] > 0 and "output" in d["phases"]


def test_demo_model_rejects_plaintext() -> None:
    assert main(["demo", "--model", "tiny", "--plaintext", "--quiet"]) == 2
