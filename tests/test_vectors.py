"""Vector files: schema, byte-identical regeneration, mutation detection, independent replay."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pytest

from secmoe.encoding import (
    FixedPoint,
    Ring,
    bit_vec_decode,
    bit_vec_encode,
    fxp_encode,
    fxp_trunc,
    ring_vec_decode,
    ring_vec_encode,
)
from secmoe.errors import ProtocolError, SpecError
from secmoe.net.frame import decode_frame, encode_frame
from secmoe.randomness import Prg, derive_seed, instance_prg
from secmoe.session import PartyContext, run_local
from secmoe.sharing import arith_reveal, arith_share, bool_reveal, bool_share, share_add_reveal
from secmoe.vectors.registry import case_seed, party_seed, registered

ROOT = Path(__file__).resolve().parent.parent
VECTORS = ROOT / "vectors"
SECMOE = [sys.executable, "-m", "secmoe.cli"]


def load(rel: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((VECTORS / rel).read_text())
    return data


def cases(rel: str) -> list[dict[str, Any]]:
    return [c for g in load(rel)["testGroups"] for c in g["tests"]]


def test_every_file_validates_against_the_schema() -> None:
    schema = json.loads((ROOT / "spec/schema/vectors-v1.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    files = sorted(VECTORS.rglob("*.json"))
    assert len(files) == len(registered())
    for path in files:
        errors = list(validator.iter_errors(json.loads(path.read_text())))
        assert not errors, f"{path}: {errors[0].message} at {list(errors[0].path)}"


# PYTHONHASHSEED 0 here; the verify test below regenerates under a random one (Python's default).
@pytest.mark.parametrize("hashseed", ["0"])
def test_regeneration_is_byte_identical_under_any_hash_seed(tmp_path: Path, hashseed: str) -> None:
    env = {**os.environ, "PYTHONHASHSEED": hashseed}
    subprocess.run(
        [*SECMOE, "vectors", "generate", "--out", str(tmp_path)],
        check=True,
        env=env,
        capture_output=True,
    )
    diff = subprocess.run(
        ["diff", "-r", str(VECTORS), str(tmp_path)], capture_output=True, text=True
    )
    assert diff.returncode == 0, diff.stdout[:2000]


def test_verify_names_the_case_of_any_changed_byte(tmp_path: Path) -> None:
    rel = "sharing/arith_share.json"
    original = (VECTORS / rel).read_bytes()
    expected = json.loads(original)
    rng = Prg(bytes(32), b"test/mutations")
    positions = [int(p) for p in rng.next_below(25, len(original))]
    for pos in positions:
        copy = tmp_path / "v"
        if copy.exists():
            subprocess.run(["rm", "-rf", str(copy)], check=True)
        subprocess.run(["cp", "-r", str(VECTORS), str(copy)], check=True)
        data = bytearray(original)
        data[pos] = ord("0") if data[pos] != ord("0") else ord("1")
        (copy / rel).write_bytes(bytes(data))
        # Only this file's generator reruns (the other files are unchanged copies, and a full
        # regeneration per mutation would cost minutes); what is asserted about it is the same.
        r = subprocess.run(
            [*SECMOE, "vectors", "verify", str(copy), "--only", expected["protocol"]],
            capture_output=True,
            text=True,
        )
        assert r.returncode == 1, pos
        lines = r.stdout.strip().splitlines()
        assert lines and all(line.startswith(f"FAIL {rel}") for line in lines), r.stdout
        # The report names the case whose text holds the byte (or the header before any case).
        text = original.decode()
        before = text[:pos]
        if '"tcId"' in before:
            tc = int(before.rsplit('"tcId": ', 1)[1].split(",", 1)[0])
            case = next(c for g in expected["testGroups"] for c in g["tests"] if c["tcId"] == tc)
            # A byte in a group's own header (tgId, params) follows the previous case's text.
            assert any(
                f"tcId={tc}" in line or case["id"] in line or "tgId=" in line for line in lines
            ), r.stdout
        else:
            assert "header" in r.stdout, r.stdout


def test_committed_vectors_verify_and_an_unknown_file_is_flagged(tmp_path: Path) -> None:
    """One regeneration (the slowest step of the suite) serves both: every committed file
    verifies, and the one stray file is the only failure."""
    subprocess.run(["cp", "-r", str(VECTORS), str(tmp_path / "v")], check=True)
    (tmp_path / "v" / "stray.json").write_text("{}\n")
    r = subprocess.run(
        [*SECMOE, "vectors", "verify", str(tmp_path / "v")], capture_output=True, text=True
    )
    assert r.returncode == 1
    failures = [line for line in r.stdout.splitlines() if line.startswith("FAIL")]
    assert failures == ["FAIL stray.json: no registered generator produces this file"], r.stdout


# --- replay: run the functions from each file's recorded inputs alone ---------------------------


def _hex_ring(ring: Ring, text: str) -> np.ndarray:
    data = bytes.fromhex(text)
    return ring_vec_decode(ring, data, len(data) // ring.byte_width)


def test_replay_encoding_vectors() -> None:
    for g in load("encoding/fxp.json")["testGroups"]:
        fxp = FixedPoint(Ring(g["params"]["ring_bits"]), g["params"]["frac_bits"])
        for c in g["tests"]:
            xs = [float(x) for x in c["inputs"]["x"]]
            if c["result"] == "invalid":
                with pytest.raises(SpecError):
                    fxp_encode(fxp, xs)
                continue
            v = fxp_encode(fxp, xs)
            assert ring_vec_encode(fxp.ring, v).hex() == c["outputs"]["v"]
            assert [repr(float(x)) for x in fxp.decode(v)] == c["outputs"]["decoded"]
    for g in load("encoding/fxp_trunc.json")["testGroups"]:
        ring = Ring(g["params"]["ring_bits"])
        for c in g["tests"]:
            a = _hex_ring(ring, c["inputs"]["a"])
            b = fxp_trunc(FixedPoint(ring, 0), a, c["inputs"]["s"])
            assert ring_vec_encode(ring, b).hex() == c["outputs"]["b"]
    for g in load("encoding/ring_vec.json")["testGroups"]:
        ring = Ring(g["params"]["ring_bits"])
        for c in g["tests"]:
            if c["result"] == "invalid":
                with pytest.raises(ProtocolError) as e:
                    ring_vec_decode(ring, bytes.fromhex(c["inputs"]["bytes"]), c["inputs"]["n"])
                assert e.value.kind == c["error"]["kind"]
                continue
            values = ring.from_int([int(v) for v in c["inputs"]["values"]])
            assert ring_vec_encode(ring, values).hex() == c["outputs"]["bytes"]
    for c in cases("encoding/bit_vec.json"):
        if c["result"] == "invalid":
            with pytest.raises(ProtocolError) as e:
                bit_vec_decode(bytes.fromhex(c["inputs"]["bytes"]), c["inputs"]["n"])
            assert e.value.kind == c["error"]["kind"]
        else:
            assert (
                bit_vec_encode(np.array(c["inputs"]["bits"], dtype=np.uint8)).hex()
                == c["outputs"]["bytes"]
            )


def test_replay_prg_and_frame_vectors() -> None:
    for c in cases("randomness/prg.json"):
        seed = bytes.fromhex(c["inputs"]["seed"])
        if "dst" not in c["inputs"]:
            assert derive_seed(seed, "client").hex() == c["outputs"]["derive_seed_client"]
            assert (
                instance_prg(seed, "p", "u", 2).next_bytes(16).hex()
                == c["outputs"]["instance_prg_p_u_2"]
            )
            continue
        p = Prg(seed, bytes.fromhex(c["inputs"]["dst"]), bytes.fromhex(c["inputs"]["binder"]))
        o = c["outputs"]
        assert p.next_bytes(40).hex() == o["next_bytes_40"]
        assert [str(int(v)) for v in p.next_ring(3, 64)] == o["next_ring_3_64"]
        assert [str(int(v)) for v in p.next_ring(3, 13)] == o["next_ring_3_13"]
        assert [int(b) for b in p.next_bits(11)] == o["next_bits_11"]
        for q in (3, 12289, 2**61 - 1):
            assert [str(int(v)) for v in p.next_below(5, q)] == o[f"next_below_5_{q}"]
        assert p.position == o["position"]
    for c in cases("net/frame.json"):
        i = c["inputs"]
        if c["result"] == "invalid":
            with pytest.raises(ProtocolError) as e:
                decode_frame(bytes.fromhex(i["frame"]))
            assert e.value.kind == c["error"]["kind"]
        else:
            assert (
                encode_frame(i["label"], i["round"], bytes.fromhex(i["payload"])).hex()
                == c["outputs"]["frame"]
            )


def _check_two_party(c: dict[str, Any], res: Any) -> None:
    got = [
        {
            "round": t.round,
            "from": t.sender,
            "label": t.label,
            "len": t.length,
            "payload": t.payload.hex(),
        }
        for t in res.transcript
    ]
    assert got == c["transcript"]
    t = res.cost.total()
    assert {"bytes": {"c2s": t.bytes_c2s, "s2c": t.bytes_s2c}, "rounds": t.rounds} == c["cost"]


def test_replay_sharing_vectors() -> None:
    for protocol, rel in (
        ("sharing.arith_share", "sharing/arith_share.json"),
        ("sharing.bool_share", "sharing/bool_share.json"),
    ):
        for g in load(rel)["testGroups"]:
            ring = Ring(g["params"]["ring_bits"])
            fxp = FixedPoint(ring, g["params"]["frac_bits"])
            for c in g["tests"]:
                cs = case_seed(protocol, c["id"])
                seeds = {p: party_seed(cs, p) for p in ("client", "server")}
                assert {p: s.hex() for p, s in seeds.items()} == c["seeds"]
                owner = "client" if c["inputs"]["client"] else "server"
                key = "x" if protocol.endswith("arith_share") else "b"
                raw = c["inputs"][owner][key]
                if key == "x":
                    value: np.ndarray = _hex_ring(ring, raw)
                else:
                    value = bit_vec_decode(bytes.fromhex(raw), 5)
                n = value.size

                def party(
                    ctx: PartyContext,
                    owner: str = owner,
                    value: np.ndarray = value,
                    key: str = key,
                    n: int = n,
                ) -> np.ndarray:
                    mine = value if ctx.party == owner else None
                    if key == "x":
                        return arith_share(ctx, owner, mine, n)  # type: ignore[arg-type]
                    return bool_share(ctx, owner, mine, n)  # type: ignore[arg-type]

                res = run_local(
                    party,
                    party,
                    client_seed=seeds["client"],
                    server_seed=seeds["server"],
                    fxp=fxp,
                    record="full",
                )
                _check_two_party(c, res)
    for c in cases("sharing/reveal.json"):
        arith = "/arith/" in c["id"]
        to = c["id"].rsplit("/", 1)[1]
        ring = Ring(64)
        shares = {
            p: (
                _hex_ring(ring, c["inputs"][p]["share"])
                if arith
                else bit_vec_decode(bytes.fromhex(c["inputs"][p]["share"]), 9)
            )
            for p in ("client", "server")
        }
        seeds = {p: bytes.fromhex(s) for p, s in c["seeds"].items()}

        def rparty(
            ctx: PartyContext,
            shares: dict[str, np.ndarray] = shares,
            arith: bool = arith,
            to: str = to,
        ) -> object:
            return (arith_reveal if arith else bool_reveal)(ctx, shares[ctx.party], to)  # type: ignore[arg-type]

        res = run_local(
            rparty, rparty, client_seed=seeds["client"], server_seed=seeds["server"], record="full"
        )
        _check_two_party(c, res)
    for c in cases("sharing/share_add_reveal.json"):
        ring = Ring(64)
        x = _hex_ring(ring, c["inputs"]["client"]["x"])
        y = _hex_ring(ring, c["inputs"]["server"]["y"])
        seeds = {p: bytes.fromhex(s) for p, s in c["seeds"].items()}
        res = run_local(
            lambda ctx, x=x: share_add_reveal(ctx, x),
            lambda ctx, y=y: share_add_reveal(ctx, y),
            client_seed=seeds["client"],
            server_seed=seeds["server"],
            record="full",
        )
        _check_two_party(c, res)
        assert ring_vec_encode(ring, res.client).hex() == c["outputs"]["client"]["sum"]
        assert np.array_equal(res.client, ring.add(x, y))


def test_two_party_cases_are_self_consistent() -> None:
    """In every file: lengths match payloads, cost equals the transcript's sums, rounds its max."""
    for path in sorted(VECTORS.rglob("*.json")):
        for g in json.loads(path.read_text())["testGroups"]:
            for c in g["tests"]:
                if "transcript" not in c:
                    continue
                sums = {"client": 0, "server": 0}
                for m in c["transcript"]:
                    if "payload" in m:
                        assert len(m["payload"]) == 2 * m["len"], (path, c["id"])
                    sums[m["from"]] += m["len"]
                assert c["cost"]["bytes"] == {"c2s": sums["client"], "s2c": sums["server"]}, (
                    path,
                    c["id"],
                )
                assert c["cost"]["rounds"] == max((m["round"] for m in c["transcript"]), default=0)


