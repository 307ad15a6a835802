"""The ``secmoe`` command line: demo, vectors, benchmarks, and the two parties over TCP."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from secmoe import cli_args
from secmoe.accuracy import DEFAULT_BATCH, ablation_report, accuracy_report, format_accuracy
from secmoe.encoding import FixedPoint
from secmoe.errors import ProtocolError, SecmoeError, SpecError
from secmoe.he.memory import keep_freed_memory
from secmoe.model.checkpoint import ConfigOverrideWarning, LoadedLayer, check_tokens, load_layer
from secmoe.model.classifier import ARCHS, DATASETS
from secmoe.model.config import GATE_NORMS, MoEConfig, MoEWeights
from secmoe.model.default import default_config, default_inputs, default_weights
from secmoe.model.fixed import encode_weights
from secmoe.model.hf_config import FAMILIES
from secmoe.model.safetensors import Floats
from secmoe.moe.demo import (
    DEMO_PROTOCOL,
    DEMO_SEED,
    DEMO_TIMEOUT,
    DEMO_TOKENS,
    MAX_TOKENS,
    ClientView,
    demo_client,
    demo_run,
    demo_server,
    format_report,
    load_inputs,
    summarize,
)
from secmoe.moe.projection import (
    PRESETS,
    config_report,
    demo_report,
    format_reports,
    preset_report,
)
from secmoe.net.channel import CostRecord
from secmoe.randomness import SEED_BYTES, system_seed
from secmoe.session import PartyContext, SessionLimits, connect_tcp
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


def _tcp_seed(args: argparse.Namespace) -> Callable[[], bytes]:
    """Fresh OS randomness per session; a fixed --seed only with --insecure-fixed-seed
    (spec §4.5: a seed reused across sessions lets the peer subtract two sessions' inputs)."""
    if args.seed is None:
        if args.insecure_fixed_seed:
            raise SpecError("--insecure-fixed-seed goes with --seed")
        return system_seed
    if not args.insecure_fixed_seed:
        raise SpecError(
            "--seed fixes this party's randomness in every session, which lets the peer recover "
            "the difference of two sessions' inputs (spec §4.5); add --insecure-fixed-seed for "
            "tests and reproducible runs"
        )
    seed = _seed(args.seed)
    return lambda: seed


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


def _progress(quiet: bool, bar: bool = False) -> Callable[[str], None] | None:
    """Progress on stderr: a bar of the client's stages on a terminal (or with --progress),
    else lines stamped with the seconds since the run started; stdout is never touched."""
    if quiet:
        return None
    if bar or sys.stderr.isatty():
        return _progress_bar()
    t0 = time.monotonic()

    def say(message: str) -> None:
        _err(f"[{time.monotonic() - t0:7.1f}s] {message}")

    return say


def _progress_bar() -> Callable[[str], None]:
    from tqdm import tqdm

    # The stages are the client's progress messages (its steps of the layer); the server's
    # messages only relabel the bar, so that its long expert products show as activity.
    bar = tqdm(file=sys.stderr, unit=" stage", dynamic_ncols=True, leave=True)

    def say(message: str) -> None:
        if message.startswith("[client]"):
            bar.update(1)
        bar.set_postfix_str(message[:70], refresh=True)
        if "output received" in message:
            bar.close()

    return say


def _model_demo(args: argparse.Namespace) -> int:
    from secmoe.transformer.demo import format_model_report, secure_model_demo

    if args.plaintext:
        raise SpecError("--plaintext is for the MoE layer demo; --model runs the secure model")
    if args.weights or args.inputs or args.output:
        raise SpecError("--model runs its own model and inputs; drop --weights/--inputs/--output")
    seed = DEMO_SEED if args.seed is None else _seed(args.seed)
    tokens = args.tokens or DEMO_TOKENS
    _err(
        f"secmoe demo --model {args.model}: the secure MoE transformer on {tokens} token(s), "
        "both parties in this process"
    )
    summary, cost = secure_model_demo(
        args.model, tokens, seed, progress=_progress(args.quiet), timeout=args.timeout
    )
    return _print_demo(args, summary, format_model_report(summary), cost)


def _layer(args: argparse.Namespace) -> tuple[LoadedLayer | None, MoEConfig, MoEWeights]:
    """The layer to run: ``--weights``' checkpoint layer, else the built-in default model."""
    if args.weights is None:
        config = default_config()
        return None, config, default_weights(config)
    loaded = _load_checkpoint(args)
    return loaded, loaded.config, loaded.weights


def _load_checkpoint(args: argparse.Namespace) -> LoadedLayer:
    """``--weights`` and its loader flags; each loader warning goes to stderr."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConfigOverrideWarning)
        loaded = load_layer(
            args.weights,
            args.layer,
            args.family,
            stack=args.stack,
            top_k=args.top_k,
            gate_norm=args.gate_norm,
            ignore_shared_gate=args.ignore_shared_gate,
        )
    for w in caught:
        _err(f"secmoe: warning: {w.message}")
    if not args.quiet:
        where = loaded.config_file or "no config.json (family defaults and tensor names)"
        _err(
            f"secmoe: {loaded.family} layer {loaded.layer} of {loaded.path} "
            f"(configuration from {where}): {loaded.config}"
        )
    return loaded


def _check_output_path(path: str | None) -> Path | None:
    if path is None:
        return None
    out = Path(path)
    if out.suffix != ".npy":
        raise SpecError(
            f"--output {out}: the file name must end in .npy (it is written by np.save)"
        )
    if not out.parent.is_dir():
        raise SpecError(f"--output {out}: the directory {out.parent} does not exist")
    return out


def _check_loader_flags(args: argparse.Namespace) -> None:
    loader_flags = (args.layer, args.family, args.stack, args.top_k, args.gate_norm)
    if args.weights is None and (
        any(v is not None for v in loader_flags) or args.ignore_shared_gate
    ):
        raise SpecError(
            "--layer, --family, --stack, --top-k, --gate-norm and --ignore-shared-gate go with "
            "--weights"
        )


def _client_inputs(
    args: argparse.Namespace, config: MoEConfig, loaded: LoadedLayer | None
) -> Floats:
    """The client's tokens: --inputs, else the built-in ones (--tokens of them)."""
    if args.inputs is not None and args.tokens is not None:
        raise SpecError("--tokens counts the built-in inputs; with --inputs the file sets it")
    if args.inputs is not None:
        x = load_inputs(args.inputs, config)
    else:
        x = default_inputs(config, args.tokens or DEMO_TOKENS)
    if loaded is not None:
        check_tokens(loaded, x.shape[0])
    return x


def _finish_demo(
    summary: dict[str, object],
    config: MoEConfig,
    view: ClientView,
    loaded: LoadedLayer | None,
    output: Path | None,
) -> None:
    """The checkpoint's record in the report, and the output file."""
    if loaded is not None:
        summary["checkpoint"] = loaded.describe()
    if output is not None:
        y = config.fxp.decode(view.y)
        np.save(output, y)
        summary["output_file"] = str(output)
        _err(f"secmoe: wrote the output {y.shape} to {output}")


def cmd_demo(args: argparse.Namespace) -> int:
    if args.model is not None:
        return _model_demo(args)
    _check_loader_flags(args)
    if args.plaintext:
        from secmoe.model.demo import format_summary, plaintext_demo

        if args.weights or args.inputs or args.output:
            raise SpecError("--plaintext runs the default model; drop --weights/--inputs/--output")
        _err("secmoe demo --plaintext: the plaintext fixed-point MoE layer next to the float one")
        _err("(no parties, no protocol: the oracle the secure layer is tested against).")
        summary = plaintext_demo(tokens=args.tokens or DEMO_TOKENS)
        print(json.dumps(summary, indent=2) if args.json else format_summary(summary))
        return 0
    output = _check_output_path(args.output)
    seed = DEMO_SEED if args.seed is None else _seed(args.seed)
    loaded, config, weights = _layer(args)
    x = _client_inputs(args, config, loaded)
    _err(
        f"secmoe demo: the secure MoE layer on {x.shape[0]} token(s), both parties in this process"
    )
    t0 = time.perf_counter()
    progress = _progress(args.quiet, args.progress)
    run = demo_run(config, weights, x, seed, progress=progress, timeout=args.timeout)
    wall = time.perf_counter() - t0
    summary = summarize(config, weights, x, run.client, run.cost, wall, "in-process")
    _finish_demo(summary, config, run.client, loaded, output)
    return _print_demo(args, summary, format_report(summary), run.cost)


def _print_demo(
    args: argparse.Namespace, summary: dict[str, object], text: str, cost: CostRecord
) -> int:
    """The JSON object with --json, else the report and the cost table."""
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(text)
        print(format_cost(cost))
    return 0


# --- cost -----------------------------------------------------------------------------------------


def cmd_accuracy(args: argparse.Namespace) -> int:
    archs = list(ARCHS) if args.arch == "both" else [args.arch]
    seed = None if args.seed is None else _seed(args.seed)
    out: dict[str, object] = {"dataset": args.dataset}
    exact = True
    for arch in archs:
        if args.ablate:
            out[arch] = ablation_report(args.dataset, arch, args.limit, args.models)
            continue
        rep = accuracy_report(
            args.dataset,
            arch,
            args.limit,
            args.batch,
            seed,
            not args.plaintext,
            not args.quiet,
            args.models,
            args.offset,
        )
        exact = exact and rep.get("secure_logits_equal_fixed", True) is True
        out[arch] = rep
    print(json.dumps(out, indent=2) if args.json else format_accuracy(out))
    # A secure logit that differs from the fixed-point model's is a bug: exit 1.
    return 0 if exact else 1


def cmd_cost(args: argparse.Namespace) -> int:
    if args.config is not None:
        if args.preset is not None:
            raise SpecError("give --config or --preset, not both")
        reports = [config_report(args.config, 1 if args.tokens is None else args.tokens)]
    elif args.preset is None:
        reports = [demo_report(DEMO_TOKENS if args.tokens is None else args.tokens)]
    else:
        names = list(PRESETS) if args.preset == "all" else [args.preset]
        reports = [preset_report(n, 1 if args.tokens is None else args.tokens) for n in names]
    if args.json:
        print(json.dumps(reports[0] if len(reports) == 1 else {"presets": reports}, indent=2))
    else:
        print(format_reports(reports))
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
    from secmoe.bench.moe import ENV_DIMS, ENV_EXPERTS, ENV_VARIANTS
    from secmoe.bench.plots import PLOTTERS, require_matplotlib, write_plot

    if args.plot:
        if args.name not in PLOTTERS:
            raise SpecError(f"--plot goes with {' or '.join(PLOTTERS)}, not {args.name}")
        require_matplotlib()  # before an hour of benchmark, not after
    # The moe benchmark's sizes travel as environment variables (BenchOptions has none).
    for value, var in (
        (args.experts, ENV_EXPERTS),
        (args.dims, ENV_DIMS),
        (args.variants, ENV_VARIANTS),
    ):
        if value:
            os.environ[var] = value
    if args.name == "list":
        for b in all_benchmarks():
            print(f"{b.name:12s} {b.description}  keys: {', '.join(b.keys)}")
        return 0
    names = [b.name for b in all_benchmarks()] if args.name == "all" else [args.name]
    out_dir = Path(args.out) if args.out else None
    for name in names:
        _err(f"bench {name}: running")
        result = run_bench(name, opts)
        if args.plot:
            result["plot"] = write_plot(name, result, args.plot)
            _err(f"bench {name}: plotted {args.plot}")
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
ADD_PROTOCOL = "share_add_reveal"
ADD_TIMEOUT = 60.0
ADD_SESSION_TIMEOUT = 120.0
DEMO_SESSION_TIMEOUT = 3600.0
ADD_BOUND = 2.0**44  # |v| < 2^(l-2-f) at l = 64, f = 18 (spec §3.4.1)


def check_add_inputs(fxp: FixedPoint, values: np.ndarray) -> None:
    """Refuse share_add_reveal inputs beyond the public bound 2^(l-2-f) (spec §3.4.1)."""
    bits = fxp.ring.bits - 2 - fxp.frac_bits
    big = np.abs(values) >= 2.0**bits
    if np.any(big):
        raise SpecError(
            f"--values: every |v| must be below 2^{bits} = {2.0**bits:.6g} (spec §3.4.1, so that "
            f"x + y cannot wrap); got {values[big][0]:g}"
        )


def demo_budget(max_tokens: int) -> int:
    """The bytes a moe-demo client may send in one session (spec §4.4.3): twice the payload
    bytes client to server of the cost formula at ``max_tokens``, plus 2^20."""
    return 2 * int(demo_report(max_tokens)["bytes_c2s"]) + (1 << 20)


def _protocol_name(args: argparse.Namespace) -> str:
    # --values only means something to the share-add-reveal protocol, so it selects it.
    if args.protocol is not None:
        return str(args.protocol)
    return ADD_PROTOCOL if args.values is not None else DEMO_PROTOCOL


def _limits(args: argparse.Namespace, timeout: float, budget: int | None) -> SessionLimits:
    return SessionLimits(timeout=timeout, budget=budget)


def _run_client(
    args: argparse.Namespace,
    protocol: str,
    fn: TcpProtocol,
    fxp: FixedPoint,
    timeout: float,
    budget: int,
) -> tuple[object, CostRecord]:
    return connect_tcp(
        args.host,
        args.port,
        protocol,
        fn,
        seed=_tcp_seed(args)(),
        fxp=fxp,
        connect_timeout=args.connect_timeout,
        progress=_progress(args.quiet),
        limits=_limits(args, timeout, budget),
    )


def _serve(
    args: argparse.Namespace,
    protocol: str,
    fn: TcpProtocol,
    describe: Callable[[object], dict[str, object]],
    fxp: FixedPoint,
    timeout: float,
    budget: int,
    session_timeout: float,
) -> int:
    """Serve sessions until stopped (spec §4.4.3): one line per session on stdout."""
    from secmoe.serve import ServeOptions, serve

    def announce(port: int) -> None:
        _err(
            f"secmoe serve: listening on {args.host}:{port} ({protocol}; up to "
            f"{args.max_sessions} sessions at once)"
        )

    def report(r: dict[str, object]) -> None:
        if args.json:
            print(json.dumps(r), flush=True)
            return
        line = f"session {r['session']} from {r['peer']}: {r['status']} in {r['seconds']} s"
        if r["status"] != "ok":
            line += f" ({r.get('error', '')})"
        print(line, flush=True)

    options = ServeOptions(
        max_sessions=args.max_sessions,
        sessions=args.sessions,
        session_timeout=args.session_timeout or session_timeout,
        idle_timeout=args.accept_timeout,
        limits=_limits(args, timeout, args.max_session_bytes or budget),
    )
    return serve(
        args.host,
        args.port,
        protocol,
        fn,
        describe=describe,
        seed=_tcp_seed(args),
        fxp=fxp,
        options=options,
        on_listen=announce,
        on_report=report,
    )


def _party_add(args: argparse.Namespace) -> int:
    if args.weights is not None:
        raise SpecError("--weights goes with the moe-demo protocol, not share_add_reveal")
    fxp = FixedPoint()
    values = np.asarray(args.values or [1.0, 2.0, 3.0], dtype=np.float64)
    check_add_inputs(fxp, values)
    mine = fxp.encode(values)
    timeout = ADD_TIMEOUT if args.timeout is None else args.timeout

    def run(ctx: PartyContext) -> object:
        ctx.say(f"share_add_reveal on {mine.size} values")
        return share_add_reveal(ctx, mine)

    if args.command == "serve":
        # Two ring vectors of n elements each way, and the handshake, in 1 MiB of headroom.
        budget = 64 * mine.size + (1 << 20)
        return _serve(
            args, ADD_PROTOCOL, run, lambda out: {}, fxp, timeout, budget, ADD_SESSION_TIMEOUT
        )
    out, cost = _run_client(args, ADD_PROTOCOL, run, fxp, timeout, 64 * mine.size + (1 << 20))
    result: dict[str, object] = {"party": "client"}
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


def _party_moe(args: argparse.Namespace) -> int:
    _check_loader_flags(args)
    loaded, config, weights = _layer(args)
    timeout = DEMO_TIMEOUT if args.timeout is None else args.timeout
    if args.command == "serve":
        fw = encode_weights(config, weights)
        max_tokens = args.max_tokens
        if loaded is not None and loaded.expert_capacity is not None:
            max_tokens = min(max_tokens, loaded.expert_capacity)  # spec §6.8.4, capacity
        return _serve(
            args,
            DEMO_PROTOCOL,
            lambda ctx: demo_server(ctx, config, fw, max_tokens),
            lambda out: {"tokens": out},
            config.fxp,
            timeout,
            2 * int(demo_report(max_tokens, config)["bytes_c2s"]) + (1 << 20),
            DEMO_SESSION_TIMEOUT,
        )
    output = _check_output_path(args.output)
    x = _client_inputs(args, config, loaded)
    t0 = time.perf_counter()
    # The client's budget: twice the server-to-client bytes of the cost formula (spec §4.4.3).
    budget = 2 * int(demo_report(x.shape[0], config)["bytes_s2c"]) + (1 << 20)
    view, cost = _run_client(
        args, DEMO_PROTOCOL, lambda ctx: demo_client(ctx, config, x), config.fxp, timeout, budget
    )
    wall = time.perf_counter() - t0
    assert isinstance(view, ClientView)
    summary = summarize(config, weights, x, view, cost, wall, "tcp")
    _finish_demo(summary, config, view, loaded, output)
    if args.json:
        print(json.dumps({"party": "client", "protocol": DEMO_PROTOCOL, **summary}, indent=2))
    else:
        print(format_report(summary))
        print(format_cost(cost))
    return 0


def cmd_party(args: argparse.Namespace) -> int:
    if args.command == "serve" and (args.vector or args.all):
        from secmoe.interop_cli import cmd_interop

        return cmd_interop(args)  # our party of a vector case as the peer (spec §5.6)
    if args.command == "serve" and (args.listen is not None or args.connect or args.case):
        raise SpecError("--listen, --connect and --case serve a vector case: add --vector FILE")
    protocol = _protocol_name(args)
    if protocol == ADD_PROTOCOL:
        return _party_add(args)
    if protocol == DEMO_PROTOCOL:
        return _party_moe(args)
    raise SpecError(f"unknown TCP protocol {protocol!r}; known: {DEMO_PROTOCOL}, {ADD_PROTOCOL}")


def _loader_flags(p: argparse.ArgumentParser) -> None:
    """--weights and the loader's options (spec §6.8.3), for demo, serve and client."""
    p.add_argument(
        "--weights",
        help="a Hugging Face checkpoint: its folder (with config.json), model.safetensors.index"
        ".json or a .safetensors file (spec 6.8)",
    )
    p.add_argument(
        "--layer",
        type=cli_args.int_range(0),
        help="with --weights: the MoE layer (block) number (default: the first MoE layer)",
    )
    p.add_argument(
        "--family",
        choices=FAMILIES,
        help="with --weights: override the family of config.json (or of the tensor names)",
    )
    p.add_argument("--stack", choices=("encoder", "decoder"), help="with --weights: Switch's stack")
    p.add_argument(
        "--top-k",
        type=cli_args.count,
        dest="top_k",
        help="with --weights: experts per token (overrides config.json, with a warning)",
    )
    p.add_argument(
        "--gate-norm",
        choices=GATE_NORMS,
        dest="gate_norm",
        help="with --weights: the gate normalisation (overrides config.json, with a warning)",
    )
    p.add_argument(
        "--ignore-shared-gate",
        action="store_true",
        dest="ignore_shared_gate",
        help="with --weights: drop a Qwen2-MoE shared-expert gate (changes the model; warned)",
    )


def _party_parser(s: argparse.ArgumentParser, name: str) -> None:
    """The options of ``secmoe serve`` and ``secmoe client``, each value checked at parse time."""
    s.add_argument(
        "--protocol",
        choices=(DEMO_PROTOCOL, ADD_PROTOCOL),
        help="moe-demo (the default) or share_add_reveal (the default when --values is given)",
    )
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument(
        "--port",
        type=cli_args.listen_port if name == "serve" else cli_args.port,
        default=5577,
        help="TCP port (serve: 0 picks a free one)",
    )
    s.add_argument(
        "--values",
        type=cli_args.real_list,
        help=f"share_add_reveal: this party's input, comma-separated reals, |v| < {ADD_BOUND:g}",
    )
    if name == "client":
        s.add_argument(
            "--tokens",
            type=cli_args.int_range(1, MAX_TOKENS),
            help=f"moe-demo: built-in tokens to send (default {DEMO_TOKENS}; not with --inputs)",
        )
        s.add_argument("--connect-timeout", type=cli_args.seconds, default=10.0)
        s.add_argument(
            "--inputs",
            help="moe-demo: the client's tokens, a float .npy of shape (T, d_model)",
        )
        s.add_argument("--output", help="moe-demo: write the decoded output to this .npy")
    else:
        s.add_argument(
            "--max-tokens",
            type=cli_args.int_range(1, MAX_TOKENS),
            default=MAX_TOKENS,
            help=f"moe-demo: refuse more tokens (default and largest {MAX_TOKENS})",
        )
        s.add_argument(
            "--max-sessions",
            type=cli_args.int_range(1, 256),
            default=4,
            help="sessions served at once, each in its own process (default 4)",
        )
        s.add_argument(
            "--sessions",
            type=cli_args.count,
            help="exit after serving this many sessions (default: serve until SIGINT/SIGTERM)",
        )
        s.add_argument(
            "--session-timeout",
            type=cli_args.seconds,
            help="each session's overall deadline in seconds (default 3600 moe-demo, 120 else)",
        )
        s.add_argument(
            "--accept-timeout",
            type=cli_args.seconds,
            help="exit when no session has run for this many seconds (default: never)",
        )
        s.add_argument(
            "--max-session-bytes",
            type=cli_args.count,
            help="bytes a client may send in one session (default: from the protocol, spec 4.4.3)",
        )
    s.add_argument(
        "--seed",
        help="32-byte hex seed, used in every session (needs --insecure-fixed-seed; default: "
        "fresh OS randomness per session)",
    )
    s.add_argument(
        "--insecure-fixed-seed",
        action="store_true",
        help="allow --seed: the peer can then subtract two sessions' inputs (tests only)",
    )
    s.add_argument(
        "--timeout",
        type=cli_args.seconds,
        help="seconds per message, one deadline per frame (default 300 moe-demo, 60 otherwise)",
    )
    s.add_argument("--json", action="store_true")
    s.add_argument("--quiet", action="store_true")
    _loader_flags(s)  # moe-demo on a checkpoint's layer (the client: its config and references)
    if name == "serve":
        from secmoe.interop_cli import add_case_options

        add_case_options(s, default_party="server")
    s.set_defaults(func=cmd_party)


# --- entry point --------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="secmoe", description="SecMoE reference implementation")
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser(
        "demo", help="the secure MoE layer on the built-in model or a checkpoint's layer"
    )
    d.add_argument(
        "--tokens",
        type=cli_args.int_range(1, MAX_TOKENS),
        help=f"number of built-in input tokens (default {DEMO_TOKENS}; not with --inputs)",
    )
    d.add_argument("--json", action="store_true", help="print one JSON object")
    d.add_argument(
        "--seed", help="32-byte hex master seed of both parties (default: a fixed demo seed)"
    )
    d.add_argument(
        "--plaintext", action="store_true", help="the plaintext fixed-point layer only (no 2PC)"
    )
    d.add_argument(
        "--timeout",
        type=cli_args.seconds,
        default=DEMO_TIMEOUT,
        help="seconds to wait for a message",
    )
    d.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    d.add_argument(
        "--progress",
        action="store_true",
        help="a progress bar on stderr even when it is not a terminal (default: on a terminal)",
    )
    d.add_argument(
        "--model",
        choices=("tiny",),
        help="run a whole secure MoE transformer (tiny: 2 blocks, 3 classes) instead of one layer",
    )
    _loader_flags(d)
    d.add_argument(
        "--inputs",
        help=f"the client's tokens: a float .npy of shape (T, d_model), 1 <= T <= {MAX_TOKENS}",
    )
    d.add_argument(
        "--output", help="write the secure output, decoded to float (T, d_model), to this .npy"
    )
    d.set_defaults(func=cmd_demo)

    c = sub.add_parser(
        "cost", help="bytes and rounds from the spec's formulas, without running the crypto"
    )
    c.add_argument(
        "--preset",
        help="a projection: "
        + ", ".join(PRESETS)
        + ", or 'all' (default: what 'secmoe demo' runs)",
    )
    c.add_argument(
        "--config",
        help="an MoE layer's MoEConfig fields as JSON, inline or a file "
        '(e.g. \'{"d_model": 768, "d_ff": 3072, "n_experts": 64}\')',
    )
    c.add_argument(
        "--tokens", type=cli_args.count, help="tokens (default: the demo's 4; otherwise 1)"
    )
    c.add_argument("--json", action="store_true", help="print one JSON object")
    c.set_defaults(func=cmd_cost)

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

    a = sub.add_parser(
        "accuracy", help="a trained MoE classifier's test split: float, fixed point, secure"
    )
    a.add_argument("--dataset", choices=DATASETS, default="digits")
    a.add_argument("--arch", choices=(*ARCHS, "both"), default="both")
    a.add_argument("--limit", type=cli_args.int_range(1), help="only N test samples (default: all)")
    a.add_argument("--offset", type=cli_args.int_range(0), default=0, help="start at this test sample (0)")
    a.add_argument(
        "--models", type=Path, help="directory of DATASET-ARCH.safetensors (default: the committed)"
    )
    a.add_argument(
        "--batch", type=cli_args.int_range(1), default=DEFAULT_BATCH, help=f"samples per secure batch ({DEFAULT_BATCH})"
    )
    a.add_argument("--plaintext", action="store_true", help="float and fixed point only")
    a.add_argument(
        "--ablate",
        action="store_true",
        help="fixed point with the activation, exp, reciprocal each made exact (no secure run)",
    )
    a.add_argument("--seed", help="32-byte hex seed of the secure run (default: fresh)")
    a.add_argument("--json", action="store_true")
    a.add_argument("--quiet", action="store_true", help="no progress on stderr")
    a.set_defaults(func=cmd_accuracy)

    b = sub.add_parser("bench", help="run a benchmark (NAME, 'all' or 'list')")
    b.add_argument("name")
    b.add_argument("--json", action="store_true", help="one JSON object per benchmark on stdout")
    b.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    b.add_argument("--out", help="also write NAME.json files into this directory")
    b.add_argument("--experts", help="bench moe: expert counts, e.g. 8,16 (default 8,...,128)")
    b.add_argument(
        "--variants",
        help="bench moe: which to run, e.g. secmoe (the others: formula only; default all)",
    )
    b.add_argument("--dims", help="bench moe: D_MODEL,D_FF (default 768,3072)")
    b.add_argument(
        "--plot",
        help="bench moe: a PNG of bytes vs experts; bench nonlinear: bytes per element against "
        "BumbleBee's GeLU (needs the plot extra: matplotlib)",
    )
    b.set_defaults(func=cmd_bench)

    from secmoe.trace.command import add_parser as add_trace_parser

    add_trace_parser(sub)

    from secmoe.interop_cli import add_interop_parser

    add_interop_parser(sub)

    for name, helptext in (
        ("serve", "serve the server party over TCP until stopped (default protocol: moe-demo)"),
        ("client", "run the client party over TCP (default: the secure MoE layer, moe-demo)"),
    ):
        _party_parser(sub.add_parser(name, help=helptext), name)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    keep_freed_memory()  # the command's process only (spec §20.2); results are unaffected
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
