"""Benchmark ``moe``: the secure MoE layer against compute-then-select and the INSECURE floor.

For each expert count, three two-party runs over the in-process channel on the same weights and
token: ``moe`` (SecMoE's Select-Then-Compute, key ``secmoe``), ``moe_compute_then_select``
(every expert, then a multiplexer: what Iron / BumbleBee pay, key ``compute_then_select``) and
``moe_reveal_routing`` (INSECURE: the routing is opened, only the selected expert runs; the
cost floor, key ``reveal_routing``). Each run starts with warm OT sessions (``ot_setup`` in both
directions, not counted) and a fresh HE session (the keys are counted, phase ``offline``), and
its output is checked bit for bit against ``moe_fixed``; a wrong output raises.

Sizes: Switch-Base (``d_model 768``, ``d_ff 3072``, GeGLU, top-1, softmax gate) for 8 to 128
experts and one token by default; ``--quick`` is tiny. ``SECMOE_BENCH_MOE_EXPERTS=8,16`` and
``SECMOE_BENCH_MOE_DIMS=64,256`` (or ``secmoe bench moe --experts 8,16 --dims 64,256``)
override the sizes; ``secmoe bench moe --plot FILE.png`` draws bytes vs experts (``plots``).
"""

from __future__ import annotations

import hashlib
import itertools
import os
import shutil
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from secmoe.bench.registry import BenchOptions, register_bench
from secmoe.encoding import RingVec
from secmoe.errors import SpecError
from secmoe.he import packing
from secmoe.he.params import preset
from secmoe.model.config import MoEConfig
from secmoe.model.default import default_inputs, default_weights
from secmoe.model.fixed import FixedWeights, encode_weights, moe_fixed
from secmoe.moe import baseline, prepare, select
from secmoe.moe.baseline import moe_compute_then_select, moe_reveal_routing
from secmoe.moe.cost import moe_cost
from secmoe.moe.layer import MoeShares, moe
from secmoe.moe.mac import MAC_BATCH, plain_multiply_add, select_mac
from secmoe.ot.pool import ot_setup, set_engine
from secmoe.protocols.cost import Pattern, ot_setup_pattern, seq
from secmoe.protocols.linear import DEFAULT_HE
from secmoe.randomness import Prg, dst
from secmoe.session import PartyContext, run_local

ENV_EXPERTS = "SECMOE_BENCH_MOE_EXPERTS"
ENV_DIMS = "SECMOE_BENCH_MOE_DIMS"
ENV_VARIANTS = "SECMOE_BENCH_MOE_VARIANTS"
ENV_KEEP = "SECMOE_BENCH_MOE_KEEP_PREPARED"  # keep the cache files the benchmark builds
FULL_EXPERTS = (8, 16, 32, 64, 128)
FULL_DIMS = (768, 3072)  # Switch-Base
QUICK_EXPERTS = (2, 4)
QUICK_DIMS = (8, 16)
TOKENS = 1
SEED = hashlib.sha256(b"secmoe/v1/bench.moe").digest()  # weights and inputs
Layer = Callable[[PartyContext, MoEConfig, RingVec, FixedWeights | None], MoeShares]
VARIANTS: dict[str, Layer] = {
    "secmoe": moe,
    "compute_then_select": moe_compute_then_select,
    "reveal_routing": moe_reveal_routing,
}
Entry = dict[str, object]
# Sizes whose largest working array exceeds this are reported from the formula (24 GiB machine).
MEMORY_BUDGET = 8 << 30


def _ints(text: str, name: str, count: int | None = None) -> tuple[int, ...]:
    try:
        out = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise SpecError(f"{name} must be comma-separated integers, got {text!r}") from None
    if not out or any(v < 1 for v in out) or (count is not None and len(out) != count):
        want = f"{count} " if count is not None else ""
        raise SpecError(f"{name} must be {want}positive integers, got {text!r}")
    return out


