"""Accuracy on a real task: a trained MoE classifier's test split through the float model, the
fixed-point model and the secure two-party run (spec/60-accuracy.md §60.3-§60.4).

The client holds the test inputs, the server the trained weights. Both parties run
``classify_client`` / ``classify_server`` over the real channel: the secure MoE layer (§40.3,
real OT and real HE), the residual as a local ring addition, the head by ``matmul`` (§31.1,
HE with the server's plaintext weights) and the bias added by the server to its share. Only the
client learns the logits.
"""

from __future__ import annotations

import struct
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from secmoe.encoding import RingVec
from secmoe.errors import ProtocolError, SpecError
from secmoe.model.ablation import APPROXIMATIONS, classifier_fixed_ablated
from secmoe.model.classifier import (
    ARCHS,
    Arch,
    ClassifierConfig,
    ClassifierWeights,
    FixedHead,
    classifier_fixed,
    classifier_float,
    encode_head,
    load_classifier,
    model_path,
    predict,
    preprocess,
)
from secmoe.model.datasets import load_dataset
from secmoe.model.fixed import FixedWeights, encode_weights
from secmoe.moe.cost import moe_cost
from secmoe.moe.demo import party_seeds
from secmoe.moe.layer import moe
from secmoe.protocols.cost import Pattern, ring_bytes, send, seq
from secmoe.protocols.linear import matmul, matmul_cost
from secmoe.randomness import system_seed
from secmoe.session import PartyContext, run_local
from secmoe.sharing import arith_reconstruct, arith_share

Floats = NDArray[np.float64]
Ints = NDArray[np.int64]
BATCH_LABEL = "classify/tokens"
OUTPUT_LABEL = "classify/output"
DEFAULT_BATCH = 32  # samples per secure batch (tokens of one `moe` call)
MAX_BATCH = 64  # the server refuses larger batches
# The server's expert products for a batch are one long silence on the client's side.
ACCURACY_TIMEOUT = 3600.0
REPORT_KEYS = ("float_acc", "fixed_acc", "secure_acc", "secure_vs_float_disagreements", "n_test")


def classify_client(
    ctx: PartyContext,
    config: ClassifierConfig,
    batches: Sequence[Floats],
    progress: Callable[[int, int], None] | None = None,
) -> list[RingVec]:
    """The client's side: per batch of preprocessed inputs, its fixed-point logits.

    Implements spec §60.3.1 `classify_client` (spec/60-accuracy.md#classify_client).
    """
    ring, fxp, c = ctx.ring, config.moe.fxp, config.n_classes
    out: list[RingVec] = []
    done = 0
    for batch in [*batches, None]:
        # Step 1: the batch size (public; 0 ends the session).
        tokens = 0 if batch is None else int(batch.shape[0])
        if batch is not None and not 1 <= tokens <= MAX_BATCH:
            raise SpecError(f"a batch holds 1..{MAX_BATCH} samples, got {tokens}")
        with ctx.channel.phase("input"):
            ctx.channel.send(BATCH_LABEL, struct.pack("<I", tokens))
            if batch is None:
                break
            # Step 2: the encoded inputs, secret-shared by the client.
            xe = fxp.encode(np.asarray(batch, dtype=np.float64))
            x = arith_share(ctx, "client", xe.reshape(-1), xe.size).reshape(xe.shape)
        # Step 3: the layer, the residual, the head.
        logits = _classify(ctx, config, x, None, None)
        with ctx.channel.phase("output"):
            # Step 4: the server's shares of the logits; only the client reconstructs.
            theirs = ctx.channel.recv_ring(OUTPUT_LABEL, ring, tokens * c)
        out.append(arith_reconstruct(logits.reshape(-1), theirs, ring).reshape(tokens, c))
        done += tokens
        if progress is not None:
            progress(done, len(out))
    return out


def classify_server(
    ctx: PartyContext,
    config: ClassifierConfig,
    fw: FixedWeights,
    head: FixedHead,
    max_batch: int = MAX_BATCH,
) -> int:
    """The server's side: serve batches until the client sends 0; returns the samples served.

    Implements spec §60.3.2 `classify_server` (spec/60-accuracy.md#classify_server).
    """
    served = 0
    while True:
        with ctx.channel.phase("input"):
            (tokens,) = struct.unpack("<I", ctx.channel.recv(BATCH_LABEL, 4))
            if tokens == 0:
                return served
            if tokens > max_batch:
                raise ProtocolError(
                    "out_of_range", "server", BATCH_LABEL, f"{tokens} samples (limit {max_batch})"
                )
            n = tokens * config.moe.d_model
            x = arith_share(ctx, "client", None, n).reshape(tokens, config.moe.d_model)
        logits = _classify(ctx, config, x, fw, head)
        with ctx.channel.phase("output"):
            ctx.channel.send_ring(OUTPUT_LABEL, ctx.ring, logits.reshape(-1))
        served += tokens


