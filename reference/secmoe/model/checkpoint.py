"""One MoE layer from a safetensors checkpoint in Hugging Face tensor naming (spec/06-models.md#68-loading-checkpoint-weights).

The loader maps one layer's tensors onto :class:`MoEConfig` / :class:`MoEWeights`, with the
routing its ``config.json`` states, and refuses what the model cannot represent instead of
dropping it: a silently mis-loaded layer would make every secure result wrong while every test
against the oracle still passes.
"""

from __future__ import annotations

import json
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, get_args

import numpy as np

from secmoe.errors import SpecError
from secmoe.model.config import GateNorm, MoEConfig, MoEWeights
from secmoe.model.hf_config import (
    CONFIG_FILE,
    FAMILIES,
    Derived,
    Family,
    config_path,
    defaults,
    derive_moe_config,
    read_config,
)
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

__all__ = ["FAMILIES", "Family", "LoadedLayer", "check_tokens", "load_layer", "load_moe_layer"]

# ---------------------------------------------------------------------------------------------
# Hugging Face naming

Stack = Literal["encoder", "decoder"]
STACKS: tuple[Stack, ...] = get_args(Stack)
_IDX = r"(?:0|[1-9][0-9]*)"  # no leading zeros, so that one expert has one spelling


class ConfigOverrideWarning(UserWarning):
    """An explicit argument contradicts the checkpoint's config.json, or changes the model."""


@dataclass(frozen=True)
class _Rule:
    """How one family names a MoE block's tensors (suffixes after the block prefix).

    ``layout`` "experts": one tensor per expert and part (``expert`` group 1: the index, group 2:
    the part, ``roles`` part -> w1 | v | w2); otherwise the name of a fused layout whose whole
    tensors ``fused`` maps to their roles."""

    block: str  # the block prefix's pattern, with a named group "layer"
    router: str
    layout: str = "experts"
    expert: re.Pattern[str] | None = None
    roles: dict[str, str] = field(default_factory=dict)
    shared: str | None = None  # prefix of the shared expert's parts
    shared_gate: str | None = None
    fused: dict[str, str] = field(default_factory=dict)  # suffix -> role
    layer_prefixes: tuple[str, ...] = ("model.layers.{layer}.",)

    @property
    def router_re(self) -> re.Pattern[str]:
        return re.compile(f"(?P<prefix>{self.block})" + re.escape(self.router))


