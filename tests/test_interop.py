"""Live conformance (spec §5.7): ``secmoe interop`` against our own peer over localhost TCP.

Every case of every two-party vector file passes in both directions (checker as client against
a listening peer server, and checker as a listening server against a connecting peer client);
the four large files (the MoE layers and the transformer block) run one case per direction. A
peer that flips one byte of one message is pinpointed: label, round, byte offset.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
from pathlib import Path

import pytest
from servers import SECMOE

from secmoe.errors import Party
from secmoe.interop import Case, Corruption, Endpoint, Result, load_cases, run_cases
from secmoe.vectors.play import case_fxp
from secmoe.vectors.registry import registered

ROOT = Path(__file__).resolve().parent.parent
VECTORS = ROOT / "vectors"
LARGE = {"moe/moe.json", "moe/moe_compute_then_select.json", "moe/moe_reveal_routing.json"}
LARGE |= {"transformer/block.json", "moe/moe_routing.json", "moe/moe_experts.json"}
LARGE |= {"moe/demo.json", "accuracy/classify.json", "transformer/model.json"}
# A whole TCP session, handshake included, is the subject of this file: it is replayed on raw
# sockets (tests/test_vector_coverage.py), not played inside an interop session (spec §5.7).
SESSION_FILES = {"net/session.json"}


def two_party_files() -> list[str]:
    out = []
    for path in sorted(VECTORS.rglob("*.json")):
        data = json.loads(path.read_text())
        rel = path.relative_to(VECTORS).as_posix()
        if rel in SESSION_FILES:
            continue
        if any("transcript" in c for g in data["testGroups"] for c in g["tests"]):
            out.append(rel)
    return out


FILES = two_party_files()


def other(party: Party) -> Party:
    return "server" if party == "client" else "client"


def session(
    cases: list[Case], checker: Party, *, corrupt: Corruption | None = None
) -> tuple[list[Result], list[Result]]:
    """The checker plays ``checker`` and listens when it is the server; our peer plays the
    other party (corrupting its frames if asked) in a thread; both over real TCP."""
    peer_cases = [load_cases(c.path, c.id)[0] for c in cases]
    box: dict[str, list[Result]] = {}
    if checker == "server":
        listener = Endpoint(listen=0)
        peer_end = Endpoint(connect=f"127.0.0.1:{listener.port}")
        checker_end = listener
    else:
        peer_end = Endpoint(listen=0)
        checker_end = Endpoint(connect=f"127.0.0.1:{peer_end.port}")

    def peer() -> None:
        box["peer"] = run_cases(peer_cases, other(checker), peer_end, timeout=60, corrupt=corrupt)

    th = threading.Thread(target=peer, daemon=True)
    th.start()
    results = run_cases(cases, checker, checker_end, timeout=60)
    th.join(60)
    assert not th.is_alive()
    return results, box["peer"]


def test_every_vectored_protocol_has_a_player() -> None:
    """The interop registry is the vector table: every two-party file on disk and every
    registered file of mode real has its player, and nothing else has one."""
    with_player = {r.spec.path for r in registered() if r.player is not None}
    assert with_player == set(FILES)
    real = {r.spec.path for r in registered() if r.spec.mode == "real"}
    assert real - SESSION_FILES == with_player
    for rel in FILES:
        for case in load_cases(VECTORS / rel):
            assert case.play.fxp == case_fxp({**case.params})


@pytest.mark.parametrize("checker", ["client", "server"])
@pytest.mark.parametrize("rel", FILES)
def test_interop_against_our_peer_passes(rel: str, checker: Party) -> None:
    cases = load_cases(VECTORS / rel)
    if rel in LARGE:  # one case per direction keeps `make test` short (all: the slow test below)
        cases = [cases[(checker == "server") % len(cases)]]
    results, peer = session(cases, checker)
    for r in results + peer:
        assert r.passed, r.line()
        assert r.divergence is None
        assert r.measured() == r.case.case["cost"]
    n_peer = [sum(e["from"] != checker for e in c.case["transcript"]) for c in cases]
    hellos_and_done = (
        2 if checker == "server" else 1
    )  # the client's hello and done; the server's hello
    assert [r.frames_checked for r in results] == [n + hellos_and_done for n in n_peer]


def _expect(result: Result, label: str, round_: int, offset: int) -> None:
    d = result.divergence
    assert d is not None, result.line()
    assert (d.what, d.frame.label, d.frame.round, d.details["offset"]) == (
        "payload",
        label,
        round_,
        offset,
    )
    exp, got = bytes.fromhex(d.details["expected"]), bytes.fromhex(d.details["received"])
    assert exp[0] ^ got[0] == 0x01 and exp[1:] == got[1:]
    assert not result.passed and "DIVERGED" in result.line()


def _entry(case: Case, sender: Party, label: str, k: int = 0) -> dict[str, object]:
    entries = [e for e in case.case["transcript"] if e["from"] == sender and e["label"] == label]
    return dict(entries[k])


@pytest.mark.parametrize("checker", ["client", "server"])
def test_a_flipped_inline_byte_is_pinpointed(checker: Party) -> None:
    case = load_cases(VECTORS / "protocols/mul.json", "protocols.mul/l64/0")[0]
    peer = other(checker)
    e = _entry(case, peer, "ot/cot/d")
    assert "payload" in e
    results, _ = session([case], checker, corrupt=Corruption("ot/cot/d", 5))
    _expect(results[0], "ot/cot/d", int(str(e["round"])), 5)


def test_a_flipped_byte_of_a_hashed_payload_is_pinpointed() -> None:
    """Payloads over 1024 bytes are listed by SHA-256: the checker recomputes them to locate
    the byte."""
    case = load_cases(VECTORS / "protocols/mul.json", "protocols.mul/l64/1")[0]
    e = _entry(case, "server", "ot/iknp/u")
    assert "sha256" in e and int(str(e["len"])) > 3000
    results, _ = session([case], "client", corrupt=Corruption("ot/iknp/u", 3000))
    _expect(results[0], "ot/iknp/u", int(str(e["round"])), 3000)


def test_a_peer_on_another_case_stops_at_the_hello() -> None:
    mine, theirs = load_cases(VECTORS / "protocols/mul.json")
    peer_end = Endpoint(listen=0)
    th = threading.Thread(target=run_cases, args=([theirs], "server", peer_end), daemon=True)
    th.start()
    (r,) = run_cases([mine], "client", Endpoint(connect=f"127.0.0.1:{peer_end.port}"), timeout=30)
    th.join(30)
    d = r.divergence
    assert d is not None and (d.index, d.what, d.frame.label, d.frame.round) == (
        0,
        "payload",
        "session/hello",
        2,
    )
    # lp("secmoe/v1") is 17 bytes, then the length of the id (8 bytes), then the id itself
    assert d.details["offset"] == 17 + 8 + len("protocols.mul/l64/")


def _serve(*args: str) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [*SECMOE, "serve", *args, "--listen", "0", "--quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    line = proc.stderr.readline()
    assert "listening on 127.0.0.1:" in line, line
    return proc, int(line.split("127.0.0.1:")[1].split()[0])


def test_cli_interop_and_serve_vector() -> None:
    """The commands of the README: PASS (exit 0), then a corrupting peer (exit 1)."""
    vec = str(VECTORS / "sharing/share_add_reveal.json")
    proc, port = _serve("--all", vec)
    run = subprocess.run(
        [*SECMOE, "interop", "--all", vec, "--party", "client", "--connect", f"127.0.0.1:{port}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.wait(60) == 0
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.count("PASS") == 2

    vec = str(VECTORS / "sharing/arith_share.json")
    cid = "sharing.arith_share/l64/client"
    proc, port = _serve(
        "--vector", vec, "--case", cid, "--party", "client", "--corrupt", "sharing/arith_share:9"
    )
    run = subprocess.run(
        [
            *SECMOE,
            "interop",
            "--vector",
            vec,
            "--case",
            cid,
            "--party",
            "server",
            "--connect",
            f"127.0.0.1:{port}",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    proc.wait(60)
    assert run.returncode == 1, run.stdout + run.stderr
    report = json.loads(run.stdout)
    assert report["status"] == "diverged"
    d = report["divergence"]
    assert (d["label"], d["round"], d["what"], d["offset"]) == (
        "sharing/arith_share",
        1,
        "payload",
        9,
    )


@pytest.mark.skipif(
    not os.environ.get("SECMOE_SLOW_TESTS"), reason="slow (about 1 min): SECMOE_SLOW_TESTS=1"
)
@pytest.mark.parametrize("checker", ["client", "server"])
@pytest.mark.parametrize("rel", sorted(LARGE))
def test_interop_all_cases_of_the_large_files(rel: str, checker: Party) -> None:
    results, peer = session(load_cases(VECTORS / rel), checker)
    assert all(r.passed for r in results + peer), [r.line() for r in results + peer]
