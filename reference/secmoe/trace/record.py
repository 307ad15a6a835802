"""Record which spec algorithm each party is in when each message passes (the steps of a run).

A *step* is one call of an *algorithm*: a function of the package whose docstring cites a spec
algorithm (``Implements spec §N `name` (spec/FILE.md#name)``, checked by ``make lint``) and that
takes a party context ``ctx``. While a :class:`Recorder` is active (a profile hook on this
thread and on threads started inside it), every call of an algorithm opens a step under the
step the party is in, and its return closes it. A step keeps the length of the party's
transcript when it opened and closed (so the messages in between are its own or its
sub-steps'), a description of what it returned (types and shapes, never values) and the
session state it left behind (``ctx.store`` names). Nothing in the protocols changes: the
recorder only reads frames.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
import sys
import threading
from dataclasses import dataclass, field, fields, is_dataclass
from types import CodeType, FrameType, TracebackType
from typing import Any

import numpy as np

from secmoe.errors import Party
from secmoe.net.channel import Channel
from secmoe.session import PartyContext

CITATION = re.compile(
    r"Implements spec §([0-9]+(?:\.[0-9]+)*) `([A-Za-z_][A-Za-z0-9_]*)` "
    r"\((spec/[0-9a-z-]+\.md#[a-z0-9_-]+)\)"
)
# Modules that hold no two-party algorithm (and would only slow the scan down).
SKIP_MODULES = ("secmoe.cli", "secmoe.bench", "secmoe.trace", "secmoe.vectors")
MAX_ITEMS = 6  # a description lists at most this many items of a tuple, list or dict
MAX_DEPTH = 3


@dataclass(frozen=True)
class Algorithm:
    """A spec algorithm as its function cites it: name, section number, anchor."""

    name: str
    section: str  # e.g. "30.1.2"
    anchor: str  # e.g. "spec/30-protocols.md#mul"


@dataclass
class Step:
    """One call of an algorithm by one party."""

    algorithm: Algorithm
    start: int  # the party's transcript length when the step opened
    end: int = -1  # ... and when it closed
    children: list[Step] = field(default_factory=list)
    holds: Any = None  # the description of what the step returned
    state: list[str] = field(default_factory=list)  # ctx.store names the step added


@dataclass
class PartyRecord:
    """The steps of one party of one run, keyed by its channel."""

    party: Party
    channel: Channel
    root: Step
    stack: list[tuple[FrameType, Step, frozenset[str]]] = field(default_factory=list)


def _algorithm_of(obj: Any) -> Algorithm | None:
    doc = inspect.getdoc(obj)
    if not doc:
        return None
    m = CITATION.search(" ".join(doc.split()))
    if m is None or m.group(2) != getattr(obj, "__name__", None):
        return None
    return Algorithm(m.group(2), m.group(1), m.group(3))


def _functions(module: Any) -> list[Any]:
    """The functions defined in ``module``, methods of its classes included."""
    out: list[Any] = []
    for obj in vars(module).values():
        if getattr(obj, "__module__", None) != module.__name__:
            continue
        if inspect.isfunction(obj):
            out.append(obj)
        elif inspect.isclass(obj):
            out.extend(v for v in vars(obj).values() if inspect.isfunction(v))
    return out


def cited_algorithms() -> dict[CodeType, Algorithm]:
    """Every two-party algorithm of the package: code object -> the algorithm it implements.

    Two-party means that the function takes a parameter named ``ctx`` (a party's context);
    local functions (encodings, plaintext models) are not steps of a run.
    """
    import secmoe

    found: dict[CodeType, Algorithm] = {}
    for info in pkgutil.walk_packages(secmoe.__path__, "secmoe."):
        if info.name.startswith(SKIP_MODULES):
            continue
        module = importlib.import_module(info.name)
        for fn in _functions(module):
            algorithm = _algorithm_of(fn)
            if algorithm is None:
                continue
            code = inspect.unwrap(fn).__code__
            params = code.co_varnames[: code.co_argcount + code.co_kwonlyargcount]
            if "ctx" in params:
                found[code] = algorithm
    return found


def describe(value: Any, depth: int = 0) -> Any:
    """What a party holds, without a value: array dtypes and shapes, field names, type names.

    Shapes are public in every protocol here (they fix the message lengths); values never are,
    so numbers appear only as their type.
    """
    if value is None:
        return None
    if isinstance(value, np.ndarray):
        return f"{value.dtype}[{', '.join(str(n) for n in value.shape)}]"
    if depth >= MAX_DEPTH:
        return type(value).__name__
    if is_dataclass(value) and not isinstance(value, type):
        return {
            "type": type(value).__name__,
            **{f.name: describe(getattr(value, f.name), depth + 1) for f in fields(value)},
        }
    if isinstance(value, tuple | list):
        items = [describe(v, depth + 1) for v in value[:MAX_ITEMS]]
        if len(value) > 3 and all(item == items[0] for item in items):
            return f"{len(value)} x {items[0] if isinstance(items[0], str) else type(value[0]).__name__}"
        if len(value) > MAX_ITEMS:
            items.append(f"... {len(value) - MAX_ITEMS} more")
        return items
    if isinstance(value, dict):
        keys = list(value)[:MAX_ITEMS]
        return {str(k): describe(value[k], depth + 1) for k in keys}
    if isinstance(value, bytes | bytearray):
        return f"bytes[{len(value)}]"
    return type(value).__name__


class Recorder:
    """Record the steps of every party that runs inside the ``with`` block.

    Runs started inside the block must record their transcripts (``record`` other than
    ``"none"``), since steps are delimited by transcript positions.
    """

    def __init__(self, algorithms: dict[CodeType, Algorithm] | None = None) -> None:
        self.algorithms = cited_algorithms() if algorithms is None else algorithms
        self.parties: list[PartyRecord] = []
        self._by_channel: dict[int, PartyRecord] = {}
        self._lock = threading.Lock()
        self._root = Algorithm("run", "", "")

    def __enter__(self) -> Recorder:
        threading.setprofile(self._profile)
        sys.setprofile(self._profile)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        sys.setprofile(None)
        threading.setprofile(None)
        for rec in self.parties:
            rec.root.end = len(rec.channel.transcript)

    def _party(self, ctx: PartyContext) -> PartyRecord:
        key = id(ctx.channel)
        rec = self._by_channel.get(key)
        if rec is None or rec.channel is not ctx.channel:
            with self._lock:
                rec = PartyRecord(ctx.party, ctx.channel, Step(self._root, 0))
                self._by_channel[key] = rec
                self.parties.append(rec)
        return rec

    def _profile(self, frame: FrameType, event: str, arg: Any) -> None:
        if event not in ("call", "return"):
            return
        algorithm = self.algorithms.get(frame.f_code)
        if algorithm is None:
            return
        ctx = frame.f_locals.get("ctx")
        if not isinstance(ctx, PartyContext):
            return
        rec = self._party(ctx)
        position = len(ctx.channel.transcript)
        if event == "call":
            parent = rec.stack[-1][1] if rec.stack else rec.root
            step = Step(algorithm, position)
            parent.children.append(step)
            rec.stack.append((frame, step, frozenset(ctx.store)))
        elif rec.stack and rec.stack[-1][0] is frame:
            _, step, before = rec.stack.pop()
            step.end = position
            step.holds = describe(arg)
            step.state = sorted(k for k in ctx.store if k not in before)
