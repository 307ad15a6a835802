"""Vector coverage (spec §5.6): the lint passes, fails when an anchor or a row goes, and every
file's ``covers`` is run by its generator; the coverage files agree with the code they pin."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from secmoe.moe.projection import preset_report
from secmoe.net.transport import local_pair
from secmoe.session import run_tcp_party
from secmoe.vectors.coverage import COVERS
from secmoe.vectors.gen_session import FXP, LIMITS, SESSION_PROTOCOL, _adder, server_error
from secmoe.vectors.registry import REGISTRY, registered

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

import check_vector_coverage as cov  # noqa: E402


def cases(rel: str) -> list[dict[str, Any]]:
    data = json.loads((ROOT / "vectors" / rel).read_text())
    return [c for g in data["testGroups"] for c in g["tests"]]


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "spec", tmp_path / "spec")
    shutil.copytree(ROOT / "vectors", tmp_path / "vectors")
    return tmp_path


def test_every_algorithm_is_covered_or_excused() -> None:
    assert cov.check(ROOT / "spec", ROOT / "vectors") == []
    assert cov.main([]) == 0


def test_removing_an_anchor_from_a_file_fails(copy: Path) -> None:
    path = copy / "vectors/net/session.json"
    data = json.loads(path.read_text())
    data["spec"]["covers"].remove("spec/04-messages.md#recv")
    path.write_text(json.dumps(data))
    problems = cov.check(copy / "spec", copy / "vectors")
    assert len(problems) == 1 and "4.2.2 `recv` is named by no vector file" in problems[0]
    assert cov.main(["--spec", str(copy / "spec"), "--vectors", str(copy / "vectors")]) == 1


def test_removing_a_file_or_a_row_fails(copy: Path) -> None:
    (copy / "vectors/model/norm_fixed.json").unlink()
    spec = copy / "spec/05-test-vectors.md"
    spec.write_text(spec.read_text().replace("| `serve` |", "| serve |"))
    problems = cov.check(copy / "spec", copy / "vectors")
    named = {p.split("`")[1] for p in problems}
    assert named == {
        "layernorm_fixed",
        "rsqrt_fixed",
        "rmsnorm_fixed",
        "gelu_bumblebee_fixed",
        "serve",
    }


def test_stale_rows_and_unknown_anchors_fail(copy: Path) -> None:
    spec = copy / "spec/05-test-vectors.md"
    header = "| algorithm | reason |\n| --- | --- |\n"
    text = spec.read_text()
    assert header in text
    spec.write_text(text.replace(header, header + "| `mul` | obsolete |\n| `no_such` | none |\n"))
    path = copy / "vectors/net/frame.json"
    data = json.loads(path.read_text())
    data["spec"]["covers"] = ["spec/04-messages.md#no-such-heading"]
    path.write_text(json.dumps(data))
    problems = cov.check(copy / "spec", copy / "vectors")
    assert any("`mul` is listed as not vectorable but protocols/mul.json" in p for p in problems)
    assert any("`no_such` is no algorithm" in p for p in problems)
    assert any("#no-such-heading is no heading" in p for p in problems)
    assert any("`decode_frame` is named by no vector file" in p for p in problems)


def test_the_table_names_registered_files_only() -> None:
    registered()
    assert set(COVERS) <= set(REGISTRY)
    for protocol, anchors in COVERS.items():
        assert REGISTRY[protocol].spec.anchor not in anchors, protocol
        assert len(set(anchors)) == len(anchors), protocol


@pytest.mark.parametrize("protocol", sorted(COVERS))
def test_each_generator_runs_what_it_covers(protocol: str) -> None:
    registered()
    executed = cov.executed_algorithms(REGISTRY[protocol].build)
    algorithms = {
        cov.anchor_of(a): name for name, a in cov.spec_algorithms(ROOT / "spec", []).items()
    }
    claimed = {algorithms[a] for a in COVERS[protocol]}
    assert claimed <= executed, f"{protocol} never runs {sorted(claimed - executed)}"


def test_session_vector_replays_against_the_server() -> None:
    case = next(c for c in cases("net/session.json") if c["result"] == "valid")
    wire = case["outputs"]["wire"]
    tc, ts = local_pair()
    tc.send_bytes(bytes.fromhex(wire["c2s"]))
    y = FXP.ring.decode_vec(bytes.fromhex(case["inputs"]["server"]["y"]), 3)
    seed = bytes.fromhex(case["seeds"]["server"])
    run_tcp_party(ts, "server", SESSION_PROTOCOL, _adder(y), seed, FXP, LIMITS, None)
    received = tc.recv_exact(len(wire["s2c"]) // 2, float("inf"), "")
    assert received.hex() == wire["s2c"]
    frames = b"".join(bytes.fromhex(f["frame"]) for f in wire["frames"] if f["from"] == "client")
    assert frames.hex() == wire["c2s"]


def test_session_invalid_cases_each_fail_differently_from_the_valid_stream() -> None:
    invalid = [c for c in cases("net/session.json") if c["result"] == "invalid"]
    kinds = {c["error"]["kind"] for c in invalid}
    assert kinds >= {"unexpected_label", "too_large", "bad_round", "bad_checksum", "handshake"}
    for c in invalid:
        assert server_error(bytes.fromhex(c["inputs"]["received"])) == c["error"]


def test_cost_vectors_equal_the_cli_projections() -> None:
    by_id = {c["id"]: c for c in cases("cost/formulas.json")}
    for name in ("switch-base-8", "mixtral-8x7b", "deepseekmoe-16b"):
        report = preset_report(name, 1)
        out = by_id[f"cost.formulas/moe/{name}"]["outputs"]
        assert out["bytes"] == {"c2s": report["bytes_c2s"], "s2c": report["bytes_s2c"]}
        assert out["rounds"] == report["rounds"]
        assert list(out["steps"]) == list(report["steps"])


def test_float_vectors_hold_their_decimal_mirror() -> None:
    for case in cases("model/float.json"):
        for value in case["outputs"].values():
            if isinstance(value, dict) and "f64" in value:
                a = np.frombuffer(bytes.fromhex(value["f64"]), dtype="<f8")
                assert [repr(float(v)) for v in a] == value["decimal"]
                assert a.size == int(np.prod(value["shape"]))
