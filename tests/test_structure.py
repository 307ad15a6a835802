"""Project structure: spec citations, import layering, one entropy source, benchmarks' keys."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "reference" / "secmoe"
sys.path.insert(0, str(ROOT / "tools"))

import check_spec_refs  # noqa: E402

# Lower layers never import higher ones; modules of one layer do not import each other's package.
LAYERS: dict[str, int] = {
    "errors": 0,
    "cli_args": 0,
    "encoding": 1,
    "randomness": 2,
    "net": 3,
    "model": 3,
    "session": 4,
    "sharing": 5,
    "serve": 5,
    "ot": 6,
    "he": 6,
    "protocols": 7,
    "moe": 8,
    "transformer": 9,
    "vectors": 10,
    "bench": 10,
    "cli": 11,
}


def test_spec_citations_resolve() -> None:
    assert check_spec_refs.check() == []


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    out: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append(node.module)
    return [m for m in out if m == "secmoe" or m.startswith("secmoe.")]


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_import_layering() -> None:
    problems = []
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG).with_suffix("").as_posix().replace("/", ".")
        me = rel.split(".")[0]
        if me == "__init__":
            continue
        assert me in LAYERS, f"module secmoe.{rel} has no layer; add it to LAYERS"
        for imported in _imports(path):
            other = _layer(imported)
            if other in ("", me):
                continue
            assert other in LAYERS, f"{imported} has no layer"
            if LAYERS[other] >= LAYERS[me]:
                problems.append(
                    f"secmoe.{rel} (layer {LAYERS[me]}) imports {imported} (layer {LAYERS[other]})"
                )
    assert not problems, "\n".join(problems)


ENTROPY = re.compile(
    r"\b(import random|from random|numpy\.random|np\.random|os\.urandom|import secrets|from secrets)\b"
)


def test_only_system_seed_reads_entropy() -> None:
    hits = []
    for path in sorted(PKG.rglob("*.py")):
        for i, line in enumerate(path.read_text().splitlines(), start=1):
            if ENTROPY.search(line):
                hits.append(f"{path.relative_to(ROOT)}:{i}: {line.strip()}")
    assert len(hits) == 1, hits
    assert hits[0].startswith("reference/secmoe/randomness.py:") and "os.urandom" in hits[0], hits


def test_benchmarks_emit_their_keys() -> None:
    from secmoe.bench.registry import BenchOptions, all_benchmarks, run_bench

    names = [b.name for b in all_benchmarks()]
    assert {"channel", "ot", "he"} <= set(names)
    for b in all_benchmarks():
        result = run_bench(b.name, BenchOptions(quick=True))
        for key in b.keys:
            assert key in result


def test_unknown_benchmark_is_a_clear_error() -> None:
    from secmoe.bench.registry import BenchOptions, run_bench
    from secmoe.errors import SpecError

    with pytest.raises(SpecError, match="unknown benchmark"):
        run_bench("nope", BenchOptions(quick=True))
