"""One MoE layer from a safetensors checkpoint in Hugging Face tensor naming (spec/06-models.md#68-loading-checkpoint-weights).

The loader maps one layer's tensors onto :class:`MoEConfig` / :class:`MoEWeights` and refuses
what the model cannot represent instead of dropping it: a silently mis-loaded layer would make
every secure result wrong while every test against the oracle still passes.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

import numpy as np

from secmoe.errors import SpecError
from secmoe.model.config import ExpertKind, GateNorm, MoEConfig, MoEWeights
from secmoe.model.safetensors import (
    Floats,
    SafetensorsHeader,
    StrPath,
    TensorEntry,
    check_readable,
    read_entry,
    read_header,
    unique_keys,
)

# ---------------------------------------------------------------------------------------------
# Hugging Face naming

Family = Literal["mixtral", "switch", "qwen2_moe", "deepseek_moe"]
FAMILIES: tuple[Family, ...] = get_args(Family)
Stack = Literal["encoder", "decoder"]
STACKS: tuple[Stack, ...] = get_args(Stack)
_IDX = r"(0|[1-9][0-9]*)"  # no leading zeros, so that one expert has one spelling


@dataclass(frozen=True)
class _FamilyRule:
    """How one family names a MoE block's tensors (suffixes after the block prefix)."""

    expert_kind: ExpertKind
    gate_norm: GateNorm
    top_k: int  # the family's usual experts per token (spec §6.8.3 states the sources)
    router: str
    expert: re.Pattern[str]  # group 1: expert index, group 2: part
    roles: dict[str, str]  # part -> "w1" | "v" | "w2"
    shared: str | None = None  # prefix of the shared expert's parts
    shared_gate: str | None = None


_GLU_PARTS = {"gate_proj": "w1", "up_proj": "v", "down_proj": "w2"}
_GLU_EXPERT = re.compile(rf"experts\.{_IDX}\.(gate_proj|up_proj|down_proj)\.weight")
_SHARED_PART = re.compile(r"(gate_proj|up_proj|down_proj)\.weight")
RULES: dict[Family, _FamilyRule] = {
    "mixtral": _FamilyRule(
        "swiglu",
        "softmax_topk",
        2,
        "gate.weight",
        re.compile(rf"experts\.{_IDX}\.(w1|w3|w2)\.weight"),
        {"w1": "w1", "w3": "v", "w2": "w2"},
    ),
    "switch": _FamilyRule(
        "relu",
        "softmax",
        1,
        "router.classifier.weight",
        re.compile(rf"experts\.expert_{_IDX}\.(wi|wo)\.weight"),
        {"wi": "w1", "wo": "w2"},
    ),
    "qwen2_moe": _FamilyRule(
        "swiglu",
        "softmax",
        4,
        "gate.weight",
        _GLU_EXPERT,
        _GLU_PARTS,
        shared="shared_expert.",
        shared_gate="shared_expert_gate.weight",
    ),
    "deepseek_moe": _FamilyRule(
        "swiglu", "softmax", 6, "gate.weight", _GLU_EXPERT, _GLU_PARTS, shared="shared_experts."
    ),
}
_MIXTRAL_ROUTER = re.compile(rf"model\.layers\.{_IDX}\.block_sparse_moe\.gate\.weight")
_MLP_ROUTER = re.compile(rf"model\.layers\.{_IDX}\.mlp\.gate\.weight")
_SWITCH_ROUTER = re.compile(
    rf"(encoder|decoder)\.block\.{_IDX}\.layer\.{_IDX}\.mlp\.router\.classifier\.weight"
)
INDEX_SUFFIX = ".index.json"
SINGLE_FILE = "model.safetensors"


@dataclass
class _Checkpoint:
    """Tensor names -> shard files, with each shard's header parsed on first use."""

    shards: dict[str, Path]
    index: Path | None = None
    _headers: dict[Path, SafetensorsHeader] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return sorted(self.shards)

    def entry(self, name: str) -> tuple[SafetensorsHeader, TensorEntry]:
        shard = self.shards[name]
        header = self._headers.get(shard)
        if header is None:
            header = self._headers[shard] = read_header(shard)
        if name not in header.entries:
            raise SpecError(
                f"{self.index}: maps {name!r} to {shard.name}, which has no such tensor"
            )
        return header, header.entries[name]

    def read(self, name: str) -> Floats:
        header, entry = self.entry(name)
        with header.path.open("rb") as f:
            return read_entry(f, header, entry)


