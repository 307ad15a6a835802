"""Vector table of spec §6.8: the safetensors writer and reader, ``config.json`` derivation and
one MoE layer loaded from a tiny checkpoint of each weight layout.

Every checkpoint is built here from its family's published naming (§6.8.3's table) with tiny
shapes (``d = 4``, ``d_ff = 4``, 4 experts) and weights ``uniform_tensor(case seed, name, shape,
1/2)`` (the model PRG of §6.5), written by ``write_safetensors`` as F32; the case carries the
file's bytes, so a consumer needs no builder. Cases are grouped by algorithm (group param
``algorithm``); each group's local function reads its own ``inputs``.
"""

from __future__ import annotations

import json
import struct
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from secmoe.model.checkpoint import load_layer
from secmoe.model.default import uniform_tensor, weights_digest
from secmoe.model.hf_config import Derived, derive_moe_config
from secmoe.model.safetensors import read_safetensors, write_safetensors
from secmoe.vectors.gen_float import reals, reals_of
from secmoe.vectors.play import CaseSpec, Group, table_file
from secmoe.vectors.registry import Json, Note, case_seed

PROTOCOL = "model.checkpoint"
E, D, FF = 4, 4, 4  # experts, d_model, d_ff of every checkpoint
SCALE = 0.5
Shapes = dict[str, tuple[int, ...]]


def _experts(prefix: str, style: str, parts: tuple[str, str, str]) -> Shapes:
    """Per-expert GLU tensors: parts 0 and 1 ``(FF, D)``, part 2 ``(D, FF)``."""
    out: Shapes = {}
    for e in range(E):
        q = prefix + style.format(e=e)
        out |= {q + parts[0] + ".weight": (FF, D), q + parts[1] + ".weight": (FF, D)}
        out[q + parts[2] + ".weight"] = (D, FF)
    return out


def _same(names: list[str], shape: tuple[int, ...]) -> Shapes:
    return dict.fromkeys(names, shape)


def _glu(prefix: str) -> Shapes:
    """One MLP of the Hugging Face ``gate_proj``, ``up_proj``, ``down_proj`` naming."""
    return {
        prefix + "gate_proj.weight": (FF, D),
        prefix + "up_proj.weight": (FF, D),
        prefix + "down_proj.weight": (D, FF),
    }


