"""The secure demo: SecMoE's MoE layer (``moe``) on the built-in default model, end to end.

The client holds the tokens and secret-shares them; the server holds the encoded weights. Both
run ``moe`` on shares; at the end the server sends its shares of the output, of the chosen
experts and of the gates to the client (message ``moe/output``), which is how the client learns
its result. The server never receives anything but shares and ciphertexts, so it learns neither
the input, the output nor the routing. The same two party functions run in one process
(:func:`secure_demo`, over ``run_local``) or in two processes over TCP (the CLI's serve/client).

The plaintext references (``moe_float``, ``moe_fixed``) are computed by the client from the
public default weights: that is possible only because the demo's model is public.
"""

from __future__ import annotations

import hashlib
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from secmoe.encoding import RingVec
from secmoe.errors import ProtocolError, SpecError
from secmoe.model.config import MoEConfig, MoEWeights
from secmoe.model.default import default_config, default_inputs, default_weights, weights_digest
from secmoe.model.fixed import FixedWeights, encode_weights, moe_fixed
from secmoe.model.plain import moe_float
from secmoe.moe.layer import moe
from secmoe.moe.select import X_BITS
from secmoe.net.channel import CostRecord, RecordMode
from secmoe.randomness import SEED_BYTES, derive_seed
from secmoe.session import PartyContext, RunResult, run_local
from secmoe.sharing import arith_reconstruct, arith_share

Floats = NDArray[np.float64]
Ints = NDArray[np.int64]
DEMO_PROTOCOL = "moe-demo"  # the handshake's protocol name over TCP
# The demo's default master seed, recomputable by anyone so that runs are reproducible.
DEMO_SEED = hashlib.sha256(b"secmoe/v1/demo").digest()
DEMO_TOKENS = 4  # what `secmoe demo` runs by default
MAX_TOKENS = 64  # the server refuses larger requests (each token costs it seconds of HE work)
TOKENS_LABEL = "moe/tokens"
OUTPUT_LABEL = "moe/output"
# The secure layer's longest silence (the server's expert products) grows with the tokens; a
# peer waits this long per message before giving up.
DEMO_TIMEOUT = 300.0


@dataclass(frozen=True)
class ClientView:
    """What the client holds at the end: the output and its routing, in the clear."""

    y: RingVec  # (T, d_model), fixed point
    experts: Ints  # (T, k), best first
    gates: RingVec  # (T, k), fixed point


def check_input_bound(config: MoEConfig, xe: RingVec) -> None:
    """The client's check before sharing: ``|enc(x)| < 2^X_BITS`` (spec §40.0), else SpecError."""
    big = np.abs(config.fxp.ring.to_signed(xe)) >= 1 << X_BITS
    if np.any(big):
        bound = 2.0 ** (X_BITS - config.fxp.frac_bits)
        worst = float(np.abs(config.fxp.decode(xe)).max())
        raise SpecError(
            f"an input of magnitude {worst:g} is beyond the public bound |x| < {bound:g} "
            f"(|enc(x)| < 2^{X_BITS}, spec §40.0): the secure layer would not be exact"
        )