_GLU_PARTS = {"gate_proj": "w1", "up_proj": "v", "down_proj": "w2"}
_GLU_EXPERT = re.compile(rf"experts\.({_IDX})\.(gate_proj|up_proj|down_proj)\.weight")
_SHARED_PART = re.compile(r"(gate_proj|up_proj|down_proj)\.weight")
_LAYERS = rf"model\.layers\.(?P<layer>{_IDX})\."
_MIXTRAL = _Rule(
    _LAYERS + r"block_sparse_moe\.",
    "gate.weight",
    expert=re.compile(rf"experts\.({_IDX})\.(w1|w3|w2)\.weight"),
    roles={"w1": "w1", "w3": "v", "w2": "w2"},
)
_SWITCH = _Rule(
    rf"(?P<stack>encoder|decoder)\.block\.(?P<layer>{_IDX})\.layer\.{_IDX}\.mlp\.",
    "router.classifier.weight",
    expert=re.compile(rf"experts\.expert_({_IDX})\.(wi|wo)\.weight"),
    roles={"wi": "w1", "wo": "w2"},
)
_MLP = _Rule(_LAYERS + r"mlp\.", "gate.weight", expert=_GLU_EXPERT, roles=_GLU_PARTS)
_QWEN_SHARED = _Rule(
    _MLP.block,
    "gate.weight",
    expert=_GLU_EXPERT,
    roles=_GLU_PARTS,
    shared="shared_expert.",
    shared_gate="shared_expert_gate.weight",
)
_DEEPSEEK = _Rule(
    _MLP.block, "gate.weight", expert=_GLU_EXPERT, roles=_GLU_PARTS, shared="shared_experts."
)
_DEEPSEEK_V3 = _Rule(
    _MLP.block,
    "gate.weight",
    expert=_GLU_EXPERT,
    roles=_GLU_PARTS,
    shared="shared_experts.",
    fused={"gate.e_score_correction_bias": "score_bias"},
)
RULES: dict[Family, _Rule] = {
    "mixtral": _MIXTRAL,
    "minimax": _MIXTRAL,
    "switch": _SWITCH,
    "qwen2_moe": _QWEN_SHARED,
    "qwen3_next": _QWEN_SHARED,
    "qwen3_moe": _MLP,
    "olmoe": _MLP,
    "flex_olmo": _MLP,
    "deepseek_moe": _DEEPSEEK,
    "deepseek_v2": _DEEPSEEK,
    "deepseek_v3": _DEEPSEEK_V3,
    "glm4_moe": _DEEPSEEK_V3,
    "gpt_oss": _Rule(
        _MLP.block,
        "router.weight",
        layout="gpt_oss",
        fused={
            "router.bias": "router_bias",
            "experts.gate_up_proj": "gate_up",
            "experts.gate_up_proj_bias": "gate_up_bias",
            "experts.down_proj": "down",
            "experts.down_proj_bias": "down_bias",
        },
    ),
    "granitemoe": _Rule(
        _MIXTRAL.block,
        "router.layer.weight",
        layout="granite",
        fused={"input_linear.weight": "input_linear", "output_linear.weight": "output_linear"},
    ),
    "dbrx": _Rule(
        rf"transformer\.blocks\.(?P<layer>{_IDX})\.ffn\.",
        "router.layer.weight",
        layout="dbrx",
        fused={"experts.mlp.w1": "w1", "experts.mlp.v1": "v1", "experts.mlp.w2": "w2"},
        layer_prefixes=("transformer.blocks.{layer}.",),
    ),
    "llama4": _Rule(
        r"(?:language_model\.)?" + _LAYERS + r"feed_forward\.",
        "router.weight",
        layout="llama4",
        shared="shared_expert.",
        fused={"experts.gate_up_proj": "gate_up", "experts.down_proj": "down"},
        layer_prefixes=("model.layers.{layer}.", "language_model.model.layers.{layer}."),
    ),
}
INDEX_SUFFIX = ".index.json"
SINGLE_FILE = "model.safetensors"
_SHARD_NAME = re.compile(r".*-[0-9]+-of-[0-9]+\.safetensors")


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
    if p.name == CONFIG_FILE:
        raise SpecError(
            f"{p} is the model's configuration, not its weights: pass the folder holding it "
            f"(or its {SINGLE_FILE} / {SINGLE_FILE + INDEX_SUFFIX}); config.json is read from there"
        )
    if _SHARD_NAME.fullmatch(p.name):
        raise SpecError(
            f"{p} is one shard of a sharded checkpoint (a layer's tensors may be in another "
            f"shard): pass the folder or {SINGLE_FILE + INDEX_SUFFIX}"
        )
    if p.suffix == ".json" and not p.name.endswith(INDEX_SUFFIX):
        raise SpecError(f"{p} is neither a .safetensors file nor a *{INDEX_SUFFIX} index")
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
    if any(_MIXTRAL.router_re.fullmatch(n) for n in names):
        found.add("mixtral")
    if any(_SWITCH.router_re.fullmatch(n) for n in names):
        found.add("switch")
    if any(_MLP.router_re.fullmatch(n) for n in names):
        layers = [n for n in names if n.startswith("model.layers.")]
        qwen = any(".mlp.shared_expert." in n or ".mlp.shared_expert_gate." in n for n in layers)
        deepseek = any(".mlp.shared_experts." in n for n in layers)
        if qwen:
            found.add("qwen2_moe")
        if deepseek:
            found.add("deepseek_moe")
        if not (qwen or deepseek):
            raise SpecError(
                "the checkpoint names routers mlp.gate.weight without shared experts and has no "
                "config.json: qwen3_moe, olmoe, qwen2_moe and deepseek_moe name such layers "
                "alike; pass family= (and gate_norm='softmax_topk' if the model renormalises "
                "the top-k probabilities), or keep the checkpoint's config.json next to it"
            )
    if not found:
        raise SpecError(
            "no MoE router of a known family in the checkpoint (looked for "
            "model.layers.N.block_sparse_moe.gate.weight, model.layers.N.mlp.gate.weight, "
            "{encoder,decoder}.block.N.layer.I.mlp.router.classifier.weight) and no config.json "
            "next to it; other families are recognised from their config.json"
        )
    if len(found) > 1:
        raise SpecError(f"the checkpoint names fit several families {sorted(found)}; pass family=")
    return found.pop()