def sizes(quick: bool) -> tuple[tuple[int, ...], tuple[int, int]]:
    """The expert counts and (d_model, d_ff): the environment's, else quick's or full's."""
    experts: tuple[int, ...] = QUICK_EXPERTS if quick else FULL_EXPERTS
    dims = QUICK_DIMS if quick else FULL_DIMS
    if os.environ.get(ENV_EXPERTS):
        experts = tuple(sorted(set(_ints(os.environ[ENV_EXPERTS], ENV_EXPERTS))))
    if os.environ.get(ENV_DIMS):
        d, d_ff = _ints(os.environ[ENV_DIMS], ENV_DIMS, 2)
        dims = (d, d_ff)
    return experts, dims


def fixed_weights(config: MoEConfig) -> FixedWeights:
    """``default_weights(config, SEED)``, encoded (fan-in scaled, |w| < 1)."""
    return encode_weights(config, default_weights(config, SEED))


def working_bytes(name: str, config: MoEConfig) -> int:
    """The largest array a variant builds: compute-then-select's first product transforms the
    stacked weights of every expert to NTT form at once (out x in blocks x L x N words)."""
    if name != "compute_then_select":
        return 0
    p = preset(DEFAULT_HE)
    stacks = 2 if config.gated else 1
    shape = packing.matmul_shape(p, TOKENS, config.d_model, stacks * config.n_experts * config.d_ff)
    return shape.out_blocks * shape.in_blocks * len(p.q_primes) * p.n * 8


def formula(name: str, config: MoEConfig) -> Pattern:
    """The variant's message pattern for one token after warm OT sessions, fresh HE keys."""
    if name == "secmoe":
        return moe_cost(config, TOKENS, fresh_he=True)
    if name == "compute_then_select":
        return baseline.moe_compute_then_select_cost(config, TOKENS)
    return baseline.moe_reveal_routing_cost(config, TOKENS, [TOKENS * config.top_k])


def formula_entry(name: str, config: MoEConfig) -> Entry:
    """Bytes and rounds from the formula alone (for sizes not run: ``measured`` false)."""
    p = formula(name, config)
    rounds = seq(ot_setup_pattern(), p).rounds() - ot_setup_pattern().rounds()
    return {
        "measured": False,
        "bytes": p.c2s + p.s2c,
        "bytes_c2s": p.c2s,
        "bytes_s2c": p.s2c,
        "rounds": rounds,
        "online_s": None,
        "selection_s": None,
    }


TIMERS = {
    "selection_s": select.SELECTION_TIMER,
    "selection_mac_s": select.MAC_TIMER,
    "selection_read_s": select.READ_TIMER,
    "selection_build_s": select.BUILD_TIMER,
}


def _selection_seconds(ctx: PartyContext) -> dict[str, float]:
    out = {}
    for name, key in TIMERS.items():
        got = ctx.store.get(key)
        out[name] = got if isinstance(got, float) else 0.0
    return out


def _split(sel: dict[str, float]) -> Entry:
    """The selection seconds and their parts; ``selection_other_s`` is the rest (the selector
    expansion and the inverse transforms of the selected blocks)."""
    parts = {k: round(v, 3) for k, v in sel.items()}
    rest = sel["selection_s"] - sel["selection_mac_s"] - sel["selection_read_s"]
    parts["selection_other_s"] = round(rest - sel["selection_build_s"], 3)
    return dict(parts)


def mac_roofline(model: prepare.PreparedModel, repeat: int = 7) -> Entry:
    """``select_mac`` against a plain numpy multiply-add of the same arrays, per block: copies of
    the first MAC_BATCH blocks of the prepared W1 (so that no view keeps the whole preparation
    alive), taken by one ``select_mac`` as the protocol takes them, and uniform selectors of
    their shape; interleaved, medians."""
    blocks = model.stacks["w1"].blocks()
    batch = [np.array(b) for _, _, b in itertools.islice(blocks, MAC_BATCH)]
    blocks.close()  # stops a cache file's reader thread
    p = select.select_params()
    col = np.array(p.q_primes, dtype=np.uint64).reshape(1, 1, -1, 1)
    shape = (batch[0].shape[0], 2, *batch[0].shape[1:])
    raw = Prg(SEED, dst("bench.moe", "roofline")).next_u64(int(np.prod(shape)))
    sel = (raw.reshape(shape) % col).astype(np.uint32)  # the selectors' width in the protocol
    ours, plain = [], []
    select_mac(batch, sel, p.q_primes)
    for _ in range(repeat):
        t0 = time.perf_counter()
        select_mac(batch, sel, p.q_primes)
        t1 = time.perf_counter()
        for block in batch:
            plain_multiply_add(block, sel)
        t2 = time.perf_counter()
        ours.append((t1 - t0) / len(batch))
        plain.append((t2 - t1) / len(batch))
    mac, ref = statistics.median(ours), statistics.median(plain)
    return {
        "mac_ms": round(mac * 1e3, 3),
        "plain_ms": round(ref * 1e3, 3),
        "ratio": round(ref / mac, 3),
    }


