"""Vector generator for a whole TCP session (spec §4.2, §4.4.2): the exact bytes both ways.

The valid case runs both parties' TCP session code (``run_tcp_party``: handshake, the
protocol, ``session/done``) on ``share_add_reveal`` over an in-process stream, which carries
the same bytes as a socket, and records each direction's byte stream. The invalid cases feed the
server a client stream with one defect and record the error it must raise.

This file keeps its own recorder rather than a table entry of ``secmoe.vectors.play``: its
valid case is not a ``run_local`` run but the TCP session code over a recording transport
(hello and done frames included, plus the raw ``outputs.wire``), and it has no player, since
``secmoe interop`` (spec §5.7) plays cases inside a session and cannot replay a whole session.
"""

from __future__ import annotations

import hashlib
import struct
import threading
import zlib
from collections.abc import Callable

import numpy as np

from secmoe.encoding import FixedPoint, RingVec
from secmoe.errors import Party, ProtocolError
from secmoe.net.channel import CostRecord, TranscriptEntry
from secmoe.net.frame import decode_frame, encode_frame
from secmoe.net.transport import LocalTransport, local_pair
from secmoe.session import (
    PartyContext,
    RunResult,
    SessionLimits,
    hello_payload,
    run_tcp_party,
)
from secmoe.sharing import share_add_reveal
from secmoe.vectors.build import hex_ring, invalid_case, seeds_for, two_party_case
from secmoe.vectors.registry import Json, Note, register

PROTOCOL = "net.session"
SESSION_PROTOCOL = "share_add_reveal"
FXP = FixedPoint()
CLIENT_VALUES = [1.0, 2.0, 3.0]
SERVER_VALUES = [0.5, -4.25, 1000.0]
LIMITS = SessionLimits(timeout=30.0, handshake_timeout=10.0, budget=64 * 3 + (1 << 20))


class RecordingTransport:
    """A transport that logs, in its party's order, every byte string it sends or receives."""

    def __init__(self, inner: LocalTransport, log: list[tuple[str, bytes]]) -> None:
        self.inner = inner
        self.log = log

    def send_bytes(self, data: bytes) -> None:
        self.log.append(("sent", bytes(data)))
        self.inner.send_bytes(data)

    def recv_exact(self, n: int, deadline: float, label: str) -> bytes:
        data = self.inner.recv_exact(n, deadline, label)
        self.log.append(("received", data))
        return data

    def close(self, *, flush: bool = True) -> None:
        self.inner.close(flush=flush)


def _frame_length(buf: bytes) -> int | None:
    """The length of the frame at the start of ``buf``, if its header is complete."""
    if not buf or len(buf) < 1 + buf[0] + 12:
        return None
    (n,) = struct.unpack_from("<Q", buf, 1 + buf[0] + 4)
    return 1 + buf[0] + 12 + int(n) + 4


