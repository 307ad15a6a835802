"""The ``secmoe`` command line: demo, vectors, benchmarks, and the two parties over TCP."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from secmoe.encoding import FixedPoint
from secmoe.errors import ProtocolError, SecmoeError, SpecError
from secmoe.net.channel import CostRecord
from secmoe.randomness import SEED_BYTES, system_seed
from secmoe.session import PartyContext, connect_tcp, serve_tcp
from secmoe.sharing import share_add_reveal


def _err(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _seed(text: str | None) -> bytes:
    if text is None:
        return system_seed()
    try:
        seed = bytes.fromhex(text)
    except ValueError as exc:
        raise SpecError("--seed must be hex") from exc
    if len(seed) != SEED_BYTES:
        raise SpecError(f"--seed must be {SEED_BYTES} bytes ({2 * SEED_BYTES} hex digits)")
    return seed


def _values(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError as exc:
        raise SpecError(f"--values must be comma-separated numbers, got {text!r}") from exc


def format_cost(cost: CostRecord) -> str:
    """A human cost table: bytes each way, messages and rounds per phase and in total."""
    rows = [("phase", "bytes c->s", "bytes s->c", "messages", "rounds", "seconds")]
    for name, p in [*cost.phases.items(), ("total", cost.total())]:
        if name != "total" and p.messages_c2s + p.messages_s2c == 0:
            continue
        rows.append(
            (
                name,
                f"{p.bytes_c2s:,}",
                f"{p.bytes_s2c:,}",
                str(p.messages_c2s + p.messages_s2c),
                str(p.rounds),
                f"{p.seconds:.3f}",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(
            c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in rows
    )


# --- demo ---------------------------------------------------------------------------------------


def cmd_demo(args: argparse.Namespace) -> int:
    from secmoe.model.demo import format_summary, plaintext_demo

    _err("secmoe demo: the secure MoE layer is not implemented yet; running the plaintext")
    _err("fixed-point MoE layer (the oracle the secure protocol will be tested against).")
    summary = plaintext_demo(tokens=args.tokens)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(format_summary(summary))
    return 0


# --- vectors ------------------------------------------------------------------------------------


def cmd_vectors(args: argparse.Namespace) -> int:
    from secmoe.vectors.files import generate, select, verify

    only = args.only or None
    if args.action == "list":
        for r in select(only):
            print(f"{r.spec.path:45s} {r.spec.protocol:35s} {r.spec.mode:6s} {r.spec.anchor}")
        return 0
    if args.action == "generate":
        written = generate(Path(args.out), only, progress=_err if args.verbose else None)
        _err(f"wrote {len(written)} vector files under {args.out}")
        return 0
    directory = Path(args.dir)
    if not directory.is_dir():
        raise SpecError(f"{directory} is not a directory")
    failures = verify(directory, only, progress=_err if args.verbose else None)
    for line in failures:
        print(line)
    if failures:
        _err(f"vectors verify: {len(failures)} failure(s)")
        return 1
    _err(f"vectors verify: {len(select(only))} files match a fresh regeneration")
    return 0


# --- benchmarks ---------------------------------------------------------------------------------


def cmd_bench(args: argparse.Namespace) -> int:
    from secmoe.bench.registry import BenchOptions, all_benchmarks, run_bench

    opts = BenchOptions(quick=args.quick, progress=_err)
    if args.name == "list":
        for b in all_benchmarks():
            print(f"{b.name:12s} {b.description}  keys: {', '.join(b.keys)}")
        return 0
    names = [b.name for b in all_benchmarks()] if args.name == "all" else [args.name]
    out_dir = Path(args.out) if args.out else None
    for name in names:
        _err(f"bench {name}: running")
        result = run_bench(name, opts)
        text = json.dumps(result, indent=None if args.json else 2)
        if out_dir is not None:
            out_dir.mkdir(parents=True, exist_ok=True)
            (out_dir / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
            _err(f"bench {name}: wrote {out_dir / (name + '.json')}")
        if args.json or out_dir is None:
            print(text, flush=True)
    return 0


# --- the two parties over TCP -------------------------------------------------------------------

TcpProtocol = Callable[[PartyContext], object]


def _tcp_protocol(name: str, values: list[float], fxp: FixedPoint) -> TcpProtocol:
    if name == "share_add_reveal":
        mine = fxp.encode(np.asarray(values, dtype=np.float64))

        def run(ctx: PartyContext) -> object:
            ctx.say(f"share_add_reveal on {mine.size} values")
            return share_add_reveal(ctx, mine)

        return run
    raise SpecError(f"unknown TCP protocol {name!r}; known: share_add_reveal")


def cmd_party(args: argparse.Namespace) -> int:
    fxp = FixedPoint()
    fn = _tcp_protocol(args.protocol, _values(args.values), fxp)
    seed = _seed(args.seed)
    progress = _err if not args.quiet else None
    if args.command == "serve":

        def announce(port: int) -> None:
            _err(f"secmoe serve: listening on {args.host}:{port} ({args.protocol})")

        out, cost = serve_tcp(
            args.host,
            args.port,
            args.protocol,
            fn,
            seed=seed,
            fxp=fxp,
            timeout=args.timeout,
            accept_timeout=args.accept_timeout,
            progress=progress,
            on_listen=announce,
        )
    else:
        out, cost = connect_tcp(
            args.host,
            args.port,
            args.protocol,
            fn,
            seed=seed,
            fxp=fxp,
            timeout=args.timeout,
            connect_timeout=args.connect_timeout,
            progress=progress,
        )
    result: dict[str, object] = {"party": "server" if args.command == "serve" else "client"}
    if isinstance(out, np.ndarray):
        result["output"] = [float(v) for v in fxp.decode(out)]
    result["cost"] = cost.as_dict()
    if args.json:
        print(json.dumps(result))
    else:
        if "output" in result:
            print("output:", ", ".join(f"{v:g}" for v in result["output"]))  # type: ignore[attr-defined]
        print(format_cost(cost))
    return 0


# --- entry point --------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="secmoe", description="SecMoE reference implementation")
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("demo", help="run the main job on the built-in default model")
    d.add_argument("--tokens", type=int, default=4, help="number of tokens (default 4)")
    d.add_argument("--json", action="store_true", help="print JSON")
    d.set_defaults(func=cmd_demo)

    v = sub.add_parser("vectors", help="generate, verify or list test vectors")
    vsub = v.add_subparsers(dest="action", required=True)
    g = vsub.add_parser("generate", help="regenerate vector files")
    g.add_argument("--out", default="vectors", help="output directory (default vectors)")
    ve = vsub.add_parser("verify", help="compare a directory with a fresh regeneration")
    ve.add_argument("dir")
    ls = vsub.add_parser("list", help="list the registered vector files")
    for x in (g, ve, ls):
        x.add_argument("--only", nargs="*", help="protocol names or path prefixes")
        x.add_argument("-v", "--verbose", action="store_true")
    v.set_defaults(func=cmd_vectors)

    b = sub.add_parser("bench", help="run a benchmark (NAME, 'all' or 'list')")
    b.add_argument("name")
    b.add_argument("--json", action="store_true", help="one JSON object per benchmark on stdout")
    b.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    b.add_argument("--out", help="also write NAME.json files into this directory")
    b.set_defaults(func=cmd_bench)

    for name, helptext in (
        ("serve", "run the server party over TCP"),
        ("client", "run the client party over TCP"),
    ):
        s = sub.add_parser(name, help=helptext)
        s.add_argument("--protocol", default="share_add_reveal")
        s.add_argument("--host", default="127.0.0.1")
        s.add_argument("--port", type=int, default=5577)
        s.add_argument(
            "--values", default="1,2,3", help="this party's input, comma-separated reals"
        )
        s.add_argument("--seed", help="32-byte hex seed (default: fresh OS randomness)")
        s.add_argument(
            "--timeout", type=float, default=60.0, help="seconds to wait for any message"
        )
        s.add_argument("--accept-timeout", type=float, default=300.0)
        s.add_argument("--connect-timeout", type=float, default=10.0)
        s.add_argument("--json", action="store_true")
        s.add_argument("--quiet", action="store_true")
        s.set_defaults(func=cmd_party)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
        return code
    except ProtocolError as exc:
        _err(f"secmoe: protocol error: {exc}")
        return 3
    except SecmoeError as exc:
        _err(f"secmoe: error: {exc}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
