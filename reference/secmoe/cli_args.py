"""Argument types for the ``secmoe`` command line: every numeric value checked at parse time.

Each function is an ``argparse`` ``type=``: it returns the parsed value or raises
``argparse.ArgumentTypeError`` with a one-line reason, which argparse prints as
``secmoe serve: error: argument --port: ...`` (exit code 2, no traceback).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable


def _number(text: str, kind: type[int] | type[float]) -> float:
    try:
        value = kind(text)
    except ValueError:
        what = "an integer" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def int_range(lo: int, hi: int | None = None) -> Callable[[str], int]:
    """An integer in ``[lo, hi]`` (``hi`` None: no upper limit)."""

    def parse(text: str) -> int:
        value = int(_number(text.strip(), int))
        if value < lo or (hi is not None and value > hi):
            span = f"{lo}..{hi}" if hi is not None else f">= {lo}"
            raise argparse.ArgumentTypeError(f"{value} is out of range (must be {span})")
        return value

    parse.__name__ = "integer"
    return parse


def seconds(text: str) -> float:
    """A positive, finite number of seconds (not nan, not inf, not 0)."""
    value = _number(text.strip(), float)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive number of seconds")
    return float(value)


seconds.__name__ = "seconds"
port = int_range(1, 65535)
listen_port = int_range(0, 65535)  # 0: the system picks a free port (announced on stderr)
count = int_range(1)


def real_list(text: str) -> list[float]:
    """Comma-separated finite reals; an empty entry (``1,,2``) is an error, not skipped."""
    parts = text.split(",")
    out = []
    for i, part in enumerate(parts):
        if not part.strip():
            raise argparse.ArgumentTypeError(f"entry {i + 1} of {text!r} is empty")
        out.append(float(_number(part.strip(), float)))
    return out


real_list.__name__ = "list of reals"
