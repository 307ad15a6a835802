"""Check that every algorithm of the spec has a test vector (spec/05-test-vectors.md §5.6).

Rules:
1. Every anchor a vector file names (``spec.anchor`` and each of ``spec.covers``) is the anchor
   of a heading in that spec file.
2. Every algorithm heading (``### `name` `` with **Algorithm N**) is named by at least one vector
   file, or is a row of the table "Not vectorable" of spec §5.6 (`` | `name` | reason | ``).
3. A row of that table names an algorithm, gives a reason, and names one that no file covers
   (a stale row would hide a vector that exists).

``executed_algorithms`` (used by tests/test_vector_coverage.py) runs one registered generator
and returns the algorithms whose implementing function or class it called: a file's
``covers`` must be a subset.

Exit status 0 when all hold, 1 otherwise (one line per problem).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import CodeType, FrameType
from typing import Any

from check_spec_refs import HEADING, ROOT, Algorithm, citations, slug, spec_algorithms

TABLE_HEADING = "### Not vectorable"
ROW = re.compile(r"^\| `([A-Za-z_][A-Za-z0-9_]*)` \| (.*) \|$")


def anchor_of(alg: Algorithm) -> str:
    return f"spec/{alg.file}#{slug(f'`{alg.name}`')}"


def heading_anchors(spec_dir: Path) -> set[str]:
    """``spec/FILE.md#slug`` of every heading outside code blocks."""
    out: set[str] = set()
    for path in sorted(spec_dir.glob("*.md")):
        in_code = False
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.startswith("```"):
                in_code = not in_code
            m = None if in_code else HEADING.match(line)
            if m:
                out.add(f"spec/{path.name}#{slug(m.group(2))}")
    return out


def not_vectorable(spec_dir: Path) -> dict[str, str]:
    """Algorithm name -> reason, from the table under ``### Not vectorable`` of spec §5."""
    lines = (spec_dir / "05-test-vectors.md").read_text(encoding="utf-8").splitlines()
    if TABLE_HEADING not in lines:
        return {}
    out: dict[str, str] = {}
    for line in lines[lines.index(TABLE_HEADING) + 1 :]:
        if line.startswith("#"):
            break
        m = ROW.match(line)
        if m:
            out[m.group(1)] = m.group(2).strip()
    return out


def named_anchors(vectors_dir: Path) -> dict[str, list[str]]:
    """Anchor -> the vector files (relative paths) that name it."""
    out: dict[str, list[str]] = {}
    for path in sorted(vectors_dir.rglob("*.json")):
        spec = json.loads(path.read_text(encoding="utf-8")).get("spec", {})
        rel = path.relative_to(vectors_dir).as_posix()
        for anchor in [spec.get("anchor"), *spec.get("covers", [])]:
            if isinstance(anchor, str):
                out.setdefault(anchor, []).append(rel)
    return out


def check(spec_dir: Path, vectors_dir: Path) -> list[str]:
    problems: list[str] = []
    algorithms = spec_algorithms(spec_dir, problems)
    headings = heading_anchors(spec_dir)
    named = named_anchors(vectors_dir)
    for anchor, files in sorted(named.items()):
        if anchor not in headings:
            problems.append(f"{files[0]}: {anchor} is no heading of the spec")
    excused = not_vectorable(spec_dir)
    for name, reason in sorted(excused.items()):
        if name not in algorithms:
            problems.append(f"05-test-vectors.md: not-vectorable row `{name}` is no algorithm")
        elif anchor_of(algorithms[name]) in named:
            where = ", ".join(named[anchor_of(algorithms[name])])
            problems.append(
                f"05-test-vectors.md: `{name}` is listed as not vectorable but {where} covers it"
            )
        elif not reason:
            problems.append(f"05-test-vectors.md: not-vectorable row `{name}` gives no reason")
    for name, alg in sorted(
        algorithms.items(), key=lambda kv: [int(p) for p in kv[1].number.split(".")]
    ):
        if anchor_of(alg) not in named and name not in excused:
            problems.append(
                f"{alg.file}:{alg.line}: algorithm {alg.number} `{name}` is named by no vector "
                f"file (spec.anchor or spec.covers) and not listed as not vectorable (spec §5.6)"
            )
    return problems


def executed_algorithms(run: Callable[[], Any], root: Path = ROOT) -> set[str]:
    """The algorithms (names) whose implementing function or class ``run`` calls, in any
    thread, found by the docstring citations of ``reference/``."""
    by_file: dict[str, list[tuple[str, str]]] = {}
    for rel, _line, obj, _num, name, _sf, _anchor in citations(root / "reference", root):
        by_file.setdefault(str((root / rel).resolve()), []).append((obj, name))
    cache: dict[CodeType, str | None] = {}

    def algorithm(code: CodeType) -> str | None:
        cited = by_file.get(code.co_filename, [])
        q = code.co_qualname
        # A method's own citation (Prg.next_bytes) before its class's (Prg).
        for obj, name in cited:
            if q == obj or q.endswith("." + obj):
                return name
        for obj, name in cited:
            if q.startswith(obj + "."):
                return name
        return None

    seen: set[str] = set()

    def profile(frame: FrameType, event: str, arg: object) -> None:
        if event != "call":
            return
        code = frame.f_code
        if code not in cache:
            cache[code] = algorithm(code)
        name = cache[code]
        if name is not None:
            seen.add(name)

    threading.setprofile(profile)
    sys.setprofile(profile)
    try:
        run()
    finally:
        sys.setprofile(None)
        threading.setprofile(None)
    return seen


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", type=Path, default=ROOT / "spec")
    ap.add_argument("--vectors", type=Path, default=ROOT / "vectors")
    args = ap.parse_args(argv)
    problems = check(args.spec, args.vectors)
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