def test_ot_vector_outputs_satisfy_their_relations() -> None:
    for c in cases("ot/flavours.json"):
        o, i = c["outputs"], c["inputs"]
        if "/cot/" in c["id"]:
            bits = int(c["id"].split("/l")[1].split("/")[0])
            ring = Ring(bits)
            x0 = _hex_ring(ring, o["server"]["x0"])
            n = x0.size
            ch = bit_vec_decode(bytes.fromhex(i["client"]["choices"]), n).astype(np.uint64)
            delta = _hex_ring(ring, i["server"]["delta"])
            assert np.array_equal(
                _hex_ring(ring, o["client"]["x"]), ring.add(x0, ring.mul(ch, delta))
            )
        elif "/rot/" in c["id"]:
            m0 = np.frombuffer(bytes.fromhex(o["server"]["m0"]), np.uint8).reshape(-1, 16)
            m1 = np.frombuffer(bytes.fromhex(o["server"]["m1"]), np.uint8).reshape(-1, 16)
            ch = bit_vec_decode(bytes.fromhex(i["client"]["choices"]), len(m0))
            mc = np.frombuffer(bytes.fromhex(o["client"]["m_c"]), np.uint8).reshape(-1, 16)
            assert np.array_equal(mc, np.where(ch[:, None] == 1, m1, m0))
    for c in cases("ot/triples.json"):
        o = c["outputs"]
        if "/beaver/" in c["id"]:
            ring = Ring(c["inputs"]["client"]["l"])
            a, b, cc = (
                ring.add(_hex_ring(ring, o["client"][k]), _hex_ring(ring, o["server"][k]))
                for k in "abc"
            )
            assert np.array_equal(cc, ring.mul(a, b))
        else:
            n = c["inputs"]["client"]["n"]
            a, b, cc = (
                bit_vec_decode(bytes.fromhex(o["client"][k]), n)
                ^ bit_vec_decode(bytes.fromhex(o["server"][k]), n)
                for k in "abc"
            )
            assert np.array_equal(cc, a & b)