def _classify(
    ctx: PartyContext,
    config: ClassifierConfig,
    x: RingVec,
    fw: FixedWeights | None,
    head: FixedHead | None,
) -> RingVec:
    """Step 3 of both sides: shares of ``classifier_fixed``'s logits (spec §60.3.1 step 3)."""
    ring = ctx.ring
    # 3a: y = moe(x), the secure layer of §40.3.1.
    y = moe(ctx, config.moe, x, fw).y
    # 3b: h = x + y, a local ring addition on each party's shares.
    h = ring.add(x, y)
    # 3c: trunc(h enc(W_head)^T) by the HE product with the server's plaintext weights.
    logits = matmul(ctx, h, None if head is None else head.w_head, config.n_classes)
    # 3d: the server adds enc(b_head) to its share.
    if head is not None:
        logits = ring.add(logits, head.b_head[None, :])
    return logits


def classify_cost(config: ClassifierConfig, batches: Sequence[int]) -> Pattern:
    """``classify_client`` / ``classify_server`` on batches of the given sizes in a fresh session
    (spec §60.3, "Cost"): per batch its size, the shares, the layer (the OT and HE set-ups in the
    first), the head, the logits' shares; then the closing 0."""
    moe_config = config.moe
    w, d, c = ring_bytes(moe_config.ring_bits), moe_config.d_model, config.n_classes
    parts: list[Pattern] = []
    for i, t in enumerate(batches):
        parts += [
            send("client", 4, "input"),
            send("client", t * d * w, "input"),
            moe_cost(moe_config, t, fresh_he=i == 0, fresh_ot=i == 0),
            matmul_cost(t, d, c, moe_config.ring_bits, moe_config.frac_bits),
            send("server", t * c * w, "output"),
        ]
    return seq(*parts, send("client", 4, "input"))


def check_arch(arch: str) -> Arch:
    """``arch`` as an architecture name, or ``SpecError``."""
    for a in ARCHS:
        if arch == a:
            return a
    raise SpecError(f"arch must be one of {ARCHS}, got {arch!r}")


@dataclass(frozen=True)
class SecureRun:
    """The client's secure logits (N, n_classes) and the run's cost."""

    logits: RingVec
    report: dict[str, Any]
    seconds: float


def secure_logits(
    config: ClassifierConfig,
    weights: ClassifierWeights,
    x: Floats,
    batch: int = DEFAULT_BATCH,
    seed: bytes | None = None,
    label: str = "",
    verbose: bool = True,
) -> SecureRun:
    """Both parties in this process (``run_local``): the preprocessed inputs x (N, d_model) in
    batches of ``batch``; fresh OS seeds unless ``seed`` fixes them."""
    if isinstance(batch, bool) or not isinstance(batch, int) or not 1 <= batch <= MAX_BATCH:
        raise SpecError(f"batch must be an integer in 1..{MAX_BATCH}, got {batch!r}")
    fw = encode_weights(config.moe, weights.moe)
    head = encode_head(config, weights)
    batches = [x[i : i + batch] for i in range(0, x.shape[0], batch)]
    client_seed, server_seed = party_seeds(seed if seed is not None else system_seed())
    t0 = time.perf_counter()

    def progress(done: int, count: int) -> None:
        if verbose:
            print(
                f"[{label}] secure batch {count}/{len(batches)}: {done}/{x.shape[0]} samples, "
                f"{time.perf_counter() - t0:.0f} s",
                file=sys.stderr,
                flush=True,
            )

    run = run_local(
        lambda ctx: classify_client(ctx, config, batches, progress),
        lambda ctx: classify_server(ctx, config, fw, head),
        client_seed=client_seed,
        server_seed=server_seed,
        fxp=config.moe.fxp,
        timeout=ACCURACY_TIMEOUT,
    )
    seconds = time.perf_counter() - t0
    return SecureRun(np.concatenate(run.client), run.cost.report(), seconds)


