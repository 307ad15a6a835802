"""The framed, counted, recorded two-party channel (spec/04-messages.md).

Rounds follow spec §4.2 `rounds`: a message's round is one more than the highest round its
sender had *received* when sending it; a protocol's round count is the highest round of any
of its messages (its critical path in one-way trips).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from secmoe.encoding import BitVec, Ring, RingVec, bit_vec_decode, bit_vec_encode
from secmoe.errors import Party, ProtocolError, SpecError
from secmoe.net.frame import (
    DEFAULT_MAX_PAYLOAD,
    FRAME_OVERHEAD,
    check_crc,
    check_label,
    encode_frame,
    parse_header,
)
from secmoe.net.transport import Transport

RecordMode = Literal["none", "hash", "full"]
DEFAULT_TIMEOUT = 600.0  # a packed expert product keeps the client waiting minutes (spec §4.4)
# The largest payload of a message whose length the protocol does not fix in advance
# (spec §4.2.2): the hello's two length-prefixed strings and two bytes fit in far less.
LABEL_MAX: dict[str, int] = {"session/hello": 1024}
MAX_UNSIZED = 1 << 16  # any other label received without an expected length


@dataclass
class PhaseCost:
    """Communication of one phase, as both parties count it (spec §4.3 `cost`)."""

    bytes_c2s: int = 0  # payload bytes client -> server
    bytes_s2c: int = 0
    wire_c2s: int = 0  # payload plus framing bytes
    wire_s2c: int = 0
    messages_c2s: int = 0
    messages_s2c: int = 0
    rounds: int = 0
    seconds: float = 0.0  # wall time this party spent in the phase (not part of vectors)

    @property
    def bytes(self) -> int:
        return self.bytes_c2s + self.bytes_s2c

    @property
    def wire_bytes(self) -> int:
        return self.wire_c2s + self.wire_s2c

    def as_dict(self) -> dict[str, int | float]:
        return {
            "bytes_c2s": self.bytes_c2s,
            "bytes_s2c": self.bytes_s2c,
            "bytes": self.bytes,
            "wire_bytes": self.wire_bytes,
            "messages": self.messages_c2s + self.messages_s2c,
            "rounds": self.rounds,
            "seconds": round(self.seconds, 6),
        }


@dataclass
class CostRecord:
    """Per-phase costs in the order the phases were first entered, and the total."""

    phases: dict[str, PhaseCost] = field(default_factory=dict)
    rounds: int = 0

    def phase(self, name: str) -> PhaseCost:
        return self.phases.setdefault(name, PhaseCost())

    def total(self) -> PhaseCost:
        t = PhaseCost(rounds=self.rounds)
        for p in self.phases.values():
            t.bytes_c2s += p.bytes_c2s
            t.bytes_s2c += p.bytes_s2c
            t.wire_c2s += p.wire_c2s
            t.wire_s2c += p.wire_s2c
            t.messages_c2s += p.messages_c2s
            t.messages_s2c += p.messages_s2c
            t.seconds += p.seconds
        return t

    def as_dict(self) -> dict[str, object]:
        return {
            "total": self.total().as_dict(),
            "phases": {k: v.as_dict() for k, v in self.phases.items()},
        }

    def report(self) -> dict[str, object]:
        """The totals flat (bytes each way, rounds, messages) and every phase that carried a
        message: the cost keys of the demos' JSON."""
        t = self.total()
        return {
            "bytes_c2s": t.bytes_c2s,
            "bytes_s2c": t.bytes_s2c,
            "rounds": self.rounds,
            "messages": t.messages_c2s + t.messages_s2c,
            "phases": {
                k: v.as_dict() for k, v in self.phases.items() if v.messages_c2s + v.messages_s2c
            },
        }


@dataclass(frozen=True)
class TranscriptEntry:
    """One message as recorded: sender, label, round, length, and payload or its SHA-256."""

    sender: Party
    label: str
    round: int
    length: int
    payload: bytes | None  # None when the channel records hashes only
    sha256: str
    phase: str


def _other(party: Party) -> Party:
    return "server" if party == "client" else "client"