def test_he_vector_outputs_satisfy_their_relations() -> None:
    from secmoe.he import packing
    from secmoe.he.params import preset

    toy = preset("toy")
    ring = Ring(64)
    (chain,) = cases("he/toy.json")
    m1 = _hex_ring(ring, chain["inputs"]["m1"])
    m2 = _hex_ring(ring, chain["inputs"]["m2"])
    o = chain["outputs"]
    assert np.array_equal(_hex_ring(ring, o["decrypt_m1"]), m1)
    a, b = m1.view(np.int64).astype(object), m2.view(np.int64).astype(object)
    prod = [0] * toy.n
    for i in range(toy.n):
        for j in range(toy.n):
            k = i + j
            prod[k % toy.n] += a[i] * b[j] if k < toy.n else -a[i] * b[j]
    assert [int(v) for v in _hex_ring(ring, o["decrypt_mul"])] == [int(v) % 2**64 for v in prod]
    shares = ring.add(_hex_ring(ring, o["client_share"]), _hex_ring(ring, o["server_share"]))
    assert np.array_equal(shares, _hex_ring(ring, o["decrypt_mul"]))
    for c in cases("he/packing.json"):
        d_out, d_in = (int(v) for v in c["id"].rsplit("/", 1)[1].split("x"))
        w = np.array(c["inputs"]["w"], dtype=np.int64).reshape(d_out, d_in)
        x = _hex_ring(ring, c["inputs"]["x"])
        shape = packing.MatmulShape(1, d_in, d_out, 1, c["outputs"]["n_i"], c["outputs"]["n_o"])
        # Multiplying the recorded blocks as plain polynomials gives W x at the output positions.
        ys = []
        for bo, row in enumerate(c["outputs"]["weight_blocks"]):
            acc = [0] * toy.n
            for bi, wb in enumerate(row):
                xb = _hex_ring(ring, c["outputs"]["input_blocks"][bi]).view(np.int64)
                for i in range(toy.n):
                    for j in range(toy.n):
                        k = i + j
                        if xb[i] and wb[j]:
                            acc[k % toy.n] += int(xb[i]) * wb[j] * (1 if k < toy.n else -1)
            ys.append(
                packing.decode_output(
                    shape, np.array([v % 2**64 for v in acc], dtype=np.uint64), 0, bo
                )[0]
            )
        want = [int(v) % 2**64 for v in w.astype(object) @ x.view(np.int64).astype(object)]
        assert [int(v) for v in np.concatenate(ys)] == want
    for c in cases("he/matvec.json"):
        y = ring.add(
            _hex_ring(ring, c["outputs"]["client"]["y"]),
            _hex_ring(ring, c["outputs"]["server"]["y"]),
        )
        x = ring.add(
            _hex_ring(ring, c["inputs"]["client"]["x"]), _hex_ring(ring, c["inputs"]["server"]["x"])
        )
        w = np.array(c["inputs"]["server"]["w"], dtype=np.int64).reshape(y.size, x.size)
        assert [int(v) for v in y] == [
            int(v) % 2**64 for v in w.astype(object) @ x.view(np.int64).astype(object)
        ]


