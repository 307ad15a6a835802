"""Vector tables of the plaintext models the other files do not reach (spec §6.3, §33-34,
§50.1): the binary64 MoE layer and transformer, the fixed-point transformer, and the
fixed-point norms and Bumblebee GeLU that the secure protocols must equal bit for bit.

Every case is local: each file's local function maps a case's inputs to its outputs. Weights
come from a seed (``default_weights``, ``transformer_weights``), inputs from the case's input
PRG; reals are written as the hex of their IEEE-754 binary64 bytes (little-endian, row-major)
with a decimal mirror (Python ``repr``), ring values as ring-vec hex.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from secmoe.encoding import FixedPoint, RingVec
from secmoe.model.bumblebee import gelu_bumblebee_fixed
from secmoe.model.config import MoEConfig
from secmoe.model.default import default_weights, uniform_tensor
from secmoe.model.norm import layernorm_fixed, rmsnorm_fixed, rsqrt_fixed
from secmoe.model.plain import moe_float
from secmoe.model.transformer import (
    TransformerConfig,
    transformer_fixed,
    transformer_float,
    transformer_weights,
)
from secmoe.vectors.build import hex_ring
from secmoe.vectors.gen_cost import transformer_config_json, transformer_config_of
from secmoe.vectors.play import CaseSpec, Group, ring_of, table_file
from secmoe.vectors.registry import Json, Note, case_seed, inputs_prg

NORMAL = Note("NORMAL", "an ordinary input")
FXP = FixedPoint()
Floats = NDArray[np.float64]


def reals(values: Floats) -> Json:
    """A binary64 array: its shape, the hex of its little-endian IEEE bytes, and the decimals."""
    a = np.ascontiguousarray(values, dtype="<f8")
    return {
        "shape": list(a.shape),
        "f64": a.tobytes().hex(),
        "decimal": [repr(float(v)) for v in a.reshape(-1)],
    }


def reals_of(value: Json) -> Floats:
    """The inverse of :func:`reals`: the array of its shape and f64 hex."""
    flat = np.frombuffer(bytes.fromhex(value["f64"]), dtype="<f8")
    return flat.reshape(value["shape"]).copy()


MOE_CONFIGS = {
    "geglu_top1": MoEConfig(d_model=4, d_ff=8, n_experts=4),
    "swiglu_top2": MoEConfig(
        d_model=4, d_ff=8, n_experts=4, top_k=2, expert_kind="swiglu", gate_norm="softmax_topk"
    ),
    "shared": MoEConfig(d_model=4, d_ff=8, n_experts=4, n_shared_experts=1, d_ff_shared=4),
}
TRANSFORMERS = {
    "classify": TransformerConfig(
        vocab_size=8,
        n_heads=2,
        n_blocks=1,
        moe=MoEConfig(d_model=4, d_ff=8, n_experts=4),
        max_len=4,
        n_classes=3,
    ),
    "causal_lm": TransformerConfig(
        vocab_size=8,
        n_heads=2,
        n_blocks=2,
        moe=MoEConfig(d_model=4, d_ff=8, n_experts=4),
        max_len=4,
        head="lm",
        causal=True,
    ),
}
FLOAT = "model.float"


def _float(inputs: Json, params: Json) -> tuple[Json, Json | None]:
    """The group's model (params ``model``) on the case's configuration, weights and input."""
    seed = bytes.fromhex(inputs["weights_seed"])
    if params["model"] == "moe":
        config = MoEConfig(**inputs["config"])
        y, routing = moe_float(config, default_weights(config, seed), reals_of(inputs["x"]))
        outputs = {
            "y": reals(y),
            "experts": routing.experts.tolist(),
            "gates": reals(routing.gates),
        }
        return outputs, None
    tconfig = transformer_config_of(inputs["config"])
    weights = transformer_weights(tconfig, seed)
    ids = np.asarray(inputs["ids"])
    outputs = {
        "logits_float": reals(transformer_float(tconfig, weights, ids)),
        "logits_fixed": hex_ring(FXP.ring, transformer_fixed(tconfig, weights, ids)),
    }
    return outputs, None


def _moe_cases() -> list[CaseSpec]:
    cases = []
    for name, config in MOE_CONFIGS.items():
        cid = f"{FLOAT}/moe_float/{name}"
        seed = case_seed(FLOAT, cid)
        inputs = {
            "config": config.as_dict(),
            "weights_seed": seed.hex(),
            "x": reals(uniform_tensor(seed, "inputs", (3, config.d_model), 2.0)),
            "x_recipe": "uniform_tensor(weights_seed, 'inputs', (3, d_model), 2)",
        }
        cases.append(CaseSpec(cid, f"moe_float, {name}, 3 tokens", inputs))
    return cases


def _transformer_cases() -> list[CaseSpec]:
    cases = []
    for name, config in TRANSFORMERS.items():
        cid = f"{FLOAT}/transformer/{name}"
        ids = [int(v) for v in inputs_prg(FLOAT, cid).next_below(3, config.vocab_size)]
        inputs = {
            "config": transformer_config_json(config),
            "weights_seed": case_seed(FLOAT, cid).hex(),
            "ids": ids,
        }
        comment = f"transformer_float and transformer_fixed, {name}, 3 tokens"
        cases.append(CaseSpec(cid, comment, inputs))
    return cases


def _float_groups() -> list[Group]:
    return [
        Group({"model": "moe"}, _moe_cases()),
        Group({"model": "transformer"}, _transformer_cases()),
    ]


table_file(
    FLOAT,
    "model/float.json",
    section="6.3.2",
    anchor="spec/06-models.md#moe_float",
    params={"float": "binary64", "ring_bits": 64, "frac_bits": 18},
    header=[
        "The plaintext models in binary64 (moe_float, transformer_float) and the fixed-point",
        "transformer (transformer_fixed, its blocks and attention). Weights: default_weights or",
        "transformer_weights of inputs.weights_seed. Reals: {shape, f64: hex of the little-endian",
        "IEEE-754 binary64 bytes, row-major, decimal: repr of each}. Ring values: ring-vec hex.",
        "Float results are those of numpy on x86-64 (summation order of matmul): compare f64",
        "within the tolerances of spec 6.6; the fixed-point outputs are exact.",
    ],
    notes={"Normal": NORMAL},
    fn=_float,
    groups=_float_groups,
)


NORMS = "model.norm_fixed"


def _ring_uniform(cid: str, n: int, lo: float, hi: float) -> RingVec:
    """n encoded values uniform on the 2^-f grid of [lo, hi), from the case's input PRG."""
    lo_i, span = int(lo * 2**FXP.frac_bits), int((hi - lo) * 2**FXP.frac_bits)
    draws = inputs_prg(NORMS, cid).next_below(n, span)
    return FXP.ring.from_int([lo_i + int(w) for w in draws])


