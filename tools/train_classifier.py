"""Train the accuracy evaluation's MoE classifiers (spec/60-accuracy.md §60.2, "Training recipe").

Plain numpy, manual gradients, Adam, every random draw from the project's PRG, so a run is
deterministic: the same numpy on the same machine writes the same bytes. Needs the `accuracy`
extra (scikit-learn, for its bundled data sets).

Usage:
    python tools/train_classifier.py                         # digits, both architectures
    python tools/train_classifier.py --dataset iris --arch switch --out /tmp/m
    python tools/train_classifier.py --check                 # retrain into a temporary
        # directory and compare with the committed files (exit 1 if any byte differs)
"""

from __future__ import annotations

import argparse
import hashlib
import math
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from secmoe.model.classifier import (
    ARCHS,
    DATASETS,
    MODEL_DIR,
    Arch,
    ClassifierConfig,
    ClassifierWeights,
    arch_config,
    classifier_float,
    load_classifier,
    predict,
    preprocess,
    save_classifier,
)
from secmoe.model.config import MoEConfig, MoEWeights
from secmoe.model.datasets import load_dataset
from secmoe.model.default import fan_in_scale, uniform_tensor
from secmoe.model.piecewise import gelu, silu
from secmoe.model.plain import softmax, topk_order
from secmoe.randomness import Prg, dst

Floats = NDArray[np.float64]
Ints = NDArray[np.int64]

# The recipe (spec §60.2 ("Training recipe")): every hyper-parameter is here.
EPOCHS = 40
BATCH = 32
LR = 1e-3  # decayed linearly to 0 over the run
BETA1, BETA2, ADAM_EPS = 0.9, 0.999, 1e-8
AUX_COEF = 0.01  # Switch's load-balancing loss
WEIGHT_CLIP = 3.5  # keep every weight below 4 in magnitude (matmul's public bound)


def train_seed(dataset: str, arch: str) -> bytes:
    """SHA-256("secmoe/v1/classifier/{dataset}/{arch}"): the initialisation's PRG seed."""
    return hashlib.sha256(f"secmoe/v1/classifier/{dataset}/{arch}".encode()).digest()


def to_f32(a: Floats) -> Floats:
    """Round to the nearest binary32 (what the file stores), back in binary64."""
    out: Floats = np.asarray(a, dtype=np.float32).astype(np.float64)
    return out


def normalisation(x_train: Floats) -> tuple[Floats, Floats]:
    """shift = (max + min) / 2, scale = 2 / (max - min) per feature (0 for a constant
    feature), both rounded to binary32: the training features land in [-1, 1]."""
    lo, hi = x_train.min(axis=0), x_train.max(axis=0)
    span = hi - lo
    scale = np.where(span > 0, 2.0 / np.where(span > 0, span, 1.0), 0.0)
    return to_f32((hi + lo) / 2), to_f32(scale)


@dataclass
class Params:
    """The trainable arrays (float64), in the order Adam visits them."""

    w_gate: Floats
    w1: Floats
    v: Floats
    w2: Floats
    w_head: Floats
    b_head: Floats

    def arrays(self) -> list[Floats]:
        return [self.w_gate, self.w1, self.v, self.w2, self.w_head, self.b_head]


def init_params(config: MoEConfig, n_classes: int, seed: bytes) -> Params:
    """Uniform in [-s, s), s = 2^-ceil(log2(fan_in) / 2), tensors named as in §6.5.1."""
    d, n, ff = config.d_model, config.n_experts, config.d_ff

    def t(name: str, shape: tuple[int, ...], fan_in: int) -> Floats:
        return uniform_tensor(seed, name, shape, fan_in_scale(fan_in))

    return Params(
        t("router", (d, n), d),
        t("experts/w1", (n, ff, d), d),
        t("experts/v", (n, ff, d), d),
        t("experts/w2", (n, d, ff), ff),
        t("head", (n_classes, d), d),
        np.zeros(n_classes),
    )