def _open_checkpoint(path: StrPath) -> _Checkpoint:
    p = Path(path)
    if p.is_dir():
        single, index = p / SINGLE_FILE, p / (SINGLE_FILE + INDEX_SUFFIX)
        if single.is_file():
            p = single
        elif index.is_file():
            p = index
        else:
            raise SpecError(f"{p}: holds neither {single.name} nor {index.name}")
    if not p.is_file():
        raise SpecError(f"no checkpoint file {p}")
    if not p.name.endswith(INDEX_SUFFIX):
        return _Checkpoint(dict.fromkeys(read_header(p).entries, p))
    try:
        doc = json.loads(p.read_text(encoding="utf-8"), object_pairs_hook=unique_keys)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise SpecError(f"{p}: not a readable JSON index: {exc}") from exc
    weight_map = doc.get("weight_map") if isinstance(doc, dict) else None
    if not isinstance(weight_map, dict):
        raise SpecError(f"{p}: an index needs a weight_map object")
    shards: dict[str, Path] = {}
    for name, file in weight_map.items():
        # Shards are plain file names next to the index; anything else could point elsewhere.
        if not isinstance(file, str) or Path(file).name != file or file in ("", ".", ".."):
            raise SpecError(f"{p}: weight_map[{name!r}] = {file!r} is not a shard file name")
        shards[name] = p.parent / file
    return _Checkpoint(shards, p)


def _detect_family(names: list[str]) -> Family:
    found: set[Family] = set()
    if any(_MIXTRAL_ROUTER.fullmatch(n) for n in names):
        found.add("mixtral")
    if any(_SWITCH_ROUTER.fullmatch(n) for n in names):
        found.add("switch")
    if any(_MLP_ROUTER.fullmatch(n) for n in names):
        layers = [n for n in names if n.startswith("model.layers.")]
        qwen = any(".mlp.shared_expert." in n or ".mlp.shared_expert_gate." in n for n in layers)
        deepseek = any(".mlp.shared_experts." in n for n in layers)
        if qwen:
            found.add("qwen2_moe")
        if deepseek:
            found.add("deepseek_moe")
        if not (qwen or deepseek):
            raise SpecError(
                "the checkpoint names routers mlp.gate.weight without shared experts: "
                "qwen2_moe and deepseek_moe name such layers alike; pass family= (and "
                "gate_norm='softmax_topk' if the model renormalises the top-k probabilities)"
            )
    if not found:
        raise SpecError(
            "no MoE router of a known family in the checkpoint (looked for "
            "model.layers.N.block_sparse_moe.gate.weight, model.layers.N.mlp.gate.weight, "
            "{encoder,decoder}.block.N.layer.I.mlp.router.classifier.weight)"
        )
    if len(found) > 1:
        raise SpecError(f"the checkpoint names fit several families {sorted(found)}; pass family=")
    return found.pop()


def _block_prefix(names: list[str], family: Family, layer: int, stack: str | None) -> str:
    if family == "switch":
        st = "encoder" if stack is None else stack
        if st not in STACKS:
            raise SpecError(f"stack must be one of {STACKS}, got {stack!r}")
        matches = [m for n in names if (m := _SWITCH_ROUTER.fullmatch(n)) and m.group(1) == st]
        moe_layers = sorted({int(m.group(2)) for m in matches})
        mine = [m for m in matches if int(m.group(2)) == layer]
        if len(mine) > 1:
            raise SpecError(f"{st} block {layer} has several routers: {[m.group(0) for m in mine]}")
        layer_prefix = f"{st}.block.{layer}."
        where = f"{st} block {layer}"
        if mine:
            return f"{layer_prefix}layer.{mine[0].group(3)}.mlp."
    else:
        if stack is not None:
            raise SpecError(f"stack applies to switch checkpoints only, not {family}")
        pattern = _MIXTRAL_ROUTER if family == "mixtral" else _MLP_ROUTER
        moe_layers = sorted({int(m.group(1)) for n in names if (m := pattern.fullmatch(n))})
        layer_prefix = f"model.layers.{layer}."
        where = f"layer {layer}"
        if layer in moe_layers:
            block = "block_sparse_moe." if family == "mixtral" else "mlp."
            return f"{layer_prefix}{block}"
    if any(n.startswith(layer_prefix) for n in names):
        raise SpecError(
            f"{where} has no {family} MoE router (a dense layer?); MoE layers: {moe_layers}"
        )
    raise SpecError(f"{where} does not exist in the checkpoint; {family} MoE layers: {moe_layers}")


