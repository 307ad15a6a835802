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
    "accuracy": 9,
    "vectors": 10,
    "interop": 11,
    "interop_cli": 12,
    "bench": 10,
    "trace": 11,
    "cli": 13,
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


# --- the citation check's free-text rule (tools/check_spec_refs.py, rule 4) -------------------

MINI_SPEC = """# 30. Protocols

## 30.1 Products

### `mul`

**Algorithm 30.1.1**

## 30.4 Truncation

### `trunc`

**Algorithm 30.4.1**

## 30.6 Vectors
"""


def _mini_root(tmp_path: Path, module_doc: str, body: str = "") -> Path:
    """A project of one spec file and one module implementing `mul` and `trunc`."""
    (tmp_path / "spec").mkdir()
    (tmp_path / "spec" / "30-protocols.md").write_text(MINI_SPEC)
    pkg = tmp_path / "reference" / "secmoe"
    pkg.mkdir(parents=True)
    (pkg / "trunc.py").write_text(
        f'"""{module_doc}"""\n\n\n'
        "def mul() -> None:\n"
        '    """Implements spec §30.1.1 `mul` (spec/30-protocols.md#mul)."""\n\n\n'
        "def trunc() -> None:\n"
        '    """Implements spec §30.4.1 `trunc` (spec/30-protocols.md#trunc)."""\n' + body
    )
    return tmp_path


FREE_REFERENCES = [
    ("Truncation (spec/30-protocols.md §30.4).", "", None),
    ("Truncation (spec/30-protocols.md §30.1-30.4).", "", None),
    ("Products and truncation (§30).", "# Step 1: as in §30.4.1 `trunc`.\n", None),
    ("Truncation (§30.4).", "# `trunc` (§30.4.1) then `mul` (§30.1)\n", None),
    (
        "Truncation (spec/30-protocols.md §30.6).",
        "",
        r"title cites §30\.6, but .* §30\.1\.1, §30\.4\.1",
    ),
    ("Truncation (§30.4).", "# see §30.7\n", r"§30\.7 is no section"),
    ("Truncation (§30.4).", "# §30.4-§31.2 hold it\n", r"§31\.2 is no section"),
    ("Truncation (§30.4).", "# spec/31-linear.md §30.4\n", r"§30\.4 is in spec/30-protocols\.md"),
    ("Truncation (§30.4).", "# §30.1 `trunc` truncates\n", r"§30\.1 is not the section of `trunc`"),
    (
        "Truncation (§30.4).",
        "# the exact `trunc` (§30.6)\n",
        r"§30\.6 is not the section of `trunc`",
    ),
    ("Truncation (§30.4).", 'X = 1\n"""§30.6 `mul`."""\n', None),  # not a docstring: not read
    ("Truncation (§30.4).", "def f() -> None:\n    '''As §30.6 `mul`.'''\n", r"`mul`"),
]


@pytest.mark.parametrize(
    ("doc", "body", "problem"), FREE_REFERENCES, ids=[str(i) for i in range(len(FREE_REFERENCES))]
)
def test_free_text_section_references_are_checked(
    tmp_path: Path, doc: str, body: str, problem: str | None
) -> None:
    """Guards rule 4 of the citation check: a free-text §N in a docstring or comment names a
    section that exists, in the file it names, containing the algorithm it names; a module's
    title cites the section its functions implement (§30.6 for trunc fails)."""
    problems = check_spec_refs.check(_mini_root(tmp_path, doc, body))
    if problem is None:
        assert problems == []
    else:
        assert len(problems) == 1 and re.search(problem, problems[0]), problems


def test_slow_property_tests_do_not_shrink() -> None:
    """Guards the test budget: every hypothesis test in the files whose examples are protocol
    runs uses ``bounded.layer_settings`` (no shrink phase, fixed example count), so a failing
    layer property reports at once instead of shrinking for minutes."""
    sys.path.insert(0, str(ROOT / "tests"))
    from bounded import NO_SHRINK, SLOW_FILES, layer_settings
    from hypothesis import Phase

    assert Phase.shrink not in NO_SHRINK
    assert Phase.shrink not in layer_settings(1).phases
    unbounded = []
    for name in SLOW_FILES:
        tree = ast.parse((ROOT / "tests" / name).read_text())
        for node in ast.walk(tree):
            if not isinstance(node, ast.FunctionDef):
                continue
            calls = [d.func for d in node.decorator_list if isinstance(d, ast.Call)]
            names = {c.id for c in calls if isinstance(c, ast.Name)}
            if "given" in names and "layer_settings" not in names:
                unbounded.append(f"{name}::{node.name}")
    assert not unbounded, f"property tests without layer_settings: {unbounded}"