def act_and_grad(kind: str, u: Floats) -> tuple[Floats, Floats]:
    """The exact activation and its derivative."""
    if kind == "geglu":
        cdf = 0.5 * (1.0 + np.vectorize(math.erf, otypes=[np.float64])(u / math.sqrt(2.0)))
        pdf = np.exp(-0.5 * u * u) / math.sqrt(2.0 * math.pi)
        return gelu(u), cdf + u * pdf
    sig = np.exp(-np.logaddexp(0.0, -u))
    return silu(u), sig * (1.0 + u * (1.0 - sig))


def loss_and_grads(
    config: MoEConfig, p: Params, x: Floats, labels: Ints
) -> tuple[float, list[Floats]]:
    """Cross-entropy (+ AUX_COEF times the load-balancing loss) and its gradients."""
    b, n_exp, k = x.shape[0], config.n_experts, config.top_k
    # Forward: router, top-k, gates.
    z = x @ p.w_gate
    sel = topk_order(z, k)
    probs = softmax(z)
    if config.gate_norm == "softmax":
        g = np.take_along_axis(probs, sel, axis=1)
    else:
        g = softmax(np.take_along_axis(z, sel, axis=1))
    y = np.zeros_like(x)
    cache = []
    for s in range(k):
        for e in range(n_exp):
            idx = np.nonzero(sel[:, s] == e)[0]
            if idx.size == 0:
                continue
            xe = x[idx]
            u = xe @ p.w1[e].T
            a, da_du = act_and_grad(config.expert_kind, u)
            vv = xe @ p.v[e].T
            h = a * vv
            o = h @ p.w2[e].T
            y[idx] += g[idx, s, None] * o
            cache.append((s, e, idx, xe, a, da_du, vv, h, o))
    out = x + y
    logits = out @ p.w_head.T + p.b_head
    q = softmax(logits)
    loss = float(-np.mean(np.log(q[np.arange(b), labels] + 1e-300)))
    frac = np.bincount(sel[:, 0], minlength=n_exp) / b
    loss += AUX_COEF * n_exp * float(np.sum(frac * probs.mean(axis=0)))
    # Backward.
    dlog = q
    dlog[np.arange(b), labels] -= 1.0
    dlog /= b
    g_head, g_bias = dlog.T @ out, dlog.sum(axis=0)
    dy = dlog @ p.w_head
    dg = np.zeros_like(g)
    g_w1, g_v, g_w2 = np.zeros_like(p.w1), np.zeros_like(p.v), np.zeros_like(p.w2)
    for s, e, idx, xe, a, da_du, vv, h, o in cache:
        dg[idx, s] = np.sum(dy[idx] * o, axis=1)
        do = g[idx, s, None] * dy[idx]
        g_w2[e] += do.T @ h
        dh = do @ p.w2[e]
        g_w1[e] += (dh * vv * da_du).T @ xe
        g_v[e] += (dh * a).T @ xe
    dp = AUX_COEF * n_exp * np.broadcast_to(frac / b, probs.shape).copy()
    if config.gate_norm == "softmax":
        np.add.at(dp, (np.arange(b)[:, None], sel), dg)
        dz = probs * (dp - np.sum(probs * dp, axis=1, keepdims=True))
    else:
        dz = probs * (dp - np.sum(probs * dp, axis=1, keepdims=True))
        dzs = g * (dg - np.sum(g * dg, axis=1, keepdims=True))
        np.add.at(dz, (np.arange(b)[:, None], sel), dzs)
    g_gate = x.T @ dz
    return loss, [g_gate, g_w1, g_v, g_w2, g_head, g_bias]


