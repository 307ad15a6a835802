"""Top-prediction agreement of the secure tiny MoE transformer (spec/50-transformer.md#507-agreement).

Runs the secure model (both parties in this process, real OT and HE, no dealer) on
``model_inputs(config, count, tokens, TINY_SEED)`` and compares each secure top prediction with
the fixed-point model's (``transformer_fixed``) and the float model's (``transformer_float``).
The secure logits must equal the fixed-point ones bit for bit; the tool exits 1 if any does not.
It also reports the plaintext agreement of the two references on ``--plain`` sequences.

Usage:
    python tools/agreement.py                  # 32 secure runs of 4 tokens (~15 min on 2 cores)
    python tools/agreement.py --count 4 --json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import numpy as np
from numpy.typing import NDArray

from secmoe.encoding import RingVec
from secmoe.model.transformer import (
    TINY_SEED,
    encode_transformer,
    tiny_config,
    tiny_weights,
    transformer_fixed,
    transformer_float,
)
from secmoe.randomness import derive_seed
from secmoe.session import PartyContext, run_local
from secmoe.transformer.demo import model_inputs, transformer_client, transformer_server

Ints = NDArray[np.int64]


def plaintext_agreement(count: int, tokens: int) -> dict[str, Any]:
    """Fixed point against float on ``count`` sequences: top agreement and max logit error."""
    config = tiny_config()
    weights = tiny_weights(config)
    fw = encode_transformer(config, weights)
    agree, worst = 0, 0.0
    for ids in model_inputs(config, count, tokens, TINY_SEED):
        fixed = config.fxp.decode(transformer_fixed(config, fw, ids))
        flt = transformer_float(config, weights, ids)
        agree += int(np.array_equal(fixed.argmax(axis=1), flt.argmax(axis=1)))
        worst = max(worst, float(np.abs(fixed - flt).max()))
    return {"sequences": count, "top_agree": agree, "max_abs_logit_err": worst}


def secure_agreement(count: int, tokens: int, verbose: bool) -> dict[str, Any]:
    config = tiny_config()
    weights = tiny_weights(config)
    fw = encode_transformer(config, weights)
    rows: list[dict[str, Any]] = []
    for i, ids in enumerate(model_inputs(config, count, tokens, TINY_SEED)):
        t0 = time.perf_counter()

        def client(ctx: PartyContext, ids: Ints = ids) -> RingVec:
            return transformer_client(ctx, config, ids)

        def server(ctx: PartyContext) -> int:
            return transformer_server(ctx, config, fw)

        run = run_local(
            client,
            server,
            client_seed=derive_seed(TINY_SEED, f"agreement/{i}/client"),
            server_seed=derive_seed(TINY_SEED, f"agreement/{i}/server"),
            fxp=config.fxp,
        )
        fixed = transformer_fixed(config, fw, ids)
        flt = transformer_float(config, weights, ids)
        secure = config.fxp.decode(run.client)
        row = {
            "ids": [int(v) for v in ids],
            "secure": int(secure.argmax()),
            "fixed": int(config.fxp.decode(fixed).argmax()),
            "float": int(flt.argmax()),
            "bit_exact": bool(np.array_equal(run.client, fixed)),
            "seconds": round(time.perf_counter() - t0, 2),
        }
        rows.append(row)
        if verbose:
            print(json.dumps(row), file=sys.stderr, flush=True)
    n = len(rows)
    return {
        "sequences": n,
        "tokens": tokens,
        "agree_fixed": sum(r["secure"] == r["fixed"] for r in rows) / n,
        "agree_float": sum(r["secure"] == r["float"] for r in rows) / n,
        "bit_exact": sum(r["bit_exact"] for r in rows) / n,
        "seconds": round(sum(r["seconds"] for r in rows), 1),
        "runs": rows,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=32, help="secure runs (default 32)")
    ap.add_argument("--tokens", type=int, default=4, help="ids per sequence (default 4)")
    ap.add_argument("--plain", type=int, default=256, help="plaintext-only sequences (256)")
    ap.add_argument("--json", action="store_true", help="one JSON object on stdout")
    args = ap.parse_args(argv)
    plain = plaintext_agreement(args.plain, args.tokens)
    secure = secure_agreement(args.count, args.tokens, verbose=not args.json)
    out = {"plaintext": plain, "secure": secure}
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        print(
            f"plaintext, {plain['sequences']} sequences: fixed = float top prediction on "
            f"{plain['top_agree']}, max abs logit error {plain['max_abs_logit_err']:.3g}"
        )
        print(
            f"secure, {secure['sequences']} sequences of {secure['tokens']} ids: agreement with "
            f"fixed {secure['agree_fixed']:.0%}, with float {secure['agree_float']:.0%}, "
            f"bit-exact logits {secure['bit_exact']:.0%} ({secure['seconds']} s)"
        )
    return 0 if secure["bit_exact"] == 1.0 else 1


if __name__ == "__main__":
    sys.exit(main())
