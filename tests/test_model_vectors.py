"""The model vector files (vectors/model/): regeneration and an independent replay."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

import secmoe.vectors.gen_model  # noqa: F401  (registers the model generators)
from secmoe.encoding import Ring, ring_vec_decode
from secmoe.model.config import MoEConfig
from secmoe.model.fixed import FixedWeights, moe_fixed
from secmoe.vectors.files import canonical_json
from secmoe.vectors.registry import REGISTRY

ROOT = Path(__file__).resolve().parent.parent
RING = Ring(64)
MODEL_FILES = sorted(r.spec.path for k, r in REGISTRY.items() if k.startswith("model."))


def load(path: str) -> Any:
    return json.loads((ROOT / "vectors" / path).read_text(encoding="ascii"))


def ints(hex_vec: str) -> list[int]:
    """Signed integers of a ring-vec hex string (64-bit ring)."""
    raw = bytes.fromhex(hex_vec)
    return [int.from_bytes(raw[i : i + 8], "little", signed=True) for i in range(0, len(raw), 8)]


def ring(hex_vec: str, shape: tuple[int, ...]) -> NDArray[np.uint64]:
    data = bytes.fromhex(hex_vec)
    return ring_vec_decode(RING, data, len(data) // 8).reshape(shape)


@pytest.mark.parametrize("path", MODEL_FILES)
def test_committed_file_equals_regeneration(path: str) -> None:
    reg = next(r for r in REGISTRY.values() if r.spec.path == path)
    assert (ROOT / "vectors" / path).read_text(encoding="ascii") == canonical_json(reg.build())


def test_piecewise_replay_with_python_integers() -> None:
    # A second implementation straight from spec 6.2.1, in Python integers (floor division is
    # the exact truncation; wrap-around cannot occur for these inputs).
    f = 18
    for group in load("model/piecewise_fixed.json")["testGroups"]:
        for case in group["tests"]:
            b = ints(case["inputs"]["table"]["breakpoints"])
            flat = ints(case["inputs"]["table"]["rows"])
            rows = [flat[i : i + 3] for i in range(0, len(flat), 3)]
            xs = ints(case["inputs"]["x"])
            want = []
            for x in xs:
                j = sum(x > bi for bi in b)
                c2, c1, c0 = rows[j]
                x2 = (x * x) >> f
                want.append(((c2 * x2) >> f) + ((c1 * x) >> f) + c0)
            assert case["intermediates"]["j"] == [sum(x > bi for bi in b) for x in xs]
            assert ints(case["outputs"]["y"]) == want


def test_moe_replay_from_the_encoded_weights() -> None:
    for group in load("model/moe_fixed.json")["testGroups"]:
        cfg = MoEConfig(**{k: v for k, v in group["params"].items() if k != "T"})
        d, n, ff, ns, sff = (
            cfg.d_model,
            cfg.n_experts,
            cfg.d_ff,
            cfg.n_shared_experts,
            cfg.shared_ff,
        )
        for case in group["tests"]:
            w = case["inputs"]["weights"]

            def get(key: str, shape: tuple[int, ...], w: dict[str, str] = w) -> NDArray[np.uint64]:
                return ring(w[key], shape)

            fw = FixedWeights(
                get("w_gate", (d, n)),
                get("w1", (n, ff, d)),
                get("v", (n, ff, d)) if cfg.gated else None,
                get("w2", (n, d, ff)),
                get("shared_w1", (ns, sff, d)),
                get("shared_v", (ns, sff, d)) if cfg.gated else None,
                get("shared_w2", (ns, d, sff)),
                b1=get("b1", (n, ff)) if cfg.expert_bias else None,
                bv=get("bv", (n, ff)) if cfg.expert_bias and cfg.gated else None,
                b2=get("b2", (n, d)) if cfg.expert_bias else None,
                shared_gate=get("shared_gate", (d,)) if cfg.shared_gate else None,
            )
            x = ring(case["inputs"]["x"], (-1, d))
            out = moe_fixed(cfg, fw, x)
            assert out.experts.tolist() == case["outputs"]["experts"]
            assert out.gates.tobytes() == ring(case["outputs"]["gates"], out.gates.shape).tobytes()
            assert np.array_equal(out.y, ring(case["outputs"]["y"], out.y.shape))
