"""Loading MoE layers from safetensors checkpoints (spec/06-models.md#68-loading-checkpoint-weights).

Every file here is built in the test: by the writer, or byte by byte with struct and json so that
the reader is checked against the format description and not against our own writer.
"""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from secmoe.errors import SpecError
from secmoe.model.checkpoint import ConfigOverrideWarning, load_moe_layer
from secmoe.model.plain import moe_float
from secmoe.model.safetensors import (
    FLOAT_DTYPES,
    MAX_HEADER_BYTES,
    read_header,
    read_safetensors,
    write_safetensors,
)

Raw = dict[str, np.ndarray]


def grid(rng: np.random.Generator, *shape: int) -> np.ndarray:
    """Multiples of 2^-6 in [-2, 2]: 8 significant bits at most, exact in BF16, F16 and F32."""
    return rng.integers(-128, 129, size=shape).astype(np.float64) / 64.0


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max())
    return e / e.sum()


def silu(u: np.ndarray) -> np.ndarray:
    return u / (1.0 + np.exp(-u))


def file_bytes(header: object, buffer: bytes = b"", n: int | None = None) -> bytes:
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(text) if n is None else n) + text + buffer


def put(tmp_path: Path, data: bytes, name: str = "m.safetensors") -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


# --- checkpoints in each naming ---------------------------------------------------------------


def mixtral(rng: np.random.Generator, layers: tuple[int, ...] = (0, 1), e: int = 4) -> Raw:
    d, ff = 6, 5
    raw: Raw = {"model.embed_tokens.weight": grid(rng, 10, d)}
    for n in layers:
        p = f"model.layers.{n}."
        raw[p + "post_attention_layernorm.weight"] = grid(rng, d)
        raw[p + "self_attn.q_proj.weight"] = grid(rng, d, d)
        raw[p + "block_sparse_moe.gate.weight"] = grid(rng, e, d)
        for i in range(e):
            q = f"{p}block_sparse_moe.experts.{i}."
            raw[q + "w1.weight"] = grid(rng, ff, d)
            raw[q + "w3.weight"] = grid(rng, ff, d)
            raw[q + "w2.weight"] = grid(rng, d, ff)
    return raw


def glu_block(rng: np.random.Generator, p: str, e: int, d: int, ff: int) -> Raw:
    raw: Raw = {p + "gate.weight": grid(rng, e, d)}
    for i in range(e):
        raw[f"{p}experts.{i}.gate_proj.weight"] = grid(rng, ff, d)
        raw[f"{p}experts.{i}.up_proj.weight"] = grid(rng, ff, d)
        raw[f"{p}experts.{i}.down_proj.weight"] = grid(rng, d, ff)
    return raw


def qwen2(rng: np.random.Generator, shared_gate: bool = True, e: int = 5) -> Raw:
    d, ff, sff = 6, 4, 7
    raw: Raw = {"model.layers.0.mlp.gate_proj.weight": grid(rng, 9, d)}  # a dense layer 0
    raw["model.layers.0.mlp.up_proj.weight"] = grid(rng, 9, d)
    raw["model.layers.0.mlp.down_proj.weight"] = grid(rng, d, 9)
    p = "model.layers.1.mlp."
    raw |= glu_block(rng, p, e, d, ff)
    raw[p + "shared_expert.gate_proj.weight"] = grid(rng, sff, d)
    raw[p + "shared_expert.up_proj.weight"] = grid(rng, sff, d)
    raw[p + "shared_expert.down_proj.weight"] = grid(rng, d, sff)
    if shared_gate:
        raw[p + "shared_expert_gate.weight"] = grid(rng, 1, d)
    return raw


def deepseek(rng: np.random.Generator, e: int = 8) -> Raw:
    d, ff, sff = 5, 3, 6
    p = "model.layers.2.mlp."
    raw = glu_block(rng, p, e, d, ff)
    raw[p + "shared_experts.gate_proj.weight"] = grid(rng, sff, d)
    raw[p + "shared_experts.up_proj.weight"] = grid(rng, sff, d)
    raw[p + "shared_experts.down_proj.weight"] = grid(rng, d, sff)
    return raw


def switch(rng: np.random.Generator, e: int = 4) -> Raw:
    d, ff = 6, 8
    raw: Raw = {}
    for stack, sub in (("encoder", 1), ("decoder", 2)):
        raw[f"{stack}.block.0.layer.{sub}.DenseReluDense.wi.weight"] = grid(rng, ff, d)
        raw[f"{stack}.block.0.layer.{sub}.DenseReluDense.wo.weight"] = grid(rng, d, ff)
        p = f"{stack}.block.1.layer.{sub}."
        raw[p + "layer_norm.weight"] = grid(rng, d)
        raw[p + "mlp.router.classifier.weight"] = grid(rng, e, d)
        for i in range(e):
            raw[f"{p}mlp.experts.expert_{i}.wi.weight"] = grid(rng, ff, d)
            raw[f"{p}mlp.experts.expert_{i}.wo.weight"] = grid(rng, d, ff)
    return raw


