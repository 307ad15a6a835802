"""`secmoe demo` (the secure MoE layer in one process) and `secmoe serve` / `client` over TCP.

Each secure run takes seconds to tens of seconds, so there are exactly two: one in-process demo
and one two-process TCP run, both on one token, compared with each other.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from servers import SECMOE, free_port, start_server

from secmoe.cli import main
from secmoe.model.default import default_config, default_inputs, default_weights
from secmoe.model.fixed import moe_fixed

RUN_TIMEOUT = 600
KEYS = {
    "secure",
    "tokens",
    "experts",
    "routing_matches_plaintext",
    "max_abs_err_fixed",
    "max_abs_err_float",
    "bytes_c2s",
    "bytes_s2c",
    "rounds",
    "wall_s",
    "phases",
}
SAME = (
    "tokens",
    "experts",
    "experts_fixed",
    "experts_float",
    "gates",
    "routing_matches_plaintext",
    "routing_matches_float",
    "bit_exact_fixed",
    "max_abs_err_fixed",
    "max_abs_err_float",
    "output_head",
    "weights_sha256",
)
COUNTS = ("bytes_c2s", "bytes_s2c", "messages", "rounds")


@pytest.fixture(scope="module")
def demo() -> dict[str, Any]:
    r = subprocess.run(
        [*SECMOE, "demo", "--json", "--tokens", "1"],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
    )
    assert r.returncode == 0, r.stderr
    assert "[client] moe:" in r.stderr and "[server] moe:" in r.stderr  # progress on stderr
    out: dict[str, Any] = json.loads(r.stdout)
    return out


def test_demo_runs_the_secure_layer_bit_exactly(demo: dict[str, Any]) -> None:
    assert demo.keys() >= KEYS
    assert demo["secure"] is True and demo["mode"] == "in-process" and demo["tokens"] == 1
    # The secure layer equals the fixed-point model bit for bit, gates included.
    assert demo["max_abs_err_fixed"] == 0.0 and demo["bit_exact_fixed"] is True
    assert 0.0 < demo["max_abs_err_float"] < 1e-2
    # The client's routing, checked against a fresh plaintext run here (not the demo's own).
    config = default_config()
    x = config.fxp.encode(default_inputs(config, 1))
    expected = moe_fixed(config, default_weights(config), x).experts.tolist()
    assert demo["experts"] == expected and demo["routing_matches_plaintext"] is True
    # Input and output steps: a u32 token count and T d_model ring elements up; the server's
    # shares of y (T d_model), experts and gates (T k each) down, one message.
    phases = demo["phases"]
    k, d = config.top_k, config.d_model
    assert (phases["input"]["bytes_c2s"], phases["input"]["bytes_s2c"]) == (4 + 8 * d, 0)
    assert (phases["output"]["bytes_c2s"], phases["output"]["bytes_s2c"]) == (0, 8 * (d + 2 * k))
    assert phases["output"]["messages"] == 1 and phases["output"]["rounds"] == 1
    # Triples and keys are offline; the layer's protocol messages online.
    assert phases["offline"]["bytes"] > 0 and phases["online"]["bytes"] > 0
    for key in ("bytes_c2s", "bytes_s2c"):
        assert demo[key] == sum(p[key] for p in phases.values())
    assert demo["rounds"] > 0 and demo["wall_s"] > 0


def test_two_processes_over_tcp_print_the_same_numbers(demo: dict[str, Any]) -> None:
    port = free_port()
    server = start_server(port, "--sessions", "1", protocol="moe-demo")
    try:
        client = subprocess.run(
            [*SECMOE, "client", "--port", str(port), "--tokens", "1", "--json", "--quiet"],
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT,
        )
        out_s, err_s = server.communicate(timeout=RUN_TIMEOUT)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(timeout=10)
    assert client.returncode == 0, client.stderr
    assert server.returncode == 0, err_s
    c = json.loads(client.stdout)
    s = json.loads(out_s)
    assert c["secure"] is True and c["mode"] == "tcp" and c["protocol"] == "moe-demo"
    for key in SAME:
        assert c[key] == demo[key], key
    # The same messages as in one process, plus the handshake (one hello each way, 2 rounds
    # before everything else) and session/done (empty, 1 round after everything, spec §4.4.2).
    hs = c["phases"].pop("handshake")
    assert (hs["bytes_c2s"], hs["bytes_s2c"], hs["rounds"]) == (35, 35, 2)
    done = c["phases"].pop("close")
    assert (done["bytes_c2s"], done["bytes_s2c"], done["messages"], done["rounds"]) == (0, 0, 1, 1)
    assert c["phases"].keys() == demo["phases"].keys()
    for name, p in c["phases"].items():
        assert {q: p[q] for q in COUNTS} == {q: demo["phases"][name][q] for q in COUNTS}, name
    assert c["bytes_c2s"] == demo["bytes_c2s"] + 35 and c["bytes_s2c"] == demo["bytes_s2c"] + 35
    assert c["rounds"] == demo["rounds"] + 3
    # The server counted the same traffic and reports no output or routing.
    assert s["party"] == "server" and s["tokens"] == 1
    assert not {"experts", "output_head", "gates", "max_abs_err_fixed"} & s.keys()
    assert s["cost"]["total"]["bytes_c2s"] == c["bytes_c2s"]
    assert s["cost"]["total"]["bytes_s2c"] == c["bytes_s2c"]


def test_server_refuses_more_tokens_than_its_limit() -> None:
    port = free_port()
    server = start_server(port, "--max-tokens", "1", "--sessions", "1", protocol="moe-demo")
    client = subprocess.run(
        [*SECMOE, "client", "--port", str(port), "--tokens", "2", "--quiet"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    out_s, _ = server.communicate(timeout=60)
    report = json.loads(out_s)  # the session's report line (spec §4.4.3)
    assert server.returncode == 3 and report["kind"] == "out_of_range"
    assert "moe/tokens" in report["error"]
    assert client.returncode == 3 and "peer_closed" in client.stderr


def test_plaintext_demo_and_bad_tokens(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--plaintext", "--json", "--tokens", "2"]) == 0
    plain = json.loads(capsys.readouterr().out)
    assert plain["mode"] == "plaintext" and len(plain["tokens"]) == 2
    # Refused before any connection is attempted.
    with pytest.raises(SystemExit) as e:  # argparse: checked when parsed
        main(["client", "--port", str(free_port()), "--tokens", "0"])
    assert e.value.code == 2
    assert "argument --tokens: 0 is out of range (must be 1..64)" in capsys.readouterr().err


def test_the_cost_model_equals_the_measured_demo(demo: dict[str, Any]) -> None:
    # `secmoe cost --json --tokens 1` is computed from the spec's formulas, without crypto.
    r = subprocess.run(
        [*SECMOE, "cost", "--json", "--tokens", "1"], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0, r.stderr
    predicted = json.loads(r.stdout)
    for key in ("bytes_c2s", "bytes_s2c", "rounds"):
        assert predicted[key] == demo[key], key
    for name, phase in predicted["phases"].items():
        assert phase["bytes_c2s"] == demo["phases"][name]["bytes_c2s"], name
        assert phase["bytes_s2c"] == demo["phases"][name]["bytes_s2c"], name


def test_cost_presets_project_the_published_shapes() -> None:
    r = subprocess.run(
        [*SECMOE, "cost", "--json", "--preset", "all"], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0, r.stderr
    reports = {p["name"]: p for p in json.loads(r.stdout)["presets"]}
    assert set(reports) == {
        "switch-base-8",
        "switch-base-16",
        "switch-base-32",
        "switch-base-64",
        "switch-base-128",
        "mixtral-8x7b",
        "deepseekmoe-16b",
    }
    assert reports["mixtral-8x7b"]["config"]["d_model"] == 4096
    # The selected experts' products do not depend on E: only the routing and the keys grow.
    b = [reports[f"switch-base-{e}"]["bytes_c2s"] for e in (8, 16, 32, 64, 128)]
    assert b == sorted(b) and b[-1] < 1.5 * b[0]
    bad = subprocess.run([*SECMOE, "cost", "--preset", "nope"], capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown preset" in bad.stderr


def test_cost_of_a_given_configuration(tmp_path: Path) -> None:
    from secmoe.model.config import MoEConfig
    from secmoe.moe.cost import moe_cost

    fields = {"d_model": 8, "d_ff": 16, "n_experts": 4, "top_k": 2, "expert_kind": "swiglu"}
    file = tmp_path / "layer.json"
    file.write_text(json.dumps(fields))
    want = moe_cost(MoEConfig(**fields), 3, fresh_he=True, fresh_ot=True)  # type: ignore[arg-type]
    for spec in (json.dumps(fields), str(file)):
        r = subprocess.run(
            [*SECMOE, "cost", "--json", "--tokens", "3", "--config", spec],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert r.returncode == 0, r.stderr
        got = json.loads(r.stdout)
        assert (got["bytes_c2s"], got["bytes_s2c"]) == (want.c2s, want.s2c)
    bad = subprocess.run(
        [*SECMOE, "cost", "--config", '{"d_model": 8}'], capture_output=True, text=True
    )
    assert bad.returncode == 2 and "d_ff" in bad.stderr
