"""Check that the code and the spec cite each other consistently (spec/00-overview.md §0.4).

Rules:
1. Spec headings do not skip levels; every algorithm heading (``### `name` ``) is followed by a
   line ``**Algorithm N...**`` and its name is unique across the spec.
2. Every docstring citation ``Implements spec §N `name` (spec/FILE.md#anchor)`` resolves: the
   file exists, ``anchor`` is the anchor of the heading `` `name` `` there, N is its number, and
   the cited ``name`` is the name of the function or class that carries the docstring.
3. Every algorithm heading is implemented by exactly one function or class.

Exit status 0 when all hold, 1 otherwise (one line per problem).
"""

from __future__ import annotations

import ast
import re
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEADING = re.compile(r"^(#{1,6}) (.*)$")
ALGO_HEADING = re.compile(r"^### `([A-Za-z_][A-Za-z0-9_]*)`$")
ALGO_NUMBER = re.compile(r"^\*\*Algorithm ([0-9]+(?:\.[0-9]+)*)\*\*")
CITATION = re.compile(
    r"Implements spec §([0-9]+(?:\.[0-9]+)*) `([A-Za-z_][A-Za-z0-9_]*)` \(spec/([0-9a-z-]+\.md)#([a-z0-9_-]+)\)"
)


@dataclass(frozen=True)
class Algorithm:
    file: str
    name: str
    number: str
    line: int


def slug(text: str) -> str:
    """The anchor a Markdown renderer gives a heading (GitHub's rule)."""
    text = text.strip().lower()
    text = re.sub(r"[^a-z0-9 _-]", "", text)
    return text.replace(" ", "-")


def spec_algorithms(spec_dir: Path, problems: list[str]) -> dict[str, Algorithm]:
    found: dict[str, Algorithm] = {}
    for path in sorted(spec_dir.glob("*.md")):
        lines = path.read_text(encoding="utf-8").splitlines()
        level = 0
        in_code = False
        for i, line in enumerate(lines):
            if line.startswith("```"):
                in_code = not in_code
            if in_code:
                continue
            m = HEADING.match(line)
            if not m:
                continue
            depth = len(m.group(1))
            if depth > level + 1:
                problems.append(f"{path.name}:{i + 1}: heading level {depth} skips a level")
            level = depth
            am = ALGO_HEADING.match(line)
            if not am:
                continue
            name = am.group(1)
            nxt = next((x for x in lines[i + 1 :] if x.strip()), "")
            nm = ALGO_NUMBER.match(nxt)
            if not nm:
                problems.append(
                    f"{path.name}:{i + 1}: algorithm `{name}` lacks its **Algorithm N** line"
                )
                continue
            if name in found:
                other = found[name]
                problems.append(
                    f"{path.name}:{i + 1}: algorithm `{name}` also in {other.file}:{other.line}"
                )
                continue
            found[name] = Algorithm(path.name, name, nm.group(1), i + 1)
    return found


def citations(code_dir: Path) -> list[tuple[str, int, str, str, str, str, str]]:
    """(file, line, object name, number, cited name, spec file, anchor) for every citation."""
    out: list[tuple[str, int, str, str, str, str, str]] = []
    for path in sorted(code_dir.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                continue
            doc = ast.get_docstring(node)
            if not doc:
                continue
            flat = " ".join(doc.split())
            for m in CITATION.finditer(flat):
                rel = path.relative_to(ROOT).as_posix()
                out.append(
                    (rel, node.lineno, node.name, m.group(1), m.group(2), m.group(3), m.group(4))
                )
    return out


def check(root: Path = ROOT) -> list[str]:
    problems: list[str] = []
    algos = spec_algorithms(root / "spec", problems)
    implemented: dict[str, list[str]] = {}
    for rel, line, obj, number, name, spec_file, anchor in citations(root / "reference" / "secmoe"):
        where = f"{rel}:{line}"
        algo = algos.get(name)
        if not (root / "spec" / spec_file).exists():
            problems.append(f"{where}: cites missing spec file spec/{spec_file}")
            continue
        if algo is None or algo.file != spec_file:
            problems.append(
                f"{where}: cites `{name}` which is not an algorithm of spec/{spec_file}"
            )
            continue
        if slug(f"`{name}`") != anchor:
            problems.append(f"{where}: anchor #{anchor} should be #{slug(name)}")
        if algo.number != number:
            problems.append(f"{where}: cites §{number} but `{name}` is Algorithm {algo.number}")
        if obj != name:
            problems.append(
                f"{where}: `{obj}` cites `{name}`: the code name must equal the heading"
            )
        implemented.setdefault(name, []).append(where)
    for name, algo in sorted(algos.items()):
        sites = implemented.get(name, [])
        if not sites:
            problems.append(
                f"spec/{algo.file}:{algo.line}: algorithm `{name}` is implemented by no function"
            )
        elif len(sites) > 1:
            problems.append(
                f"spec/{algo.file}:{algo.line}: algorithm `{name}` is implemented twice: {', '.join(sites)}"
            )
    return problems


def main() -> int:
    problems = check()
    for p in problems:
        print(p)
    if problems:
        print(f"check_spec_refs: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