def save(tmp_path: Path, raw: Raw, dtype: str = "F32", name: str = "m.safetensors") -> Path:
    p = tmp_path / name
    write_safetensors(p, raw, dtype)  # type: ignore[arg-type]
    return p


# --- the safetensors reader and writer --------------------------------------------------------


def test_writer_bytes_follow_the_format(tmp_path: Path) -> None:
    p = tmp_path / "w.safetensors"
    write_safetensors(p, {"b": [[1.0, 2.0]], "a": [0.5]}, "F32", {"format": "pt"})
    header = (
        b'{"__metadata__":{"format":"pt"},'
        b'"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},'
        b'"b":{"dtype":"F32","shape":[1,2],"data_offsets":[4,12]}}'
    )
    header += b" " * (-len(header) % 8)
    expected = struct.pack("<Q", len(header)) + header + struct.pack("<3f", 0.5, 1.0, 2.0)
    assert p.read_bytes() == expected
    assert len(header) % 8 == 0
    assert read_header(p).metadata == {"format": "pt"}


def test_reader_on_a_hand_built_file(tmp_path: Path) -> None:
    bf16 = struct.pack("<f", 3.0)[2:] + struct.pack("<f", -0.15625)[2:]
    buffer = struct.pack("<d", -1.25) + struct.pack("<2e", 1.5, -2.0) + bf16
    header = {
        "__metadata__": {"k": "v"},
        "scalar": {"dtype": "F64", "shape": [], "data_offsets": [0, 8]},
        "half": {"dtype": "F16", "shape": [2], "data_offsets": [8, 12]},
        "empty": {"dtype": "F32", "shape": [0, 3], "data_offsets": [12, 12]},
        "brain": {"dtype": "BF16", "shape": [2, 1], "data_offsets": [12, 16]},
    }
    p = put(tmp_path, file_bytes(header, buffer))  # no header padding: allowed
    t = read_safetensors(p)
    assert list(t) == ["brain", "empty", "half", "scalar"]
    assert t["scalar"].shape == () and t["scalar"] == -1.25
    assert t["half"].tolist() == [1.5, -2.0]
    assert t["brain"].tolist() == [[3.0], [-0.15625]]
    assert t["empty"].shape == (0, 3)
    assert all(a.dtype == np.float64 for a in t.values())
    assert read_header(p).metadata == {"k": "v"}


def test_lazy_read_skips_other_tensors(tmp_path: Path) -> None:
    # "ids" is I64: a valid tensor that is not read as float; asking only for "w" never reads it.
    header = {
        "ids": {"dtype": "I64", "shape": [1], "data_offsets": [0, 8]},
        "w": {"dtype": "F32", "shape": [1], "data_offsets": [8, 12]},
    }
    p = put(tmp_path, file_bytes(header, struct.pack("<q", 7) + struct.pack("<f", 0.75)))
    assert read_safetensors(p, ["w"]) == {"w": np.array([0.75])}
    with pytest.raises(SpecError, match=r"dtype I64; only .* are read"):
        read_safetensors(p)
    with pytest.raises(SpecError, match="no tensor named 'x'"):
        read_safetensors(p, ["x"])
    with pytest.raises(SpecError, match="not one string"):
        read_safetensors(p, "w")


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_round_trip_is_exact_on_representable_values(tmp_path: Path, dtype: str) -> None:
    rng = np.random.default_rng(1)
    raw = {"x.weight": grid(rng, 3, 4), "y": grid(rng, 2), "z": grid(rng, 0, 2)}
    back = read_safetensors(save(tmp_path, raw, dtype))
    assert sorted(back) == sorted(raw)
    for k, v in raw.items():
        assert back[k].shape == v.shape and np.array_equal(back[k], v)