QWEN = ("gate_proj", "up_proj", "down_proj")
MLP = "model.layers.0.mlp."
# name -> (config.json or None, tensor shapes, layer argument): one per weight layout of §6.8.3.
CHECKPOINTS: dict[str, tuple[Json | None, Shapes, int | None]] = {
    "mixtral": (
        {"model_type": "mixtral", "num_local_experts": E, "num_experts_per_tok": 2},
        {"model.layers.0.block_sparse_moe.gate.weight": (E, D), "model.norm.weight": (D,)}
        | _experts("model.layers.0.block_sparse_moe.", "experts.{e}.", ("w1", "w3", "w2")),
        None,
    ),
    "mixtral-no-config": (
        None,
        {"model.layers.2.block_sparse_moe.gate.weight": (E, D)}
        | _experts("model.layers.2.block_sparse_moe.", "experts.{e}.", ("w1", "w3", "w2")),
        2,
    ),
    "switch": (
        {
            "model_type": "switch_transformers",
            "num_experts": E,
            "expert_capacity": 8,
            "dense_act_fn": "relu",
            "is_gated_act": False,
        },
        {"encoder.block.1.layer.1.mlp.router.classifier.weight": (E, D)}
        | _same(
            [f"encoder.block.1.layer.1.mlp.experts.expert_{e}.wi.weight" for e in range(E)], (FF, D)
        )
        | _same(
            [f"encoder.block.1.layer.1.mlp.experts.expert_{e}.wo.weight" for e in range(E)], (D, FF)
        ),
        1,
    ),
    "qwen2_moe": (
        {
            "model_type": "qwen2_moe",
            "num_experts": E,
            "num_experts_per_tok": 2,
            "norm_topk_prob": False,
            "shared_expert_intermediate_size": FF,
        },
        {MLP + "gate.weight": (E, D), MLP + "shared_expert_gate.weight": (1, D)}
        | _experts(MLP, "experts.{e}.", QWEN)
        | _glu(MLP + "shared_expert."),
        0,
    ),
    "deepseek_v3": (
        {
            "model_type": "deepseek_v3",
            "n_routed_experts": E,
            "num_experts_per_tok": 2,
            "n_group": 2,
            "topk_group": 1,
            "routed_scaling_factor": 2.5,
            "n_shared_experts": 1,
            "first_k_dense_replace": 0,  # the tiny checkpoint's layer 0 is a MoE layer
        },
        {MLP + "gate.weight": (E, D), MLP + "gate.e_score_correction_bias": (E,)}
        | _experts(MLP, "experts.{e}.", QWEN)
        | _glu(MLP + "shared_experts."),
        0,
    ),
    "gpt_oss": (
        {"model_type": "gpt_oss", "num_local_experts": E, "num_experts_per_tok": 2},
        {
            MLP + "router.weight": (E, D),
            MLP + "router.bias": (E,),
            MLP + "experts.gate_up_proj": (E, D, 2 * FF),
            MLP + "experts.gate_up_proj_bias": (E, 2 * FF),
            MLP + "experts.down_proj": (E, FF, D),
            MLP + "experts.down_proj_bias": (E, D),
        },
        0,
    ),
    "granitemoe": (
        {"model_type": "granitemoe", "num_local_experts": E, "num_experts_per_tok": 2},
        {
            "model.layers.0.block_sparse_moe.router.layer.weight": (E, D),
            "model.layers.0.block_sparse_moe.input_linear.weight": (E, 2 * FF, D),
            "model.layers.0.block_sparse_moe.output_linear.weight": (E, D, FF),
        },
        0,
    ),
    "dbrx": (
        {
            "model_type": "dbrx",
            "ffn_config": {"moe_num_experts": E, "moe_top_k": 2, "ffn_act_fn": {"name": "silu"}},
        },
        {"transformer.blocks.0.ffn.router.layer.weight": (E, D)}
        | _same(
            [f"transformer.blocks.0.ffn.experts.mlp.{p}" for p in ("w1", "v1", "w2")], (E * FF, D)
        ),
        0,
    ),
    "llama4": (
        {"model_type": "llama4_text", "num_local_experts": E, "num_experts_per_tok": 1},
        {
            "model.layers.0.feed_forward.router.weight": (E, D),
            "model.layers.0.feed_forward.experts.gate_up_proj": (E, D, 2 * FF),
            "model.layers.0.feed_forward.experts.down_proj": (E, FF, D),
        }
        | _glu("model.layers.0.feed_forward.shared_expert."),
        0,
    ),
}


def _tensors(cid: str, shapes: Shapes) -> dict[str, np.ndarray]:
    seed = case_seed(PROTOCOL, cid)
    return {name: uniform_tensor(seed, name, shape, SCALE) for name, shape in shapes.items()}


def _file_bytes(
    tensors: dict[str, np.ndarray], dtype: str = "F32", meta: Json | None = None
) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.safetensors"
        write_safetensors(path, tensors, dtype, meta)  # type: ignore[arg-type]
        return path.read_bytes()


def _raw_file(header: Json, buffer: bytes, pad: bool = True) -> bytes:
    """A safetensors file from a header object and a buffer, built byte by byte for the
    refusal cases the writer cannot produce."""
    text = json.dumps(header, separators=(",", ":")).encode()
    if pad:
        text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + buffer


def _tensors_json(tensors: dict[str, np.ndarray]) -> Json:
    return {name: reals(tensors[name]) for name in sorted(tensors)}


# --- the local function of each group ----------------------------------------------------------


def _write(inputs: Json, params: Json) -> tuple[Json, Json | None]:
    tensors = {name: reals_of(v) for name, v in inputs["tensors"].items()}
    return {"file": _file_bytes(tensors, inputs["dtype"], inputs.get("metadata")).hex()}, None


def _read(inputs: Json, params: Json) -> tuple[Json, Json | None]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.safetensors"
        path.write_bytes(bytes.fromhex(inputs["file"]))
        tensors = read_safetensors(path, inputs.get("names"))
    return {"tensors": _tensors_json(tensors)}, None