def accuracy_report(
    dataset: str,
    arch: str,
    limit: int | None = None,
    batch: int = DEFAULT_BATCH,
    seed: bytes | None = None,
    secure: bool = True,
    verbose: bool = True,
    models: Path | None = None,
    offset: int = 0,
) -> dict[str, Any]:
    """The report of one architecture on a data set's test split: its samples ``offset`` ..
    ``offset + limit - 1`` (default: all).

    Implements spec §60.4.1 `accuracy_report` (spec/60-accuracy.md#accuracy_report).
    """
    config, weights = load_classifier(model_path(dataset, check_arch(arch), models))
    data = load_dataset(dataset)
    rows = _rows(data.x_test.shape[0], limit, offset)
    labels = data.y_test[rows]
    n = labels.size
    # Step 1: the client's preprocessing, shared by all three models.
    x = preprocess(config, weights, data.x_test[rows])
    fxp = config.moe.fxp
    # Step 2: the float and the fixed-point predictions.
    p_float = predict(classifier_float(config, weights, x))
    fixed = classifier_fixed(config, weights, fxp.encode(x))
    p_fixed = predict(fxp.ring.to_signed(fixed))
    out: dict[str, Any] = {
        "float_acc": round(float(np.mean(p_float == labels)), 6),
        "fixed_acc": round(float(np.mean(p_fixed == labels)), 6),
    }
    if secure:
        # Step 3: the secure run; its logits must equal the fixed-point logits bit for bit.
        run = secure_logits(config, weights, x, batch, seed, f"{dataset}/{arch}", verbose)
        p_secure = predict(fxp.ring.to_signed(run.logits))
        out["secure_acc"] = round(float(np.mean(p_secure == labels)), 6)
        out["secure_vs_float_disagreements"] = int(np.sum(p_secure != p_float))
    else:
        out["secure_acc"] = None
        out["secure_vs_float_disagreements"] = None
    out["n_test"] = int(n)
    if offset:
        out["offset"] = offset
    out["fixed_vs_float_disagreements"] = int(np.sum(p_fixed != p_float))
    if secure:
        out["secure_logits_equal_fixed"] = bool(np.array_equal(run.logits, fixed))
        out["secure_batch"] = batch
        out["secure_bytes_c2s"] = run.report["bytes_c2s"]
        out["secure_bytes_s2c"] = run.report["bytes_s2c"]
        out["secure_rounds"] = run.report["rounds"]
        out["secure_seconds"] = round(run.seconds, 1)
    return out


def _rows(total: int, limit: int | None, offset: int) -> slice:
    """The test samples offset .. offset + limit - 1 (to the end without a limit)."""
    if isinstance(offset, bool) or not isinstance(offset, int) or not 0 <= offset < total:
        raise SpecError(f"offset must be an integer in 0..{total - 1}, got {offset!r}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise SpecError(f"limit must be an integer >= 1, got {limit!r}")
    return slice(offset, total if limit is None else min(total, offset + limit))


def ablation_report(
    dataset: str, arch: str, limit: int | None = None, models: Path | None = None
) -> dict[str, Any]:
    """Fixed-point accuracy with each approximation swapped for its exact float version.

    Implements spec §60.5.2 `ablation_report` (spec/60-accuracy.md#ablation_report).
    """
    config, weights = load_classifier(model_path(dataset, check_arch(arch), models))
    data = load_dataset(dataset)
    n = data.x_test.shape[0] if limit is None else min(limit, data.x_test.shape[0])
    labels = data.y_test[:n]
    x = preprocess(config, weights, data.x_test[:n])
    fxp = config.moe.fxp
    float_logits = classifier_float(config, weights, x)
    p_float = predict(float_logits)
    out: dict[str, Any] = {"float_acc": round(float(np.mean(p_float == labels)), 6)}
    variants: list[tuple[str, frozenset[str]]] = [("none", frozenset())]
    variants += [(a, frozenset({a})) for a in APPROXIMATIONS]
    variants.append(("all", frozenset(APPROXIMATIONS)))
    for name, exact in variants:
        logits = classifier_fixed_ablated(config, weights, fxp.encode(x), exact)
        pred = predict(fxp.ring.to_signed(logits))
        out[f"exact_{name}"] = {
            "fixed_acc": round(float(np.mean(pred == labels)), 6),
            "disagreements_vs_float": int(np.sum(pred != p_float)),
            "max_abs_logit_err": round(float(np.abs(fxp.decode(logits) - float_logits).max()), 6),
        }
    out["n_test"] = int(n)
    return out


def format_accuracy(report: dict[str, Any]) -> str:
    """The human-readable form of ``secmoe accuracy``'s report."""
    lines = [f"data set {report['dataset']} (test split)"]
    for arch, rep in report.items():
        if arch == "dataset":
            continue
        lines.append(f"{arch}: {rep['n_test']} test samples")
        if "exact_none" in rep:
            lines.append(f"  float accuracy {rep['float_acc']:.4f}")
            for key, v in rep.items():
                if key.startswith("exact_"):
                    lines.append(
                        f"  fixed point, {key[6:]:>10} exact: accuracy {v['fixed_acc']:.4f}, "
                        f"{v['disagreements_vs_float']} disagreements with float, max logit "
                        f"error {v['max_abs_logit_err']:.4g}"
                    )
            continue
        lines.append(
            f"  accuracy: float {rep['float_acc']:.4f}, fixed point {rep['fixed_acc']:.4f}, "
            f"secure {rep['secure_acc'] if rep['secure_acc'] is None else format(rep['secure_acc'], '.4f')}"
        )
        if rep["secure_acc"] is not None:
            same = "yes" if rep["secure_logits_equal_fixed"] else "NO"
            lines += [
                f"  secure predictions differing from float: "
                f"{rep['secure_vs_float_disagreements']}; secure logits equal the fixed-point "
                f"logits bit for bit: {same}",
                f"  secure run: {rep['secure_bytes_c2s']:,} bytes client->server, "
                f"{rep['secure_bytes_s2c']:,} bytes server->client, {rep['secure_rounds']} rounds, "
                f"{rep['secure_seconds']:.0f} s (batches of {rep['secure_batch']})",
            ]
    return "\n".join(lines)
