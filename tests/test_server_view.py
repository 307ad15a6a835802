"""What the server receives, against spec §4.6's table (tests/server_view.py parses it).

The obliviousness tests of each protocol file (mul, b2a, mux, msb, piecewise, softmax,
layernorm, argmax, topk, matmul, gelu_bumblebee, moe, the MoE baselines, the transformer,
share_add_reveal) call ``assert_server_view`` on their own runs; this file checks the table
itself, shows that the check fails by name, and runs the remaining building blocks.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from server_view import ANY, assert_server_view, server_table

from secmoe import sharing
from secmoe.encoding import FixedPoint
from secmoe.net.channel import TranscriptEntry
from secmoe.ot.flavours import cot_recv, cot_send, one_of_n_recv, one_of_n_send, ot_recv, ot_send
from secmoe.protocols.compare import equal, lt_public, onehot
from secmoe.protocols.linear import matmul_ss
from secmoe.protocols.mul import and_bits
from secmoe.protocols.norm import rmsnorm
from secmoe.protocols.trunc import trunc
from secmoe.randomness import Prg, dst
from secmoe.session import PartyContext, run_local

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import check_spec_refs  # noqa: E402

FXP = FixedPoint()
RING = FXP.ring
BUILDING_BLOCKS = ("sharing/", "ot/", "proto/")  # the only labels a row may allow in `any` run


def test_the_table_is_well_formed() -> None:
    """Guards the table's meaning: every row is a message the client sends, says why it reveals
    nothing and how long it is, names runs that exist (a spec algorithm, or the benchmark that
    sends it), and only the shared building blocks may occur in `any` run; HE and layer
    messages name their runs, so a layer message cannot leak into another protocol unnoticed."""
    table = server_table()
    algorithms = set(check_spec_refs.spec_algorithms(ROOT / "spec", []))
    code = "\n".join(p.read_text() for p in (ROOT / "reference").rglob("*.py"))
    for label, row in table.items():
        assert re.fullmatch(r"[a-z0-9_./-]{1,255}", label), label
        assert row.sender == "client", f"{label}: the server receives what the client sends"
        assert row.length and len(row.reason) > 20, f"{label}: length and reason are required"
        if row.runs == {ANY}:
            assert label.startswith(BUILDING_BLOCKS), f"{label} must name the runs it occurs in"
            continue
        for run in row.runs:
            assert run in algorithms or f"def {run}(" in code, f"{label}: no run named {run}"
        assert f'"{label}"' in code, f"{label} is sent nowhere in reference/"


def _entry(label: str, sender: str = "client") -> TranscriptEntry:
    return TranscriptEntry(sender, label, 1, 128, None, "", "online")  # type: ignore[arg-type]


def test_the_check_fails_by_name() -> None:
    """Guards the check itself: an unlisted label, a routing share in a secure run, and a run
    that lacks a message the table requires of it each fail, naming the label."""
    required = [_entry(label) for label, row in server_table().items() if "moe" in row.runs]
    assert_server_view([*required, _entry("ot/iknp/u"), _entry("he/matmul/y", "server")], "moe")
    with pytest.raises(AssertionError, match=r"\['moe/route'\] in \('moe',\): not listed"):
        assert_server_view([*required, _entry("moe/route")], "moe")
    with pytest.raises(AssertionError, match=r"\['moe/insecure/route'\] in \('moe',\)"):
        assert_server_view([*required, _entry("moe/insecure/route")], "moe")
    with pytest.raises(AssertionError, match=r"ot/base/a: 33 bytes, spec §4.6 says `32`"):
        bad = TranscriptEntry("client", "ot/base/a", 1, 33, None, "", "offline")
        assert_server_view([*required, bad], "moe")
    with pytest.raises(AssertionError, match=r"\['sharing/arith_reveal'\] in \('moe',\)"):
        assert_server_view([*required, _entry("sharing/arith_reveal")], "moe")
    with pytest.raises(AssertionError, match=r"lists \['moe/select'\] for \('moe',\)"):
        assert_server_view([e for e in required if e.label != "moe/select"], "moe")


# --- the building blocks no protocol file records -----------------------------------------------

N = 6
SRC = Prg(bytes(32), dst("test", "server-view"))
X, XC = SRC.next_ring(N), SRC.next_ring(N)
XS = RING.sub(X, XC)
B = SRC.next_bits(N)
SMALL = FXP.encode(np.linspace(-2.0, 2.0, N))
SMALL_C = SRC.next_ring(N)
SMALL_S = RING.sub(SMALL, SMALL_C)
MSGS = (np.frombuffer(SRC.next_bytes(N * 4 * 3), np.uint8) & 1).reshape(N, 4, 3)  # 3-bit messages
Party = Callable[[PartyContext], Any]


def _sharing(ctx: PartyContext) -> Any:
    mine = ctx.party == "client"
    return (
        sharing.arith_share(ctx, "client", X if mine else None, N),
        sharing.bool_share(ctx, "client", B if mine else None, N),
        sharing.arith_reveal(ctx, XC if mine else XS, "both"),
        sharing.bool_reveal(ctx, B, "both"),
    )


RUNS: dict[str, tuple[Party, Party]] = {
    "arith_reveal": (_sharing, _sharing),
    "cot_send": (
        lambda c: (cot_send(c, X, 64), cot_recv(c, B, 1)),
        lambda c: (cot_recv(c, B, 64), cot_send(c, B.astype(np.uint64), 1)),
    ),
    "ot_send": (
        lambda c: (ot_send(c, MSGS[:, 0], MSGS[:, 1]), ot_recv(c, B, 3)),
        lambda c: (ot_recv(c, B, 3), ot_send(c, MSGS[:, 0], MSGS[:, 1])),
    ),
    "one_of_n_send": (
        lambda c: (one_of_n_send(c, MSGS), one_of_n_recv(c, np.arange(N) % 4, 4, 3)),
        lambda c: (one_of_n_recv(c, np.arange(N) % 4, 4, 3), one_of_n_send(c, MSGS)),
    ),
    "and_bits": (lambda c: and_bits(c, B, B), lambda c: and_bits(c, B, B)),
    "trunc": (lambda c: trunc(c, XC), lambda c: trunc(c, XS)),
    "equal": (lambda c: equal(c, XC, 64), lambda c: equal(c, XS, 64)),
    "lt_public": (
        lambda c: lt_public(c, SMALL_C, SMALL),
        lambda c: lt_public(c, SMALL_S, SMALL),
    ),
    "onehot": (
        lambda c: onehot(c, RING.from_int(np.arange(N) % 3), 3),
        lambda c: onehot(c, np.zeros(N, np.uint64), 3),
    ),
    "matmul_ss": (
        lambda c: matmul_ss(c, SMALL_C.reshape(2, 3), SMALL_C.reshape(3, 2)),
        lambda c: matmul_ss(c, SMALL_S.reshape(2, 3), SMALL_S.reshape(3, 2)),
    ),
    "rmsnorm": (
        lambda c: rmsnorm(c, SMALL_C.reshape(2, 3), None),
        lambda c: rmsnorm(c, SMALL_S.reshape(2, 3), FXP.encode(np.ones(3))),
    ),
}


@pytest.mark.parametrize("name", sorted(RUNS))
def test_building_blocks_send_the_server_only_what_the_spec_lists(name: str) -> None:
    """Guards the server's view of each building block against spec §4.6 (label by label)."""
    client, server = RUNS[name]
    res = run_local(
        client,
        server,
        client_seed=bytes([1]) * 32,
        server_seed=bytes([2]) * 32,
        fxp=FXP,
        record="lengths",
    )
    assert_server_view(
        res.transcript, *(["arith_reveal", "bool_reveal"] if name == "arith_reveal" else [name])
    )
