"""Vector table of spec §40.5: the demo around the secure layer (``demo_client``,
``demo_server``) on the built-in default model, one token, the client's tokens read from an
``.npy`` file by ``load_inputs``.

The client's input is the ``.npy`` file's bytes (``numpy.save`` of the float32 tokens), the
server's the seed of ``default_weights``; the client's outputs are the decoded result and its
routing, the server's the token count. Every payload over 1024 bytes is in the transcript as its
SHA-256 (§5.1).
"""

from __future__ import annotations

import io
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from secmoe.errors import Party
from secmoe.model.config import MoEConfig
from secmoe.model.default import DEFAULT_SEED, default_config, default_inputs, default_weights
from secmoe.model.fixed import encode_weights
from secmoe.moe.demo import ClientView, demo_client, demo_server, load_inputs
from secmoe.session import PartyContext
from secmoe.vectors.build import hex_ring
from secmoe.vectors.gen_float import reals
from secmoe.vectors.play import NORMAL, CaseSpec, Group, Play, table_file
from secmoe.vectors.registry import Json

PROTOCOL = "moe.demo"
TOKENS = 1


def _npy(x: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, x, allow_pickle=False)
    return buffer.getvalue()


def _player(case: Json, params: Json) -> Play:
    inputs = case["inputs"]
    config = MoEConfig(**inputs["config"])
    weights = encode_weights(
        config, default_weights(config, bytes.fromhex(inputs["server"]["weights_seed"]))
    )
    npy = bytes.fromhex(inputs["client"]["npy"])

    def client(ctx: PartyContext) -> ClientView:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "x.npy"
            path.write_bytes(npy)
            x = load_inputs(path, config)
        return demo_client(ctx, config, x)

    def encode(party: Party, out: Any) -> Json:
        if party == "server":
            return {"tokens": out}
        fxp = config.fxp
        return {
            "y": hex_ring(fxp.ring, out.y),
            "y_decoded": reals(fxp.decode(out.y)),
            "experts": out.experts.tolist(),
            "gates": hex_ring(fxp.ring, out.gates),
            "gates_decoded": reals(fxp.decode(out.gates)),
        }

    return Play(config.fxp, client, lambda ctx: demo_server(ctx, config, weights), encode)


def _groups() -> list[Group]:
    config = default_config()
    x = default_inputs(config, TOKENS).astype(np.float32)
    inputs = {
        "config": config.as_dict(),
        "client": {"npy": _npy(x).hex(), "x": reals(x.astype(np.float64))},
        "server": {"weights_seed": DEFAULT_SEED.hex()},
    }
    what = "the default model (d_model 64, d_ff 128, 8 GeGLU experts, top-1), one token"
    return [
        Group(
            {"ring_bits": 64, "frac_bits": 18, "T": TOKENS},
            [CaseSpec(f"{PROTOCOL}/default", what, inputs)],
        )
    ]


table_file(
    PROTOCOL,
    "moe/demo.json",
    section="40.5.1",
    anchor="spec/40-moe.md#demo_client",
    params={"ring_bits": 64, "frac_bits": 18},
    header=[
        "The demo (spec 40.5): the client reads its tokens with load_inputs from inputs.client.npy",
        "(the bytes of numpy.save of a float32 (T, d_model) array; inputs.client.x the same as",
        "binary64 reals), shares them (moe/tokens, then arith_share), both run moe, the server",
        "sends its output shares (moe/output). The server's weights: default_weights(config,",
        "inputs.server.weights_seed) (the built-in default model), encoded. Outputs: the",
        "client's y and gates (fixed point, ring-vec hex, and decoded as binary64 reals) and",
        "experts; the server's token count. Payloads over 1024 bytes: their SHA-256.",
    ],
    notes={"Normal": NORMAL},
    player=_player,
    groups=_groups,
)
