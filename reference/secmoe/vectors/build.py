"""Helpers for writing vector generators (spec/05-test-vectors.md#case).

Typical two-party case::

    seeds, res = run_case(client_fn, server_fn, protocol, case_id)
    case = two_party_case(case_id, comment, seeds, res,
                          inputs={"client": {...}, "server": {...}},
                          outputs={"client": {...}, "server": {...}})
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray

from secmoe.encoding import FixedPoint, Ring, bit_vec_encode
from secmoe.net.channel import DEFAULT_TIMEOUT, CostRecord, TranscriptEntry
from secmoe.session import PartyContext, RunResult, run_local
from secmoe.vectors.registry import Json, case_seed, party_seed

A = TypeVar("A")
B = TypeVar("B")

INLINE_LIMIT = 1024  # payloads up to this many bytes are inlined as hex; longer ones as sha256


def hex_ring(ring: Ring, values: NDArray[np.uint64]) -> str:
    """A ring vector as the hex of its wire encoding (format ``ring-vec``)."""
    return ring.encode_vec(np.ascontiguousarray(values, dtype=np.uint64).reshape(-1)).hex()


def hex_bits(bits: NDArray[np.uint8]) -> str:
    """A bit vector as the hex of its wire encoding (format ``bit-vec``)."""
    return bit_vec_encode(np.asarray(bits, dtype=np.uint8).reshape(-1)).hex()


def seeds_for(protocol: str, case_id: str) -> dict[str, bytes]:
    """Both parties' seeds of a case, from the test DRNG."""
    cs = case_seed(protocol, case_id)
    return {"client": party_seed(cs, "client"), "server": party_seed(cs, "server")}


def run_case(
    client: Callable[[PartyContext], A],
    server: Callable[[PartyContext], B],
    protocol: str,
    case_id: str,
    *,
    fxp: FixedPoint | None = None,
) -> tuple[dict[str, bytes], RunResult[A, B]]:
    """Run a two-party case with its DRNG seeds and a fully recorded transcript."""
    seeds = seeds_for(protocol, case_id)
    res = run_local(
        client,
        server,
        client_seed=seeds["client"],
        server_seed=seeds["server"],
        fxp=fxp,
        timeout=DEFAULT_TIMEOUT,
        record="full",
    )
    return seeds, res


def transcript_json(entries: list[TranscriptEntry], inline_limit: int = INLINE_LIMIT) -> list[Json]:
    """The transcript as the schema's list: round, from, label, len, then payload or sha256."""
    out: list[Json] = []
    for e in entries:
        item: Json = {"round": e.round, "from": e.sender, "label": e.label, "len": e.length}
        if e.payload is not None and e.length <= inline_limit:
            item["payload"] = e.payload.hex()
        else:
            item["sha256"] = e.sha256
        out.append(item)
    return out


def cost_json(cost: CostRecord) -> Json:
    """Payload bytes each way and rounds of a run (wall time is not part of vectors)."""
    t = cost.total()
    return {"bytes": {"c2s": t.bytes_c2s, "s2c": t.bytes_s2c}, "rounds": t.rounds}


def two_party_case(
    case_id: str,
    comment: str,
    seeds: dict[str, bytes],
    res: RunResult[Any, Any],
    *,
    inputs: Json,
    outputs: Json,
    intermediates: Json | None = None,
    flags: list[str] | None = None,
) -> Json:
    """A valid two-party case in the schema's key order."""
    case: Json = {
        "id": case_id,
        "comment": comment,
        "flags": flags or [],
        "seeds": {"client": seeds["client"].hex(), "server": seeds["server"].hex()},
        "inputs": inputs,
    }
    if intermediates is not None:
        case["intermediates"] = intermediates
    case["transcript"] = transcript_json(res.transcript)
    case["outputs"] = outputs
    case["cost"] = cost_json(res.cost)
    case["result"] = "valid"
    return case


def local_case(
    case_id: str,
    comment: str,
    *,
    inputs: Json,
    outputs: Json,
    flags: list[str] | None = None,
    intermediates: Json | None = None,
) -> Json:
    """A valid case of a local (non-interactive) function."""
    case: Json = {"id": case_id, "comment": comment, "flags": flags or [], "inputs": inputs}
    if intermediates is not None:
        case["intermediates"] = intermediates
    case["outputs"] = outputs
    case["result"] = "valid"
    return case


def invalid_case(
    case_id: str,
    comment: str,
    *,
    base_id: str,
    inputs: Json,
    error: Json,
    flags: list[str] | None = None,
) -> Json:
    """An invalid case: the mutation of ``base_id`` it is, and the error it must raise.

    ``error`` is ``{"kind": <ProtocolError kind or "spec_error">, "party": ..., "label": ...}``.
    """
    return {
        "id": case_id,
        "comment": comment,
        "flags": flags or [],
        "baseId": base_id,
        "inputs": inputs,
        "outputs": {},
        "result": "invalid",
        "error": error,
    }
