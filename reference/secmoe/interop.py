"""Live conformance: play one party of a vector case over TCP and check every frame the peer
sends against the case's transcript (spec/05-test-vectors.md#interop).

A conformance session is a TCP session of spec §4.4.2 whose protocol name is the case id and
whose protocol is the case's, run from the case's seeds and inputs, with the protocol's round
count restarted after the handshake, so that every protocol frame on the wire carries exactly
the round, label and payload of its transcript entry. Both sides run :func:`play_session`:
``secmoe interop`` (the checker) and ``secmoe serve --vector`` (our party as the peer).
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from secmoe.errors import Party, ProtocolError, SecmoeError, SpecError
from secmoe.net.channel import DEFAULT_TIMEOUT, Channel, CostRecord
from secmoe.net.frame import check_crc, parse_header
from secmoe.net.transport import Transport, tcp_accept, tcp_connect, tcp_listen
from secmoe.ot.pool import default_engine
from secmoe.session import DONE_LABEL, HANDSHAKE_TIMEOUT, PartyContext, hello_payload, run_local
from secmoe.vectors.play import Play, play_case
from secmoe.vectors.registry import Json

HELLO = "session/hello"
WINDOW = 16  # bytes of expected and received payload shown from the first difference


@dataclass(frozen=True)
class Frame:
    """One expected frame: sender, label, round, length, and payload (or only its SHA-256)."""

    sender: Party
    label: str
    round: int
    length: int
    payload: bytes | None
    sha256: str

    @staticmethod
    def of(entry: Json) -> Frame:
        payload = bytes.fromhex(entry["payload"]) if "payload" in entry else None
        digest = hashlib.sha256(payload).hexdigest() if payload is not None else entry["sha256"]
        return Frame(entry["from"], entry["label"], entry["round"], entry["len"], payload, digest)


class DivergenceError(SecmoeError):
    """The first frame of the peer that differs from the case (spec §5.7)."""

    def __init__(self, index: int, frame: Frame, what: str, **details: Any) -> None:
        self.index = index  # the frame's position among the peer's frames of the session, from 0
        self.frame = frame
        self.what = what  # label | round | length | payload | frame | missing | extra
        self.details = details
        text = ", ".join(f"{k} {v}" for k, v in details.items())
        super().__init__(
            f"frame {index} of the peer ({frame.label!r}, round {frame.round}): {what}: {text}"
        )

    def as_dict(self) -> Json:
        return {
            "frame": self.index,
            "label": self.frame.label,
            "round": self.frame.round,
            "what": self.what,
            **self.details,
        }


@dataclass
class Case:
    """A case of a vector file, with what a conformance session needs of it."""

    path: str
    protocol: str
    case: Json
    params: Json
    play: Play = field(init=False)

    def __post_init__(self) -> None:
        self.play = play_case(self.protocol, self.case, self.params)

    @property
    def id(self) -> str:
        return str(self.case["id"])

    def frames(self) -> list[Frame]:
        """The whole session: both hellos, the protocol's transcript, ``session/done``."""
        hello = hello_payload(self.id, self.play.fxp)
        digest = hashlib.sha256(hello).hexdigest()
        out = [
            Frame("client", HELLO, 1, len(hello), hello, digest),
            Frame("server", HELLO, 2, len(hello), hello, digest),
        ]
        out += [Frame.of(e) for e in self.case["transcript"]]
        last = max((f.round for f in out[2:] if f.sender == "server"), default=0)
        out.append(Frame("client", DONE_LABEL, last + 1, 0, b"", hashlib.sha256(b"").hexdigest()))
        return out


def load_cases(path: str | Path, case_id: str | None = None) -> list[Case]:
    """The two-party cases of a vector file (those with a transcript), or the one ``case_id``."""
    data = json.loads(Path(path).read_text())
    out = []
    for group in data["testGroups"]:
        for case in group["tests"]:
            if "transcript" not in case or (case_id is not None and case["id"] != case_id):
                continue
            params = {**data["params"], **group["params"]}  # the group's value applies (§5.4)
            out.append(Case(str(path), data["protocol"], case, params))
    if not out:
        what = f"case {case_id!r}" if case_id is not None else "two-party case"
        raise SpecError(f"{path}: no {what} with a transcript")
    return out


