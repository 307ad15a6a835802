"""The end-to-end demo of the secure MoE transformer (``secmoe demo --model tiny``).

The client holds its token ids, the server the encoded weights. The client sends only the
(public) token count before the model runs; at the end the server sends its shares of the logits
(message ``transformer/output``), the only result anyone learns, and only the client. The
plaintext references are computed by the client from the tiny model's public weights, which is
possible only because the demo's model is public.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from secmoe.encoding import RingVec
from secmoe.errors import ProtocolError, SpecError
from secmoe.model.transformer import (
    TINY_SEED,
    FixedTransformer,
    TransformerConfig,
    TransformerWeights,
    encode_transformer,
    tiny_config,
    tiny_weights,
    transformer_digest,
    transformer_fixed,
    transformer_float,
)
from secmoe.moe.demo import DEMO_SEED, party_seeds
from secmoe.net.channel import CostRecord, RecordMode
from secmoe.randomness import Prg, dst
from secmoe.session import PartyContext, RunResult, run_local
from secmoe.sharing import arith_reconstruct
from secmoe.transformer.model import transformer

Ints = NDArray[np.int64]
Floats = NDArray[np.float64]
MODEL_PROTOCOL = "transformer-demo"
TOKENS_LABEL = "transformer/tokens"
OUTPUT_LABEL = "transformer/output"
MODELS = ("tiny",)
DEMO_TIMEOUT = 300.0


def model_inputs(config: TransformerConfig, count: int, tokens: int, seed: bytes) -> Ints:
    """``count`` deterministic sequences of ``tokens`` ids (count, T): consecutive
    ``next_below(vocab)`` draws of ``Prg(seed, dst("model.default", "transformer/inputs"))``,
    row-major."""
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise SpecError(f"count must be a positive integer, got {count!r}")
    if isinstance(tokens, bool) or not isinstance(tokens, int) or not 1 <= tokens <= config.max_len:
        raise SpecError(f"tokens must be an integer in 1..{config.max_len}, got {tokens!r}")
    prg = Prg(seed, dst("model.default", "transformer/inputs"))
    out: Ints = prg.next_below(count * tokens, config.vocab_size).astype(np.int64)
    return out.reshape(count, tokens)


def transformer_client(ctx: PartyContext, config: TransformerConfig, ids: Ints) -> RingVec:
    """The client's side: announce T, run ``transformer``, receive the server's logit shares.

    Implements spec §50.4.1 `transformer_client` (spec/50-transformer.md#transformer_client).
    Returns the logits (rows, n_out) in fixed point.
    """
    ids = np.asarray(ids, dtype=np.int64)
    if ids.ndim != 1 or not 1 <= ids.size <= config.max_len:
        raise SpecError(f"the client needs 1..{config.max_len} token ids, got shape {ids.shape}")
    tokens = int(ids.size)
    with ctx.channel.phase("input"):
        # Step 1: the token count is public (it fixes every message length); the ids are not sent.
        ctx.channel.send(TOKENS_LABEL, struct.pack("<I", tokens))
    # Step 2: the model on shares.
    mine = transformer(ctx, config, ids, tokens, None)
    with ctx.channel.phase("output"):
        # Step 3: only the client receives the server's shares of the logits.
        theirs = ctx.channel.recv_ring(OUTPUT_LABEL, ctx.ring, mine.size)
    ctx.say("transformer: logits received")
    return arith_reconstruct(mine, theirs.reshape(mine.shape), ctx.ring)


def transformer_server(ctx: PartyContext, config: TransformerConfig, fw: FixedTransformer) -> int:
    """The server's side: receive T, run ``transformer`` with its weights, send its shares.

    Implements spec §50.4.2 `transformer_server` (spec/50-transformer.md#transformer_server).
    Returns the (public) token count.
    """
    with ctx.channel.phase("input"):
        # Step 1: T, refused outside [1, max_len].
        (tokens,) = struct.unpack("<I", ctx.channel.recv(TOKENS_LABEL, 4))
        if not 1 <= tokens <= config.max_len:
            raise ProtocolError(
                "out_of_range", "server", TOKENS_LABEL, f"{tokens} tokens (limit {config.max_len})"
            )
    # Step 2: the model on shares.
    mine = transformer(ctx, config, None, int(tokens), fw)
    with ctx.channel.phase("output"):
        # Step 3: the server's shares of the logits, to the client.
        ctx.channel.send_ring(OUTPUT_LABEL, ctx.ring, mine.reshape(-1))
    ctx.say("transformer: logit shares sent to the client")
    return int(tokens)


@dataclass(frozen=True)
class Model:
    """A named demo model: configuration, float weights, the encoded weights."""

    name: str
    config: TransformerConfig
    weights: TransformerWeights
    fixed: FixedTransformer


def load_model(name: str) -> Model:
    if name not in MODELS:
        raise SpecError(f"unknown model {name!r}; known: {', '.join(MODELS)}")
    config = tiny_config()
    weights = tiny_weights(config)
    return Model(name, config, weights, encode_transformer(config, weights))


def summarize_model(
    model: Model, ids: Ints, logits: RingVec, cost: CostRecord, wall_s: float, mode: str
) -> dict[str, Any]:
    """The client's JSON-able report: its prediction next to both plaintext models', costs."""
    c, fxp = model.config, model.config.fxp
    fixed = transformer_fixed(c, model.fixed, ids)
    flt = transformer_float(c, model.weights, ids)
    secure = fxp.decode(logits)
    return {
        "secure": True,
        "mode": mode,
        "model": model.name,
        "config": {
            "vocab_size": c.vocab_size,
            "d_model": c.d_model,
            "n_heads": c.n_heads,
            "n_blocks": c.n_blocks,
            "d_ff": c.moe.d_ff,
            "n_experts": c.moe.n_experts,
            "top_k": c.moe.top_k,
            "expert_kind": c.moe.expert_kind,
            "head": c.head,
            "n_out": c.n_out,
            "causal": c.causal,
            "ring_bits": c.moe.ring_bits,
            "frac_bits": c.moe.frac_bits,
        },
        "weights_sha256": transformer_digest(model.weights),
        "token_ids": [int(i) for i in ids],
        "logits": np.round(secure, 6).tolist(),
        "logits_fixed": np.round(fxp.decode(fixed), 6).tolist(),
        "logits_float": np.round(flt, 6).tolist(),
        "prediction": [int(i) for i in secure.argmax(axis=1)],
        "prediction_fixed": [int(i) for i in fxp.decode(fixed).argmax(axis=1)],
        "prediction_float": [int(i) for i in flt.argmax(axis=1)],
        "bit_exact_fixed": bool(np.array_equal(logits, fixed)),
        "max_abs_err_float": float(np.abs(secure - flt).max()),
        **cost.report(),
        "wall_s": round(wall_s, 3),
    }


def secure_model_demo(
    name: str = "tiny",
    tokens: int = 4,
    seed: bytes = DEMO_SEED,
    progress: Callable[[str], None] | None = None,
    timeout: float = DEMO_TIMEOUT,
) -> tuple[dict[str, Any], CostRecord]:
    """Both parties in this process, their session seeds derived from ``seed`` as the MoE
    demo's; the ids are the first sequence of ``model_inputs(config, 1, tokens, TINY_SEED)``."""
    model = load_model(name)
    ids = model_inputs(model.config, 1, tokens, TINY_SEED)[0]
    t0 = time.perf_counter()
    run = model_run(model, ids, seed, progress=progress, timeout=timeout)
    wall = time.perf_counter() - t0
    return summarize_model(model, ids, run.client, run.cost, wall, "in-process"), run.cost


def model_run(
    model: Model,
    ids: Ints,
    seed: bytes = DEMO_SEED,
    *,
    progress: Callable[[str], None] | None = None,
    timeout: float = DEMO_TIMEOUT,
    record: RecordMode = "none",
) -> RunResult[RingVec, int]:
    """One in-process run of ``transformer_client`` and ``transformer_server`` on token ``ids``,
    the session seeds from ``party_seeds(seed)``; ``record`` keeps the client's transcript
    (what ``secmoe trace --transformer`` draws)."""
    client_seed, server_seed = party_seeds(seed)
    return run_local(
        lambda ctx: transformer_client(ctx, model.config, ids),
        lambda ctx: transformer_server(ctx, model.config, model.fixed),
        client_seed=client_seed,
        server_seed=server_seed,
        fxp=model.config.fxp,
        timeout=timeout,
        record=record,
        progress=progress,
    )


def format_model_report(d: dict[str, Any]) -> str:
    """The human-readable part of a :func:`summarize_model` report."""
    c = d["config"]
    yes = {True: "yes", False: "NO"}
    lines = [
        "secure MoE transformer (spec §50), both parties in this process (run_local)",
        "over the real channel: Beaver/AND triples from OT, products under BFV; no dealer",
        f"model {d['model']}: vocabulary {c['vocab_size']}, d_model {c['d_model']}, "
        f"{c['n_heads']} heads, {c['n_blocks']} block(s) of {c['n_experts']} {c['expert_kind']} "
        f"experts (d_ff {c['d_ff']}, top-{c['top_k']}), {c['head']} head with {c['n_out']} "
        f"outputs, Z_2^{c['ring_bits']}, f = {c['frac_bits']}",
        f"weights sha256 {d['weights_sha256']}",
        f"token ids (the client's, never sent): {d['token_ids']}",
        "the embedding is an encrypted one-hot product, so the server learns neither the ids nor",
        f"the routing; at the end it sent its logit shares to the client ({OUTPUT_LABEL}).",
        "",
        f"{'':>10}  {'prediction':>10}  logits",
    ]
    for key, label in (("", "secure"), ("_fixed", "fixed"), ("_float", "float")):
        for row, (p, z) in enumerate(zip(d["prediction" + key], d["logits" + key], strict=True)):
            tag = label if row == 0 else ""
            lines.append(f"{tag:>10}  {p:>10}  " + " ".join(f"{v:+.5f}" for v in z))
    lines += [
        "",
        f"secure logits equal the fixed-point model's bit for bit: {yes[d['bit_exact_fixed']]}; "
        f"max abs difference to the float model {d['max_abs_err_float']:.3g}",
        f"cost as the client counted it: {d['bytes_c2s']:,} bytes client->server, "
        f"{d['bytes_s2c']:,} bytes server->client,",
        f"{d['rounds']} rounds, {d['wall_s']:.1f} s wall time",
    ]
    return "\n".join(lines)