def _norm(inputs: Json, params: Json) -> tuple[Json, Json | None]:
    """The oracle the case's inputs name by their keys: ``v`` rsqrt_fixed, ``beta``
    layernorm_fixed, ``gamma`` rmsnorm_fixed, ``x`` alone gelu_bumblebee_fixed."""
    ring = FXP.ring
    if "v" in inputs:
        y = rsqrt_fixed(FXP, ring_of(ring, inputs["v"]), int(inputs["bound"]))
    elif "gamma" in inputs:
        shape = tuple(int(n) for n in inputs["shape"])
        x, g = ring_of(ring, inputs["x"], shape), ring_of(ring, inputs["gamma"])
        eps = float(inputs["eps"])
        if "beta" in inputs:
            y = layernorm_fixed(FXP, x, g, ring_of(ring, inputs["beta"]), eps)
        else:
            y = rmsnorm_fixed(FXP, x, g, eps)
    else:
        y = gelu_bumblebee_fixed(FXP, ring_of(ring, inputs["x"]))
    return {"y": hex_ring(ring, y)}, None


def _norm_cases() -> list[CaseSpec]:
    ring = FXP.ring
    t, d = 2, 4
    cid = f"{NORMS}/rsqrt_fixed/bound64"
    v = _ring_uniform(cid, 8, 2.0**-FXP.frac_bits, 64.0)
    out = [
        CaseSpec(
            cid,
            "rsqrt_fixed of 8 values in [2^-18, 64], bound 64",
            {"v": hex_ring(ring, v), "bound": 64},
        )
    ]
    cid = f"{NORMS}/layernorm_fixed/t2d4"
    x, g, b = (_ring_uniform(f"{cid}/{k}", t * d, -2.0, 2.0) for k in ("x", "gamma", "beta"))
    inputs = {
        "shape": [t, d],
        "x": hex_ring(ring, x),
        "gamma": hex_ring(ring, g[:d]),
        "beta": hex_ring(ring, b[:d]),
        "eps": repr(1e-5),
    }
    out.append(CaseSpec(cid, "layernorm_fixed of 2 rows of 4, eps 1e-5", inputs))
    cid = f"{NORMS}/rmsnorm_fixed/t2d4"
    x, g = (_ring_uniform(f"{cid}/{k}", t * d, -2.0, 2.0) for k in ("x", "gamma"))
    inputs = {
        "shape": [t, d],
        "x": hex_ring(ring, x),
        "gamma": hex_ring(ring, g[:d]),
        "eps": repr(1e-6),
    }
    out.append(CaseSpec(cid, "rmsnorm_fixed of 2 rows of 4, eps 1e-6", inputs))
    cid = f"{NORMS}/gelu_bumblebee_fixed/n16"
    x = _ring_uniform(cid, 16, -6.0, 6.0)
    out.append(
        CaseSpec(cid, "gelu_bumblebee_fixed of 16 values in [-6, 6)", {"x": hex_ring(ring, x)})
    )
    return out


table_file(
    NORMS,
    "model/norm_fixed.json",
    section="33.5.1",
    anchor="spec/33-functions.md#layernorm_fixed",
    params={"ring_bits": 64, "frac_bits": 18},
    header=[
        "The fixed-point oracles of the norms (spec 33.4-33.5) and of Bumblebee's GeLU (spec",
        "34.1.1), which the secure protocols equal bit for bit. Ring values: ring-vec hex,",
        "row-major with inputs.shape; eps: repr of the binary64 value.",
    ],
    notes={"Normal": NORMAL},
    fn=_norm,
    groups=lambda: [Group({"ring_bits": 64, "frac_bits": 18}, _norm_cases())],
)