def load_inputs(path: str | Path, config: MoEConfig) -> Floats:
    """A client's tokens from a ``.npy`` file: float (T, d_model), 1 <= T <= MAX_TOKENS, finite,
    within the public bound of §40.0; SpecError says what to fix.

    Implements spec §40.5.3 `load_inputs` (spec/40-moe.md#load_inputs).
    """
    p = Path(path)
    try:
        a = np.load(p, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise SpecError(f"--inputs {p}: not a readable .npy array ({exc})") from exc
    if not isinstance(a, np.ndarray):
        raise SpecError(f"--inputs {p}: holds several arrays (an .npz?); save one with np.save")
    if a.dtype.kind != "f" or a.dtype.itemsize > 8:
        raise SpecError(
            f"--inputs {p}: dtype {a.dtype}; the tokens must be float16/32/64 "
            "(e.g. np.save(path, x.astype(np.float32)))"
        )
    if a.ndim != 2 or a.shape[1] != config.d_model or not 1 <= a.shape[0] <= MAX_TOKENS:
        raise SpecError(
            f"--inputs {p}: shape {a.shape}; expected (tokens, d_model) = (1..{MAX_TOKENS}, "
            f"{config.d_model}) (one token: x.reshape(1, -1))"
        )
    x = a.astype(np.float64)
    if not np.all(np.isfinite(x)):
        raise SpecError(f"--inputs {p}: NaN or infinite entries")
    bound = 2.0 ** (X_BITS - config.frac_bits)
    if np.any(np.abs(x) >= bound):
        raise SpecError(
            f"--inputs {p}: an entry of magnitude {float(np.abs(x).max()):g} is beyond the public "
            f"bound |x| < {bound:g} (spec §40.0)"
        )
    return x


def demo_client(ctx: PartyContext, config: MoEConfig, x: Floats) -> ClientView:
    """The client's side: share the tokens, run ``moe``, receive the server's output shares.

    Implements spec §40.5.1 `demo_client` (spec/40-moe.md#demo_client).
    """
    ring = ctx.ring
    xe = config.fxp.encode(np.asarray(x, dtype=np.float64))
    if xe.ndim != 2 or not 1 <= xe.shape[0] <= MAX_TOKENS or xe.shape[1] != config.d_model:
        raise SpecError(f"x must have shape (1..{MAX_TOKENS}, {config.d_model}), got {xe.shape}")
    check_input_bound(config, xe)
    tokens, k = xe.shape[0], config.top_k
    with ctx.channel.phase("input"):
        # The token count is public (it fixes every message length); the tokens are shared.
        ctx.channel.send(TOKENS_LABEL, struct.pack("<I", tokens))
        ctx.say(f"demo: secret-sharing {tokens} token(s)")
        mine = arith_share(ctx, "client", xe.reshape(-1), xe.size).reshape(xe.shape)
    out = moe(ctx, config, mine, None)
    with ctx.channel.phase("output"):
        # Output delivery: only the client receives the server's shares.
        n = tokens * config.d_model + 2 * tokens * k
        theirs = ctx.channel.recv_ring(OUTPUT_LABEL, ring, n)
    ctx.say("demo: output received")
    mine_all = np.concatenate([out.y.reshape(-1), out.experts.reshape(-1), out.gates.reshape(-1)])
    full = arith_reconstruct(mine_all, theirs, ring)
    y_end = tokens * config.d_model
    y = full[:y_end].reshape(tokens, config.d_model)
    experts = ring.to_signed(full[y_end : y_end + tokens * k]).reshape(tokens, k)
    if np.any(experts < 0) or np.any(experts >= config.n_experts):
        raise ProtocolError("out_of_range", "client", OUTPUT_LABEL, "an expert index out of range")
    gates = full[y_end + tokens * k :].reshape(tokens, k)
    return ClientView(y, experts.astype(np.int64), gates)


def demo_server(
    ctx: PartyContext, config: MoEConfig, weights: FixedWeights, max_tokens: int = MAX_TOKENS
) -> int:
    """The server's side: receive the shared tokens, run ``moe``, send its output shares.

    Implements spec §40.5.2 `demo_server` (spec/40-moe.md#demo_server).

    Returns the (public) number of tokens served.
    """
    with ctx.channel.phase("input"):
        (tokens,) = struct.unpack("<I", ctx.channel.recv(TOKENS_LABEL, 4))
        if not 1 <= tokens <= max_tokens:
            raise ProtocolError(
                "out_of_range", "server", TOKENS_LABEL, f"{tokens} tokens (limit {max_tokens})"
            )
        n = tokens * config.d_model
        mine = arith_share(ctx, "client", None, n).reshape(tokens, config.d_model)
    out = moe(ctx, config, mine, weights)
    with ctx.channel.phase("output"):
        ctx.channel.send_ring(
            OUTPUT_LABEL,
            ctx.ring,
            np.concatenate([out.y.reshape(-1), out.experts.reshape(-1), out.gates.reshape(-1)]),
        )
    ctx.say("demo: output shares sent to the client")
    return int(tokens)


def party_seeds(seed: bytes) -> tuple[bytes, bytes]:
    """The client's and the server's session seeds of an in-process demo run."""
    if not isinstance(seed, bytes) or len(seed) != SEED_BYTES:
        raise SpecError(f"the demo seed must be {SEED_BYTES} bytes")
    return derive_seed(seed, "demo/client"), derive_seed(seed, "demo/server")


def summarize(
    config: MoEConfig,
    weights: MoEWeights,
    x: Floats,
    view: ClientView,
    cost: CostRecord,
    wall_s: float,
    mode: str,
) -> dict[str, Any]:
    """The client's JSON-able report: errors against both references, routing, costs."""
    fxp = config.fxp
    y_float, routing = moe_float(config, weights, x)
    fixed = moe_fixed(config, weights, fxp.encode(x))
    y = fxp.decode(view.y)
    gates = fxp.decode(view.gates)
    return {
        "secure": True,
        "mode": mode,
        "config": config.as_dict(),
        "weights_sha256": weights_digest(weights),
        "tokens": int(x.shape[0]),
        "experts": view.experts.tolist(),
        "experts_fixed": fixed.experts.tolist(),
        "experts_float": routing.experts.tolist(),
        "routing_matches_plaintext": bool(np.array_equal(view.experts, fixed.experts)),
        "routing_matches_float": bool(np.array_equal(view.experts, routing.experts)),
        "gates": np.round(gates, 6).tolist(),
        "bit_exact_fixed": bool(
            np.array_equal(view.y, fixed.y) and np.array_equal(view.gates, fixed.gates)
        ),
        "max_abs_err_fixed": float(np.abs(y - fixed.y_decoded).max()),
        "max_abs_err_float": float(np.abs(y - y_float).max()),
        "output_head": np.round(y[:, :4], 6).tolist(),
        "output_norm": [round(float(v), 6) for v in np.linalg.norm(y, axis=1)],
        **cost.report(),
        "wall_s": round(wall_s, 3),
    }


def secure_demo(
    tokens: int = DEMO_TOKENS,
    seed: bytes = DEMO_SEED,
    progress: Callable[[str], None] | None = None,
    timeout: float = DEMO_TIMEOUT,
    model: tuple[MoEConfig, MoEWeights] | None = None,
) -> tuple[dict[str, Any], CostRecord]:
    """Both parties in this process over ``run_local``; returns the client's report and cost.

    ``model`` replaces the built-in default model (e.g. a checkpoint's layer, spec §6.8); the
    inputs are then ``default_inputs`` of its configuration.
    """
    if isinstance(tokens, bool) or not isinstance(tokens, int) or not 1 <= tokens <= MAX_TOKENS:
        raise SpecError(f"tokens must be an integer in 1..{MAX_TOKENS}, got {tokens!r}")
    if model is None:
        config = default_config()
        weights = default_weights(config)
    else:
        config, weights = model
    x = default_inputs(config, tokens)
    t0 = time.perf_counter()
    run = demo_run(config, weights, x, seed, progress=progress, timeout=timeout)
    wall = time.perf_counter() - t0
    return summarize(config, weights, x, run.client, run.cost, wall, "in-process"), run.cost


def demo_run(
    config: MoEConfig,
    weights: MoEWeights,
    x: Floats,
    seed: bytes = DEMO_SEED,
    *,
    progress: Callable[[str], None] | None = None,
    timeout: float = DEMO_TIMEOUT,
    record: RecordMode = "none",
) -> RunResult[ClientView, int]:
    """One in-process run of ``demo_client`` and ``demo_server`` on tokens ``x`` (floats), the
    session seeds from ``party_seeds(seed)``; ``record`` keeps the client's transcript (what
    ``secmoe trace --demo`` draws)."""
    fw = encode_weights(config, weights)
    client_seed, server_seed = party_seeds(seed)
    return run_local(
        lambda ctx: demo_client(ctx, config, x),
        lambda ctx: demo_server(ctx, config, fw),
        client_seed=client_seed,
        server_seed=server_seed,
        fxp=config.fxp,
        timeout=timeout,
        record=record,
        progress=progress,
    )


def format_report(d: dict[str, Any]) -> str:
    """The human-readable part of a :func:`summarize` report (the cost table comes separately)."""
    c = d["config"]
    where = (
        "both parties in this process (run_local)"
        if d["mode"] == "in-process"
        else "server and client in separate processes over TCP"
    )
    ckpt = d.get("checkpoint")
    model = "default model" if ckpt is None else "model"
    lines = [
        f"secure MoE layer (SecMoE, spec §40), {where}",
        "over the real channel: Beaver/AND triples from OT, products under BFV; no dealer",
        *([] if ckpt is None else _checkpoint_lines(ckpt, c)),
        f"{model}: d_model {c['d_model']}, d_ff {c['d_ff']}, {c['n_experts']} "
        f"{c['expert_kind']} experts, top-{c['top_k']} ({c['gate_norm']} gate), "
        f"Z_2^{c['ring_bits']}, f = {c['frac_bits']}",
        f"weights sha256 {d['weights_sha256']}",
        f"the client secret-shared {d['tokens']} token(s) and the server held the encoded weights; "
        "at the end the",
        "server sent its shares of y, the experts and the gates to the client (message "
        f"{OUTPUT_LABEL}):",
        "output and routing are revealed to the client only, never to the server.",
        "",
        f"{'token':>5}  {'experts (client / fixed / float)':>34}  {'gate':>9}  {'|y|':>9}  y[0:4]",
    ]
    for t in range(d["tokens"]):
        ex = f"{d['experts'][t]} / {d['experts_fixed'][t]} / {d['experts_float'][t]}"
        lines.append(
            f"{t:>5}  {ex:>34}  {d['gates'][t][0]:>9.6f}  {d['output_norm'][t]:>9.5f}  "
            + " ".join(f"{v:+.5f}" for v in d["output_head"][t])
        )
    yes = {True: "yes", False: "NO"}
    lines += [
        "",
        f"output vs the fixed-point model (moe_fixed): max abs error {d['max_abs_err_fixed']:.3g} "
        f"(bit-exact: {yes[d['bit_exact_fixed']]})",
        f"output vs the float model (moe_float):       max abs error {d['max_abs_err_float']:.3g}",
        f"routing as the client sees it equals the plaintext routing: fixed point "
        f"{yes[d['routing_matches_plaintext']]}, float {yes[d['routing_matches_float']]}",
        *(
            [
                "(the references are computed by the client from the default weights, which are "
                "public",
                "in this demo only)",
            ]
            if ckpt is None
            else [
                "(the references are computed by the client from the checkpoint's weights, which "
                "it holds",
                "in this demo only; the server alone holds them in a real deployment)",
            ]
        ),
        "",
        f"cost as the client counted it: {d['bytes_c2s']:,} bytes client->server, "
        f"{d['bytes_s2c']:,} bytes server->client,",
        f"{d['rounds']} rounds, {d['wall_s']:.1f} s wall time; rounds are the critical path, while "
        "a phase's",
        "rounds count its own segments, so phases that interleave add up to more than the total",
    ]
    return "\n".join(lines)


def _checkpoint_lines(ckpt: dict[str, Any], config: dict[str, Any]) -> list[str]:
    """The report's lines naming the checkpoint and where each configuration field came from."""
    where = ckpt["config_json"] or "no config.json: family defaults and tensor names"
    lines = [
        f"checkpoint {ckpt['path']}: family {ckpt['family']}, layer {ckpt['layer']} "
        f"(block {ckpt['block']}), configuration from {where}:",
    ]
    for name, key in ckpt["derived"].items():
        lines.append(f"  {name} = {config.get(name)!r} <- {key}")
    return lines