def train(dataset: str, arch: Arch, log: bool = True) -> tuple[ClassifierConfig, ClassifierWeights]:
    """The recipe of spec §60.2 ("Training recipe"): normalise, initialise, Adam over shuffled mini-batches."""
    data = load_dataset(dataset)
    moe = arch_config(arch)
    config = ClassifierConfig(dataset, arch, data.x_train.shape[1], data.n_classes, moe)
    shift, scale = normalisation(data.x_train)
    seed = train_seed(dataset, arch)
    p = init_params(moe, data.n_classes, seed)

    def weights(q: Params) -> ClassifierWeights:
        layer = MoEWeights(
            q.w_gate, q.w1, q.v, q.w2,
            np.zeros((0, moe.d_ff, moe.d_model)), np.zeros((0, moe.d_ff, moe.d_model)),
            np.zeros((0, moe.d_model, moe.d_ff)),
        )
        return ClassifierWeights(layer, q.w_head, q.b_head, shift, scale)

    x = preprocess(config, weights(p), data.x_train)
    n = x.shape[0]
    m = [np.zeros_like(a) for a in p.arrays()]
    v = [np.zeros_like(a) for a in p.arrays()]
    step = 0
    total_steps = EPOCHS * -(-n // BATCH)
    for epoch in range(EPOCHS):
        keys = Prg(seed, dst("accuracy", f"train/epoch/{epoch}")).next_u64(n)
        order = np.argsort(keys, kind="stable")
        total = 0.0
        for start in range(0, n, BATCH):
            idx = order[start : start + BATCH]
            loss, grads = loss_and_grads(moe, p, x[idx], data.y_train[idx])
            total += loss * idx.size
            lr = LR * (1 - step / total_steps)
            step += 1
            for a, gr, m1, m2 in zip(p.arrays(), grads, m, v, strict=True):
                m1 *= BETA1
                m1 += (1 - BETA1) * gr
                m2 *= BETA2
                m2 += (1 - BETA2) * gr * gr
                mhat = m1 / (1 - BETA1**step)
                vhat = m2 / (1 - BETA2**step)
                a -= lr * mhat / (np.sqrt(vhat) + ADAM_EPS)
                np.clip(a, -WEIGHT_CLIP, WEIGHT_CLIP, out=a)
        if log and (epoch % 10 == 9 or epoch == EPOCHS - 1):
            acc = float(np.mean(predict(classifier_float(config, weights(p), x)) == data.y_train))
            print(f"{dataset}/{arch} epoch {epoch + 1}: loss {total / n:.4f}, train acc {acc:.4f}",
                  file=sys.stderr)
    f32 = Params(*[to_f32(a) for a in p.arrays()])
    return config, weights(f32)


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--dataset", choices=DATASETS, default="digits")
    ap.add_argument("--arch", choices=(*ARCHS, "both"), default="both")
    ap.add_argument("--out", type=Path, default=MODEL_DIR)
    ap.add_argument("--check", action="store_true",
                    help="retrain into a temporary directory, compare with the committed files")
    args = ap.parse_args(argv)
    archs: list[Arch] = list(ARCHS) if args.arch == "both" else [args.arch]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) if args.check else args.out
        out.mkdir(parents=True, exist_ok=True)
        bad = 0
        for arch in archs:
            t0 = time.perf_counter()
            config, weights = train(args.dataset, arch)
            path = out / f"{args.dataset}-{arch}.safetensors"
            save_classifier(path, config, weights)
            config, weights = load_classifier(path)
            data = load_dataset(args.dataset)
            xt = preprocess(config, weights, data.x_test)
            acc = float(np.mean(predict(classifier_float(config, weights, xt)) == data.y_test))
            digest = sha256_file(path)
            print(f"{path.name}: {path.stat().st_size} bytes, sha256 {digest}, float test acc "
                  f"{acc:.4f}, {time.perf_counter() - t0:.1f} s")
            if args.check:
                committed = MODEL_DIR / path.name
                same = committed.exists() and sha256_file(committed) == digest
                print(f"  committed {committed.name}: {'identical' if same else 'DIFFERENT'}")
                bad += 0 if same else 1
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