def test_writer_rounds_to_nearest_even(tmp_path: Path) -> None:
    # BF16 keeps 8 significant bits: 1 + 2^-8 is a tie between 1 and 1 + 2^-7 (to even: 1);
    # 1 + 3 2^-8 is a tie between 1 + 2^-7 and 1 + 2^-6 (to even: 1 + 2^-6).
    # Just above the first tie rounds up; 2^-130 is a BF16 subnormal, kept exactly; 255.5 needs
    # 9 significant bits and ties to even (256).
    # 1 + 2^-8 + 2^-30 rounds up (through F32 it would become the tie 1 + 2^-8, then 1).
    values = np.array(
        [1 + 2**-8, 1 + 3 * 2**-8, 1 + 2**-8 + 2**-20, -(2.0**-130), 255.5, 0.1, 1 + 2**-8 + 2**-30]
    )
    back = read_safetensors(save(tmp_path, {"v": values}, "BF16"))["v"]
    assert back.tolist()[:5] == [1.0, 1 + 2**-6, 1 + 2**-7, -(2.0**-130), 256.0]
    assert back[5] == 0.10009765625  # 0x3DCD: 0.1 rounded to 8 significant bits
    assert back[6] == 1 + 2**-7
    # BF16 subnormals are multiples of 2^-133: 0.5 and 1.5 quanta are ties, then just above one.
    tiny = np.array([2.0**-134, 3 * 2.0**-134, 2.0**-134 + 2.0**-140])
    back = read_safetensors(save(tmp_path, {"v": tiny}, "BF16"))["v"]
    assert back.tolist() == [0.0, 2.0**-132, 2.0**-133]
    rng = np.random.default_rng(0)
    # BF16 of binary32 values against the bit trick (add 0x7FFF plus the kept lowest bit, shift
    # by 16), which is exact for binary32 inputs.
    f = (rng.standard_normal(2000) * 2.0 ** rng.integers(-140, 100, 2000)).astype(np.float32)
    bits = f.view(np.uint32).astype(np.uint64)
    upper = ((bits + 0x7FFF + ((bits >> np.uint64(16)) & np.uint64(1))) >> np.uint64(16)).astype(
        np.uint32
    )
    want = (upper << np.uint32(16)).view(np.float32).astype(np.float64)
    back = read_safetensors(save(tmp_path, {"v": f.astype(np.float64)}, "BF16"))["v"]
    assert np.array_equal(back, want)
    # F32 and F16 against numpy's own casts, normal and subnormal ranges included.
    for dtype, top in (("F32", 20), ("F16", 13)):
        v = np.concatenate(
            [values, rng.standard_normal(2000) * 2.0 ** rng.integers(-160, top, 2000)]
        )
        back = read_safetensors(save(tmp_path, {"v": v}, dtype))["v"]
        assert np.array_equal(back, v.astype(_np_dtype(dtype)).astype(np.float64))


def _np_dtype(dtype: str) -> type[np.floating]:
    return np.float32 if dtype == "F32" else np.float16


@settings(max_examples=25)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["a", "b.w", "c.0", "Z"]), st.lists(st.integers(0, 3), max_size=3)
        ),
        min_size=1,
        max_size=4,
    ),
    st.sampled_from(FLOAT_DTYPES),
    st.integers(0, 2**32 - 1),
)
def test_round_trip_property(
    tmp_path_factory: pytest.TempPathFactory,
    specs: list[tuple[str, list[int]]],
    dtype: str,
    seed: int,
) -> None:
    rng = np.random.default_rng(seed)
    raw = {name: grid(rng, *shape) for name, shape in specs}
    p = save(tmp_path_factory.mktemp("rt"), raw, dtype)
    header = read_header(p)
    size = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2}[dtype]
    assert (header.data_start - 8) % 8 == 0
    assert p.stat().st_size == header.data_start + size * sum(v.size for v in raw.values())
    back = read_safetensors(p)
    assert all(np.array_equal(back[k], v) and back[k].shape == v.shape for k, v in raw.items())


ENTRY = {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}
MALFORMED = [
    ("short", b"\x01\x02", "shorter than the 8-byte"),
    ("beyond", file_bytes(b"{}", n=1000), "header length 1000 exceeds the 2 bytes"),
    ("start", file_bytes(b' {"a": 1}'), "must begin with"),
    ("utf8", file_bytes(b'{"\xff": 1}'), "not UTF-8"),
    ("json", file_bytes(b'{"a": '), "not valid JSON"),
    ("constant", file_bytes(b'{"a": NaN}'), "NaN is not JSON"),
    ("duplicate", file_bytes(b'{"a": {}, "a": {}}'), "duplicate key 'a'"),
    ("metadata", file_bytes({"__metadata__": {"k": 1}}), "must map strings to strings"),
    ("keys", file_bytes({"a": {"dtype": "F32", "shape": [1]}}), "exactly the keys"),
    ("extra key", file_bytes({"a": {**ENTRY, "x": 0}}, b"\0" * 4), "exactly the keys"),
    ("dtype", file_bytes({"a": {**ENTRY, "dtype": "F17"}}, b"\0" * 4), "unknown dtype 'F17'"),
    ("shape", file_bytes({"a": {**ENTRY, "shape": [True]}}, b"\0" * 4), "shape must be"),
    ("negative", file_bytes({"a": {**ENTRY, "shape": [-1]}}, b"\0" * 4), "shape must be"),
    ("offsets", file_bytes({"a": {**ENTRY, "data_offsets": [4, 0]}}), "data_offsets must be"),
    ("offsets3", file_bytes({"a": {**ENTRY, "data_offsets": [0, 4, 8]}}), "data_offsets must be"),
    (
        "size",
        file_bytes({"a": {**ENTRY, "shape": [2]}}, b"\0" * 4),
        r"span 4 bytes, but F32 of shape \[2\] needs 8",
    ),
    ("outside", file_bytes({"a": ENTRY}, b"\0" * 2), "outside the 2-byte buffer"),
    (
        "overlap",
        file_bytes(
            {
                "a": {**ENTRY, "shape": [2], "data_offsets": [0, 8]},
                "b": {**ENTRY, "data_offsets": [4, 8]},
            },
            b"\0" * 8,
        ),
        "tensor 'b' overlaps tensor 'a'",
    ),
    (
        "hole",
        file_bytes({"a": ENTRY, "b": {**ENTRY, "data_offsets": [8, 12]}}, b"\0" * 12),
        r"bytes 4\.\.8 of the buffer belong to no tensor",
    ),
    ("trailing", file_bytes({"a": ENTRY}, b"\0" * 8), "last 4 bytes of the buffer"),
]