def _derived_json(d: Derived) -> Json:
    return {
        "family": d.family,
        "model_type": d.model_type,
        "fields": {k: d.fields[k] for k in sorted(d.fields)},
        "sources": {k: d.sources[k] for k in sorted(d.sources)},
        "n_experts": d.n_experts,
        "shared": d.shared,
        "expert_capacity": d.expert_capacity,
        "missing": {k: d.missing[k] for k in sorted(d.missing)},
    }


def _derive(inputs: Json, params: Json) -> tuple[Json, Json | None]:
    return _derived_json(derive_moe_config(json.loads(inputs["config_json"]))), None


def _load(inputs: Json, params: Json) -> tuple[Json, Json | None]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name, content in inputs["files"].items():
            if name.endswith(".json"):
                (folder / name).write_text(content)
            else:
                (folder / name).write_bytes(bytes.fromhex(content))
        loaded = load_layer(folder, inputs["layer"])
    return {
        "config": loaded.config.as_dict(),
        "family": loaded.family,
        "layer": loaded.layer,
        "block": loaded.prefix,
        "sources": {k: loaded.sources[k] for k in sorted(loaded.sources)},
        "expert_capacity": loaded.expert_capacity,
        "weights_sha256": weights_digest(loaded.weights),
    }, None


FUNCTIONS: dict[str, Callable[[Json, Json], tuple[Json, Json | None]]] = {
    "write_safetensors": _write,
    "read_safetensors": _read,
    "derive_moe_config": _derive,
    "load_layer": _load,
}


def _local(inputs: Json, params: Json) -> tuple[Json, Json | None]:
    return FUNCTIONS[params["algorithm"]](inputs, params)


# --- the cases ----------------------------------------------------------------------------------


def _refused(cid: str, what: str, base: str, inputs: Json, *names: str) -> CaseSpec:
    error = {"kind": "spec_error", "party": None, "label": "", "names": list(names)}
    return CaseSpec(cid, what, inputs, ("Refused",), base_id=base, error=error)


def _write_group() -> Group:
    p = f"{PROTOCOL}/write_safetensors"
    tensors = _tensors(p, {"a.weight": (2, 3), "b": (3,)})
    # Rounding edges (§6.8.2 step 2): the BF16 double-rounding value, a tie to even for F32,
    # an F16 subnormal, and a scalar.
    tensors["edges"] = np.array([1 + 2.0**-8 + 2.0**-30, 1 + 2.0**-24, 2.0**-20, -0.0])
    tensors["scalar"] = np.array(0.25)
    cases = [
        CaseSpec(
            f"{p}/{dtype.lower()}",
            f"four tensors written as {dtype}" + (", with metadata" if meta else ""),
            {
                "tensors": _tensors_json(tensors),
                "dtype": dtype,
                **({"metadata": meta} if meta else {}),
            },
        )
        for dtype, meta in (
            ("F64", None),
            ("F32", {"format": "pt"}),
            ("F16", None),
            ("BF16", {"b": "2", "a": "1"}),
        )
    ]
    big = {"x": reals(np.array([1.0, 70000.0]))}
    cases.append(
        _refused(
            f"{p}/f16-overflow",
            "70000 is beyond F16",
            f"{p}/f16",
            {"tensors": big, "dtype": "F16"},
            "'x'",
            "F16",
        )
    )
    return Group({"algorithm": "write_safetensors"}, cases)