def full_payloads(case: Case) -> list[bytes]:
    """Every payload of the case's transcript, by running both parties locally (to locate a
    difference in a payload the vector lists only by its SHA-256)."""
    seeds = case.case["seeds"]
    with default_engine("iknp"):
        res = run_local(
            case.play.client,
            case.play.server,
            client_seed=bytes.fromhex(seeds["client"]),
            server_seed=bytes.fromhex(seeds["server"]),
            fxp=case.play.fxp,
            record="full",
        )
    return [e.payload or b"" for e in res.transcript]


@dataclass(frozen=True)
class Corruption:
    """A deliberately broken party (for testing checkers): it flips ``mask`` into byte
    ``offset`` of the payload of its ``occurrence``-th frame labelled ``label`` (from 0)."""

    label: str
    offset: int
    occurrence: int = 0
    mask: int = 0x01


class CheckingChannel(Channel):
    """A channel that checks every received frame against the next expected frame of the peer
    (raising :class:`DivergenceError` at the first difference) and every sent one against ours."""

    def __init__(
        self,
        transport: Transport,
        party: Party,
        case: Case,
        *,
        timeout: float,
        corrupt: Corruption | None = None,
    ) -> None:
        super().__init__(transport, party, timeout=timeout)
        self.case = case
        frames = case.frames()
        self.expected_peer = [(i, f) for i, f in enumerate(frames) if f.sender != party]
        self.expected_own = [f for f in frames if f.sender == party]
        self.checked = 0  # peer frames received and found equal
        self.sent = 0
        self.corrupt = corrupt
        self._seen: dict[str, int] = {}
        self._full: list[bytes] | None = None

    def answer_hello(self) -> None:
        """The server's hello, in round 2 even if the client's hello diverged (spec §5.7.1)."""
        self._last_recv_round = 1
        with contextlib.suppress(ProtocolError):
            self.send(HELLO, hello_payload(self.case.id, self.case.play.fxp))

    def restart_rounds(self) -> None:
        """The protocol's rounds start afresh after the handshake (spec §5.7.1)."""
        self._last_recv_round = self._last_sent_round = self._max_round = 0

    def send(self, label: str, payload: bytes) -> None:
        if self.sent >= len(self.expected_own):
            raise SpecError(f"our {self.party} sends {label!r} beyond the case's transcript")
        exp = self.expected_own[self.sent]
        if (exp.label, exp.length, exp.sha256) != (
            label,
            len(payload),
            hashlib.sha256(payload).hexdigest(),
        ):
            raise SpecError(
                f"our {self.party}'s frame {self.sent} ({label!r}) differs from the case's "
                f"{exp.label!r}: the case's inputs do not reproduce its transcript"
            )
        self.sent += 1
        k = self._seen.get(label, 0)
        self._seen[label] = k + 1
        c = self.corrupt
        if c is not None and c.label == label and c.occurrence == k:
            if not 0 <= c.offset < len(payload):
                raise SpecError(f"corruption offset {c.offset} outside {len(payload)} bytes")
            flipped = bytearray(payload)
            flipped[c.offset] ^= c.mask
            payload = bytes(flipped)
        super().send(label, payload)

    def _payload(self, index: int, exp: Frame) -> bytes:
        if exp.payload is not None:
            return exp.payload
        if self._full is None:
            self._full = full_payloads(self.case)
        full = self._full[index - 2]  # the transcript follows the two hellos
        if hashlib.sha256(full).hexdigest() != exp.sha256:
            raise SpecError(f"the case's transcript entry {index - 2} is not reproducible")
        return full

    def recv(
        self, label: str, length: int | None = None, *, max_length: int | None = None
    ) -> bytes:
        k = self.checked
        if k >= len(self.expected_peer):
            raise SpecError(f"our {self.party} awaits {label!r} beyond the case's transcript")
        index, exp = self.expected_peer[k]
        if exp.label != label or (length is not None and length != exp.length):
            raise SpecError(f"our {self.party} awaits {label!r} where the case lists {exp.label!r}")
        t = self.transport
        deadline = time.monotonic() + self.timeout
        try:
            first = t.recv_exact(1, deadline, label)
            rest = t.recv_exact(first[0] + 12, deadline, label)
            got, round_, n = parse_header(first + rest, party=self.party)
        except ProtocolError as exc:
            what = "missing" if exc.kind in ("peer_closed", "timeout") else "frame"
            raise DivergenceError(k, exp, what, error=f"{exc.kind}: {exc.detail}") from exc
        for what, want, have in (
            ("label", exp.label, got),
            ("round", exp.round, round_),
            ("length", exp.length, n),
        ):
            if want != have:
                raise DivergenceError(k, exp, what, expected=want, received=have)
        try:
            body = t.recv_exact(n + 4, deadline, label)
            check_crc(first + rest + body, party=self.party, label=got)
        except ProtocolError as exc:
            raise DivergenceError(k, exp, "frame", error=f"{exc.kind}: {exc.detail}") from exc
        payload = body[:n]
        if hashlib.sha256(payload).hexdigest() != exp.sha256:
            want_bytes = self._payload(index, exp)
            at = next(i for i, (a, b) in enumerate(zip(want_bytes, payload, strict=True)) if a != b)
            raise DivergenceError(
                k,
                exp,
                "payload",
                offset=at,
                expected=want_bytes[at : at + WINDOW].hex(),
                received=payload[at : at + WINDOW].hex(),
            )
        self.checked += 1
        self._last_recv_round = round_
        self._account(self.peer, label, round_, payload)
        return payload

    def expect_end(self) -> None:
        """After the session's last frame the peer must close the stream, sending nothing more."""
        exp = Frame(self.peer, "(end of stream)", 0, 0, b"", "")
        try:
            extra = self.transport.recv_exact(1, time.monotonic() + HANDSHAKE_TIMEOUT, "")
        except ProtocolError as exc:
            if exc.kind == "peer_closed":
                return
            raise DivergenceError(
                self.checked, exp, "extra", error=f"{exc.kind}: {exc.detail}"
            ) from exc
        raise DivergenceError(self.checked, exp, "extra", received=extra.hex())