class Channel:
    """One party's end of a framed two-party channel.

    Implements spec §4.2.1 `Channel` (spec/04-messages.md#channel): framing, label and
    length checks, byte and round counting per phase, and the transcript.
    """

    def __init__(
        self,
        transport: Transport,
        party: Party,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        record: RecordMode = "none",
        max_payload: int = DEFAULT_MAX_PAYLOAD,
        max_unsized: int = MAX_UNSIZED,
        budget: int | None = None,
    ) -> None:
        if not 0 < timeout < float("inf"):
            raise SpecError(f"timeout must be a positive finite number of seconds, got {timeout}")
        self.transport = transport
        self.party: Party = party
        self.peer: Party = _other(party)
        self.timeout = timeout
        self.record: RecordMode = record
        self.max_payload = max_payload
        self.max_unsized = max_unsized
        self.budget = budget  # wire bytes this party accepts from the peer in the session
        self.received = 0  # wire bytes of the frames received so far
        self.cost = CostRecord()
        self.transcript: list[TranscriptEntry] = []
        self._phase = "main"
        self._seg_rounds: set[int] = set()  # the distinct rounds of the current phase segment
        self._phase_started = time.perf_counter()
        self._last_recv_round = 0
        self._last_sent_round = 0
        self._max_round = 0

    # --- phases --------------------------------------------------------------------------------

    @property
    def current_phase(self) -> str:
        return self._phase

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Attribute the messages sent and received inside the block to phase ``name``."""
        outer = self._phase
        self._switch(name)
        try:
            yield
        finally:
            self._switch(outer)

    def _switch(self, name: str) -> None:
        """Close the current phase segment (adding its rounds and time) and open one of ``name``."""
        now = time.perf_counter()
        p = self.cost.phase(self._phase)
        p.seconds += now - self._phase_started
        p.rounds += len(self._seg_rounds)
        self._phase_started = now
        self._phase = name
        self._seg_rounds = set()
        self.cost.phase(name)

    def close(self, *, flush: bool = True) -> None:
        """Close the transport; ``flush`` first delivers what is queued (not after an error)."""
        self._switch(self._phase)
        self.transport.close(flush=flush)

    # --- accounting ----------------------------------------------------------------------------

    def _account(self, sender: Party, label: str, round_: int, payload: bytes) -> None:
        p = self.cost.phase(self._phase)
        wire = len(payload) + FRAME_OVERHEAD + len(label)
        if sender == "client":
            p.bytes_c2s += len(payload)
            p.wire_c2s += wire
            p.messages_c2s += 1
        else:
            p.bytes_s2c += len(payload)
            p.wire_s2c += wire
            p.messages_s2c += 1
        self._max_round = max(self._max_round, round_)
        self._seg_rounds.add(round_)
        self.cost.rounds = self._max_round
        if self.record != "none":
            digest = hashlib.sha256(payload).hexdigest()
            kept = payload if self.record == "full" else None
            self.transcript.append(
                TranscriptEntry(sender, label, round_, len(payload), kept, digest, self._phase)
            )

    # --- raw bytes -----------------------------------------------------------------------------

    def send(self, label: str, payload: bytes) -> None:
        """Send one framed message (spec §4.1)."""
        check_label(label)
        round_ = self._last_recv_round + 1
        self.transport.send_bytes(encode_frame(label, round_, bytes(payload)))
        self._last_sent_round = round_
        self._account(self.party, label, round_, payload)

    def recv(
        self, label: str, length: int | None = None, *, max_length: int | None = None
    ) -> bytes:
        """Receive the next message, which must carry ``label`` and ``length`` bytes if given,
        else at most ``max_length`` (default: ``LABEL_MAX`` of the label, else ``max_unsized``).

        Implements spec §4.2.2 `recv` (spec/04-messages.md#recv): every check on
        the header (label, round, length, the session's byte budget) runs before a byte of the
        body is read, and the whole frame must arrive within one timeout.

        Raises:
            ProtocolError: on a malformed frame, another label, another length, a payload above
                the maximum or the budget, a round that breaks causality, a closed peer or a
                timeout; always naming this party as the detecting one (the peer is at fault).
        """
        t = self.transport
        deadline = time.monotonic() + self.timeout
        first = t.recv_exact(1, deadline, label)
        rest = t.recv_exact(first[0] + 12, deadline, label)
        got, round_, n = parse_header(first + rest, party=self.party, max_payload=self.max_payload)
        if got != label:
            raise ProtocolError("unexpected_label", self.party, label, f"received {got!r} instead")
        if round_ < self._last_recv_round or round_ > self._last_sent_round + 1:
            raise ProtocolError(
                "bad_round",
                self.party,
                label,
                f"round {round_} after receiving round {self._last_recv_round} and sending "
                f"round {self._last_sent_round}",
            )
        if length is not None:
            if n != length:
                raise ProtocolError(
                    "wrong_length", self.party, label, f"expected {length} bytes, got {n}"
                )
        else:
            limit = max_length if max_length is not None else LABEL_MAX.get(label, self.max_unsized)
            if n > limit:
                raise ProtocolError(
                    "too_large", self.party, label, f"payload of {n} bytes > {limit} for this label"
                )
        wire = len(first) + len(rest) + n + 4
        if self.budget is not None and self.received + wire > self.budget:
            raise ProtocolError(
                "too_large",
                self.party,
                label,
                f"a frame of {wire} bytes would exceed the session's byte budget "
                f"({self.received} of {self.budget} bytes received)",
            )
        body = t.recv_exact(n + 4, deadline, label)
        check_crc(first + rest + body, party=self.party, label=got)
        self.received += wire
        payload = body[:n]
        self._last_recv_round = round_
        self._account(self.peer, label, round_, payload)
        return payload

    # --- typed helpers -------------------------------------------------------------------------

    def send_ring(self, label: str, ring: Ring, values: RingVec) -> None:
        """Send a ring vector in the encoding of spec §1.4 `ring_vec_encode`."""
        self.send(label, ring.encode_vec(values))

    def recv_ring(self, label: str, ring: Ring, n: int) -> RingVec:
        """Receive exactly n ring elements."""
        data = self.recv(label, n * ring.byte_width)
        return ring.decode_vec(data, n, label=label, party=self.party)

    def send_bits(self, label: str, bits: BitVec) -> None:
        self.send(label, bit_vec_encode(bits))

    def recv_bits(self, label: str, n: int) -> BitVec:
        data = self.recv(label, (n + 7) // 8)
        return bit_vec_decode(data, n, label=label, party=self.party)

    def send_u64(self, label: str, values: np.ndarray | list[int]) -> None:
        """Send unsigned 64-bit integers (e.g. dimensions), little-endian."""
        self.send(label, np.asarray(values, dtype="<u8").tobytes())

    def recv_u64(self, label: str, n: int) -> list[int]:
        data = self.recv(label, 8 * n)
        return [int(v) for v in np.frombuffer(data, dtype="<u8")]