def _read_group() -> Group:
    p = f"{PROTOCOL}/read_safetensors"
    tensors = _tensors(p, {"a.weight": (2, 3), "b": (3,)}) | {"scalar": np.array(-1.5)}
    cases = []
    for dtype in ("F64", "F32", "F16", "BF16"):
        data = _file_bytes(tensors, dtype, {"format": "pt"} if dtype == "F16" else None)
        cases.append(
            CaseSpec(
                f"{p}/{dtype.lower()}", f"read every tensor of a {dtype} file", {"file": data.hex()}
            )
        )
    f32 = _file_bytes(tensors, "F32")
    base = f"{p}/f32"
    cases.append(
        CaseSpec(
            f"{p}/names", "read only b and scalar", {"file": f32.hex(), "names": ["scalar", "b"]}
        )
    )
    entry = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}
    buf = bytes(8)
    refusals = [
        ("trailing", "a byte after the last tensor", f32 + b"\x00", ("belong to no tensor",)),
        ("header-length", "N exceeds the file", struct.pack("<Q", 1 << 20) + f32[8:], ("exceeds",)),
        (
            "hole",
            "a hole before the second tensor",
            _raw_file({"a": entry, "b": {**entry, "data_offsets": [12, 20]}}, bytes(20)),
            ("bytes 8..12",),
        ),
        (
            "overlap",
            "two tensors overlap",
            _raw_file({"a": entry, "b": {**entry, "data_offsets": [4, 12]}}, bytes(12)),
            ("overlap",),
        ),
        (
            "unknown-dtype",
            "an unknown dtype",
            _raw_file({"a": {**entry, "dtype": "F12"}}, buf),
            ("'a'", "F12"),
        ),
        (
            "integer",
            "an I32 tensor is not read",
            _raw_file({"a": {**entry, "dtype": "I32"}}, buf),
            ("'a'", "I32"),
        ),
        (
            "length",
            "END - BEGIN differs from the shape's bytes",
            _raw_file({"a": {**entry, "shape": [3]}}, buf),
            ("'a'",),
        ),
        ("missing-name", "a requested name is absent", f32, ("'c'",)),
    ]
    for name, what, data, names in refusals:
        inputs: Json = {"file": data.hex()}
        if name == "missing-name":
            inputs["names"] = ["c"]
        cases.append(_refused(f"{p}/{name}", what, base, inputs, *names))
    duplicate = b'{"a":' + json.dumps(entry).encode() + b',"a":' + json.dumps(entry).encode() + b"}"
    duplicate += b" " * (-len(duplicate) % 8)
    cases.append(
        _refused(
            f"{p}/duplicate",
            "a key twice in the header",
            base,
            {"file": (struct.pack("<Q", len(duplicate)) + duplicate + buf).hex()},
            "'a'",
        )
    )
    return Group({"algorithm": "read_safetensors"}, cases)


def _derive_group() -> Group:
    p = f"{PROTOCOL}/derive_moe_config"
    configs = {name: c for name, (c, _, _) in CHECKPOINTS.items() if c is not None}
    configs["deepseek_v2-groups"] = {
        "model_type": "deepseek_v2",
        "n_routed_experts": 8,
        "num_experts_per_tok": 2,
        "topk_method": "group_limited_greedy",
        "n_group": 4,
        "topk_group": 2,
        "routed_scaling_factor": 1.5,
        "n_shared_experts": 2,
    }
    configs["qwen3_moe-missing"] = {"model_type": "qwen3_moe", "num_experts": 8}
    configs["llama4-text-config"] = {
        "model_type": "llama4",
        "text_config": {"num_local_experts": 4},
    }
    cases = [
        CaseSpec(f"{p}/{name}", f"config.json of {name}", {"config_json": json.dumps(c)})
        for name, c in configs.items()
    ]
    base = f"{p}/mixtral"
    mixtral = configs["mixtral"]
    refusals = [
        ("phimoe", "a refused family", {"model_type": "phimoe"}, ("phimoe", "sparsemixer")),
        ("unknown", "an unknown model_type", {"model_type": "llama"}, ("'llama'",)),
        (
            "no-model-type",
            "no model_type",
            {"architectures": ["MixtralForCausalLM"]},
            ("model_type",),
        ),
        (
            "quantised",
            "a quantised checkpoint",
            {**mixtral, "quantization_config": {"quant_method": "mxfp4"}},
            ("quantization_config", "mxfp4"),
        ),
        (
            "activation",
            "an activation secmoe does not have",
            {**mixtral, "hidden_act": "gelu_pytorch_tanh"},
            ("hidden_act",),
        ),
        (
            "top-k-type",
            "num_experts_per_tok is not an integer",
            {**mixtral, "num_experts_per_tok": 1.5},
            ("num_experts_per_tok",),
        ),
        (
            "deepseek_v2-norm",
            "DeepSeek-V2 with norm_topk_prob",
            {**configs["deepseek_v2-groups"], "norm_topk_prob": True},
            ("norm_topk_prob",),
        ),
        (
            "llama4-top2",
            "Llama4 with two experts per token",
            {**configs["llama4"], "num_experts_per_tok": 2},
            ("num_experts_per_tok",),
        ),
    ]
    cases += [
        _refused(f"{p}/{name}", what, base, {"config_json": json.dumps(c)}, *names)
        for name, what, c, names in refusals
    ]
    return Group({"algorithm": "derive_moe_config"}, cases)


