"""The command line of live conformance: ``secmoe interop`` and ``secmoe serve --vector``
(spec/05-test-vectors.md#interop)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from secmoe import cli_args
from secmoe.errors import Party, SpecError
from secmoe.interop import Corruption, Endpoint, Result, load_cases, run_cases
from secmoe.net.channel import DEFAULT_TIMEOUT


def corruption(text: str) -> Corruption:
    """``LABEL:OFFSET[:OCCURRENCE]``: flip the low bit of that payload byte."""
    parts = text.split(":")
    if len(parts) not in (2, 3) or not all(p.strip().isdigit() for p in parts[1:]):
        raise argparse.ArgumentTypeError(f"{text!r} is not LABEL:OFFSET[:OCCURRENCE]")
    return Corruption(parts[0], int(parts[1]), int(parts[2]) if len(parts) == 3 else 0)


corruption.__name__ = "corruption"


def add_case_options(s: argparse.ArgumentParser, *, default_party: Party | None) -> None:
    """The options shared by ``interop`` and ``serve --vector``."""
    s.add_argument("--vector", metavar="FILE", help="a two-party vector file (with --case)")
    s.add_argument("--case", metavar="ID", help="the case id to play")
    s.add_argument("--all", metavar="FILE", help="every two-party case of FILE, in order")
    s.add_argument(
        "--party",
        choices=("client", "server"),
        default=default_party,
        required=default_party is None,
        help="the party we play" + (f" (default {default_party})" if default_party else ""),
    )
    s.add_argument(
        "--listen", type=cli_args.listen_port, metavar="PORT", help="accept the peer on PORT"
    )
    s.add_argument("--connect", metavar="HOST:PORT", help="connect to the peer at HOST:PORT")
    s.add_argument(
        "--corrupt",
        type=corruption,
        metavar="LABEL:OFFSET[:K]",
        help="tests of checkers only: flip bit 0 of byte OFFSET of our K-th (from 0) frame LABEL",
    )


def add_interop_parser(sub: Any) -> None:
    s = sub.add_parser(
        "interop",
        help="check another implementation live: play one party of a vector case over TCP",
    )
    add_case_options(s, default_party=None)
    s.add_argument("--host", default="127.0.0.1", help="with --listen: the address to bind")
    s.add_argument("--timeout", type=cli_args.seconds, help="seconds per frame (default 600)")
    s.add_argument("--json", action="store_true", help="one JSON object per case")
    s.set_defaults(func=cmd_interop)


def _err(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def cmd_interop(args: argparse.Namespace) -> int:
    """Play ``--party`` of the case(s) against the peer; exit 0 iff every case passes."""
    if (args.all is None) == (args.vector is None) or (args.vector is None) != (args.case is None):
        raise SpecError("give --vector FILE --case ID, or --all FILE")
    cases = load_cases(args.all or args.vector, args.case)
    endpoint = Endpoint(listen=args.listen, connect=args.connect, host=args.host)
    name = "serve --vector" if args.command == "serve" else "interop"
    if args.listen is not None:
        _err(f"secmoe {name}: listening on {args.host}:{endpoint.port} ({len(cases)} case(s))")

    def report(r: Result) -> None:
        if args.json:
            print(json.dumps(r.as_dict()), flush=True)
        elif not getattr(args, "quiet", False):
            print(r.line(), flush=True)

    timeout = args.timeout or DEFAULT_TIMEOUT
    results = run_cases(
        cases, args.party, endpoint, timeout=timeout, corrupt=args.corrupt, on_result=report
    )
    return 0 if all(r.passed for r in results) else 1