@pytest.mark.parametrize(("case", "data", "message"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_files_are_refused(tmp_path: Path, case: str, data: bytes, message: str) -> None:
    p = put(tmp_path, data)
    with pytest.raises(SpecError, match=message):
        read_safetensors(p)


def test_header_size_limit_and_missing_file(tmp_path: Path) -> None:
    p = tmp_path / "big.safetensors"
    with p.open("wb") as f:  # a sparse file: the limit is checked before anything is read
        f.write(struct.pack("<Q", MAX_HEADER_BYTES + 1))
        f.truncate(MAX_HEADER_BYTES + 100)
    with pytest.raises(SpecError, match="exceeds the limit"):
        read_safetensors(p)
    with pytest.raises(SpecError, match="cannot read"):
        read_safetensors(tmp_path / "absent.safetensors")


@pytest.mark.parametrize(
    ("tensors", "dtype", "message"),
    [
        ({"a": [1.0]}, "F8", "dtype must be one of"),
        ({"a": [np.nan]}, "F32", "NaN or infinite"),
        ({"a": [1e6]}, "F16", "beyond the range of F16"),
        ({"a": [3.4e38]}, "BF16", "beyond the range of BF16"),
        ({"a": [1e300]}, "F32", "beyond the range of F32"),
        ({"__metadata__": [1.0]}, "F32", "invalid tensor name"),
        ({"": [1.0]}, "F32", "invalid tensor name"),
        ({"a": [True]}, "F32", "real numeric array"),
    ],
)
def test_writer_refuses(
    tmp_path: Path, tensors: dict[str, object], dtype: str, message: str
) -> None:
    with pytest.raises(SpecError, match=message):
        write_safetensors(tmp_path / "x.safetensors", tensors, dtype)  # type: ignore[arg-type]


# --- families ---------------------------------------------------------------------------------


def tokens(rng: np.random.Generator, d: int) -> np.ndarray:
    return rng.standard_normal((5, d))


@pytest.mark.parametrize("dtype", ["F32", "BF16"])
def test_mixtral(tmp_path: Path, dtype: str) -> None:
    rng = np.random.default_rng(2)
    raw = mixtral(rng)
    config, w = load_moe_layer(save(tmp_path, raw, dtype), 1)
    assert (config.d_model, config.d_ff, config.n_experts, config.top_k) == (6, 5, 4, 2)
    assert (config.expert_kind, config.gate_norm, config.n_shared_experts) == (
        "swiglu",
        "softmax_topk",
        0,
    )
    p = "model.layers.1.block_sparse_moe."
    assert np.array_equal(w.w_gate, raw[p + "gate.weight"].T)
    for i in range(4):
        assert np.array_equal(w.w1[i], raw[f"{p}experts.{i}.w1.weight"])
        assert w.v is not None and np.array_equal(w.v[i], raw[f"{p}experts.{i}.w3.weight"])
        assert np.array_equal(w.w2[i], raw[f"{p}experts.{i}.w2.weight"])
    assert w.shared_w1.shape == (0, 5, 6)
    # Hugging Face's Mixtral: softmax over all logits, top-2, renormalised; W2 (SiLU(W1 x) * W3 x).
    x = tokens(rng, 6)
    y, routing = moe_float(config, w, x)
    for t in range(len(x)):
        probs = softmax(x[t] @ raw[p + "gate.weight"].T)
        top = np.argsort(-probs)[:2]
        gates = probs[top] / probs[top].sum()
        want = np.zeros(6)
        for g, e in zip(gates, top, strict=True):
            q = f"{p}experts.{e}."
            h = silu(raw[q + "w1.weight"] @ x[t]) * (raw[q + "w3.weight"] @ x[t])
            want += g * (raw[q + "w2.weight"] @ h)
        assert routing.experts[t].tolist() == top.tolist()
        np.testing.assert_allclose(y[t], want, rtol=1e-12, atol=1e-13)
    other = load_moe_layer(save(tmp_path, raw, dtype, "again.safetensors"), 0)[1]
    assert np.array_equal(other.w_gate, raw["model.layers.0.block_sparse_moe.gate.weight"].T)
    config1, _ = load_moe_layer(tmp_path / "m.safetensors", 1, top_k=1, gate_norm="softmax")
    assert (config1.top_k, config1.gate_norm) == (1, "softmax")


@pytest.mark.parametrize("stack", ["encoder", "decoder"])
def test_switch(tmp_path: Path, stack: str) -> None:
    rng = np.random.default_rng(3)
    raw = switch(rng)
    path = save(tmp_path, raw, "BF16")
    config, w = load_moe_layer(path, 1, stack=stack)  # type: ignore[arg-type]
    assert (config.d_model, config.d_ff, config.n_experts, config.top_k) == (6, 8, 4, 1)
    assert (config.expert_kind, config.gate_norm, w.v, w.shared_v) == (
        "relu",
        "softmax",
        None,
        None,
    )
    p = f"{stack}.block.1.layer.{1 if stack == 'encoder' else 2}.mlp."
    assert np.array_equal(w.w_gate, raw[p + "router.classifier.weight"].T)
    assert np.array_equal(w.w1[3], raw[p + "experts.expert_3.wi.weight"])
    assert np.array_equal(w.w2[3], raw[p + "experts.expert_3.wo.weight"])
    # Switch: top-1 expert scaled by its probability under a softmax over all experts.
    x = tokens(rng, 6)
    y, _ = moe_float(config, w, x)
    for t in range(len(x)):
        probs = softmax(x[t] @ raw[p + "router.classifier.weight"].T)
        e = int(np.argmax(probs))
        q = f"{p}experts.expert_{e}."
        want = probs[e] * (raw[q + "wo.weight"] @ np.maximum(raw[q + "wi.weight"] @ x[t], 0))
        np.testing.assert_allclose(y[t], want, rtol=1e-12, atol=1e-13)
    if stack == "encoder":
        assert np.array_equal(load_moe_layer(path, 1)[1].w_gate, w.w_gate)  # the default stack
    with pytest.raises(SpecError, match=f"{stack} block 0 has no switch MoE router"):
        load_moe_layer(path, 0, stack=stack)  # type: ignore[arg-type]


def test_qwen2_shared_gate_loads_and_ignoring_it_warns(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    raw = qwen2(rng)
    path = save(tmp_path, raw)
    gated_config, gated = load_moe_layer(path, 1)  # the gate is part of the model (spec 6.1.1)
    assert gated_config.shared_gate and gated.shared_gate is not None
    assert np.array_equal(gated.shared_gate, raw["model.layers.1.mlp.shared_expert_gate.weight"][0])
    with pytest.warns(ConfigOverrideWarning, match="DIFFERENT model"):
        config, w = load_moe_layer(path, 1, ignore_shared_gate=True)
    assert not config.shared_gate and w.shared_gate is None
    assert (config.n_experts, config.top_k, config.gate_norm, config.expert_kind) == (
        5,
        4,
        "softmax",
        "swiglu",
    )
    assert (config.n_shared_experts, config.d_ff_shared, config.d_ff) == (1, 7, 4)
    p = "model.layers.1.mlp."
    assert np.array_equal(w.shared_w1[0], raw[p + "shared_expert.gate_proj.weight"])
    assert w.shared_v is not None
    assert np.array_equal(w.shared_v[0], raw[p + "shared_expert.up_proj.weight"])
    assert np.array_equal(w.shared_w2[0], raw[p + "shared_expert.down_proj.weight"])
    x = tokens(rng, 6)
    y, _ = moe_float(config, w, x)

    def mlp(q: str, v: np.ndarray) -> np.ndarray:
        h = silu(raw[q + "gate_proj.weight"] @ v) * (raw[q + "up_proj.weight"] @ v)
        out: np.ndarray = raw[q + "down_proj.weight"] @ h
        return out

    for t in range(len(x)):
        probs = softmax(x[t] @ raw[p + "gate.weight"].T)  # norm_topk_prob false: no renormalising
        top = np.argsort(-probs)[:4]
        routed = sum(probs[e] * mlp(f"{p}experts.{e}.", x[t]) for e in top)
        shared = mlp(p + "shared_expert.", x[t])
        np.testing.assert_allclose(y[t], routed + shared, rtol=1e-12, atol=1e-13)
        # The flag really changes the model: Qwen2-MoE would scale the shared part.
        gate = 1 / (1 + np.exp(-(raw[p + "shared_expert_gate.weight"] @ x[t])[0]))
        assert not np.allclose(y[t], routed + gate * shared)
        y_gated, _ = moe_float(gated_config, gated, x[t : t + 1])
        np.testing.assert_allclose(y_gated[0], routed + gate * shared, rtol=1e-12, atol=1e-13)
    with pytest.raises(SpecError, match="layer 0 has no qwen2_moe MoE router"):
        load_moe_layer(path, 0)


def test_qwen2_without_gate_and_deepseek(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    qwen = qwen2(rng, shared_gate=False)
    config, _ = load_moe_layer(save(tmp_path, qwen, "BF16"), 1)  # nothing to refuse
    assert config.n_shared_experts == 1
    raw = deepseek(rng)
    config, w = load_moe_layer(save(tmp_path, raw, "BF16", "ds.safetensors"), 2)
    assert (config.d_model, config.d_ff, config.n_experts, config.top_k) == (5, 3, 8, 6)
    assert (config.gate_norm, config.n_shared_experts, config.d_ff_shared) == ("softmax", 1, 6)
    p = "model.layers.2.mlp."
    x = tokens(rng, 5)
    y, _ = moe_float(config, w, x)
    for t in range(len(x)):
        probs = softmax(x[t] @ raw[p + "gate.weight"].T)
        want = np.zeros(5)
        for e in [*np.argsort(-probs)[:6], None]:
            q = f"{p}experts.{e}." if e is not None else p + "shared_experts."
            h = silu(raw[q + "gate_proj.weight"] @ x[t]) * (raw[q + "up_proj.weight"] @ x[t])
            want += (1.0 if e is None else probs[e]) * (raw[q + "down_proj.weight"] @ h)
        np.testing.assert_allclose(y[t], want, rtol=1e-12, atol=1e-13)


def test_routed_only_mlp_gate_needs_a_family(tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    path = save(tmp_path, glu_block(rng, "model.layers.0.mlp.", 4, 3, 2))
    with pytest.raises(SpecError, match="pass family="):
        load_moe_layer(path, 0)
    a = load_moe_layer(path, 0, "qwen2_moe")
    b = load_moe_layer(path, 0, "deepseek_moe", top_k=4)
    assert a[0].n_shared_experts == 0 and a[0].top_k == 4 and b[0].top_k == 4
    assert np.array_equal(a[1].w1, b[1].w1)
    with pytest.raises(SpecError, match="top_k = 6 exceeds n_experts = 4"):
        load_moe_layer(path, 0, "deepseek_moe")


def test_detection_and_layer_errors(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    both = save(tmp_path, mixtral(rng, (0,)) | switch(rng), name="both.safetensors")
    with pytest.raises(SpecError, match=r"several families \['mixtral', 'switch'\]"):
        load_moe_layer(both, 0)
    assert load_moe_layer(both, 0, "mixtral")[0].expert_kind == "swiglu"
    dense = save(tmp_path, {"model.layers.0.mlp.up_proj.weight": grid(rng, 2, 2)}, name="d.st")
    with pytest.raises(SpecError, match="no MoE router of a known family"):
        load_moe_layer(dense, 0)
    path = save(tmp_path, mixtral(rng))
    with pytest.raises(SpecError, match=r"layer 7 does not exist.*MoE layers: \[0, 1\]"):
        load_moe_layer(path, 7)
    with pytest.raises(SpecError, match="family must be one of"):
        load_moe_layer(path, 0, "llama")  # type: ignore[arg-type]
    with pytest.raises(SpecError, match="layer 0 has no deepseek_moe MoE router"):
        load_moe_layer(path, 0, "deepseek_moe")
    for bad in (-1, True, 1.0):
        with pytest.raises(SpecError, match="layer must be an integer"):
            load_moe_layer(path, bad)  # type: ignore[arg-type]
    with pytest.raises(SpecError, match="stack applies to switch"):
        load_moe_layer(path, 0, stack="encoder")
    with pytest.raises(SpecError, match="stack must be one of"):
        load_moe_layer(save(tmp_path, switch(rng), name="s.st"), 1, stack="middle")  # type: ignore[arg-type]


def broken(rng: np.random.Generator, change: str) -> Raw:
    raw = mixtral(rng, (0,))
    p = "model.layers.0.block_sparse_moe."
    if change == "router bias":
        raw[p + "gate.bias"] = grid(rng, 4)
    elif change == "expert bias":
        raw[p + "experts.2.w1.bias"] = grid(rng, 5)
    elif change == "gap":
        for part in ("w1", "w2", "w3"):
            raw[f"{p}experts.4.{part}.weight"] = raw.pop(f"{p}experts.3.{part}.weight")
    elif change == "leading zero":
        raw[f"{p}experts.01.w1.weight"] = raw.pop(f"{p}experts.1.w1.weight")
    elif change == "missing part":
        del raw[p + "experts.2.w3.weight"]
    elif change == "shape":
        raw[p + "experts.3.w2.weight"] = grid(rng, 6, 4)
    elif change == "d_model":
        raw[p + "experts.0.w1.weight"] = grid(rng, 5, 7)
    return raw


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("router bias", r"cannot represent .*block_sparse_moe\.gate\.bias"),
        ("expert bias", r"cannot represent .*experts\.2\.w1\.bias"),
        ("gap", r"router has 4 rows but the experts present are \[0, 1, 2, 4\]"),
        ("leading zero", r"cannot represent .*experts\.01\.w1\.weight"),
        ("missing part", r"expert 2 lacks its \['v'\] tensors"),
        ("shape", r"experts\.3\.w2\.weight' has shape \(6, 4\), expected \(6, 5\)"),
        ("d_model", r"experts\.0\.w1\.weight' has shape \(5, 7\), expected \('\*', 6\)"),
    ],
)
def test_layers_the_model_cannot_represent(tmp_path: Path, change: str, message: str) -> None:
    path = save(tmp_path, broken(np.random.default_rng(8), change))
    with pytest.raises(SpecError, match=message):
        load_moe_layer(path, 0)


def test_switch_router_bias_and_lonely_shared_gate(tmp_path: Path) -> None:
    rng = np.random.default_rng(9)
    raw = switch(rng)
    raw["encoder.block.1.layer.1.mlp.router.classifier.bias"] = grid(rng, 4)
    with pytest.raises(SpecError, match=r"cannot represent .*classifier\.bias"):
        load_moe_layer(save(tmp_path, raw), 1)
    assert load_moe_layer(tmp_path / "m.safetensors", 1, stack="decoder")[0].n_experts == 4
    qwen = qwen2(rng)
    for part in ("gate_proj", "up_proj", "down_proj"):
        del qwen[f"model.layers.1.mlp.shared_expert.{part}.weight"]
    with pytest.raises(SpecError, match="gates a shared expert that the layer does not have"):
        load_moe_layer(save(tmp_path, qwen, name="q.st"), 1, "qwen2_moe", ignore_shared_gate=True)


def test_non_float_and_non_finite_weights(tmp_path: Path) -> None:
    rng = np.random.default_rng(10)
    raw = mixtral(rng, (0,))
    path = save(tmp_path, raw)
    data = bytearray(path.read_bytes())
    header = read_header(path)
    entry = header.entries["model.layers.0.block_sparse_moe.experts.1.w2.weight"]
    at = header.data_start + entry.begin + 4
    data[at : at + 4] = struct.pack("<f", float("nan"))
    put(tmp_path, bytes(data), "nan.safetensors")
    with pytest.raises(SpecError, match=r"MoEWeights\.w2 has NaN"):
        load_moe_layer(tmp_path / "nan.safetensors", 0)
    # An I32 tensor where a weight belongs is refused from its header, before data is read.
    text = json.dumps(
        {
            "model.layers.0.block_sparse_moe.gate.weight": {
                "dtype": "I32",
                "shape": [1, 1],
                "data_offsets": [0, 4],
            }
        }
    ).encode()
    put(tmp_path, file_bytes(text, b"\0" * 4), "int.safetensors")
    with pytest.raises(SpecError, match=r"dtype I32; only"):
        load_moe_layer(tmp_path / "int.safetensors", 0)


def test_sharded_checkpoint(tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    raw = mixtral(rng)
    names = sorted(raw)
    halves = {
        "model-00001-of-00002.safetensors": names[::2],
        "model-00002-of-00002.safetensors": names[1::2],
    }
    weight_map = {}
    for file, part in halves.items():
        write_safetensors(tmp_path / file, {n: raw[n] for n in part}, "BF16")
        weight_map |= dict.fromkeys(part, file)
    index = tmp_path / "model.safetensors.index.json"
    index.write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    single = save(tmp_path, raw, "BF16", "single.safetensors")
    for source in (index, tmp_path):  # the index file, or the directory holding it
        config, w = load_moe_layer(source, 1)
        want_config, want = load_moe_layer(single, 1)
        assert config == want_config
        assert all(
            np.array_equal(getattr(w, f), getattr(want, f)) for f in ("w_gate", "w1", "v", "w2")
        )
    bad = dict(weight_map)
    bad["model.layers.1.block_sparse_moe.gate.weight"] = "../elsewhere.safetensors"
    index.write_text(json.dumps({"weight_map": bad}))
    with pytest.raises(SpecError, match="is not a shard file name"):
        load_moe_layer(index, 1)
    moved = dict(weight_map)
    router = "model.layers.1.block_sparse_moe.gate.weight"
    moved[router] = next(f for f in halves if f != weight_map[router])
    index.write_text(json.dumps({"weight_map": moved}))
    with pytest.raises(SpecError, match="which has no such tensor"):
        load_moe_layer(index, 1)
    index.write_text("[]")
    with pytest.raises(SpecError, match="needs a weight_map"):
        load_moe_layer(index, 1)
    (tmp_path / "empty").mkdir()
    with pytest.raises(SpecError, match="holds neither"):
        load_moe_layer(tmp_path / "empty", 1)
    with pytest.raises(SpecError, match="no checkpoint file"):
        load_moe_layer(tmp_path / "absent.safetensors", 1)


# --- every loader check, tensor role by tensor role -------------------------------------------
# The Qwen2-MoE layer has every role (router, routed W1 V W2, shared W1 V W2, shared gate); the
# shape cases change one tensor's shape, the dtype cases relabel one tensor as an integer type of
# the same width, and the bias cases add a bias next to a role. Each must be refused with the
# error that names the tensor: a loader that accepted any of them would load a different model
# (or, for a (1, d) tensor, broadcast one row into every row) while the oracle tests still pass.

QP = "model.layers.1.mlp."  # qwen2()'s MoE block: d = 6, d_ff = 4, d_ff_shared = 7, E = 5
ROLES = {
    "router": QP + "gate.weight",
    "w1": QP + "experts.2.gate_proj.weight",
    "v": QP + "experts.2.up_proj.weight",
    "w2": QP + "experts.2.down_proj.weight",
    "shared_w1": QP + "shared_expert.gate_proj.weight",
    "shared_v": QP + "shared_expert.up_proj.weight",
    "shared_w2": QP + "shared_expert.down_proj.weight",
    "shared_gate": QP + "shared_expert_gate.weight",
}
WRONG_SHAPES = [
    ("router", (5,), r"gate\.weight' has shape \(5,\), expected \('\*', '\*'\)"),
    ("router", (4, 6), r"router has 4 rows but the experts present are \[0, 1, 2, 3, 4\]"),
    ("w1", (4, 7), r"experts\.2\.gate_proj\.weight' has shape \(4, 7\), expected \(4, 6\)"),
    ("w1", (5, 6), r"experts\.2\.gate_proj\.weight' has shape \(5, 6\), expected \(4, 6\)"),
    ("v", (5, 6), r"experts\.2\.up_proj\.weight' has shape \(5, 6\), expected \(4, 6\)"),
    ("v", (1, 6), r"experts\.2\.up_proj\.weight' has shape \(1, 6\), expected \(4, 6\)"),
    ("v", (4, 5), r"experts\.2\.up_proj\.weight' has shape \(4, 5\), expected \(4, 6\)"),
    ("w2", (6, 3), r"experts\.2\.down_proj\.weight' has shape \(6, 3\), expected \(6, 4\)"),
    ("w2", (4, 6), r"experts\.2\.down_proj\.weight' has shape \(4, 6\), expected \(6, 4\)"),
    (
        "shared_w1",
        (7, 5),
        r"shared_expert\.gate_proj\.weight' has shape \(7, 5\), expected \('\*', 6\)",
    ),
    ("shared_v", (6, 6), r"shared_expert\.up_proj\.weight' has shape \(6, 6\), expected \(7, 6\)"),
    ("shared_v", (1, 6), r"shared_expert\.up_proj\.weight' has shape \(1, 6\), expected \(7, 6\)"),
    (
        "shared_w2",
        (6, 8),
        r"shared_expert\.down_proj\.weight' has shape \(6, 8\), expected \(6, 7\)",
    ),
    ("shared_gate", (2, 6), r"shared_expert_gate\.weight' has shape \(2, 6\), expected \(1, 6\)"),
    ("shared_gate", (6,), r"shared_expert_gate\.weight' has shape \(6,\), expected \(1, 6\)"),
]


@pytest.mark.parametrize(
    ("role", "shape", "message"), WRONG_SHAPES, ids=[f"{r}{s}" for r, s, _ in WRONG_SHAPES]
)
def test_every_role_with_a_wrong_shape_is_refused(
    tmp_path: Path, role: str, shape: tuple[int, ...], message: str
) -> None:
    """Guards the shape check of step 5 (spec §6.8.3) for each tensor role."""
    raw = qwen2(np.random.default_rng(12))
    raw[ROLES[role]] = grid(np.random.default_rng(13), *shape)
    with pytest.raises(SpecError, match=message):
        load_moe_layer(save(tmp_path, raw), 1)


def with_dtype(path: Path, name: str, dtype: str) -> Path:
    """The file with tensor ``name`` relabelled as ``dtype`` (same width: offsets stay valid)."""
    header = read_header(path)
    data = path.read_bytes()
    doc = json.loads(data[8 : 8 + struct.unpack("<Q", data[:8])[0]])
    assert doc[name]["dtype"] == "F32"
    doc[name]["dtype"] = dtype
    out = path.with_name(f"{dtype}.safetensors")
    out.write_bytes(file_bytes(doc, data[header.data_start :]))
    return out


@pytest.mark.parametrize("dtype", ["I32", "U32"])
@pytest.mark.parametrize("role", sorted(ROLES))
def test_every_role_with_a_non_float_dtype_is_refused(
    tmp_path: Path, role: str, dtype: str
) -> None:
    """Guards the dtype check (spec §6.8.3 step 5: every tensor has a float dtype) for each role:
    quantised or integer tensors are refused from the header, never reinterpreted."""
    path = save(tmp_path, qwen2(np.random.default_rng(14)), "F32")
    name = re.escape(ROLES[role])
    with pytest.raises(SpecError, match=rf"tensor '{name}' has dtype {dtype}; only"):
        load_moe_layer(with_dtype(path, ROLES[role], dtype), 1)


BIASES = {
    "router": (QP + "gate.bias", 5),
    "w1": (QP + "experts.0.gate_proj.bias", 4),
    "v": (QP + "experts.4.up_proj.bias", 4),
    "w2": (QP + "experts.1.down_proj.bias", 6),
    "shared_w1": (QP + "shared_expert.gate_proj.bias", 7),
    "shared_v": (QP + "shared_expert.up_proj.bias", 7),
    "shared_w2": (QP + "shared_expert.down_proj.bias", 6),
    "shared_gate": (QP + "shared_expert_gate.bias", 1),
}


@pytest.mark.parametrize("dtype", ["F32", "I32"])
@pytest.mark.parametrize("role", sorted(BIASES))
def test_every_role_with_a_bias_is_refused(tmp_path: Path, role: str, dtype: str) -> None:
    """Guards step 4 (spec §6.8.3): a bias next to any role is refused by name, whatever its
    dtype, never dropped (the model has no place for biases)."""
    raw = qwen2(np.random.default_rng(15))
    name, size = BIASES[role]
    raw[name] = grid(np.random.default_rng(16), size)
    path = save(tmp_path, raw, "F32")
    if dtype != "F32":
        path = with_dtype(path, name, dtype)
    with pytest.raises(SpecError, match="cannot represent .*" + re.escape(name)):
        load_moe_layer(path, 1)