def measure(
    layer: Layer,
    config: MoEConfig,
    fw: FixedWeights,
    x: RingVec,
    progress: Callable[[str], None] | None = None,
) -> Entry:
    """One two-party run of ``layer``: bytes by phase and direction, rounds, seconds."""
    ring = config.fxp.ring
    xc = Prg(SEED, dst("bench.moe", "share")).next_ring(x.size).reshape(x.shape)
    xs = ring.sub(x, xc)

    def wrap(mine: RingVec, weights: FixedWeights | None) -> Callable[[PartyContext], Any]:
        def party(ctx: PartyContext) -> tuple[Any, ...]:
            # The formulas it checks are the "iknp" engine's just-in-time patterns (spec §10.4).
            set_engine(ctx, "iknp")
            ot_setup(ctx)
            phases = ctx.channel.cost.phases
            before = {k: (v.bytes_c2s, v.bytes_s2c) for k, v in phases.items()}
            start = ctx.channel.cost.rounds
            off0 = ctx.channel.cost.phase("offline").seconds
            t0 = time.perf_counter()
            out = layer(ctx, config, mine, weights)
            wall = time.perf_counter() - t0
            offline = ctx.channel.cost.phase("offline").seconds - off0
            return out, before, start, wall, offline, _selection_seconds(ctx)

        return party

    res = run_local(
        wrap(xc, None),
        wrap(xs, fw),
        client_seed=bytes([1]) * 32,
        server_seed=bytes([2]) * 32,
        fxp=config.fxp,
        timeout=24 * 3600,
        progress=progress,
    )
    out_c, before, start, wall_c, off_c, _ = res.client
    out_s, _, _, wall_s, off_s, sel_s = res.server
    want = moe_fixed(config, fw, x)
    if not np.array_equal(ring.add(out_c.y, out_s.y), want.y):
        raise SpecError(f"bench moe: {layer.__name__} differs from moe_fixed")
    delta = {}
    for name, ph in res.cost.phases.items():
        c0, s0 = before.get(name, (0, 0))
        delta[name] = (ph.bytes_c2s - c0, ph.bytes_s2c - s0)
    online, offline = delta.pop("online", (0, 0)), delta.pop("offline", (0, 0))
    if any(sum(v) for v in delta.values()):
        raise SpecError(f"bench moe: bytes outside the online / offline phases: {delta}")
    return {
        "measured": True,
        "bytes": sum(online) + sum(offline),
        "online_bytes": sum(online),
        "offline_bytes": sum(offline),
        "bytes_c2s": online[0] + offline[0],
        "bytes_s2c": online[1] + offline[1],
        "rounds": res.cost.rounds - start,
        "online_s": round(max(wall_c - off_c, wall_s - off_s), 3),
        "offline_s": round(max(off_c, off_s), 3),
        "wall_s": round(max(wall_c, wall_s), 3),
        **_split(sel_s),
    }


def _disk_short(config: MoEConfig) -> str | None:
    """Why the prepared weights of ``config`` cannot be built here (their cache files need more
    than the free disk, spec §40.7.2), or None; an existing file of the same size counts as
    free, since it may be the one that is reused."""
    _, files = prepare.prepared_sizes(config)
    if files == 0:
        return None
    folder = prepare.default_cache_dir()
    while not folder.exists():
        folder = folder.parent
    free = shutil.disk_usage(folder).free
    if free + _cached_bytes() >= files + prepare.DISK_MARGIN:
        return None
    return (
        f"its cache files need {files / 2**30:.1f} GiB (+1 GiB) under {prepare.default_cache_dir()}, "
        f"{free / 2**30:.1f} GiB free (set {prepare.ENV_DIR} to a larger disk)"
    )


