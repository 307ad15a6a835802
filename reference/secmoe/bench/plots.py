"""``secmoe bench moe|nonlinear --plot FILE.png``: the benchmark's result as a picture.

matplotlib is an optional extra (``pip install -e '.[plot]'``); :func:`require_matplotlib`
says so before a benchmark runs. The plots draw the result objects the benchmarks print, so a
saved ``bench/results/NAME.json`` can be drawn again with :func:`write_plot`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from secmoe.errors import SpecError

Result = dict[str, Any]
MOE_VARIANTS = {
    "secmoe": ("SecMoE (Select-Then-Compute)", "#1f6fb4", "o"),
    "compute_then_select": ("compute-then-select (every expert)", "#d62728", "s"),
    "reveal_routing": ("reveal-routing (INSECURE floor)", "#2ca02c", "^"),
}
MISSING = (
    "--plot needs matplotlib, an optional extra: pip install -e '.[plot]' "
    "(or pip install 'secmoe[plot]')"
)


def require_matplotlib() -> None:
    """Raise ``SpecError`` with the install command when matplotlib is not installed."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise SpecError(MISSING) from None


def _pyplot() -> Any:
    require_matplotlib()
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


def _mb(x: float, _pos: object = None) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if x >= scale:
            return f"{x / scale:.3g} {unit}"
    return f"{x:.3g} B"


def plot_moe(result: Result, path: str) -> Result:
    """Total bytes against experts, one line per variant; hollow markers where the point comes
    from the cost formula (``measured`` false) rather than a run."""
    plt = _pyplot()
    from matplotlib.ticker import FuncFormatter, NullFormatter

    experts = [int(e) for e in result["experts"]]
    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=120)
    for key, (label, colour, marker) in MOE_VARIANTS.items():
        entries = result.get(key) or {}
        pts = [(e, entries[str(e)]) for e in experts if str(e) in entries]
        if not pts:
            continue
        ax.plot([e for e, _ in pts], [p["bytes"] for _, p in pts], color=colour, label=label)
        for e, p in pts:
            ax.plot(
                e,
                p["bytes"],
                marker=marker,
                color=colour,
                markerfacecolor=colour if p.get("measured") else "white",
                markersize=7,
            )
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(experts, [str(e) for e in experts])
    ax.yaxis.set_major_formatter(FuncFormatter(_mb))
    every = [p["bytes"] for key in MOE_VARIANTS for p in (result.get(key) or {}).values()]
    narrow = bool(every) and max(every) < 30 * min(every)  # label the minor ticks too
    ax.yaxis.set_minor_formatter(FuncFormatter(_mb) if narrow else NullFormatter())
    ax.set_xlabel("experts")
    ax.set_ylabel("bytes, both directions (log scale)")
    ax.set_title(
        f"MoE layer, d_model {result['d_model']}, d_ff {result['d_ff']}, "
        f"top-{result.get('top_k', 1)}, {result['tokens']} token(s)",
        fontsize=11,
    )
    ax.grid(True, which="both", alpha=0.3)
    ax.plot([], [], "o", color="grey", label="measured run")
    ax.plot([], [], "o", color="grey", markerfacecolor="white", label="cost formula")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return {
        "file": path,
        "x": f"experts {experts} (log2 axis)",
        "y": "total bytes (log axis); hollow markers: from the formula",
    }


def _short_unit(unit: str) -> str:
    if unit.startswith("one row of E = "):
        return "per row of " + unit.split("=")[1].split()[0]
    if unit.startswith("one row of n = "):
        return "per row of " + unit.split("=")[1].split()[0]
    if unit.startswith("one token of d = "):
        return "per token of " + unit.split("=")[1].split()[0]
    return "per element"


def plot_nonlinear(result: Result, path: str) -> Result:
    """Bytes per element (offline and online stacked) of every protocol, with BumbleBee's GeLU
    (compute-then-select) as the reference line and each bar's ratio to it."""
    plt = _pyplot()
    from matplotlib.ticker import FuncFormatter

    names = [k for k, v in result.items() if isinstance(v, dict) and "bytes_per_elem" in v]
    if "gelu_bumblebee" not in names:
        raise SpecError("the nonlinear result has no gelu_bumblebee entry to compare with")
    ref = float(result["gelu_bumblebee"]["bytes_per_elem"])
    if not ref > 0:
        raise SpecError("gelu_bumblebee's bytes per element must be positive")
    fig, ax = plt.subplots(figsize=(8.5, 0.42 * len(names) + 1.6), dpi=120)
    ys = list(range(len(names)))[::-1]
    for y, name in zip(ys, names, strict=True):
        e = result[name]
        off, on = float(e["offline_bytes_per_elem"]), float(e["online_bytes_per_elem"])
        base = "#d62728" if name == "gelu_bumblebee" else "#1f6fb4"
        ax.barh(y, off, color=base, alpha=0.45, height=0.7)
        ax.barh(y, on, left=off, color=base, height=0.7)
        total = off + on
        ax.text(
            total * 1.08,
            y,
            f"{_mb(total)}  ({total / ref:.3g}x BumbleBee's GeLU)",
            va="center",
            fontsize=8,
        )
    labels = [f"{n}  ({_short_unit(str(result[n]['unit']))})" for n in names]
    ax.set_yticks(ys, labels, fontsize=8)
    ax.axvline(ref, color="#d62728", linestyle="--", linewidth=1)
    ax.set_xscale("log")
    lo = min(float(result[n]["bytes_per_elem"]) for n in names)
    hi = max(float(result[n]["bytes_per_elem"]) for n in names)
    ax.set_xlim(lo / 2, hi * 60)
    ax.xaxis.set_major_formatter(FuncFormatter(_mb))
    ax.set_xlabel("bytes per element, both directions (log scale; light: offline, dark: online)")
    ax.set_title(
        "Non-linear protocols on shares against BumbleBee's GeLU recipe (dashed)", fontsize=11
    )
    ax.grid(True, axis="x", which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return {
        "file": path,
        "x": "bytes per element (log axis), offline light and online dark",
        "reference": f"gelu_bumblebee, {ref} bytes per element",
        "ratio_to_bumblebee": {
            n: round(float(result[n]["bytes_per_elem"]) / ref, 4) for n in names
        },
    }


PLOTTERS: dict[str, Callable[[Result, str], Result]] = {
    "moe": plot_moe,
    "nonlinear": plot_nonlinear,
}


def write_plot(name: str, result: Result, path: str) -> Result:
    """Draw benchmark ``name``'s result to ``path`` (PNG); return what the picture shows."""
    if name not in PLOTTERS:
        raise SpecError(f"--plot draws {' or '.join(PLOTTERS)}, not {name}")
    return PLOTTERS[name](result, path)