def _block_prefix(
    names: list[str], family: Family, layer: int | None, stack: str | None
) -> tuple[str, int]:
    """(the layer's block prefix, the layer); ``layer`` None: the first MoE layer."""
    rule = RULES[family]
    matches = [m for n in names if (m := rule.router_re.fullmatch(n))]
    if family == "switch":
        st = "encoder" if stack is None else stack
        if st not in STACKS:
            raise SpecError(f"stack must be one of {STACKS}, got {stack!r}")
        matches = [m for m in matches if m.group("stack") == st]
        where = f"{st} block"
        layer_prefixes: tuple[str, ...] = (st + ".block.{layer}.",)
    else:
        if stack is not None:
            raise SpecError(f"stack applies to switch checkpoints only, not {family}")
        where, layer_prefixes = "layer", rule.layer_prefixes
    moe_layers = sorted({int(m.group("layer")) for m in matches})
    if layer is None:
        if not moe_layers:
            raise SpecError(f"the checkpoint has no {family} MoE router ({rule.router})")
        layer = moe_layers[0]
    mine = sorted({m.group("prefix") for m in matches if int(m.group("layer")) == layer})
    if len(mine) > 1:
        raise SpecError(f"{where} {layer} has several routers: {mine}")
    if mine:
        return mine[0], layer
    if any(n.startswith(p.format(layer=layer)) for n in names for p in layer_prefixes):
        raise SpecError(
            f"{where} {layer} has no {family} MoE router (a dense layer?); MoE layers: {moe_layers}"
        )
    raise SpecError(
        f"{where} {layer} does not exist in the checkpoint; {family} MoE layers: {moe_layers}"
    )


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


@dataclass
class _Block:
    """A block's tensor names by role (step 4)."""

    prefix: str
    single: dict[str, str] = field(default_factory=dict)  # router, shared_gate, fused roles
    experts: dict[int, dict[str, str]] = field(default_factory=dict)
    shared: dict[str, str] = field(default_factory=dict)


def _collect(names: list[str], family: Family, prefix: str) -> _Block:
    rule = RULES[family]
    block = _Block(prefix)
    unknown: list[str] = []
    for name in names:
        if not name.startswith(prefix):
            continue
        suffix = name[len(prefix) :]
        m = rule.expert.fullmatch(suffix) if rule.expert is not None else None
        sm = None
        if rule.shared is not None and suffix.startswith(rule.shared):
            sm = _SHARED_PART.fullmatch(suffix[len(rule.shared) :])
        if suffix == rule.router:
            block.single["router"] = name
        elif m:
            block.experts.setdefault(int(m.group(1)), {})[rule.roles[m.group(2)]] = name
        elif sm:
            block.shared[_GLU_PARTS[sm.group(1)]] = name
        elif suffix == rule.shared_gate:
            block.single["shared_gate"] = name
        elif suffix in rule.fused:
            block.single[rule.fused[suffix]] = name
        else:
            unknown.append(name)
    if unknown:
        raise SpecError(
            f"{family} {prefix}: tensors the model cannot represent (refused, not dropped): "
            f"{unknown}"
        )
    return block


@dataclass
class _Arrays:
    """The routed experts' arrays in secmoe's layout (§6.1): (E, d_ff, d) and (E, d, d_ff)."""

    d_ff: int
    w1: Floats
    v: Floats | None
    w2: Floats
    b1: Floats | None = None
    bv: Floats | None = None
    b2: Floats | None = None


def _need(block: _Block, family: Family, roles: tuple[str, ...]) -> list[str]:
    missing = [r for r in roles if r not in block.single]
    if missing:
        names = [k for k, v in RULES[family].fused.items() if v in missing]
        raise SpecError(f"{family} {block.prefix}: the block lacks its tensors {names}")
    return [block.single[r] for r in roles]


def _read(ckpt: _Checkpoint, name: str, shape: tuple[int, ...]) -> Floats:
    value = ckpt.read(name)
    # The header was checked; a data shape that differs (a (1, d) row would broadcast silently
    # into every row) is refused here, not copied.
    if value.shape != shape:
        raise SpecError(f"tensor {name!r} reads as {value.shape}, not {shape}")
    return value


