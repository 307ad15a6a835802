"""`secmoe bench moe|nonlinear --plot FILE.png` (matplotlib, the optional `plot` extra)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from secmoe.bench.moe import ENV_DIMS, ENV_EXPERTS, ENV_VARIANTS
from secmoe.cli import main

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def _bench_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """`secmoe bench moe` passes its sizes as environment variables: undo them after a test."""
    for var in (ENV_EXPERTS, ENV_DIMS, ENV_VARIANTS):
        monkeypatch.setenv(var, "")


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_nonlinear_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib", reason="the plot extra (matplotlib) is not installed")
    out = tmp_path / "nonlinear.png"
    assert main(["bench", "nonlinear", "--quick", "--json", "--plot", str(out)]) == 0
    result = json.loads(capsys.readouterr().out)
    width, height = _png_size(out)
    assert width > 600 and height > 400
    plot = result["plot"]
    assert plot["file"] == str(out)
    ratios = plot["ratio_to_bumblebee"]
    assert ratios["gelu_bumblebee"] == 1.0
    assert ratios["gelu"] == pytest.approx(
        result["gelu"]["bytes_per_elem"] / result["gelu_bumblebee"]["bytes_per_elem"], abs=1e-4
    )


def test_moe_plot_with_formula_points(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib", reason="the plot extra (matplotlib) is not installed")
    out = tmp_path / "moe.png"
    argv = ["bench", "moe", "--quick", "--json", "--experts", "2,4", "--variants"]
    assert main([*argv, "reveal_routing", "--plot", str(out)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["reveal_routing"]["2"]["measured"] is True
    assert result["secmoe"]["4"]["measured"] is False  # drawn from the cost formula
    assert _png_size(out)[0] > 600
    assert result["plot"]["file"] == str(out)


def test_plot_without_matplotlib_says_how_to_get_it(tmp_path: Path) -> None:
    out = tmp_path / "x.png"
    code = (
        "import sys; sys.modules['matplotlib'] = None\n"
        "from secmoe.cli import main\n"
        f"sys.exit(main(['bench', 'nonlinear', '--quick', '--plot', {str(out)!r}]))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("SECMOE_BENCH")}
    res = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env
    )
    assert res.returncode == 2
    assert "pip install -e '.[plot]'" in res.stderr
    assert "bench nonlinear: running" not in res.stderr  # refused before running
    assert not out.exists()


def test_plot_only_for_moe_and_nonlinear(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "ot", "--quick", "--plot", "x.png"]) == 2
    assert "--plot goes with moe or nonlinear" in capsys.readouterr().err