def test_comparison_vector_outputs_satisfy_their_relations() -> None:
    for c in cases("protocols/millionaire.json"):
        u = np.array([int(v) for v in c["inputs"]["server"]["u"]], dtype=np.uint64)
        v = np.array([int(x) for x in c["inputs"]["client"]["v"]], dtype=np.uint64)
        z = bit_vec_decode(bytes.fromhex(c["outputs"]["client"]["z"]), u.size) ^ bit_vec_decode(
            bytes.fromhex(c["outputs"]["server"]["z"]), u.size
        )
        assert np.array_equal(z, (u < v).astype(np.uint8))
    for c in cases("protocols/msb.json"):
        ring = Ring(16)
        x = ring.add(
            _hex_ring(ring, c["inputs"]["client"]["x"]), _hex_ring(ring, c["inputs"]["server"]["x"])
        )
        z = bit_vec_decode(bytes.fromhex(c["outputs"]["client"]["z"]), x.size) ^ bit_vec_decode(
            bytes.fromhex(c["outputs"]["server"]["z"]), x.size
        )
        assert np.array_equal(z, ring.msb(x))
    for c in cases("protocols/trunc.json"):
        ring = Ring(16)
        x = ring.add(
            _hex_ring(ring, c["inputs"]["client"]["x"]), _hex_ring(ring, c["inputs"]["server"]["x"])
        )
        z = ring.add(
            _hex_ring(ring, c["outputs"]["client"]["z"]),
            _hex_ring(ring, c["outputs"]["server"]["z"]),
        )
        assert np.array_equal(ring.to_signed(z), ring.to_signed(x) >> c["inputs"]["client"]["s"])
    for c in cases("protocols/piecewise.json"):
        from secmoe.model.piecewise import piecewise_fixed
        from secmoe.model.tables import GELU

        ring = Ring(64)
        x = ring.add(
            _hex_ring(ring, c["inputs"]["client"]["x"]), _hex_ring(ring, c["inputs"]["server"]["x"])
        )
        z = ring.add(
            _hex_ring(ring, c["outputs"]["client"]["z"]),
            _hex_ring(ring, c["outputs"]["server"]["z"]),
        )
        assert np.array_equal(z, piecewise_fixed(GELU, FixedPoint(ring, 18), x))
    for c in cases("protocols/onehot.json"):
        ring = Ring(64)
        index = ring.add(
            _hex_ring(ring, c["inputs"]["client"]["index"]),
            _hex_ring(ring, c["inputs"]["server"]["index"]),
        )
        n, e = index.size, c["inputs"]["client"]["entries"]
        z = bit_vec_decode(bytes.fromhex(c["outputs"]["client"]["z"]), n * e) ^ bit_vec_decode(
            bytes.fromhex(c["outputs"]["server"]["z"]), n * e
        )
        assert np.array_equal(
            z.reshape(n, e), (np.arange(e)[None, :] == index[:, None]).astype(np.uint8)
        )


