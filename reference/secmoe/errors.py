"""The exception taxonomy (spec/00-overview.md#errors).

- :class:`SpecError` (a ``ValueError``): the caller broke a precondition of a function
  (wrong shape, value out of range, unknown parameter).
- :class:`ProtocolError`: something the *peer* sent (or failed to send) is wrong. It names a
  kind from a closed set, the party that detected it, and the message label involved.
"""

from __future__ import annotations

from typing import Literal, get_args

Party = Literal["client", "server"]

ErrorKind = Literal[
    "truncated_frame",  # the stream or buffer ended inside a frame
    "trailing_bytes",  # a buffer held bytes after a complete frame
    "bad_checksum",  # the frame's CRC-32 does not match
    "bad_label",  # a label is empty, too long or uses characters outside the label alphabet
    "unexpected_label",  # a well-formed frame arrived with another label than the protocol expects
    "wrong_length",  # a payload's length differs from the one the protocol fixes
    "too_large",  # a payload length above the receiver's limit
    "bad_round",  # a round number that violates causality
    "out_of_range",  # a decoded value outside its domain (ring element >= 2^l, padding bit set)
    "bad_encoding",  # bytes that do not decode (bad point, bad parameter id, ...)
    "peer_closed",  # the peer closed the connection
    "timeout",  # nothing arrived within the channel's timeout
    "reused_session",  # a one-time object (session, correlation) used twice
    "handshake",  # the peers disagree on protocol or parameters
]
ERROR_KINDS: tuple[str, ...] = get_args(ErrorKind)


class SecmoeError(Exception):
    """Base class of every error secmoe raises on purpose."""


class SpecError(SecmoeError, ValueError):
    """A caller's precondition does not hold."""


class ProtocolError(SecmoeError):
    """The peer's messages are malformed, unexpected, missing or late.

    Attributes:
        kind: one of :data:`ERROR_KINDS`.
        party: the party that detected the error.
        label: the message label involved ("" when no label applies).
    """

    def __init__(self, kind: ErrorKind, party: Party | None, label: str, detail: str = "") -> None:
        if kind not in ERROR_KINDS:
            raise SpecError(f"unknown ProtocolError kind {kind!r}")
        self.kind: ErrorKind = kind
        self.party: Party | None = party
        self.label = label
        self.detail = detail
        who = party if party is not None else "?"
        where = f" at {label!r}" if label else ""
        blame = f"; the {self.at_fault} is at fault" if self.at_fault is not None else ""
        text = f"{kind} (detected by {who}{where}{blame})"
        super().__init__(f"{text}: {detail}" if detail else text)

    @property
    def at_fault(self) -> Party | None:
        """The peer whose messages (or silence) caused the error: the other party."""
        if self.party is None:
            return None
        return "server" if self.party == "client" else "client"
