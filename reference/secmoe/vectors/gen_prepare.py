"""Vector tables of the server's local preparation (spec §40.7, §20.6.3) and of the piecewise
fit (spec §6.2.2): no messages, so each is a function of its inputs.

``moe/prepare.json``: ``prepare_model`` of tiny configurations (the weights as the seed of
``default_weights``), each stack's block shape, ``stack_key`` and the SHA-256 of its prepared
residues, in memory or in the cache file of ``prepare_stack``; and ``unpacked_shape`` at a few
public shapes. ``model/fit_table.json``: ``fit_table`` of the committed activations.
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

import numpy as np

from secmoe.he.packing import MatmulShape, unpacked_shape
from secmoe.he.params import preset
from secmoe.model.config import MoEConfig
from secmoe.model.default import default_weights
from secmoe.model.fixed import encode_weights
from secmoe.model.piecewise import (
    FIT_POINTS,
    GPTOSS_ACT_BREAKPOINTS,
    Activation,
    fit_table,
    gelu,
    gptoss_act,
    quantise,
    silu,
)
from secmoe.moe.prepare import PreparedStack, forget, prepare_model
from secmoe.vectors.gen_moe import CONFIGS, EXPERT_CONFIGS
from secmoe.vectors.play import NORMAL, CaseSpec, Group, table_file
from secmoe.vectors.registry import Json, Note, case_seed

PREPARE = "moe.prepare"
FIT = "model.fit_table"
REFUSED = Note("INVALID", "an input the algorithm must refuse with SpecError")
# Budgets of prepare_model: every stack in memory, or every stack in its cache file.
BUDGETS = {"memory": 1 << 40, "file": 0}


def _shape_json(s: MatmulShape) -> Json:
    return {k: getattr(s, k) for k in ("tokens", "d_in", "d_out", "n_t", "n_i", "n_o")}


def _stack_json(stack: PreparedStack) -> Json:
    if stack.data is not None:
        digest = hashlib.sha256(np.ascontiguousarray(stack.data, dtype="<u4").tobytes())
    else:
        assert stack.path is not None
        digest = hashlib.sha256(stack.path.read_bytes())
    return {
        "shape": _shape_json(stack.shape),
        "key": stack.key.hex(),
        "in_memory": stack.data is not None,
        "sha256": digest.hexdigest(),
    }


def _prepare(inputs: Json, params: Json) -> tuple[Json, Json | None]:
    if "tokens" in inputs:
        p = preset(params["set"])
        shape = unpacked_shape(p, inputs["tokens"], inputs["d_in"], inputs["d_out"])
        return {"shape": _shape_json(shape)}, None
    config = MoEConfig(**inputs["config"])
    weights = encode_weights(config, default_weights(config, bytes.fromhex(inputs["weights_seed"])))
    with tempfile.TemporaryDirectory() as tmp:
        model = prepare_model(config, weights, Path(tmp), inputs["memory_budget"])
        try:
            stacks = {name: _stack_json(s) for name, s in model.stacks.items()}
        finally:
            forget(weights)
    return {"stacks": stacks}, None


def _prepare_groups() -> list[Group]:
    cases = []
    for name, config in (*CONFIGS, EXPERT_CONFIGS[1]):
        for where, budget in BUDGETS.items():
            cid = f"{PREPARE}/prepare_model/{name}/{where}"
            inputs = {
                "config": config.as_dict(),
                "weights_seed": case_seed(PREPARE, f"{PREPARE}/{name}").hex(),
                "memory_budget": budget,
            }
            cases.append(CaseSpec(cid, f"prepare_model of {name}, stacks in {where}", inputs))
    shapes = [
        CaseSpec(
            f"{PREPARE}/unpacked_shape/{t}x{d_in}x{d_out}",
            f"unpacked_shape on he16384, {t} token(s), d_in {d_in}, d_out {d_out}",
            {"tokens": t, "d_in": d_in, "d_out": d_out},
        )
        for t, d_in, d_out in ((1, 768, 3072), (1, 4, 8), (3, 9, 5), (4, 4096, 14336))
    ]
    bad = CaseSpec(
        f"{PREPARE}/unpacked_shape/zero",
        "a zero dimension",
        {"tokens": 1, "d_in": 0, "d_out": 8},
        ("Refused",),
        base_id=f"{PREPARE}/unpacked_shape/1x4x8",
        error={"kind": "spec_error", "party": None, "label": ""},
    )
    return [
        Group({"algorithm": "prepare_model", "set": "he16384"}, cases),
        Group({"algorithm": "unpacked_shape", "set": "he16384"}, [*shapes, bad]),
    ]


table_file(
    PREPARE,
    "moe/prepare.json",
    section="40.7.4",
    anchor="spec/40-moe.md#prepare_model",
    params={"ring_bits": 64, "frac_bits": 18},
    header=[
        "The server's preparation of its expert stacks (spec 40.7) and unpacked_shape (spec",
        "20.6.3). prepare_model: inputs.config, the weights default_weights(config,",
        "weights_seed) encoded, memory_budget in bytes (0: every stack goes to its cache file)",
        "-> per stack (w1, v for gated kinds, w2): its block shape, stack_key (hex), in_memory,",
        "and sha256: of the residues (out_blocks, in_blocks, E, L, N) as u32 little-endian",
        "row-major in memory, of the whole cache file (its 4096-byte header, then the same",
        "residues) otherwise. unpacked_shape: inputs set, tokens, d_in, d_out -> the shape.",
    ],
    notes={"Normal": NORMAL, "Refused": REFUSED},
    fn=_prepare,
    groups=_prepare_groups,
)

ACTIVATIONS: dict[str, Activation] = {"gelu": gelu, "silu": silu, "gptoss_act": gptoss_act}


def _fit(inputs: Json, params: Json) -> tuple[Json, Json | None]:
    right = tuple(float(c) for c in inputs["right"])
    bps = tuple(float(b) for b in inputs["breakpoints"])
    table = fit_table(
        inputs["name"], ACTIVATIONS[inputs["name"]], bps, (right[0], right[1], right[2])
    )
    return {"rows": [[repr(c) for c in row] for row in table.coeffs]}, None


def _fit_groups() -> list[Group]:
    right_x = ["0.0", "1.0", "0.0"]
    gptoss_right = ["0.0", "0.0", repr(quantise(float(gptoss_act(GPTOSS_ACT_BREAKPOINTS[-1]))))]
    specs = (
        ("gelu", [-5.0, -3.0, -1.0, 1.0, 3.0], right_x),
        ("silu", [-7.5, -1.5, 0.0, 1.5, 7.5], right_x),
        ("gptoss_act", list(GPTOSS_ACT_BREAKPOINTS), gptoss_right),
    )
    cases = [
        CaseSpec(
            f"{FIT}/{name}",
            f"{name} at its committed breakpoints",
            {"name": name, "breakpoints": [repr(b) for b in bps], "right": right},
        )
        for name, bps, right in specs
    ]
    cases.append(
        CaseSpec(
            f"{FIT}/one-breakpoint",
            "one breakpoint: no middle segment",
            {"name": "gelu", "breakpoints": ["0.0"], "right": right_x},
            ("Refused",),
            base_id=f"{FIT}/gelu",
            error={"kind": "spec_error", "party": None, "label": ""},
        )
    )
    return [Group({}, cases)]


table_file(
    FIT,
    "model/fit_table.json",
    section="6.2.2",
    anchor="spec/06-models.md#fit_table",
    params={"points": FIT_POINTS, "quantum_bits": 32},
    header=[
        "fit_table (spec 6.2.2): inputs.name (the activation of spec 6.2: gelu, silu,",
        "gptoss_act), breakpoints and the right row (reals as repr strings) -> outputs.rows, the",
        "table's k + 1 rows (c2, c1, c0) as repr strings: (0, 0, 0), the least-squares fits on",
        "100001 points per middle segment rounded to multiples of 2^-32, then the right row.",
        "Equal to the committed tables of spec 6.2.",
    ],
    notes={"Normal": NORMAL, "Refused": REFUSED},
    fn=_fit,
    groups=_fit_groups,
)
