"""Run the tutorial's commands and compare what they print with what the tutorial shows.

``docs/tutorial.md`` has two kinds of runnable blocks:

- ```` ```console ```` blocks: lines ``$ COMMAND`` run by the shell from a scratch directory
  that links ``spec/`` and ``vectors/`` of the checkout (with this Python's ``bin`` first on
  ``PATH``), each followed by the output it prints (stdout and stderr together);
- ```` ```pycon ```` blocks: ``>>>`` sessions, run by ``doctest`` in one namespace shared by
  every block of the file, in order.

A console output matches when it equals the shown text up to whitespace at line ends, with
``...`` matching any text and every number matching any number: sizes and rounds change
whenever a protocol changes, so the tutorial's numbers are refreshed by
``python tools/tutorial.py --update`` rather than checked. Everything else (labels, steps,
"yes" where a run equals its vector) is checked.

Usage: ``python tools/tutorial.py [--update] [FILE]`` (default ``docs/tutorial.md``); exit 1
when a command fails or its output differs.
"""

from __future__ import annotations

import doctest
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT = ROOT / "docs" / "tutorial.md"
FENCE = re.compile(r"^```(console|pycon)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?(?:e[+-]?\d+)?")
TIMEOUT = 600


@dataclass(frozen=True)
class Command:
    """One ``$`` line of a console block and the output shown after it."""

    line: str
    shown: str
    start: int  # offsets of the shown output in the file (for --update)
    end: int


def commands(text: str) -> list[Command]:
    """Every ``$`` command of every console block, in order."""
    out: list[Command] = []
    for m in FENCE.finditer(text):
        if m.group(1) != "console":
            continue
        body, base = m.group(2), m.start(2)
        lines = body.splitlines(keepends=True)
        pos = 0
        for i, line in enumerate(lines):
            if line.startswith("$ "):
                start = pos + len(line)
                shown = []
                for nxt in lines[i + 1 :]:
                    if nxt.startswith("$ "):
                        break
                    shown.append(nxt)
                end = start + sum(len(s) for s in shown)
                out.append(Command(line[2:].strip(), "".join(shown), base + start, base + end))
            pos += len(line)
    return out


def pycon_sources(text: str) -> list[str]:
    return [m.group(2) for m in FENCE.finditer(text) if m.group(1) == "pycon"]


def _pattern(shown: str) -> re.Pattern[str]:
    parts = []
    for piece in re.split(r"(\.\.\.|" + NUMBER.pattern + ")", shown):
        if piece == "...":
            parts.append(r".*?")
        elif NUMBER.fullmatch(piece):
            parts.append(NUMBER.pattern)
        else:
            parts.append(re.escape(piece))
    return re.compile("".join(parts), re.DOTALL)


def _clean(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.strip("\n").splitlines())


def matches(shown: str, got: str) -> bool:
    """``got`` is ``shown`` up to line-end whitespace, ``...`` and the numbers' values."""
    return _pattern(_clean(shown)).fullmatch(_clean(got)) is not None


def scratch() -> tempfile.TemporaryDirectory[str]:
    """A directory with ``spec`` and ``vectors`` linked from the checkout."""
    tmp = tempfile.TemporaryDirectory(prefix="secmoe-tutorial-")
    for name in ("spec", "vectors"):
        (Path(tmp.name) / name).symlink_to(ROOT / name, target_is_directory=True)
    return tmp


def run_command(line: str, cwd: str) -> tuple[int, str]:
    """Run one command as a reader would; return its exit status and its output."""
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env["COLUMNS"] = "100"
    res = subprocess.run(
        line,
        shell=True,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=TIMEOUT,
    )
    return res.returncode, res.stdout


def run_pycon(sources: list[str], cwd: str) -> list[str]:
    """Run the ``>>>`` blocks in one namespace from ``cwd``; one line per failing example."""
    parser = doctest.DocTestParser()
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    runner = doctest.DocTestRunner(optionflags=flags)
    globs: dict[str, object] = {}
    failures: list[str] = []
    old = os.getcwd()
    os.chdir(cwd)
    try:
        for i, src in enumerate(sources):
            test = parser.get_doctest(src, globs, f"pycon block {i + 1}", str(DEFAULT), 0)
            out: list[str] = []
            result = runner.run(test, out=out.append, clear_globs=False)
            globs.update(test.globs)  # DocTest copies its globals: carry them to the next block
            if result.failed:
                failures.append("".join(out))
    finally:
        os.chdir(old)
    return failures


def check(path: Path = DEFAULT) -> list[str]:
    """Run every command and session of the tutorial; one message per failure."""
    text = path.read_text(encoding="utf-8")
    failures: list[str] = []
    with scratch() as cwd:
        for cmd in commands(text):
            code, got = run_command(cmd.line, cwd)
            if code != 0:
                failures.append(f"$ {cmd.line}\nexit status {code}:\n{got}")
            elif not matches(cmd.shown, got):
                failures.append(f"$ {cmd.line}\nshown:\n{cmd.shown}\nprinted:\n{got}")
        failures.extend(run_pycon(pycon_sources(text), cwd))
    return failures


def update(path: Path = DEFAULT) -> int:
    """Rewrite the shown output of every console command with what it prints now."""
    text = path.read_text(encoding="utf-8")
    pieces: list[str] = []
    last = 0
    with scratch() as cwd:
        for cmd in commands(text):
            code, got = run_command(cmd.line, cwd)
            if code != 0:
                print(f"$ {cmd.line}: exit status {code}\n{got}", file=sys.stderr)
                return 1
            keep = cmd.shown if matches(cmd.shown, got) and "..." in cmd.shown else None
            pieces += [text[last : cmd.start], keep if keep is not None else _clean(got) + "\n"]
            last = cmd.end
    pieces.append(text[last:])
    path.write_text("".join(pieces), encoding="utf-8")
    return 0


def main(argv: list[str]) -> int:
    args = [a for a in argv if a != "--update"]
    path = Path(args[0]) if args else DEFAULT
    if "--update" in argv:
        return update(path)
    failures = check(path)
    for f in failures:
        print(f, file=sys.stderr)
    print(f"{path}: {len(failures)} failure(s)", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
