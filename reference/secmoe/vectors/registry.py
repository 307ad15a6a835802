"""Registration of vector generators and the test DRNG (spec/05-test-vectors.md).

A generator is a function returning the file's test groups; :func:`register` wraps it with the
envelope (schema, protocol, spec reference, parameters, mode, derivation, header, notes) and
numbers the cases. Importing ``secmoe.vectors.catalog`` registers every generator.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from secmoe import SPEC_VERSION
from secmoe.errors import SpecError
from secmoe.ot.pool import default_engine
from secmoe.randomness import Prg, dst, lp
from secmoe.vectors.coverage import COVERS

SCHEMA_ID = "secmoe-vectors-v1"
Mode = Literal["local", "real", "dealer"]
Json = dict[str, Any]

CASE_SEED_RECIPE = 'SHAKE256(lp("secmoe-vectors-v1") || lp(protocol) || lp(case_id))[0:32]'
PARTY_SEED_RECIPE = 'Prg(case_seed, "secmoe/v1/vectors/" || party, "").next_bytes(32)'
_PATH_RE = re.compile(r"[a-z0-9_]+(/[a-z0-9_.-]+)*\.json")
_CASE_ID_RE = re.compile(r"[a-z0-9_.]+(/[a-z0-9_.-]+)+")  # as in the JSON Schema


def case_seed(protocol: str, case_id: str) -> bytes:
    """The test DRNG's seed of one case (spec §5.2.1).

    Implements spec §5.2.1 `case_seed` (spec/05-test-vectors.md#case_seed). MUST NOT be used
    outside test vectors.
    """
    material = lp(SCHEMA_ID.encode()) + lp(protocol.encode()) + lp(case_id.encode())
    return hashlib.shake_256(material).digest(32)


def party_seed(seed: bytes, party: str) -> bytes:
    """A party's 32-byte seed within a case (spec §5.2.2).

    Implements spec §5.2.2 `party_seed` (spec/05-test-vectors.md#party_seed).
    """
    return Prg(seed, dst("vectors", party)).next_bytes(32)


def inputs_prg(protocol: str, case_id: str) -> Prg:
    """The PRG that draws a case's own inputs (not a party's randomness), spec §5.2.1:
    ``Prg(case_seed(protocol, case_id), dst("vectors", "inputs"))``."""
    return Prg(case_seed(protocol, case_id), dst("vectors", "inputs"))


@dataclass(frozen=True)
class Note:
    """A flag used by test cases: its category and what it means."""

    category: Literal["NORMAL", "EDGE_CASE", "INVALID", "INSECURE_PARAMS", "DEALER"]
    description: str


@dataclass(frozen=True)
class VectorFileSpec:
    """Everything about a vector file except its cases."""

    protocol: str
    path: str  # relative to vectors/
    section: str
    anchor: str  # "spec/NN-file.md#name"
    params: Json
    mode: Mode
    header: tuple[str, ...]
    notes: dict[str, Note]


Generator = Callable[[], list[Json]]
# A two-party file's player: (case, group params) -> the case's Play (secmoe.vectors.play).
Player = Callable[[Json, Json], Any]


@dataclass(frozen=True)
class Registered:
    spec: VectorFileSpec
    generate_groups: Generator
    player: Player | None = None  # two-party files: how a case runs (spec §5.6)

    def spec_ref(self) -> Json:
        """The envelope's ``spec``: version, section, anchor and, where the coverage table of
        ``secmoe.vectors.coverage`` lists some, the further algorithms the file covers."""
        s = self.spec
        ref: Json = {"version": SPEC_VERSION, "section": s.section, "anchor": s.anchor}
        if s.protocol in COVERS:
            ref["covers"] = list(COVERS[s.protocol])
        return ref

    def build(self) -> Json:
        """The complete file object, cases numbered 1..n in order.

        Vectors are defined on the "iknp" engine with just-in-time refills (spec §10.8), so
        their transcripts are closed formulas and small, whatever the session default.
        """
        with default_engine("iknp"):
            groups = self.generate_groups()
        tc = 0
        out_groups: list[Json] = []
        seen_ids: set[str] = set()
        for g_index, g in enumerate(groups, start=1):
            tests: list[Json] = []
            for case in g["tests"]:
                tc += 1
                if not _CASE_ID_RE.fullmatch(case["id"]):
                    raise SpecError(
                        f"{self.spec.protocol}: case id {case['id']!r} is not of the schema's form"
                    )
                if case["id"] in seen_ids:
                    raise SpecError(f"{self.spec.protocol}: duplicate case id {case['id']}")
                seen_ids.add(case["id"])
                for flag in case.get("flags", []):
                    if flag not in self.spec.notes:
                        raise SpecError(f"{self.spec.protocol}: flag {flag!r} has no note")
                tests.append({"tcId": tc, **case})
            out_groups.append({"tgId": g_index, "params": g.get("params", {}), "tests": tests})
        s = self.spec
        return {
            "schema": SCHEMA_ID,
            "protocol": s.protocol,
            "spec": self.spec_ref(),
            "params": s.params,
            "mode": s.mode,
            "derivation": {
                "xof": "SHAKE256",
                "case_seed": CASE_SEED_RECIPE,
                "party_seed": PARTY_SEED_RECIPE,
            },
            "header": list(s.header),
            "notes": {
                k: {"category": v.category, "description": v.description}
                for k, v in s.notes.items()
            },
            "numberOfTests": tc,
            "testGroups": out_groups,
        }


REGISTRY: dict[str, Registered] = {}


def register(
    protocol: str,
    path: str,
    *,
    section: str,
    anchor: str,
    params: Json,
    mode: Mode,
    header: tuple[str, ...] | list[str],
    notes: dict[str, Note],
    player: Player | None = None,
) -> Callable[[Generator], Generator]:
    """Register a generator of test groups for ``vectors/<path>``.

    Each returned group is ``{"params": {...}, "tests": [case, ...]}``; each case is a dict in
    the schema's key order *without* ``tcId`` (numbered here).
    """
    if not _PATH_RE.fullmatch(path):
        raise SpecError(f"vector path {path!r} must match {_PATH_RE.pattern}")

    def deco(fn: Generator) -> Generator:
        if path in {r.spec.path for r in REGISTRY.values()} or protocol in REGISTRY:
            raise SpecError(f"vector file {protocol} / {path} registered twice")
        spec = VectorFileSpec(protocol, path, section, anchor, params, mode, tuple(header), notes)
        REGISTRY[protocol] = Registered(spec, fn, player)
        return fn

    return deco


def registered() -> list[Registered]:
    """Every registered file, sorted by path."""
    from secmoe.vectors import catalog  # noqa: F401  (registers every generator)

    return sorted(REGISTRY.values(), key=lambda r: r.spec.path)