@dataclass
class Result:
    """The outcome of one party's conformance session (spec §5.7)."""

    case: Case
    party: Party
    divergence: DivergenceError | None = None
    cost: CostRecord | None = None
    outputs_ok: bool = False
    frames_checked: int = 0

    def measured(self) -> Json | None:
        """The protocol's cost as counted in this session, in the vectors' ``cost`` form."""
        if self.cost is None:
            return None
        t = self.cost.total()
        return {"bytes": {"c2s": t.bytes_c2s, "s2c": t.bytes_s2c}, "rounds": t.rounds}

    @property
    def passed(self) -> bool:
        return (
            self.divergence is None
            and self.outputs_ok
            and self.measured() == self.case.case["cost"]
        )

    def as_dict(self) -> Json:
        out: Json = {
            "status": "pass" if self.passed else "diverged",
            "file": self.case.path,
            "protocol": self.case.protocol,
            "case": self.case.id,
            "party": self.party,
            "frames_checked": self.frames_checked,
        }
        if self.divergence is not None:
            out["divergence"] = self.divergence.as_dict()
        if self.cost is not None:
            out["cost"] = self.measured()
            out["outputs"] = "match" if self.outputs_ok else "differ"
        return out

    def line(self) -> str:
        head = f"{self.case.id} as {self.party}:"
        if self.divergence is not None:
            return f"{head} DIVERGED at {self.divergence}"
        assert self.cost is not None
        t = self.cost.total()
        out = "outputs match" if self.outputs_ok else "OUTPUTS DIFFER"
        return (
            f"{head} {'PASS' if self.passed else 'FAIL'} ({self.frames_checked} peer frames, "
            f"{t.bytes_c2s} B client->server, {t.bytes_s2c} B server->client, "
            f"{t.rounds} rounds; {out})"
        )


