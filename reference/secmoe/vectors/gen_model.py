"""Vector tables of the plaintext fixed-point models (spec/06-models.md §6.7).

All cases are local (no parties): each file's local function maps a case's inputs (and its
group's params) to the named intermediates and outputs of the bit-exact fixed-point oracle,
which a secure implementation in another language can replay.
"""

from __future__ import annotations

import numpy as np

from secmoe.encoding import FixedPoint, RingVec, fxp_encode, fxp_trunc
from secmoe.errors import SpecError
from secmoe.model.config import MoEConfig
from secmoe.model.default import default_inputs, default_weights
from secmoe.model.fixed import (
    FixedWeights,
    encode_weights,
    exp_fixed,
    moe_fixed,
    reciprocal_fixed,
    softmax_fixed,
)
from secmoe.model.piecewise import PiecewiseTable, piecewise_fixed, quantise_rows
from secmoe.model.tables import TABLES
from secmoe.randomness import Prg
from secmoe.vectors.build import hex_ring
from secmoe.vectors.play import CaseSpec, Group, param, ring_of, table_file
from secmoe.vectors.registry import Json, Note, case_seed, inputs_prg

EDGE = Note("EDGE_CASE", "a boundary of the input domain")
NORMAL = Note("NORMAL", "an ordinary input")
FXP = FixedPoint()  # l = 64, f = 18


def _uniform_fxp(prg: Prg, n: int, lo: float, hi: float) -> RingVec:
    """n fixed-point values uniform in [lo, hi) on the 2^-f grid (by next_below)."""
    lo_i = int(FXP.ring.to_signed(fxp_encode(FXP, [lo]))[0])
    span = int(FXP.ring.to_signed(fxp_encode(FXP, [hi]))[0]) - lo_i
    return FXP.ring.from_int([lo_i + int(w) for w in prg.next_below(n, span)])


def _table_json(table: PiecewiseTable) -> Json:
    return {
        "breakpoints": hex_ring(FXP.ring, fxp_encode(FXP, list(table.breakpoints))),
        "rows": hex_ring(FXP.ring, FXP.ring.from_int([list(r) for r in quantise_rows(table, FXP)])),
    }


def _piecewise(inputs: Json, params: Json) -> tuple[Json, Json | None]:
    table = TABLES[str(params["table"])]
    if inputs["table"] != _table_json(table):
        raise SpecError(f"the case's table is not the encoding of {table.name!r}")
    x = ring_of(FXP.ring, inputs["x"])
    bounds = FXP.ring.to_signed(fxp_encode(FXP, list(table.breakpoints)))
    j = (FXP.ring.to_signed(x)[:, None] > bounds).sum(axis=-1)
    intermediates = {
        "j": [int(v) for v in j],
        "x2": hex_ring(FXP.ring, fxp_trunc(FXP, FXP.ring.mul(x, x))),
    }
    return {"y": hex_ring(FXP.ring, piecewise_fixed(table, FXP, x))}, intermediates


def _piecewise_groups() -> list[Group]:
    protocol = "model.piecewise_fixed"
    groups = []
    ulp = 2.0**-FXP.frac_bits
    for name, table in TABLES.items():
        edge = [v for b in table.breakpoints for v in (b - ulp, b, b + ulp)]
        edge += [-1000.0, -20.0, 0.0, 20.0, 1000.0]
        xs = [fxp_encode(FXP, edge)]
        case_id = f"{protocol}/{name}/breakpoints/0"
        ids = [(case_id, "Breakpoints", "breakpoints, one ulp either side, far values")]
        for i in range(2):
            cid = f"{protocol}/{name}/normal/{i}"
            xs.append(_uniform_fxp(inputs_prg(protocol, cid), 16, -8.0, 8.0))
            ids.append((cid, "Normal", "16 values uniform on the 2^-18 grid of [-8, 8)"))
        cases = [
            CaseSpec(
                cid,
                f"{name}: {comment}",
                {"table": _table_json(table), "x": hex_ring(FXP.ring, x)},
                (flag,),
            )
            for (cid, flag, comment), x in zip(ids, xs, strict=True)
        ]
        groups.append(Group({"table": name}, cases))
    return groups


table_file(
    "model.piecewise_fixed",
    "model/piecewise_fixed.json",
    section="6.2.1",
    anchor="spec/06-models.md#piecewise_fixed",
    params={"ring_bits": 64, "frac_bits": 18},
    header=[
        "Piecewise-quadratic activations in fixed point (GeLU, SiLU, ReLU, sigmoid, GPT-OSS; 6.2).",
        "Inputs: table (encoded breakpoints; rows (C2, C1, C0) row-major, ring-vec hex) and x.",
        "Intermediates: j (segment per element, a JSON array of integers) and x2 = trunc(x * x).",
        "Output: y.",
    ],
    notes={"Normal": NORMAL, "Breakpoints": EDGE},
    fn=_piecewise,
    groups=_piecewise_groups,
)


def _softmax(inputs: Json, params: Json) -> tuple[Json, Json | None]:
    ring = FXP.ring
    z = ring_of(ring, inputs["z"], (param(inputs, "rows"), param(inputs, "n")))
    d = ring.sub(z, ring.from_int(ring.to_signed(z).max(axis=-1, keepdims=True)))
    e = exp_fixed(FXP, d)
    s = ring.reduce(np.asarray(np.sum(e, axis=-1, keepdims=True, dtype=np.uint64)))
    intermediates = {
        "d": hex_ring(ring, d),
        "e": hex_ring(ring, e),
        "s": hex_ring(ring, s),
        "r": hex_ring(ring, reciprocal_fixed(FXP, s)),
    }
    return {"p": hex_ring(ring, softmax_fixed(FXP, z))}, intermediates