def _fused_halves(ckpt: _Checkpoint, name: str, e: int, d: int) -> tuple[int, Floats]:
    """A fused (E, d, 2 d_ff) gate/up tensor in the x @ W layout: (d_ff, its data)."""
    two_ff = _shape(ckpt, name, (e, d, None))[2]
    if two_ff % 2:
        raise SpecError(f"tensor {name!r} has an odd last dimension {two_ff}: not gate and up")
    return two_ff // 2, _read(ckpt, name, (e, d, two_ff))


def _gpt_oss(ckpt: _Checkpoint, block: _Block, e: int, d: int) -> _Arrays:
    gu, gub, dn, dnb = _need(block, "gpt_oss", ("gate_up", "gate_up_bias", "down", "down_bias"))
    ff, fused = _fused_halves(ckpt, gu, e, d)
    _shape(ckpt, gub, (e, 2 * ff))
    _shape(ckpt, dn, (e, ff, d))
    _shape(ckpt, dnb, (e, d))
    bias = _read(ckpt, gub, (e, 2 * ff))
    # GPT-OSS interleaves its columns: gate at even, up at odd positions.
    return _Arrays(
        ff,
        np.ascontiguousarray(fused[:, :, 0::2].transpose(0, 2, 1)),
        np.ascontiguousarray(fused[:, :, 1::2].transpose(0, 2, 1)),
        np.ascontiguousarray(_read(ckpt, dn, (e, ff, d)).transpose(0, 2, 1)),
        np.ascontiguousarray(bias[:, 0::2]),
        np.ascontiguousarray(bias[:, 1::2]),
        _read(ckpt, dnb, (e, d)),
    )


def _llama4(ckpt: _Checkpoint, block: _Block, e: int, d: int) -> _Arrays:
    gu, dn = _need(block, "llama4", ("gate_up", "down"))
    ff, fused = _fused_halves(ckpt, gu, e, d)
    _shape(ckpt, dn, (e, ff, d))
    # Llama4 concatenates: gate in the first d_ff columns, up in the last.
    return _Arrays(
        ff,
        np.ascontiguousarray(fused[:, :, :ff].transpose(0, 2, 1)),
        np.ascontiguousarray(fused[:, :, ff:].transpose(0, 2, 1)),
        np.ascontiguousarray(_read(ckpt, dn, (e, ff, d)).transpose(0, 2, 1)),
    )


def _granite(ckpt: _Checkpoint, block: _Block, e: int, d: int) -> _Arrays:
    inp, out = _need(block, "granitemoe", ("input_linear", "output_linear"))
    two_ff = _shape(ckpt, inp, (e, None, d))[1]
    if two_ff % 2:
        raise SpecError(f"tensor {inp!r} has an odd dimension {two_ff}: not gate and up")
    ff = two_ff // 2
    _shape(ckpt, out, (e, d, ff))
    fused = _read(ckpt, inp, (e, two_ff, d))
    # The (out, in) layout of §6.1 already; the first d_ff rows are the gate.
    return _Arrays(
        ff,
        np.ascontiguousarray(fused[:, :ff]),
        np.ascontiguousarray(fused[:, ff:]),
        _read(ckpt, out, (e, d, ff)),
    )


def _dbrx(ckpt: _Checkpoint, block: _Block, e: int, d: int) -> _Arrays:
    w1, v1, w2 = _need(block, "dbrx", ("w1", "v1", "w2"))
    rows = _shape(ckpt, w1, (None, d))[0]
    if rows % e:
        raise SpecError(f"tensor {w1!r} has {rows} rows, not a multiple of the {e} experts")
    ff = rows // e
    _shape(ckpt, v1, (rows, d))
    _shape(ckpt, w2, (rows, d))
    # Every matrix is stored as E stacked (d_ff, d) blocks; DBRX multiplies by W2's block
    # untransposed (h @ W2_e), so secmoe's w2[e] is its transpose.
    return _Arrays(
        ff,
        _read(ckpt, w1, (rows, d)).reshape(e, ff, d),
        _read(ckpt, v1, (rows, d)).reshape(e, ff, d),
        np.ascontiguousarray(_read(ckpt, w2, (rows, d)).reshape(e, ff, d).transpose(0, 2, 1)),
    )