def interop_session(
    case: Case,
    party: Party,
    transport: Transport,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    corrupt: Corruption | None = None,
) -> Result:
    """Play ``party`` of ``case`` on a connected transport (spec §5.7.1), checking the peer.

    Implements spec §5.7.1 `interop_session` (spec/05-test-vectors.md#interop_session).
    """
    ch = CheckingChannel(transport, party, case, timeout=timeout, corrupt=corrupt)
    result = Result(case, party)
    seed = bytes.fromhex(case.case["seeds"][party])
    ctx = PartyContext(party, ch, seed, case.play.fxp)
    ok = False
    try:
        with ch.phase("handshake"):
            if party == "client":
                ch.send(HELLO, hello_payload(case.id, case.play.fxp))
                ch.recv(HELLO)
            else:
                try:
                    ch.recv(HELLO)
                finally:
                    # As in §4.4.2 the server answers before it compares: a client started on
                    # another case then sees the difference in the hello, not a closed stream.
                    ch.answer_hello()
        ch.restart_rounds()
        ch.cost = CostRecord()
        with default_engine("iknp"):
            out = case.play.party(party)(ctx)
        result.cost = copy.deepcopy(ch.cost)  # session/done is not the protocol's
        result.outputs_ok = case.play.encode(party, out) == case.case["outputs"][party]
        with ch.phase("close"):
            if party == "client":
                ch.send(DONE_LABEL, b"")
                ch.expect_end()
            else:
                ch.recv(DONE_LABEL, 0)
        ok = True
    except DivergenceError as exc:
        result.divergence = exc
    except ProtocolError as exc:  # a send to a peer that has gone: its next frame is missing
        if exc.kind != "peer_closed" or ch.checked >= len(ch.expected_peer):
            raise
        _, exp = ch.expected_peer[ch.checked]
        result.divergence = DivergenceError(ch.checked, exp, "missing", error=str(exc))
    finally:
        result.frames_checked = ch.checked
        ch.close(flush=ok)
    return result


class Endpoint:
    """Where sessions come from: a listening socket (``--listen PORT``: one accepted connection
    per session) or a peer's address (``--connect HOST:PORT``: one connection per session)."""

    def __init__(
        self,
        *,
        listen: int | None = None,
        connect: str | None = None,
        host: str = "127.0.0.1",
        accept_timeout: float = 300.0,
        connect_timeout: float = 30.0,
    ) -> None:
        if (listen is None) == (connect is None):
            raise SpecError("give exactly one of --listen PORT and --connect HOST:PORT")
        self.accept_timeout = accept_timeout
        self.connect_timeout = connect_timeout
        self._srv: socket.socket | None = None
        self._addr: tuple[str, int] | None = None
        if connect is not None:
            h, sep, p = connect.rpartition(":")
            if not sep or not h or not p.isdigit() or not 0 < int(p) < 65536:
                raise SpecError(f"--connect wants HOST:PORT, got {connect!r}")
            self._addr = (h.strip("[]"), int(p))
        else:
            assert listen is not None
            self._srv = tcp_listen(host, listen)

    @property
    def port(self) -> int:
        """The listening port (for ``--listen 0``) or the peer's."""
        if self._srv is not None:
            return int(self._srv.getsockname()[1])
        assert self._addr is not None
        return self._addr[1]

    def open(self) -> Transport:
        if self._srv is not None:
            return tcp_accept(self._srv, self.accept_timeout)
        assert self._addr is not None
        return tcp_connect(self._addr[0], self._addr[1], self.connect_timeout)

    def close(self) -> None:
        if self._srv is not None:
            self._srv.close()


def run_cases(
    cases: list[Case],
    party: Party,
    endpoint: Endpoint,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    corrupt: Corruption | None = None,
    on_result: Callable[[Result], None] | None = None,
) -> list[Result]:
    """One conformance session per case, in the file's order, over ``endpoint``."""
    results = []
    try:
        for case in cases:
            r = interop_session(case, party, endpoint.open(), timeout=timeout, corrupt=corrupt)
            results.append(r)
            if on_result is not None:
                on_result(r)
    finally:
        endpoint.close()
    return results
