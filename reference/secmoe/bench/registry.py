"""The benchmark registry behind ``secmoe bench``.

A benchmark is a function taking :class:`BenchOptions` and returning a JSON-able dict (the keys
its issue names). Register it with :func:`register_bench` in a module listed in
``secmoe/bench/catalog.py``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from secmoe.errors import SpecError


@dataclass(frozen=True)
class BenchOptions:
    """Options every benchmark accepts.

    ``quick`` asks for small sizes (used by the test suite to check that a benchmark runs and
    emits its keys); ``progress`` reports long runs on stderr.
    """

    quick: bool = False
    progress: Callable[[str], None] | None = None

    def say(self, message: str) -> None:
        if self.progress is not None:
            self.progress(message)


BenchFn = Callable[[BenchOptions], dict[str, object]]


@dataclass(frozen=True)
class BenchEntry:
    name: str
    description: str
    keys: tuple[str, ...]  # the keys the JSON object must carry
    run: BenchFn


BENCHMARKS: dict[str, BenchEntry] = {}


def register_bench(
    name: str, description: str, keys: tuple[str, ...]
) -> Callable[[BenchFn], BenchFn]:
    """Register ``fn`` as benchmark ``name``; ``keys`` are checked on every run."""

    def deco(fn: BenchFn) -> BenchFn:
        if name in BENCHMARKS:
            raise SpecError(f"benchmark {name!r} registered twice")
        BENCHMARKS[name] = BenchEntry(name, description, keys, fn)
        return fn

    return deco


def run_bench(name: str, options: BenchOptions) -> dict[str, object]:
    """Run one benchmark and check that its result carries the promised keys."""
    from secmoe.bench import catalog  # noqa: F401  (registers every benchmark)

    if name not in BENCHMARKS:
        raise SpecError(f"unknown benchmark {name!r}; known: {', '.join(sorted(BENCHMARKS))}")
    entry = BENCHMARKS[name]
    result = entry.run(options)
    missing = [k for k in entry.keys if k not in result]
    if missing:
        raise SpecError(f"benchmark {name!r} did not report {missing}")
    result.setdefault("cores", os.cpu_count() or 1)
    return {"benchmark": name, **result}


def all_benchmarks() -> list[BenchEntry]:
    from secmoe.bench import catalog  # noqa: F401

    return [BENCHMARKS[k] for k in sorted(BENCHMARKS)]