def _shape(ckpt: _Checkpoint, name: str, shape: tuple[int | None, ...]) -> tuple[int, ...]:
    """The tensor's shape, checked against ``shape`` (None: any size >= 1)."""
    _, entry = ckpt.entry(name)
    check_readable(entry)
    got = entry.shape
    if len(got) != len(shape) or any(
        s < 1 or (want is not None and s != want) for s, want in zip(got, shape, strict=True)
    ):
        want_text = tuple("*" if w is None else w for w in shape)
        raise SpecError(f"tensor {name!r} has shape {got}, expected {want_text}")
    return got


def load_moe_layer(
    path: StrPath,
    layer: int,
    family: Family | None = None,
    *,
    stack: Stack | None = None,
    top_k: int | None = None,
    gate_norm: GateNorm | None = None,
    ignore_shared_gate: bool = False,
) -> tuple[MoEConfig, MoEWeights]:
    """The MoE block of ``layer`` of a Hugging Face checkpoint, as (config, float64 weights).

    Implements spec §6.8.3 `load_moe_layer` (spec/06-models.md#load_moe_layer).

    ``path``: a ``.safetensors`` file, a ``*.safetensors.index.json`` (sharded checkpoint) or a
    directory holding ``model.safetensors`` or its index. ``family``: detected from the names when
    None. ``stack``: Switch only, ``"encoder"`` (default) or ``"decoder"``, and ``layer`` is the
    block number in that stack. ``top_k`` and ``gate_norm`` override the family's defaults.
    ``ignore_shared_gate=True`` loads a Qwen2-MoE shared expert without its sigmoid gate, which
    CHANGES THE MODEL (the shared expert is then added with weight 1).
    """
    if type(layer) is not int or layer < 0:
        raise SpecError(f"layer must be an integer >= 0, got {layer!r}")
    if not isinstance(ignore_shared_gate, bool):
        raise SpecError("ignore_shared_gate must be a bool")
    # Step 1: the checkpoint's tensor names (headers only, no tensor data).
    ckpt = _open_checkpoint(path)
    names = ckpt.names
    # Step 2: the family, from the names unless given.
    if family is None:
        family = _detect_family(names)
    elif family not in FAMILIES:
        raise SpecError(f"family must be one of {FAMILIES}, got {family!r}")
    rule = RULES[family]
    # Step 3: the layer's MoE block.
    prefix = _block_prefix(names, family, layer, stack)
    # Step 4: every tensor under the block prefix is the router, an expert part, a shared expert
    # part or the shared gate; anything else (a bias, a score correction) is refused.
    experts: dict[int, dict[str, str]] = {}
    shared: dict[str, str] = {}
    shared_gate: str | None = None
    unknown: list[str] = []
    for name in names:
        if not name.startswith(prefix):
            continue
        suffix = name[len(prefix) :]
        m = rule.expert.fullmatch(suffix)
        sm = None
        if rule.shared is not None and suffix.startswith(rule.shared):
            sm = _SHARED_PART.fullmatch(suffix[len(rule.shared) :])
        if suffix == rule.router:
            pass
        elif m:
            experts.setdefault(int(m.group(1)), {})[rule.roles[m.group(2)]] = name
        elif sm:
            shared[_GLU_PARTS[sm.group(1)]] = name
        elif suffix == rule.shared_gate:
            shared_gate = name
        else:
            unknown.append(name)
    if unknown:
        raise SpecError(
            f"{family} {prefix}: tensors the model cannot represent (refused, not dropped): "
            f"{unknown}"
        )
    # Step 5: shapes. The router gives (E, d); the experts are exactly 0..E-1, each complete.
    router = prefix + rule.router
    n_experts, d = _shape(ckpt, router, (None, None))
    if sorted(experts) != list(range(n_experts)):
        raise SpecError(
            f"{prefix}: the router has {n_experts} rows but the experts present are "
            f"{sorted(experts)}"
        )
    roles = ("w1", "v", "w2") if rule.expert_kind != "relu" else ("w1", "w2")
    for e, parts in sorted(experts.items()):
        missing = [r for r in roles if r not in parts]
        if missing:
            raise SpecError(f"{prefix}: expert {e} lacks its {missing} tensors")
    d_ff = _shape(ckpt, experts[0]["w1"], (None, d))[0]
    for parts in experts.values():
        _shape(ckpt, parts["w1"], (d_ff, d))
        if "v" in parts:
            _shape(ckpt, parts["v"], (d_ff, d))
        _shape(ckpt, parts["w2"], (d, d_ff))
    n_shared, d_ff_shared = 0, 0
    if shared:
        missing = [r for r in ("w1", "v", "w2") if r not in shared]
        if missing:
            raise SpecError(f"{prefix}: the shared expert lacks its {missing} tensors")
        n_shared, d_ff_shared = 1, _shape(ckpt, shared["w1"], (None, d))[0]
        _shape(ckpt, shared["v"], (d_ff_shared, d))
        _shape(ckpt, shared["w2"], (d, d_ff_shared))
    if shared_gate is not None:
        if not shared:
            raise SpecError(f"{shared_gate!r} gates a shared expert that the layer does not have")
        _shape(ckpt, shared_gate, (1, d))
        if not ignore_shared_gate:
            raise SpecError(
                f"{shared_gate!r}: Qwen2-MoE scales its shared expert by sigmoid(x . gate), "
                "which secmoe's model does not support (shared experts have weight 1); pass "
                "ignore_shared_gate=True to load it anyway as a DIFFERENT model without the gate"
            )
    # Step 6: the configuration (MoEConfig validates top_k and gate_norm).
    try:
        config = MoEConfig(
            d_model=d,
            d_ff=d_ff,
            n_experts=n_experts,
            top_k=rule.top_k if top_k is None else top_k,
            expert_kind=rule.expert_kind,
            gate_norm=rule.gate_norm if gate_norm is None else gate_norm,
            n_shared_experts=n_shared,
            d_ff_shared=d_ff_shared,
        )
    except SpecError as exc:
        raise SpecError(f"{family} {prefix}: {exc}") from exc
    # Step 7: the arrays, each tensor read once into its place (router transposed).
    w_gate = np.ascontiguousarray(ckpt.read(router).T)

    def stacked(role: str, rows: int, cols: int, sources: list[dict[str, str]]) -> Floats:
        out = np.empty((len(sources), rows, cols), dtype=np.float64)
        for i, parts in enumerate(sources):
            value = ckpt.read(parts[role])
            # Step 5 checked the header; a data shape that differs (a (1, d) row would broadcast
            # silently into every row) is refused here, not copied.
            if value.shape != (rows, cols):
                raise SpecError(
                    f"tensor {parts[role]!r} reads as {value.shape}, not {(rows, cols)}"
                )
            out[i] = value
        return out

    routed = [experts[e] for e in range(n_experts)]
    shared_list = [shared] if shared else []
    sff = config.shared_ff
    weights = MoEWeights(
        w_gate=w_gate,
        w1=stacked("w1", d_ff, d, routed),
        v=stacked("v", d_ff, d, routed) if config.gated else None,
        w2=stacked("w2", d, d_ff, routed),
        shared_w1=stacked("w1", sff, d, shared_list),
        shared_v=stacked("v", sff, d, shared_list) if config.gated else None,
        shared_w2=stacked("w2", d, sff, shared_list),
    )
    # Step 8: finite values and the shapes the config implies.
    weights.check(config)
    return config, weights
