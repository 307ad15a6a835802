"""docs/tutorial.md runs: every `$` command and every `>>>` session, outputs compared.

The comparison (``tools/tutorial.py``) treats numbers as wildcards, so a protocol change that
moves sizes does not break the tutorial's test, while a renamed command, label or step, a
failing command or a run that no longer equals its vector does. ``python tools/tutorial.py
--update`` refreshes the numbers shown.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

import tutorial  # noqa: E402


def test_the_tutorial_has_runnable_steps() -> None:
    text = tutorial.DEFAULT.read_text(encoding="utf-8")
    lines = [c.line for c in tutorial.commands(text)]
    assert any(line.startswith("secmoe trace --case protocols.mul/l64/0") for line in lines)
    assert any(line.startswith("secmoe trace --demo") for line in lines)
    assert any(line.startswith("secmoe vectors ") for line in lines)
    assert len(tutorial.pycon_sources(text)) >= 3
    for c in tutorial.commands(text):
        assert c.shown.strip(), f"$ {c.line} shows no output"


def test_the_checker_catches_a_difference() -> None:
    shown = "mul  10  10,336  1-6  uint64[4]\nthis run equals the case: yes\n"
    assert tutorial.matches(shown, "mul  12  10,400  1-7  uint64[8]\nthis run equals the case: yes")
    assert not tutorial.matches(
        shown, "mul  10  10,336  1-6  uint64[4]\nthis run equals the case: NO"
    )
    assert not tutorial.matches(
        shown, "mult  10  10,336  1-6  uint64[4]\nthis run equals the case: yes"
    )
    assert tutorial.matches("a ... z", "a b c z")


def test_every_tutorial_command_runs_and_prints_what_it_shows() -> None:
    failures = tutorial.check()
    assert not failures, "\n\n".join(failures)
