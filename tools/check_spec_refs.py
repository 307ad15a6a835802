"""Check that the code and the spec cite each other consistently (spec/00-overview.md §0.4).

Rules:
1. Spec headings do not skip levels; every algorithm heading (``### `name` ``) is followed by a
   line ``**Algorithm N...**`` and its name is unique across the spec.
2. Every docstring citation ``Implements spec §N `name` (spec/FILE.md#anchor)`` resolves: the
   file exists, ``anchor`` is the anchor of the heading `` `name` `` there, N is its number, and
   the cited ``name`` is the name of the function or class that carries the docstring.
3. Every algorithm heading is implemented by exactly one function or class.
4. Every free-text reference ``§N`` (also ``§N-M`` and ``§N-§M``) in a docstring or a comment of
   reference/, tools/ and tests/ names a section that exists: a numbered heading (``## 20.5 ...``)
   or an algorithm (``**Algorithm 20.5.1**``). Where the reference says more, that must hold too:
   - ``spec/FILE.md §N``: section N is in FILE;
   - ``§N `name` `` or `` `name` (§N``, ``name`` an algorithm: it is section N or lies inside it;
   - the first ``§N`` in a module docstring's first paragraph, in a module whose functions cite
     algorithms (rule 2): N contains one of them, or lies inside one's section (a module's title
     says which part of the spec it implements, so `trunc.py` citing ``§30.6`` for truncation
     fails).

Exit status 0 when all hold, 1 otherwise (one line per problem).
"""

from __future__ import annotations

import ast
import io
import re
import sys
import tokenize
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEADING = re.compile(r"^(#{1,6}) (.*)$")
ALGO_HEADING = re.compile(r"^### `([A-Za-z_][A-Za-z0-9_]*)`$")
ALGO_NUMBER = re.compile(r"^\*\*Algorithm ([0-9]+(?:\.[0-9]+)*)\*\*")
SECTION_HEADING = re.compile(r"^#{1,6} ([0-9]+(?:\.[0-9]+)*)\.? ")
NUM = r"[0-9]+(?:\.[0-9]+)*"
FREE_REF = re.compile(
    rf"(?:(spec/[0-9a-z-]+\.md)(?:#[a-z0-9_-]+)? )?§ ?({NUM})(?: ?- ?§? ?({NUM}))?"
)
NAME_AFTER = re.compile(r"^ `([A-Za-z_][A-Za-z0-9_]*)`")
NAME_BEFORE = re.compile(r"`([A-Za-z_][A-Za-z0-9_]*)` \((?:spec )?$")
SCANNED = ("reference", "tools", "tests")
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


def citations(code_dir: Path, root: Path = ROOT) -> list[tuple[str, int, str, str, str, str, str]]:
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
                rel = path.relative_to(root).as_posix()
                out.append(
                    (rel, node.lineno, node.name, m.group(1), m.group(2), m.group(3), m.group(4))
                )
    return out


def spec_sections(spec_dir: Path) -> dict[str, str]:
    """Section number -> spec file, for every numbered heading and every algorithm number."""
    out: dict[str, str] = {}
    for path in sorted(spec_dir.glob("*.md")):
        in_code = False
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.startswith("```"):
                in_code = not in_code
            m = None if in_code else SECTION_HEADING.match(line) or ALGO_NUMBER.match(line)
            if m:
                out.setdefault(m.group(1), path.name)
    return out


def _inside(inner: str, outer: str) -> bool:
    """Section ``inner`` is ``outer`` or one of its subsections."""
    return inner == outer or inner.startswith(outer + ".")


def free_texts(path: Path) -> list[tuple[int, str, bool]]:
    """(line, text, is the module docstring's first line) of every docstring and comment."""
    source = path.read_text(encoding="utf-8")
    out: list[tuple[int, str, bool]] = []
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if not isinstance(node, ast.Module | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            continue
        body = node.body
        if not (body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)):
            continue
        doc = body[0].value.value
        if not isinstance(doc, str):
            continue
        line = body[0].lineno
        first, _, rest = doc.partition("\n\n")
        if isinstance(node, ast.Module):
            out.append((line, " ".join(first.split()), True))
            out.append((line, " ".join(rest.split()), False))
        else:
            out.append((line, " ".join(doc.split()), False))
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            out.append((tok.start[0], tok.string, False))
    return out


def check_free_references(
    root: Path, algos: dict[str, Algorithm], cited: dict[str, list[str]]
) -> list[str]:
    """Rule 4; ``cited``: file -> the algorithm numbers its functions cite (rule 2)."""
    problems: list[str] = []
    sections = spec_sections(root / "spec")
    for top in SCANNED:
        for path in sorted((root / top).rglob("*.py")):
            rel = path.relative_to(root).as_posix()
            own = cited.get(rel, [])
            for line, text, is_title in free_texts(path):
                for k, m in enumerate(FREE_REF.finditer(text)):
                    where = f"{rel}:{line}"
                    spec_file, first, last = m.group(1), m.group(2), m.group(3)
                    missing = [n for n in (first, last) if n is not None and n not in sections]
                    if missing:
                        problems.append(f"{where}: §{missing[0]} is no section of the spec")
                        continue
                    if spec_file is not None and sections[first] != spec_file.removeprefix("spec/"):
                        problems.append(
                            f"{where}: §{first} is in spec/{sections[first]}, not {spec_file}"
                        )
                    after = NAME_AFTER.match(text[m.end() :]) if last is None else None
                    before = NAME_BEFORE.search(text[: m.start()])
                    for nm in (after, before):
                        algo = algos.get(nm.group(1)) if nm else None
                        if algo is not None and not _inside(algo.number, first):
                            problems.append(
                                f"{where}: §{first} is not the section of `{algo.name}` "
                                f"(Algorithm {algo.number})"
                            )
                    ends = [n for n in (first, last) if n is not None]
                    if (
                        is_title
                        and k == 0
                        and own
                        and not any(_inside(c, n) or _inside(n, c) for c in own for n in ends)
                    ):
                        problems.append(
                            f"{where}: the module's title cites §{first}, but its functions "
                            f"implement §{', §'.join(sorted(set(own)))}"
                        )
    return problems


def check(root: Path = ROOT) -> list[str]:
    problems: list[str] = []
    algos = spec_algorithms(root / "spec", problems)
    implemented: dict[str, list[str]] = {}
    cited: dict[str, list[str]] = {}
    for rel, line, obj, number, name, spec_file, anchor in citations(
        root / "reference" / "secmoe", root
    ):
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
        cited.setdefault(rel, []).append(number)
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
    problems += check_free_references(root, algos, cited)
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
