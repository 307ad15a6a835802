"""``secmoe trace``: its arguments and what it does (the CLI module only wires it in)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from secmoe import cli_args
from secmoe.errors import SpecError

DEMO_TOKENS = 1
TRANSFORMER_TOKENS = 2


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    t = sub.add_parser(
        "trace",
        help="run a vector case, the demo layer or the tiny transformer and draw its messages "
        "and steps as a self-contained HTML page",
    )
    what = t.add_mutually_exclusive_group(required=True)
    what.add_argument(
        "--case",
        help="a two-party vector case id, e.g. protocols.mul/l64/0 (the file's protocol name, "
        "then the case; --list prints them)",
    )
    what.add_argument("--demo", action="store_true", help="the secure MoE layer (secmoe demo)")
    what.add_argument("--transformer", action="store_true", help="the tiny secure MoE transformer")
    what.add_argument("--list", action="store_true", help="list the two-party case ids")
    t.add_argument(
        "--tokens",
        type=cli_args.int_range(1),
        help=f"--demo / --transformer: tokens (default {DEMO_TOKENS} / {TRANSFORMER_TOKENS})",
    )
    t.add_argument("--out", help="the HTML file to write (e.g. mul.html)")
    t.add_argument("--depth", type=cli_args.int_range(0), default=2, help="steps printed to this depth (default 2)")
    t.add_argument("--json", action="store_true", help="print the page's data as JSON instead")
    t.set_defaults(func=run)


def list_cases() -> list[str]:
    """Every two-party case id of the committed vectors (the checkout's ``vectors/``)."""
    from secmoe.trace.runs import repo_root

    root = repo_root()
    if root is None or not (root / "vectors").is_dir():
        raise SpecError("--list reads the checkout's vectors/, which is not there")
    out: list[str] = []
    for path in sorted((root / "vectors").rglob("*.json")):
        obj = json.loads(path.read_text())
        out.extend(c["id"] for g in obj["testGroups"] for c in g["tests"] if "transcript" in c)
    return out


def run(args: argparse.Namespace) -> int:
    from secmoe.trace.page import write_page
    from secmoe.trace.report import summary
    from secmoe.trace.runs import trace_case, trace_demo, trace_transformer

    if args.list:
        print("\n".join(list_cases()))
        return 0
    if args.out is None:
        raise SpecError("--out FILE.html is required")
    if args.tokens is not None and args.case is not None:
        raise SpecError("--tokens goes with --demo or --transformer")
    if args.case is not None:
        trace = trace_case(args.case)
    elif args.demo:
        trace = trace_demo(DEMO_TOKENS if args.tokens is None else args.tokens)
    else:
        trace = trace_transformer(TRANSFORMER_TOKENS if args.tokens is None else args.tokens)
    data = write_page(trace, Path(args.out))
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        print(summary(data, args.depth), flush=True)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0