def _softmax_groups() -> list[Group]:
    protocol = "model.softmax_fixed"
    specs: list[tuple[str, str, str, RingVec]] = [
        (
            f"{protocol}/clip/0",
            "Clip",
            "differences at and around the clip point -14, and exact ties",
            fxp_encode(FXP, [[0.0, -14.0, -14.0 - 2**-18, -13.99], [3.0, 3.0, -20.0, 1.0]]),
        )
    ]
    for i in range(3):
        cid = f"{protocol}/normal/{i}"
        z = _uniform_fxp(inputs_prg(protocol, cid), 16, -8.0, 8.0).reshape(2, 8)
        specs.append((cid, "Normal", "2 rows of 8 logits uniform in [-8, 8)", z))
    cases = [
        CaseSpec(
            cid,
            comment,
            {"rows": int(z.shape[0]), "n": int(z.shape[1]), "z": hex_ring(FXP.ring, z)},
            (flag,),
        )
        for cid, flag, comment, z in specs
    ]
    return [Group({}, cases)]


table_file(
    "model.softmax_fixed",
    "model/softmax_fixed.json",
    section="6.4",
    anchor="spec/06-models.md#softmax_fixed",
    params={"ring_bits": 64, "frac_bits": 18},
    header=[
        "BumbleBee's softmax in fixed point (spec 6.4): exp_fixed, reciprocal_fixed, softmax_fixed.",
        "Each case: logits z (rows of n, ring-vec hex, row-major); intermediates d = z - max,",
        "e = exp_fixed(d), s = row sums, r = reciprocal_fixed(s); output p.",
    ],
    notes={"Normal": NORMAL, "Clip": EDGE},
    fn=_softmax,
    groups=_softmax_groups,
)


MOE_CONFIGS: tuple[tuple[str, MoEConfig], ...] = (
    ("geglu_top1", MoEConfig(d_model=4, d_ff=6, n_experts=4)),
    (
        "swiglu_top2_shared",
        MoEConfig(
            d_model=4,
            d_ff=6,
            n_experts=4,
            top_k=2,
            expert_kind="swiglu",
            gate_norm="softmax_topk",
            n_shared_experts=1,
            d_ff_shared=3,
        ),
    ),
    ("relu_top2", MoEConfig(d_model=4, d_ff=6, n_experts=4, top_k=2, expert_kind="relu")),
    (
        "gptoss_bias_top2_gated_shared",
        MoEConfig(
            d_model=4,
            d_ff=6,
            n_experts=4,
            top_k=2,
            expert_kind="gptoss",
            gate_norm="softmax_topk",
            expert_bias=True,
            n_shared_experts=1,
            d_ff_shared=3,
            shared_gate=True,
        ),
    ),
)
# The encoded arrays a case lists (those the configuration has).
ENCODED = (
    "w_gate",
    "w1",
    "v",
    "w2",
    "shared_w1",
    "shared_v",
    "shared_w2",
    "b_gate",
    "score_bias",
    "b1",
    "bv",
    "b2",
    "shared_gate",
)


MOE_TOKENS = 3


def _weights(config: MoEConfig, seed: bytes) -> FixedWeights:
    return encode_weights(config, default_weights(config, seed))


def _moe(inputs: Json, params: Json) -> tuple[Json, Json | None]:
    config = MoEConfig(**{k: v for k, v in params.items() if k != "T"})
    ring = FXP.ring
    x = ring_of(ring, inputs["x"], (param(params, "T"), config.d_model))
    out = moe_fixed(config, _weights(config, bytes.fromhex(inputs["weights_seed"])), x)
    outputs = {
        "y": hex_ring(ring, out.y),
        "experts": [[int(e) for e in row] for row in out.experts],
        "gates": hex_ring(ring, out.gates),
    }
    return outputs, None


def _moe_groups() -> list[Group]:
    protocol = "model.moe_fixed"
    groups = []
    for name, config in MOE_CONFIGS:
        cid = f"{protocol}/{name}/0"
        seed = case_seed(protocol, cid)
        fw = _weights(config, seed)
        enc = {k: hex_ring(FXP.ring, getattr(fw, k)) for k in ENCODED if getattr(fw, k) is not None}
        x = FXP.encode(default_inputs(config, MOE_TOKENS, seed))
        inputs = {"weights_seed": seed.hex(), "weights": enc, "x": hex_ring(FXP.ring, x)}
        case = CaseSpec(cid, f"{name}: 3 default inputs", inputs)
        # The fields of as_dict but the ring (in params already): the family fields where set.
        fields = {k: v for k, v in config.as_dict().items() if k not in ("ring_bits", "frac_bits")}
        groups.append(Group({**fields, "T": MOE_TOKENS}, [case]))
    return groups


table_file(
    "model.moe_fixed",
    "model/moe_fixed.json",
    section="6.3.3",
    anchor="spec/06-models.md#moe_fixed",
    params={"ring_bits": 64, "frac_bits": 18},
    header=[
        "The fixed-point MoE layer (spec 6.3.3) on small configurations.",
        "Weights are default_weights(config, seed) (spec 6.5.1) with the case's weights_seed,",
        "also given encoded (ring-vec hex, row-major, the array shapes of spec 6.1).",
        "x = fxp_encode(default_inputs(config, T, weights_seed)) (spec 6.5.1), T tokens.",
        "Outputs: y (T x d_model), experts (T x k, best first), gates (T x k).",
    ],
    notes={"Normal": NORMAL},
    fn=_moe,
    groups=_moe_groups,
)
