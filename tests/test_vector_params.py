"""Spec §5.4: every vector file carries its shapes and public parameters where the schema says,
and the spec's table of them is the schema's."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from secmoe.vectors.registry import registered

ROOT = Path(__file__).resolve().parent.parent
VECTORS = ROOT / "vectors"
SCHEMA: dict[str, Any] = json.loads((ROOT / "spec/schema/vectors-v1.schema.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)

# (place, keys, case-id pattern or None); the places of spec §5.4.
Requirement = tuple[str, tuple[str, ...], str | None]


def _requirement(block: dict[str, Any]) -> Requirement:
    """Read one requirement back from its schema form (the inverse of its layout in §5.4)."""
    props = block["properties"]
    if "params" in props:
        return "file", tuple(props["params"]["required"]), None
    group = props["testGroups"]["items"]["properties"]
    if "params" in group:
        return "group", tuple(group["params"]["required"]), None
    rule = group["tests"]["items"]
    pattern = rule["if"]["properties"].get("id", {}).get("pattern")
    inputs = rule["then"]["properties"]["inputs"]
    if "required" in inputs:
        return "case", tuple(inputs["required"]), pattern
    client, server = inputs["properties"]["client"], inputs["properties"]["server"]
    assert client == server
    return "party", tuple(client["required"]), pattern


def schema_requirements() -> dict[str, list[Requirement]]:
    out: dict[str, list[Requirement]] = {}
    for entry in SCHEMA["allOf"]:
        protocol = entry["if"]["properties"]["protocol"]["const"]
        assert protocol not in out, f"{protocol} has two entries in the schema"
        out[protocol] = [_requirement(b) for b in entry["then"]["allOf"]]
    return out


def spec_requirements() -> dict[str, list[Requirement]]:
    """The table of spec §5.4, one row per protocol."""
    text = (ROOT / "spec/05-test-vectors.md").read_text()
    section = text[text.index("## 5.4 Parameters and shapes") :]
    out: dict[str, list[Requirement]] = {}
    places = ("file", "group", "case", "party")
    for line in section.splitlines():
        m = re.fullmatch(r"\| `([a-z0-9_.]+)` \|(.*)\|", line)
        if not m:
            continue
        reqs: list[Requirement] = []
        for place, cell in zip(places, m.group(2).split("|"), strict=True):
            for part in filter(None, (p.strip() for p in cell.split(";"))):
                pm = re.fullmatch(r"(.*?)(?: \(cases `([^`]*)\*`\))?", part)
                assert pm is not None
                keys = tuple(re.findall(r"`([^`]+)`", pm.group(1)))
                pattern = None if pm.group(2) is None else "^" + re.escape(pm.group(2))
                reqs.append((place, keys, pattern))
        out[m.group(1)] = sorted(reqs, key=places_order)
    return out


def places_order(r: Requirement) -> tuple[int, str]:
    return ("file", "group", "case", "party").index(r[0]), r[2] or ""


def test_every_registered_protocol_has_its_requirements_in_the_schema() -> None:
    assert sorted(schema_requirements()) == sorted(r.spec.protocol for r in registered())


def test_the_spec_table_is_the_schema() -> None:
    schema = {p: sorted(r, key=places_order) for p, r in schema_requirements().items()}
    assert spec_requirements() == schema


def _files() -> list[Path]:
    return sorted(VECTORS.rglob("*.json"))


def _drop(doc: dict[str, Any], req: Requirement, key: str) -> bool:
    """Remove ``key`` from one place the requirement covers; False if there is none."""
    place, _, pattern = req
    if place == "file":
        return doc["params"].pop(key, None) is not None
    for group in doc["testGroups"]:
        if place == "group":
            return group["params"].pop(key, None) is not None
        for case in group["tests"]:
            if case["result"] != "valid" or (pattern and not re.match(pattern, case["id"])):
                continue
            inputs = case["inputs"]
            target = inputs if place == "case" else inputs["server"]
            return target.pop(key, None) is not None
    return False


@pytest.mark.parametrize("path", _files(), ids=lambda p: p.relative_to(VECTORS).as_posix())
def test_a_missing_parameter_fails_the_schema(path: Path) -> None:
    doc = json.loads(path.read_text())
    assert not list(VALIDATOR.iter_errors(doc))
    for req in schema_requirements()[doc["protocol"]]:
        for key in req[1]:
            broken = copy.deepcopy(doc)
            assert _drop(broken, req, key), f"{path}: {req[0]} parameter {key} not found"
            assert list(VALIDATOR.iter_errors(broken)), f"{path}: {key} is not required"


def _elements(hex_value: str, ring_bits: int) -> int:
    return len(hex_value) // 2 // ((ring_bits + 7) // 8)


@pytest.mark.parametrize(
    "name", ["mul", "mux", "msb", "trunc", "piecewise", "lt", "exp", "gelu_bumblebee"]
)
def test_n_is_the_length_of_the_shared_vector(name: str) -> None:
    doc = json.loads((VECTORS / f"protocols/{name}.json").read_text())
    for group in doc["testGroups"]:
        for case in group["tests"]:
            x = case["inputs"]["client"]["x"]
            assert _elements(x, group["params"]["ring_bits"]) == group["params"]["n"]


@pytest.mark.parametrize(
    ("name", "dims"),
    [
        ("maximum", ("rows", "n")),
        ("argmax", ("rows", "n")),
        ("topk", ("rows", "n")),
        ("softmax", ("rows", "n")),
        ("layernorm", ("T", "d")),
        ("rmsnorm", ("T", "d")),
        ("matmul", ("T", "d_in")),
        ("matmul_ss", ("a", "b")),
    ],
)
def test_matrix_shapes_match_the_shares(name: str, dims: tuple[str, str]) -> None:
    doc = json.loads((VECTORS / f"protocols/{name}.json").read_text())
    for group in doc["testGroups"]:
        p = group["params"]
        for case in group["tests"]:
            x = case["inputs"]["client"]["x"]
            assert _elements(x, p["ring_bits"]) == p[dims[0]] * p[dims[1]]