def _checkpoint_run(tmp: Path, algorithm: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """Spec §6.8's algorithm on a case's inputs, written here from the file's header alone."""
    from secmoe.model.checkpoint import load_layer
    from secmoe.model.default import weights_digest
    from secmoe.model.hf_config import derive_moe_config
    from secmoe.model.safetensors import read_safetensors, write_safetensors

    path = tmp / "model.safetensors"
    if algorithm == "write_safetensors":
        tensors = {
            k: np.frombuffer(bytes.fromhex(v["f64"]), "<f8").reshape(v["shape"])
            for k, v in inputs["tensors"].items()
        }
        write_safetensors(path, tensors, inputs["dtype"], inputs.get("metadata"))
        return {"file": path.read_bytes().hex()}
    if algorithm == "read_safetensors":
        path.write_bytes(bytes.fromhex(inputs["file"]))
        read = read_safetensors(path, inputs.get("names"))
        return {k: np.ascontiguousarray(v, "<f8").tobytes().hex() for k, v in read.items()}
    if algorithm == "derive_moe_config":
        d = derive_moe_config(json.loads(inputs["config_json"]))
        return {"family": d.family, "fields": d.fields, "sources": d.sources}
    (tmp / "config.json").unlink(missing_ok=True)
    for name, content in inputs["files"].items():
        if name == "config.json":
            (tmp / name).write_text(content)
        else:
            (tmp / name).write_bytes(bytes.fromhex(content))
    loaded = load_layer(tmp, inputs["layer"])
    return {"config": loaded.config.as_dict(), "weights_sha256": weights_digest(loaded.weights)}


def test_replay_checkpoint_vectors(tmp_path: Path) -> None:
    data = load("model/checkpoint.json")
    seen = set()
    for g in data["testGroups"]:
        algorithm = g["params"]["algorithm"]
        for c in g["tests"]:
            seen.add((algorithm, c["result"]))
            if c["result"] == "invalid":
                with pytest.raises(SpecError) as e:
                    _checkpoint_run(tmp_path, algorithm, c["inputs"])
                assert all(n in str(e.value) for n in c["error"]["names"]), c["id"]
                continue
            got, out = _checkpoint_run(tmp_path, algorithm, c["inputs"]), c["outputs"]
            if algorithm == "read_safetensors":
                assert got == {k: v["f64"] for k, v in out["tensors"].items()}, c["id"]
            else:
                assert {k: out[k] for k in got} == got, c["id"]
    assert len(seen) == 8  # every algorithm has valid and refused cases


def test_demo_vector_equals_the_fixed_point_model(tmp_path: Path) -> None:
    from secmoe.model.config import MoEConfig
    from secmoe.model.default import default_weights
    from secmoe.model.fixed import moe_fixed
    from secmoe.moe.demo import load_inputs

    (case,) = cases("moe/demo.json")
    config = MoEConfig(**case["inputs"]["config"])
    (tmp_path / "x.npy").write_bytes(bytes.fromhex(case["inputs"]["client"]["npy"]))
    x = load_inputs(tmp_path / "x.npy", config)
    weights = default_weights(config, bytes.fromhex(case["inputs"]["server"]["weights_seed"]))
    fixed = moe_fixed(config, weights, config.fxp.encode(x))
    out = case["outputs"]["client"]
    assert out["y"] == ring_vec_encode(config.fxp.ring, fixed.y.reshape(-1)).hex()
    assert out["experts"] == fixed.experts.tolist()
    assert case["outputs"]["server"] == {"tokens": 1}


def test_fit_table_vectors_are_the_committed_tables() -> None:
    from secmoe.model.tables import TABLES

    for c in cases("model/fit_table.json"):
        if c["result"] == "valid":
            table = TABLES[c["inputs"]["name"]]
            assert [float(b) for b in c["inputs"]["breakpoints"]] == list(table.breakpoints)
            assert c["outputs"]["rows"] == [[repr(v) for v in row] for row in table.coeffs]


def test_prepare_vectors_agree_between_memory_and_file() -> None:
    by_id = {c["id"]: c for c in cases("moe/prepare.json")}
    # Spec §20.6.3's example.
    shape = by_id["moe.prepare/unpacked_shape/1x768x3072"]["outputs"]["shape"]
    assert (shape["n_i"], shape["n_o"]) == (64, 256)
    for cid, c in by_id.items():
        if cid.endswith("/memory"):
            mem = c["outputs"]["stacks"]
            disk = by_id[cid.replace("/memory", "/file")]["outputs"]["stacks"]
            assert list(mem) == list(disk)
            for name in mem:
                assert mem[name]["key"] == disk[name]["key"]
                assert mem[name]["in_memory"] and not disk[name]["in_memory"]


def test_classify_vector_equals_classifier_fixed() -> None:
    from secmoe.model.classifier import classifier_fixed, load_classifier, model_path

    (case,) = cases("accuracy/classify.json")
    config, weights = load_classifier(model_path("digits", "switch"))
    x = case["inputs"]["client"]["x"]
    xe = config.moe.fxp.encode(np.frombuffer(bytes.fromhex(x["f64"]), "<f8").reshape(x["shape"]))
    logits = classifier_fixed(config, weights, xe)
    assert case["outputs"]["client"]["logits"] == [
        ring_vec_encode(config.moe.fxp.ring, logits.reshape(-1)).hex()
    ]
    assert case["outputs"]["server"] == {"served": 1}
    local = {c["id"]: c for c in cases("model/classifier.json")}
    digits = local["model.classifier/classifier/digits-switch"]
    assert digits["outputs"]["saved_sha256"] == digits["inputs"]["model_sha256"]


def test_transformer_model_vectors_equal_transformer_fixed() -> None:
    """Both heads: the classifier's first-token row and the causal LM's every-token rows."""
    from secmoe.model.transformer import transformer_fixed, transformer_weights
    from secmoe.vectors.gen_transformer import config_of

    by_id = {c["id"]: c for c in cases("transformer/model.json")}
    assert sorted(by_id) == ["transformer.model/tiny-classify", "transformer.model/tiny-lm"]
    for case in by_id.values():
        config = config_of(case["inputs"]["config"])
        seed = bytes.fromhex(case["inputs"]["server"]["weights_seed"])
        ids = np.asarray(case["inputs"]["client"]["ids"])
        logits = transformer_fixed(config, transformer_weights(config, seed), ids)
        assert logits.shape == (config.pooled_rows(ids.size), config.n_out)
        assert (
            case["outputs"]["client"]["logits"]
            == ring_vec_encode(config.fxp.ring, logits.reshape(-1)).hex()
        )
        assert case["outputs"]["server"] == {"tokens": ids.size}
        labels = {e["label"] for e in case["transcript"]}
        assert labels >= {"transformer/tokens", "transformer/output"}
    # The LM case pins the mask: without it, the rows whose later keys it hides (0 and 1) would
    # differ; the last row sees every key either way.
    lm_case = by_id["transformer.model/tiny-lm"]
    lm = config_of(lm_case["inputs"]["config"])
    assert (lm.head, lm.causal, lm.n_out) == ("lm", True, lm.vocab_size)
    ids = np.asarray(lm_case["inputs"]["client"]["ids"])
    assert ids.size == 3
    weights = transformer_weights(lm, bytes.fromhex(lm_case["inputs"]["server"]["weights_seed"]))
    masked = transformer_fixed(lm, weights, ids)
    unmasked = transformer_fixed(replace(lm, causal=False), weights, ids)
    assert [bool(np.array_equal(m, u)) for m, u in zip(masked, unmasked, strict=True)] == [
        False,
        False,
        True,
    ]