def client_order(log: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    """(sender, frame bytes) of every frame in the client's order: its sends as sent, the
    server's frames when their last byte was read."""
    frames: list[tuple[str, bytes]] = []
    pending = b""
    for event, data in log:
        if event == "sent":
            frames.append(("client", data))
            continue
        pending += data
        size = _frame_length(pending)
        if size is not None and len(pending) == size:
            frames.append(("server", pending))
            pending = b""
    return frames


def _entries(frames: list[tuple[str, bytes]]) -> list[TranscriptEntry]:
    out: list[TranscriptEntry] = []
    for sender, raw in frames:
        f = decode_frame(raw)
        digest = hashlib.sha256(f.payload).hexdigest()
        party: Party = "client" if sender == "client" else "server"
        out.append(TranscriptEntry(party, f.label, f.round, len(f.payload), f.payload, digest, ""))
    return out


def _run(
    seeds: dict[str, bytes], x: RingVec, y: RingVec
) -> tuple[RunResult[object, object], list[tuple[str, bytes]]]:
    tc, ts = local_pair()
    log: list[tuple[str, bytes]] = []
    box: dict[str, tuple[RingVec | None, CostRecord]] = {}

    def server() -> None:
        box["server"] = run_tcp_party(
            ts, "server", SESSION_PROTOCOL, _adder(y), seeds["server"], FXP, LIMITS, None
        )

    th = threading.Thread(target=server, name="secmoe-vector-server", daemon=True)
    th.start()
    out, cost = run_tcp_party(
        RecordingTransport(tc, log),
        "client",
        SESSION_PROTOCOL,
        _adder(x),
        seeds["client"],
        FXP,
        LIMITS,
        None,
    )
    th.join()
    s_out, s_cost = box["server"]
    frames = client_order(log)
    res: RunResult[object, object] = RunResult(out, s_out, cost, s_cost, _entries(frames))
    return res, frames


def _adder(values: RingVec) -> Callable[[PartyContext], RingVec | None]:
    def run(ctx: PartyContext) -> RingVec | None:
        return share_add_reveal(ctx, values)

    return run


def server_error(received: bytes) -> Json:
    """The error the server's session code raises on the client stream ``received``."""
    tc, ts = local_pair()
    tc.send_bytes(received)
    # The client shuts down its sending side after its bytes (a TCP half-close): the server
    # reads an end of stream there, and its own sends still go through.
    ts.inbox.close()
    seed = bytes(32)
    y = FXP.encode(np.asarray(SERVER_VALUES))
    try:
        run_tcp_party(ts, "server", SESSION_PROTOCOL, _adder(y), seed, FXP, LIMITS, None)
    except ProtocolError as exc:
        return {"kind": exc.kind, "party": exc.party, "label": exc.label}
    raise AssertionError("the defective stream was accepted")


def _refit(raw: bytes, *, label: str | None = None, round_: int | None = None) -> bytes:
    """A frame with another label or round and a correct CRC."""
    f = decode_frame(raw)
    return encode_frame(label or f.label, round_ or f.round, f.payload)


def _with_crc(body: bytes) -> bytes:
    return body + struct.pack("<I", zlib.crc32(body))


def _defects(c2s: list[bytes]) -> list[tuple[str, str, bytes]]:
    """(name, comment, client stream) of each defective stream, from the valid frames."""
    hello, rest, done = c2s[0], b"".join(c2s[1:]), c2s[-1]
    body = b"".join(c2s[1:-1])
    big_hello = bytes([13]) + b"session/hello" + struct.pack("<IQ", 1, 1025)
    other = encode_frame("session/hello", 1, hello_payload("moe-demo", FXP))
    corrupt = hello[:-1] + bytes([hello[-1] ^ 1])
    long_done = _with_crc(done[:-12] + struct.pack("<Q", 1) + b"\x00")
    return [
        ("unexpected_label", "the hello relabelled", _refit(hello, label="session/helo") + rest),
        ("too_large", "a hello header announcing 1025 bytes (> 1024)", big_hello),
        ("bad_round", "the hello sent in round 2", _refit(hello, round_=2) + rest),
        ("bad_checksum", "one bit of the hello's CRC flipped", corrupt + rest),
        ("handshake", "a hello for another protocol (moe-demo)", other + rest),
        ("truncated", "the stream ends 5 bytes into the hello", hello[:5]),
        ("no_done", "the stream ends before session/done", hello + body),
        ("done_payload", "session/done with a 1-byte payload", hello + body + long_done),
    ]


@register(
    PROTOCOL,
    "net/session.json",
    section="4.4.2",
    anchor="spec/04-messages.md#handshake",
    params={"ring_bits": 64, "frac_bits": 18, "protocol": SESSION_PROTOCOL},
    mode="real",
    header=[
        "A whole TCP session of share_add_reveal (spec 3.4.1): session/hello both ways (spec",
        "4.4.2), the protocol, session/done. inputs: each party's encoded values (ring-vec",
        "hex). outputs.wire: every frame's bytes (spec 4.1) in the client's order, with its",
        "sender, and each direction's whole byte stream (c2s, s2c): exactly what goes over the",
        "socket. Invalid cases: the client stream the server receives (outputs empty) and the",
        "error (spec 4.2.2 recv) the server's session code raises on it.",
    ],
    notes={
        "Normal": Note("NORMAL", "an honest session"),
        "Malformed": Note("INVALID", "a client stream with one defect"),
    },
)
def _session_vectors() -> list[Json]:
    cid = f"{PROTOCOL}/share_add_reveal"
    seeds = seeds_for(PROTOCOL, cid)
    x = FXP.encode(np.asarray(CLIENT_VALUES))
    y = FXP.encode(np.asarray(SERVER_VALUES))
    res, frames = _run(seeds, x, y)
    c2s = [raw for sender, raw in frames if sender == "client"]
    s2c = [raw for sender, raw in frames if sender == "server"]
    assert isinstance(res.client, np.ndarray)
    valid = two_party_case(
        cid,
        "share_add_reveal of 3 values each over a TCP session",
        seeds,
        res,
        inputs={"client": {"x": hex_ring(FXP.ring, x)}, "server": {"y": hex_ring(FXP.ring, y)}},
        outputs={
            "client": {"sum": hex_ring(FXP.ring, res.client)},
            "server": {},
            "wire": {
                "frames": [{"from": s, "frame": raw.hex()} for s, raw in frames],
                "c2s": b"".join(c2s).hex(),
                "s2c": b"".join(s2c).hex(),
            },
        },
        flags=["Normal"],
    )
    invalid = [
        invalid_case(
            f"{cid}/invalid/{name}",
            comment,
            base_id=cid,
            inputs={"party": "server", "received": stream.hex()},
            error=server_error(stream),
            flags=["Malformed"],
        )
        for name, comment, stream in _defects(c2s)
    ]
    return [{"params": {"protocol": SESSION_PROTOCOL}, "tests": [valid, *invalid]}]