_FUSED = {"gpt_oss": _gpt_oss, "llama4": _llama4, "granite": _granite, "dbrx": _dbrx}


def _stacked(
    ckpt: _Checkpoint, role: str, rows: int, cols: int, sources: list[dict[str, str]]
) -> Floats:
    out = np.empty((len(sources), rows, cols), dtype=np.float64)
    for i, parts in enumerate(sources):
        out[i] = _read(ckpt, parts[role], (rows, cols))
    return out


def _per_expert(ckpt: _Checkpoint, block: _Block, e: int, d: int, gated: bool) -> _Arrays:
    experts, prefix = block.experts, block.prefix
    if sorted(experts) != list(range(e)):
        raise SpecError(
            f"{prefix}: the router has {e} rows but the experts present are {sorted(experts)}"
        )
    roles = ("w1", "v", "w2") if gated else ("w1", "w2")
    for i, parts in sorted(experts.items()):
        missing = [r for r in roles if r not in parts]
        if missing:
            raise SpecError(f"{prefix}: expert {i} lacks its {missing} tensors")
    ff = _shape(ckpt, experts[0]["w1"], (None, d))[0]
    for parts in experts.values():
        _shape(ckpt, parts["w1"], (ff, d))
        if "v" in parts:
            _shape(ckpt, parts["v"], (ff, d))
        _shape(ckpt, parts["w2"], (d, ff))
    routed = [experts[i] for i in range(e)]
    return _Arrays(
        ff,
        _stacked(ckpt, "w1", ff, d, routed),
        _stacked(ckpt, "v", ff, d, routed) if gated else None,
        _stacked(ckpt, "w2", d, ff, routed),
    )


@dataclass(frozen=True)
class LoadedLayer:
    """A checkpoint layer with where it came from and how its configuration was derived."""

    config: MoEConfig
    weights: MoEWeights
    path: Path
    family: Family
    layer: int
    prefix: str
    config_file: Path | None  # the config.json read, None when there was none
    sources: dict[str, str]  # MoEConfig field -> the config key (or tensor) it came from
    expert_capacity: int | None  # Switch: tokens per expert per sequence (config.json)
    warnings: tuple[str, ...] = ()

    def describe(self) -> dict[str, object]:
        """The JSON-able record a report prints."""
        return {
            "path": str(self.path),
            "family": self.family,
            "layer": self.layer,
            "block": self.prefix,
            "config_json": None if self.config_file is None else str(self.config_file),
            "derived": {k: self.sources[k] for k in sorted(self.sources)},
            "expert_capacity": self.expert_capacity,
            "warnings": list(self.warnings),
        }


def check_tokens(loaded: LoadedLayer, tokens: int) -> None:
    """``SpecError`` when ``tokens`` tokens of one sequence could exceed the checkpoint's expert
    capacity (spec §6.8.4, the Switch capacity Decision)."""
    cap = loaded.expert_capacity
    if cap is not None and tokens > cap:
        raise SpecError(
            f"config.json expert_capacity = {cap}: the published Switch block drops the expert "
            f"output of a token beyond the first {cap} of a sequence routed to one expert, and "
            "secmoe routes every token (which tokens share an expert is the secret routing, so "
            f"neither party may count them); {tokens} tokens could exceed it, so pass at most "
            f"{cap} tokens per run"
        )


def _warn(notes: list[str], message: str) -> None:
    notes.append(message)
    warnings.warn(message, ConfigOverrideWarning, stacklevel=3)


def _derivation(
    path: Path, names: list[str], family: Family | None, notes: list[str]
) -> tuple[Family, Derived, Path | None]:
    """Step 2: the family and what the config.json (if any) states."""
    cfg = config_path(path)
    if family is not None and family not in FAMILIES:
        raise SpecError(f"family must be one of {FAMILIES}, got {family!r}")
    if not cfg.is_file():
        fam = _detect_family(names) if family is None else family
        return fam, defaults(fam), None
    doc = read_config(cfg)
    derived = derive_moe_config(doc) if family is None else None
    if derived is None:
        stated: str
        try:
            stated = derive_moe_config(doc).family
        except SpecError as exc:
            stated = f"refused ({exc})"
        assert family is not None
        if stated != family:
            _warn(
                notes,
                f"family {family!r} overrides {cfg} (which says {stated}): its routing keys are "
                f"ignored and {family}'s defaults used",
            )
            return family, defaults(family), None
        derived = derive_moe_config(doc)
    return derived.family, derived, cfg