def _checkpoint_inputs(cid: str, config: Json | None, shapes: Shapes, layer: int | None) -> Json:
    files = {"model.safetensors": _file_bytes(_tensors(cid, shapes)).hex()}
    if config is not None:
        files["config.json"] = json.dumps(config, indent=2)
    return {"files": files, "layer": layer}


def _load_group() -> Group:
    p = f"{PROTOCOL}/load_layer"
    cases = [
        CaseSpec(
            f"{p}/{name}",
            f"layer {layer} of a tiny {name} checkpoint",
            _checkpoint_inputs(f"{p}/{name}", c, s, layer),
        )
        for name, (c, s, layer) in CHECKPOINTS.items()
    ]
    mixtral_c, mixtral_s, _ = CHECKPOINTS["mixtral"]
    assert mixtral_c is not None
    v3_c, v3_s, _ = CHECKPOINTS["deepseek_v3"]
    qwen_c, qwen_s, _ = CHECKPOINTS["qwen2_moe"]
    bias = MLP + "gate.e_score_correction_bias"
    stray = "model.layers.0.block_sparse_moe.experts.0.w1.bias"
    refusals = [
        (
            "expert-count",
            "config.json states 8 experts, the router has 4",
            {**mixtral_c, "num_local_experts": 8},
            mixtral_s,
            ("8 experts", "block_sparse_moe.gate.weight"),
        ),
        (
            "no-score-bias",
            "DeepSeek-V3 without its score-correction bias",
            v3_c,
            {k: s for k, s in v3_s.items() if k != bias},
            ("score_bias", "e_score_correction_bias"),
        ),
        (
            "no-shared",
            "qwen2_moe's config has a shared expert, the block none",
            qwen_c,
            {k: s for k, s in qwen_s.items() if "shared_expert" not in k},
            ("shared experts",),
        ),
        (
            "stray",
            "a tensor with no role under the block",
            mixtral_c,
            mixtral_s | {stray: (FF,)},
            (stray,),
        ),
        (
            "dense-layer",
            "layer 1 has no MoE block",
            mixtral_c,
            mixtral_s | {"model.layers.1.mlp.gate_proj.weight": (FF, D)},
            ("layer 1",),
        ),
    ]
    for name, what, c, s, names in refusals:
        layer = 1 if name == "dense-layer" else None
        cases.append(
            _refused(
                f"{p}/{name}",
                what,
                f"{p}/mixtral",
                _checkpoint_inputs(f"{p}/{name}", c, s, layer),
                *names,
            )
        )
    return Group({"algorithm": "load_layer"}, cases)


table_file(
    PROTOCOL,
    "model/checkpoint.json",
    section="6.8.3",
    anchor="spec/06-models.md#load_layer",
    params={"d_model": D, "d_ff": FF, "n_experts": E},
    header=[
        "Checkpoint loading (spec 6.8), one group per algorithm (params.algorithm).",
        "write_safetensors: inputs.tensors (name -> {shape, f64: little-endian binary64 hex,",
        "decimal}), dtype, metadata -> outputs.file (the file's bytes, hex). read_safetensors:",
        "inputs.file, optionally names -> outputs.tensors (as binary64). derive_moe_config:",
        "inputs.config_json (the text of config.json) -> the family, fields with their sources,",
        "n_experts, shared, expert_capacity, missing. load_layer: inputs.files (config.json as",
        "text, model.safetensors as hex, written into one directory), inputs.layer (null: the",
        "first MoE layer) -> the MoEConfig (as_dict), family, layer, block prefix, sources and",
        "weights_sha256: SHA-256 of the binary64 bytes of each MoEWeights array present, in",
        "w_gate, w1, v, w2, shared_w1, shared_v, shared_w2, b_gate, score_bias, b1, bv, b2,",
        "shared_gate order. Weights: uniform_tensor(case_seed, tensor name, shape, 1/2), F32.",
        "Refused cases: error.kind spec_error, error.names the substrings the message names.",
    ],
    notes={
        "Normal": Note("NORMAL", "an ordinary input"),
        "Refused": Note("INVALID", "an input the algorithm must refuse with SpecError"),
    },
    fn=_local,
    groups=lambda: [_write_group(), _read_group(), _derive_group(), _load_group()],
)
