"""Canonical writing, generation and verification of vector files (spec/05-test-vectors.md#files).

Verification is regeneration: every registered file is generated afresh and compared byte for
byte with the file on disk; a difference is reported with the case it falls in.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from secmoe.errors import SpecError
from secmoe.vectors.registry import Json, Registered, registered


def canonical_json(obj: Json) -> str:
    """The canonical text of a vector file: the builders' key order, 2-space indent, ASCII only,
    ``\\n`` line ends and one final newline (spec §5.1)."""
    return json.dumps(obj, indent=2, ensure_ascii=True, allow_nan=False) + "\n"


def select(only: list[str] | None) -> list[Registered]:
    """The registered files, restricted to the protocols or path prefixes in ``only``."""
    files = registered()
    if not only:
        return files
    chosen = [
        r for r in files if any(r.spec.protocol == o or r.spec.path.startswith(o) for o in only)
    ]
    if not chosen:
        raise SpecError(f"no registered vector file matches {only}")
    return chosen


def generate(
    out_dir: Path, only: list[str] | None = None, progress: Callable[[str], None] | None = None
) -> list[Path]:
    """Write every (selected) registered file under ``out_dir``; return the paths written."""
    written: list[Path] = []
    for r in select(only):
        path = out_dir / r.spec.path
        path.parent.mkdir(parents=True, exist_ok=True)
        text = canonical_json(r.build())
        path.write_bytes(text.encode("ascii"))
        written.append(path)
        if progress is not None:
            progress(f"wrote {path} ({len(text)} bytes)")
    return written


_TCID = re.compile(r'"tcId": (\d+),\s*"id": "([^"]*)"')


def _locate(expected: str, offset: int) -> str:
    """Name the case of ``expected`` that contains character ``offset`` (or the header)."""
    last = None
    for m in _TCID.finditer(expected):
        if m.start() > offset:
            break
        last = m
    if last is None:
        return "file header"
    return f"case tcId={last.group(1)} id={last.group(2)}"


def _case_diffs(expected: Json, actual: Any) -> list[str]:
    """Structured comparison of two parsed files: the header fields and cases that differ."""
    out: list[str] = []
    if not isinstance(actual, dict):
        return ["file is not a JSON object"]
    for key in expected:
        if key != "testGroups" and expected.get(key) != actual.get(key):
            out.append(f"file header field {key!r} differs")
    for key in actual:
        if key not in expected:
            out.append(f"file header has an unexpected field {key!r}")
    exp_cases = [c for g in expected["testGroups"] for c in g["tests"]]
    groups = actual.get("testGroups")
    act_cases: list[Any] = []
    if isinstance(groups, list):
        for g in groups:
            if isinstance(g, dict) and isinstance(g.get("tests"), list):
                act_cases.extend(g["tests"])
    for i, exp in enumerate(exp_cases):
        act = act_cases[i] if i < len(act_cases) else None
        if act != exp:
            out.append(
                f"case tcId={exp['tcId']} id={exp['id']} differs"
                + (" (missing)" if act is None else "")
            )
    if len(act_cases) > len(exp_cases):
        out.append(f"{len(act_cases) - len(exp_cases)} unexpected extra case(s)")
    if isinstance(groups, list):
        for g_exp, g_act in zip(expected["testGroups"], groups, strict=False):
            if isinstance(g_act, dict) and {k: v for k, v in g_act.items() if k != "tests"} != {
                k: v for k, v in g_exp.items() if k != "tests"
            }:
                out.append(f"test group tgId={g_exp['tgId']} header differs")
    return out


def verify(
    directory: Path, only: list[str] | None = None, progress: Callable[[str], None] | None = None
) -> list[str]:
    """Compare ``directory`` with a fresh generation. Returns one line per failure (empty: pass).

    Every byte counts: a file that parses to the same data but is laid out differently fails
    too (with the case whose text differs first).
    """
    failures: list[str] = []
    chosen = select(only)
    known = {r.spec.path for r in chosen}
    for r in chosen:
        rel = r.spec.path
        path = directory / rel
        expected_obj = r.build()
        expected = canonical_json(expected_obj)
        if not path.exists():
            failures.append(f"FAIL {rel}: file missing")
            continue
        raw = path.read_bytes()
        if raw == expected.encode("ascii"):
            if progress is not None:
                progress(f"ok   {rel} ({expected_obj['numberOfTests']} cases)")
            continue
        try:
            actual = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            actual = None
            parse_note = f" (not valid JSON: {exc})"
        else:
            parse_note = ""
        details = _case_diffs(expected_obj, actual) if actual is not None else []
        if not details:
            text = raw.decode("utf-8", errors="replace")
            first = next(
                (i for i, (a, b) in enumerate(zip(text, expected, strict=False)) if a != b),
                min(len(text), len(expected)),
            )
            details = [f"{_locate(expected, first)}: bytes differ from offset {first}{parse_note}"]
        failures.extend(f"FAIL {rel}: {d}" for d in details)
    if only is None:
        for path in sorted(directory.rglob("*.json")):
            rel = path.relative_to(directory).as_posix()
            if rel not in known:
                failures.append(f"FAIL {rel}: no registered generator produces this file")
    return failures