def _cached_bytes() -> int:
    """Bytes of the prepared cache files already in the cache directory."""
    folder = prepare.default_cache_dir() / "prepared"
    return sum(f.stat().st_size for f in folder.glob("*.bin")) if folder.is_dir() else 0


def _ratio(num: dict[str, Entry], den: dict[str, Entry], a: str, b: str | None = None) -> Any:
    b = a if b is None else b
    if a not in num or b not in den:
        return None
    x, y = num[a]["bytes"], den[b]["bytes"]
    assert isinstance(x, int) and isinstance(y, int)
    return round(x / y, 4)


def _time_ratio(entries: dict[str, Entry], a: str, b: str) -> Any:
    x, y = (entries.get(k, {}).get("online_s") for k in (a, b))
    if not isinstance(x, float) or not isinstance(y, float) or y == 0:
        return None
    return round(x / y, 3)


def _prepared_entry(model: prepare.PreparedModel) -> Entry:
    stats = model.read_stats()
    return {
        "prepare_s": round(model.prepare_s, 3),
        "prepare_built": model.built,
        "prepared_bytes": model.nbytes,
        "prepared_memory_bytes": model.memory_bytes,
        "prepared_read_bytes": stats.bytes_read,
    }


@register_bench(
    "moe",
    "MoE layer: SecMoE (Select-Then-Compute) vs compute-then-select vs the INSECURE "
    "reveal-routing floor; bytes, rounds, online and selection seconds per expert count",
    (
        "secmoe",
        "compute_then_select",
        "reveal_routing",
        "tokens",
        "d_model",
        "d_ff",
        "ratio_cts_over_secmoe_128",
        "secmoe_bytes_128_over_16",
        "online_s_128_over_16",
        "mac_roofline_ratio",
    ),
)
def bench_moe(opts: BenchOptions) -> dict[str, object]:
    experts, (d, d_ff) = sizes(opts.quick)
    chosen = set(VARIANTS)
    if os.environ.get(ENV_VARIANTS):
        chosen = set(os.environ[ENV_VARIANTS].split(","))
        if not chosen <= set(VARIANTS):
            raise SpecError(f"{ENV_VARIANTS}: variants are {', '.join(VARIANTS)}")
    results: dict[str, dict[str, Entry]] = {name: {} for name in VARIANTS}
    roofline: dict[str, Entry] = {}
    for n_exp in experts:
        config = MoEConfig(d_model=d, d_ff=d_ff, n_experts=n_exp, top_k=1, expert_kind="geglu")
        fw = fixed_weights(config)
        x = config.fxp.encode(default_inputs(config, TOKENS, SEED))
        for name, layer in VARIANTS.items():
            if name not in chosen or working_bytes(name, config) > MEMORY_BUDGET:
                if name in chosen:
                    opts.say(
                        f"bench moe: {name} at {n_exp} experts would need more than "
                        f"{MEMORY_BUDGET >> 30} GiB: reported from its formula"
                    )
                results[name][str(n_exp)] = formula_entry(name, config)
                continue
            prepared = None
            if name == "secmoe" and (short := _disk_short(config)):
                opts.say(f"bench moe: secmoe at {n_exp} experts not run: {short}")
                results[name][str(n_exp)] = {**formula_entry(name, config), "not_run": short}
                continue
            if name == "secmoe":
                opts.say(f"bench moe: preparing the {n_exp} experts' weight blocks")
                prepared = prepare.prepare_model(config, fw)
            opts.say(f"bench moe: {name}, {n_exp} experts, d_model {d}, d_ff {d_ff}")
            try:
                entry = measure(layer, config, fw, x, None if opts.quick else opts.progress)
                if prepared is not None:
                    entry.update(_prepared_entry(prepared))
                    roofline[str(n_exp)] = mac_roofline(prepared)
            finally:
                prepare.forget(fw)
                if prepared is not None and not os.environ.get(ENV_KEEP):
                    prepared.remove_built_files()  # the next sizes need the disk
                del prepared
            want = formula_entry(name, config)
            if (entry["bytes_c2s"], entry["bytes_s2c"], entry["rounds"]) != (
                want["bytes_c2s"],
                want["bytes_s2c"],
                want["rounds"],
            ):
                raise SpecError(f"bench moe: {name} at {n_exp} experts differs from its formula")
            results[name][str(n_exp)] = entry
            opts.say(f"bench moe: {name} {n_exp} {entry}")
        del fw
    cts, ours = results["compute_then_select"], results["secmoe"]
    out: dict[str, object] = {
        "tokens": TOKENS,
        "d_model": d,
        "d_ff": d_ff,
        "expert_kind": "geglu",
        "top_k": 1,
        "gate_norm": "softmax",
        "experts": list(experts),
        **results,
        "ratio_cts_over_secmoe_128": _ratio(cts, ours, "128"),
        "secmoe_bytes_128_over_16": _ratio(ours, ours, "128", "16"),
        "ratio_cts_over_secmoe": {e: _ratio(cts, ours, e) for e in ours},
        "online_s_128_over_16": _time_ratio(ours, "128", "16"),
        "mac_roofline": roofline,
        "mac_roofline_ratio": min((float(v["ratio"]) for v in roofline.values()), default=None),  # type: ignore[arg-type]
        "notes": {
            "measured": "true: a two-party run, whose bytes and rounds the benchmark checks "
            "against the formula; false: the formula alone (variants not chosen, or sizes whose "
            "largest working array would exceed 8 GiB: compute-then-select from 64 experts at "
            "Switch-Base size)",
            "bytes": "payload bytes of both directions after warm OT sessions, the HE keys of a "
            "fresh session (he8192; he16384 and the Galois keys for secmoe) and the inline "
            "triples (phase offline) included",
            "rounds": "rounds of the run from the end of ot_setup",
            "online_s": "wall seconds of the layer call minus its offline-phase seconds (the "
            "larger of the two parties); includes selection_s",
            "selection_s": "secmoe: the server's local selection compute (selector expansion and "
            "sum_e W_e [[t_e]]); compute_then_select: the multiplexing step (mux, interactive); "
            "reveal_routing: grouping the opened rows by expert (local)",
            "selection_mac_s": "secmoe: the part of selection_s in select_mac (the "
            "multiply-accumulate over the experts, both cores)",
            "selection_read_s": "secmoe: the part of selection_s spent waiting for prepared "
            "blocks from the cache file (reads not hidden behind the compute)",
            "selection_build_s": "secmoe: the part of selection_s building weight blocks in the "
            "call (0 when the weights are prepared)",
            "selection_other_s": "secmoe: the rest of selection_s: the selector expansion and "
            "the inverse transforms of the selected blocks",
            "prepare_s": "secmoe: seconds of prepare_model before the run (building the NTT-form "
            "blocks, or hashing and checking an existing cache file: prepare_built false); not "
            "part of online_s",
            "prepared_bytes": "secmoe: bytes of the prepared blocks (prepared_memory_bytes of "
            "them in memory, the rest in cache files under $SECMOE_CACHE_DIR, read once per "
            "token: prepared_read_bytes); the files the benchmark builds are deleted after "
            "each size unless SECMOE_BENCH_MOE_KEEP_PREPARED is set",
            "mac_roofline_ratio": "the smallest over the expert counts of mac_roofline[E].ratio: "
            "a plain single-thread numpy multiply-add over the first MAC_BATCH prepared W1 blocks "
            "and uniform selectors (no reduction) divided by select_mac on the same arrays (one "
            "call, as the protocol makes it), per block, medians of 7 interleaved runs",
            "online_s_128_over_16": "secmoe online_s at 128 experts over that at 16",
            "reveal_routing": "INSECURE: reveals every token's routing to the server",
            "weights": "default_weights(config, SHA-256('secmoe/v1/bench.moe')), inputs "
            "default_inputs with the same seed",
        },
    }
    return out