def _check_flag(derived: Derived, cfg: Path | None, name: str, have: bool, tensor: str) -> None:
    want = bool(derived.fields.get(name, False))
    if want != have and (cfg is not None or want):
        key = derived.sources.get(name, name)
        said = "says" if want else "does not say"
        there = "is missing" if want else "is present"
        raise SpecError(
            f"{cfg or derived.family + ' defaults'} {said} {key} ({name}) but the tensor "
            f"{tensor} {there}: refused, not loaded as a different model"
        )


def load_layer(
    path: StrPath,
    layer: int | None = None,
    family: Family | None = None,
    *,
    stack: Stack | None = None,
    top_k: int | None = None,
    gate_norm: GateNorm | None = None,
    ignore_shared_gate: bool = False,
) -> LoadedLayer:
    """The MoE block of ``layer`` (None: the first MoE layer) of a Hugging Face checkpoint.

    Implements spec §6.8.3 `load_layer` (spec/06-models.md#load_layer).

    ``path``: a ``.safetensors`` file, a ``*.safetensors.index.json`` (sharded checkpoint) or a
    directory holding ``model.safetensors`` or its index; a ``config.json`` beside it gives the
    family and the routing (spec §6.8.4). ``family``: from config.json, else detected from the
    names. ``stack``: Switch only. ``top_k``, ``gate_norm``: override config.json (with a
    ``ConfigOverrideWarning`` where they contradict it) or the family's defaults.
    ``ignore_shared_gate=True`` drops a shared-expert gate, which CHANGES THE MODEL (warned).
    """
    if layer is not None and (type(layer) is not int or layer < 0):
        raise SpecError(f"layer must be an integer >= 0, got {layer!r}")
    if not isinstance(ignore_shared_gate, bool):
        raise SpecError("ignore_shared_gate must be a bool")
    notes: list[str] = []
    # Step 1: the checkpoint's tensor names (headers only, no tensor data).
    ckpt = _open_checkpoint(path)
    names = ckpt.names
    # Step 2: the family and the routing config.json states.
    fam, derived, cfg = _derivation(Path(path), names, family, notes)
    # Step 3: the layer's MoE block; step 4: every tensor under it has a role.
    prefix, layer = _block_prefix(names, fam, layer, stack)
    if derived.first_moe_layer is not None and layer < derived.first_moe_layer:
        raise SpecError(
            f"{cfg}: first_k_dense_replace = {derived.first_moe_layer} makes layer {layer} a "
            f"dense MLP in the published model, but the checkpoint has a MoE router there "
            f"({prefix}): the config and the tensors disagree"
        )
    block = _collect(names, fam, prefix)
    # Step 5: shapes, from the headers, then the arrays.
    router = block.single.get("router", prefix + RULES[fam].router)
    n_experts, d = _shape(ckpt, router, (None, None))
    if derived.n_experts is not None and derived.n_experts != n_experts:
        raise SpecError(
            f"{cfg}: states {derived.n_experts} experts but {router!r} routes to {n_experts}"
        )
    gated = derived.fields.get("expert_kind") != "relu"
    layout = RULES[fam].layout
    if layout == "experts":
        arrays = _per_expert(ckpt, block, n_experts, d, gated)
    else:
        arrays = _FUSED[layout](ckpt, block, n_experts, d)
    shared = block.shared
    n_shared, d_ff_shared = 0, 0
    if shared:
        missing = [r for r in ("w1", "v", "w2") if r not in shared]
        if missing:
            raise SpecError(f"{prefix}: the shared expert lacks its {missing} tensors")
        n_shared, d_ff_shared = 1, _shape(ckpt, shared["w1"], (None, d))[0]
        _shape(ckpt, shared["v"], (d_ff_shared, d))
        _shape(ckpt, shared["w2"], (d, d_ff_shared))
    if derived.shared is not None and derived.shared != bool(shared):
        raise SpecError(
            f"{cfg}: the configuration {'has' if derived.shared else 'has no'} shared experts "
            f"but block {prefix} {'has none' if derived.shared else 'has one'}"
        )
    gate_name = block.single.get("shared_gate")
    if gate_name is not None:
        if not shared:
            raise SpecError(f"{gate_name!r} gates a shared expert that the layer does not have")
        _shape(ckpt, gate_name, (1, d))
        if ignore_shared_gate:
            _warn(
                notes,
                f"ignore_shared_gate drops {gate_name!r}: the shared expert is added with weight "
                "1 instead of sigmoid(x . gate), a DIFFERENT model than the checkpoint's",
            )
            derived.fields.pop("shared_gate", None)
            gate_name = None
    fields = dict(derived.fields)
    sources = dict(derived.sources)
    flags = (
        ("router_bias", block.single.get("router_bias"), prefix + "router.bias"),
        ("score_bias", block.single.get("score_bias"), prefix + "gate.e_score_correction_bias"),
        ("expert_bias", block.single.get("gate_up_bias"), prefix + "experts.*_bias"),
        ("shared_gate", gate_name, prefix + (RULES[fam].shared_gate or "shared_expert_gate")),
    )
    for name, tensor, label in flags:
        _check_flag(derived, cfg, name, tensor is not None, label)
        if tensor is not None:
            fields[name] = True
            sources.setdefault(name, tensor)
            if name in ("router_bias", "score_bias"):
                _shape(ckpt, tensor, (n_experts,))
    # Step 6: the configuration; explicit arguments override it.
    given = {"top_k": top_k, "gate_norm": gate_norm}
    for name, key in derived.missing.items():
        if given[name] is None:
            raise SpecError(
                f"{cfg}: lacks {key}, which has no usable default for {fam} (it differs between "
                f"the family's versions, or is None); add it to "
                f"config.json or pass {name}= (--{name.replace('_', '-')})"
            )
    for name, value in (("top_k", top_k), ("gate_norm", gate_norm)):
        if value is None:
            continue
        if cfg is not None and name not in derived.missing and fields.get(name) != value:
            _warn(
                notes,
                f"{name} = {value!r} overrides {cfg} ({sources.get(name)}: {fields.get(name)!r})",
            )
        fields[name], sources[name] = value, "argument"
    try:
        config = MoEConfig(
            d_model=d,
            d_ff=arrays.d_ff,
            n_experts=n_experts,
            n_shared_experts=n_shared,
            d_ff_shared=d_ff_shared,
            **fields,  # type: ignore[arg-type]
        )
    except (SpecError, TypeError) as exc:
        raise SpecError(f"{fam} {prefix}: {exc}") from exc
    # Step 7: the arrays, each tensor read once into its place (router transposed).
    shared_list = [shared] if shared else []
    sff = config.shared_ff

    def vector(name: str | None, size: int) -> Floats | None:
        return None if name is None else _read(ckpt, name, (size,))

    gate_row = None if gate_name is None else _read(ckpt, gate_name, (1, d))[0]
    weights = MoEWeights(
        w_gate=np.ascontiguousarray(_read(ckpt, router, (n_experts, d)).T),
        w1=arrays.w1,
        v=arrays.v if config.gated else None,
        w2=arrays.w2,
        shared_w1=_stacked(ckpt, "w1", sff, d, shared_list),
        shared_v=_stacked(ckpt, "v", sff, d, shared_list) if config.gated else None,
        shared_w2=_stacked(ckpt, "w2", d, sff, shared_list),
        b_gate=vector(block.single.get("router_bias"), n_experts),
        score_bias=vector(block.single.get("score_bias"), n_experts),
        b1=arrays.b1,
        bv=arrays.bv,
        b2=arrays.b2,
        shared_gate=gate_row,
    )
    # Step 8: finite values and the shapes the config implies.
    weights.check(config)
    return LoadedLayer(
        config,
        weights,
        Path(path),
        fam,
        layer,
        prefix,
        cfg,
        sources,
        derived.expert_capacity,
        tuple(notes),
    )


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
    """``(config, weights)`` of :func:`load_layer` (spec §6.8.3) for ``layer``, a number, as
    it always was."""
    if type(layer) is not int or layer < 0:
        raise SpecError(f"layer must be an integer >= 0, got {layer!r}")
    got = load_layer(
        path,
        layer,
        family,
        stack=stack,
        top_k=top_k,
        gate_norm=gate_norm,
        ignore_shared_gate=ignore_shared_gate,
    )
    return got.config, got.weights
