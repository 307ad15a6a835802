"""The MoE classifier of the accuracy evaluation: its config, file, float and fixed-point models
(spec/60-accuracy.md §60.1).

The model is ``logits = (x + MoE(x)) W_head^T + b_head`` on the preprocessed, zero-padded
features x: one MoE layer of §6.3 with a residual, then a linear head. The fixed-point model is
``moe_fixed`` itself plus a ring addition and one ``mm``, so the secure run (secmoe.accuracy)
equals it bit for bit.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from secmoe.encoding import RingVec, fxp_encode
from secmoe.errors import SpecError
from secmoe.model.checkpoint import load_moe_layer
from secmoe.model.config import MoEConfig, MoEWeights, check_int
from secmoe.model.fixed import encode_weights, matmul_fixed, moe_fixed
from secmoe.model.plain import moe_float
from secmoe.model.safetensors import read_header, read_safetensors, write_safetensors

Floats = NDArray[np.float64]
Ints = NDArray[np.int64]
Arch = Literal["switch", "mixtral"]
ARCHS: tuple[Arch, ...] = ("switch", "mixtral")
DATASETS = ("digits", "iris", "wine", "breast_cancer")
D_MODEL = 64
D_FF = 32
N_EXPERTS = 8
PREFIX = "model.layers.0.block_sparse_moe."  # Mixtral naming of layer 0's MoE block
HEAD_WEIGHT = "score.weight"
HEAD_BIAS = "score.bias"
INPUT_SHIFT = "input_norm.shift"
INPUT_SCALE = "input_norm.scale"
METADATA_CONFIG = "secmoe_classifier"  # the __metadata__ key holding the config JSON
MAX_WEIGHT = 4.0  # |w| < 4: the public weight bound of matmul (WEIGHT_BITS = 20 at f = 18)
MODEL_DIR = Path(__file__).resolve().parent / "trained"


def arch_config(arch: Arch) -> MoEConfig:
    """The MoE layer of an architecture: Switch-style GeGLU top-1 with a softmax over all
    experts, or Mixtral-style SwiGLU top-2 renormalised over the two; d_model 64, d_ff 32,
    8 experts, the default ring."""
    if arch == "switch":
        return MoEConfig(D_MODEL, D_FF, N_EXPERTS, 1, "geglu", "softmax")
    if arch == "mixtral":
        return MoEConfig(D_MODEL, D_FF, N_EXPERTS, 2, "swiglu", "softmax_topk")
    raise SpecError(f"arch must be one of {ARCHS}, got {arch!r}")


@dataclass(frozen=True)
class ClassifierConfig:
    """A classifier's public shape: data set, architecture, feature and class counts, its layer.

    Implements spec §60.1.1 `ClassifierConfig` (spec/60-accuracy.md#classifierconfig).
    """

    dataset: str
    arch: Arch
    n_features: int
    n_classes: int
    moe: MoEConfig

    def __post_init__(self) -> None:
        if self.dataset not in DATASETS:
            raise SpecError(f"dataset must be one of {DATASETS}, got {self.dataset!r}")
        if self.moe != arch_config(self.arch):
            raise SpecError(f"the MoE layer is not the {self.arch} architecture's")
        check_int("ClassifierConfig", "n_features", self.n_features)
        check_int("ClassifierConfig", "n_classes", self.n_classes, 2)
        if self.n_features > self.moe.d_model:
            raise SpecError(f"{self.n_features} features exceed d_model = {self.moe.d_model}")

    def as_dict(self) -> dict[str, int | str]:
        """The metadata stored with the weights (and printed in reports)."""
        return {
            "dataset": self.dataset,
            "arch": self.arch,
            "n_features": self.n_features,
            "n_classes": self.n_classes,
            **self.moe.as_dict(),
        }


@dataclass(frozen=True)
class ClassifierWeights:
    """The layer's weights, the head, and the client's public input normalisation."""

    moe: MoEWeights
    w_head: Floats  # (n_classes, d_model)
    b_head: Floats  # (n_classes,)
    input_shift: Floats  # (n_features,)
    input_scale: Floats  # (n_features,)

    def check(self, config: ClassifierConfig) -> None:
        """Shapes, dtype, finiteness, and every server weight below :data:`MAX_WEIGHT`."""
        self.moe.check(config.moe)
        d, c, n = config.moe.d_model, config.n_classes, config.n_features
        for name, a, shape in (
            ("w_head", self.w_head, (c, d)),
            ("b_head", self.b_head, (c,)),
            ("input_shift", self.input_shift, (n,)),
            ("input_scale", self.input_scale, (n,)),
        ):
            if not isinstance(a, np.ndarray) or a.dtype != np.float64 or a.shape != shape:
                raise SpecError(f"{name} must be a float64 array of shape {shape}")
            if not np.all(np.isfinite(a)):
                raise SpecError(f"{name} has NaN or infinite entries")
        server = [self.moe.w_gate, self.moe.w1, self.moe.w2, self.w_head]
        if self.moe.v is not None:
            server.append(self.moe.v)
        if max(float(np.abs(a).max()) for a in server) >= MAX_WEIGHT:
            raise SpecError(f"a weight is not below {MAX_WEIGHT} in magnitude")


def preprocess(config: ClassifierConfig, weights: ClassifierWeights, features: Floats) -> Floats:
    """The client's public normalisation: ``(x - shift) * scale``, zero-padded to d_model.

    Implements spec §60.1.2 `preprocess` (spec/60-accuracy.md#preprocess).
    """
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] != config.n_features:
        raise SpecError(f"features must have shape (N >= 1, {config.n_features}), got {x.shape}")
    if not np.all(np.isfinite(x)):
        raise SpecError("features have NaN or infinite entries")
    # Step 1: per feature, in binary64.
    z = (x - weights.input_shift) * weights.input_scale
    # Step 2: zeros in the columns n_features .. d_model - 1.
    out = np.zeros((x.shape[0], config.moe.d_model))
    out[:, : config.n_features] = z
    return out


def classifier_float(
    config: ClassifierConfig, weights: ClassifierWeights, x: Floats
) -> Floats:
    """Float logits (N, n_classes) of preprocessed inputs x (N, d_model), exact activations.

    Implements spec §60.1.3 `classifier_float` (spec/60-accuracy.md#classifier_float).
    """
    # Step 1: h = x + moe_float(x).
    y, _ = moe_float(config.moe, weights.moe, x)
    h = x + y
    # Step 2: logits = h W_head^T + b_head.
    out: Floats = h @ weights.w_head.T + weights.b_head
    return out


@dataclass(frozen=True)
class FixedHead:
    """The server's encoded head: enc(W_head) (n_classes, d_model) and enc(b_head)."""

    w_head: RingVec
    b_head: RingVec


def encode_head(config: ClassifierConfig, weights: ClassifierWeights) -> FixedHead:
    """``fxp_encode`` of the head's weight and bias."""
    fxp = config.moe.fxp
    return FixedHead(fxp_encode(fxp, weights.w_head), fxp_encode(fxp, weights.b_head))


def head_fixed(config: ClassifierConfig, head: FixedHead, x: RingVec, y: RingVec) -> RingVec:
    """Steps 2-3 of ``classifier_fixed``: the ring residual, one ``mm``, the encoded bias."""
    ring = config.moe.fxp.ring
    h = ring.add(x, y)
    return ring.add(matmul_fixed(config.moe.fxp, h, head.w_head.T), head.b_head[None, :])


def classifier_fixed(
    config: ClassifierConfig, weights: ClassifierWeights, x: RingVec
) -> RingVec:
    """Fixed-point logits (N, n_classes) of encoded inputs x (N, d_model), bit-exact.

    Implements spec §60.1.4 `classifier_fixed` (spec/60-accuracy.md#classifier_fixed).
    """
    # Step 1: y = moe_fixed(x) with the encoded layer weights.
    y = moe_fixed(config.moe, encode_weights(config.moe, weights.moe), x).y
    # Steps 2-3: h = x + y in the ring; logits = mm(h, enc(W_head)^T) + enc(b_head).
    return head_fixed(config, encode_head(config, weights), x, y)


def predict(logits: Floats | Ints) -> Ints:
    """The predicted class per row: the first index of the row's largest logit."""
    out: Ints = np.argmax(np.asarray(logits), axis=-1).astype(np.int64)
    return out


# --- the file (spec §60.1.5) -----------------------------------------------------------------


def tensor_map(config: ClassifierConfig, weights: ClassifierWeights) -> dict[str, Floats]:
    """The file's tensors in Mixtral naming (``(out, in)`` layout), plus head and normalisation."""
    m = weights.moe
    assert m.v is not None  # both architectures are gated
    out: dict[str, Floats] = {PREFIX + "gate.weight": np.ascontiguousarray(m.w_gate.T)}
    for e in range(config.moe.n_experts):
        out[f"{PREFIX}experts.{e}.w1.weight"] = m.w1[e]
        out[f"{PREFIX}experts.{e}.w3.weight"] = m.v[e]
        out[f"{PREFIX}experts.{e}.w2.weight"] = m.w2[e]
    out[HEAD_WEIGHT] = weights.w_head
    out[HEAD_BIAS] = weights.b_head
    out[INPUT_SHIFT] = weights.input_shift
    out[INPUT_SCALE] = weights.input_scale
    return out


def save_classifier(path: Path, config: ClassifierConfig, weights: ClassifierWeights) -> None:
    """Write the classifier as F32 safetensors with its config as metadata (deterministic bytes).

    Implements spec §60.1.5 `save_classifier` (spec/60-accuracy.md#save_classifier).
    """
    weights.check(config)
    meta = {METADATA_CONFIG: json.dumps(config.as_dict(), sort_keys=True, separators=(",", ":"))}
    write_safetensors(path, tensor_map(config, weights), "F32", meta)


def load_classifier(path: Path) -> tuple[ClassifierConfig, ClassifierWeights]:
    """Read a classifier file: the layer by ``load_moe_layer`` (Mixtral naming), the rest by name.

    Implements spec §60.1.6 `load_classifier` (spec/60-accuracy.md#load_classifier).
    """
    # Step 1: the config from the metadata.
    raw = read_header(path).metadata.get(METADATA_CONFIG)
    if raw is None:
        raise SpecError(f"{path}: no {METADATA_CONFIG!r} metadata: not a classifier file")
    try:
        meta = json.loads(raw)
        arch = meta["arch"]
        moe_config = arch_config(arch)
        config = ClassifierConfig(
            meta["dataset"], arch, meta["n_features"], meta["n_classes"], moe_config
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise SpecError(f"{path}: bad {METADATA_CONFIG!r} metadata: {exc}") from exc
    if meta != config.as_dict():
        raise SpecError(f"{path}: the metadata does not match the {arch} architecture")
    # Step 2: the MoE layer, Mixtral naming; the expert kind from the architecture.
    layer_config, layer = load_moe_layer(
        path, 0, "mixtral", top_k=moe_config.top_k, gate_norm=moe_config.gate_norm
    )
    if replace(layer_config, expert_kind=moe_config.expert_kind) != moe_config:
        raise SpecError(f"{path}: the layer's shape is not the {arch} architecture's")
    # Step 3: the head and the input normalisation.
    rest = read_safetensors(path, [HEAD_WEIGHT, HEAD_BIAS, INPUT_SHIFT, INPUT_SCALE])
    weights = ClassifierWeights(
        layer, rest[HEAD_WEIGHT], rest[HEAD_BIAS], rest[INPUT_SHIFT], rest[INPUT_SCALE]
    )
    weights.check(config)
    return config, weights


def model_path(dataset: str, arch: Arch, directory: Path | None = None) -> Path:
    """The file of a (data set, architecture): ``{dataset}-{arch}.safetensors`` in ``directory``
    (default: the committed ``trained/``); ``SpecError`` if it does not exist."""
    path = (MODEL_DIR if directory is None else Path(directory)) / f"{dataset}-{arch}.safetensors"
    if not path.is_file():
        raise SpecError(
            f"no trained model {path}: python tools/train_classifier.py --dataset {dataset} "
            f"--arch {arch} --out DIR, then --models DIR"
        )
    return path
