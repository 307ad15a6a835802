"""Checkpoint layers in Mixtral and Switch Transformers naming (spec §6.8), built here, run
through the secure MoE layer (spec §40) and equal to the fixed-point model bit for bit."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from secmoe.model.checkpoint import load_moe_layer
from secmoe.model.fixed import encode_weights, moe_fixed
from secmoe.model.safetensors import write_safetensors
from secmoe.moe.layer import moe
from secmoe.randomness import Prg, dst
from secmoe.session import run_local

D, FF, E = 8, 16, 4
CLI = [sys.executable, "-m", "secmoe.cli"]


def _uniform(src: Prg, shape: tuple[int, ...], scale: float) -> np.ndarray:
    n = int(np.prod(shape))
    return ((src.next_below(n, 1 << 16).astype(np.float64) / (1 << 15) - 1.0) * scale).reshape(
        shape
    )


def mixtral_file(path: Path) -> Path:
    src = Prg(bytes([3]) * 32, dst("test", "mixtral"))
    base = "model.layers.0.block_sparse_moe"
    tensors = {f"{base}.gate.weight": _uniform(src, (E, D), 0.5)}
    for e in range(E):
        tensors[f"{base}.experts.{e}.w1.weight"] = _uniform(src, (FF, D), 0.35)
        tensors[f"{base}.experts.{e}.w3.weight"] = _uniform(src, (FF, D), 0.35)
        tensors[f"{base}.experts.{e}.w2.weight"] = _uniform(src, (D, FF), 0.25)
    write_safetensors(path, tensors, dtype="BF16")
    return path


def switch_file(path: Path) -> Path:
    src = Prg(bytes([4]) * 32, dst("test", "switch"))
    base = "encoder.block.1.layer.1.mlp"
    tensors = {f"{base}.router.classifier.weight": _uniform(src, (E, D), 0.5)}
    for e in range(E):
        tensors[f"{base}.experts.expert_{e}.wi.weight"] = _uniform(src, (FF, D), 0.35)
        tensors[f"{base}.experts.expert_{e}.wo.weight"] = _uniform(src, (D, FF), 0.25)
    write_safetensors(path, tensors, dtype="F32")
    return path


@pytest.mark.parametrize(("make", "layer"), [(mixtral_file, 0), (switch_file, 1)])
def test_a_checkpoint_layer_runs_securely_and_exactly(
    make: object, layer: int, tmp_path: Path
) -> None:
    config, weights = load_moe_layer(make(tmp_path / "layer.safetensors"), layer)  # type: ignore[operator]
    fw = encode_weights(config, weights)
    ring = config.fxp.ring
    x = config.fxp.encode(_uniform(Prg(bytes(32), dst("test", "ckpt-x")), (2, D), 2.0))
    xc = Prg(bytes([1]) * 32, dst("test", "ckpt-share")).next_ring(x.size).reshape(x.shape)
    res = run_local(
        lambda c: moe(c, config, xc, None),
        lambda c: moe(c, config, ring.sub(x, xc), fw),
        client_seed=bytes(32),
        server_seed=bytes([2]) * 32,
        fxp=config.fxp,
    )
    ref = moe_fixed(config, fw, x)
    assert np.array_equal(ring.add(res.client.y, res.server.y), ref.y)
    assert np.array_equal(ring.add(res.client.experts, res.server.experts), ref.experts)


def test_demo_with_weights_from_a_file(tmp_path: Path) -> None:
    path = mixtral_file(tmp_path / "mixtral.safetensors")
    r = subprocess.run(
        [
            *CLI,
            "demo",
            "--json",
            "--quiet",
            "--tokens",
            "1",
            "--weights",
            str(path),
            "--layer",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["secure"] is True and out["max_abs_err_fixed"] == 0.0
    assert out["config"]["expert_kind"] == "swiglu" and out["config"]["top_k"] == 2
    bad = subprocess.run(
        [*CLI, "demo", "--weights", str(path), "--layer", "3"],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and "MoE layers: [0]" in bad.stderr
