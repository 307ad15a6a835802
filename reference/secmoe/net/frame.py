"""Message frames (spec/04-messages.md#frame).

A frame is::

    label_len: u8 | label: label_len ASCII bytes | round: u32 LE | payload_len: u64 LE |
    payload: payload_len bytes | crc: u32 LE (CRC-32/IEEE of every preceding byte of the frame)

so a frame costs ``FRAME_OVERHEAD + len(label)`` bytes beyond its payload.
"""

from __future__ import annotations

import re
import struct
import zlib
from dataclasses import dataclass

from secmoe.errors import Party, ProtocolError, SpecError

FRAME_OVERHEAD = 1 + 4 + 8 + 4  # label_len, round, payload_len, crc
MAX_LABEL = 255
LABEL_RE = re.compile(rb"[a-z0-9_./-]{1,255}")
DEFAULT_MAX_PAYLOAD = 1 << 34  # 16 GiB: a guard against a corrupted length, not a protocol limit


@dataclass(frozen=True)
class Frame:
    """A decoded frame: its label, its round number and its payload."""

    label: str
    round: int
    payload: bytes


def check_label(label: str) -> bytes:
    """The label's bytes if it is 1..255 characters of ``[a-z0-9_./-]``, else SpecError."""
    raw = label.encode("ascii", errors="replace")
    if not LABEL_RE.fullmatch(raw):
        raise SpecError(f"bad message label {label!r}: 1..255 characters of [a-z0-9_./-]")
    return raw


def encode_frame(label: str, round_: int, payload: bytes) -> bytes:
    """Serialize one frame.

    Implements spec §4.1.1 `encode_frame` (spec/04-messages.md#encode_frame).
    """
    raw = check_label(label)
    if not 1 <= round_ < 1 << 32:
        raise SpecError(f"round must be in [1, 2^32), got {round_}")
    head = struct.pack("<B", len(raw)) + raw + struct.pack("<IQ", round_, len(payload))
    crc = zlib.crc32(payload, zlib.crc32(head))
    return head + payload + struct.pack("<I", crc)


def parse_header(
    head_prefix: bytes, *, party: Party | None = None, max_payload: int = DEFAULT_MAX_PAYLOAD
) -> tuple[str, int, int]:
    """Parse ``label_len | label | round | payload_len`` and return (label, round, payload_len).

    The caller supplies exactly ``1 + label_len + 12`` bytes.
    """
    n = head_prefix[0]
    raw = head_prefix[1 : 1 + n]
    if n == 0 or not LABEL_RE.fullmatch(raw):
        raise ProtocolError("bad_label", party, "", f"label bytes {raw!r} are not a valid label")
    label = raw.decode("ascii")
    round_, length = struct.unpack("<IQ", head_prefix[1 + n : 13 + n])
    if round_ == 0:
        raise ProtocolError("bad_round", party, label, "round 0 is not a valid round")
    if length > max_payload:
        raise ProtocolError("too_large", party, label, f"payload of {length} bytes > {max_payload}")
    return label, round_, length


def check_crc(frame_bytes: bytes, *, party: Party | None, label: str) -> None:
    """Check the trailing CRC-32 of a complete frame."""
    body, tail = frame_bytes[:-4], frame_bytes[-4:]
    if zlib.crc32(body) != struct.unpack("<I", tail)[0]:
        raise ProtocolError("bad_checksum", party, label, "frame CRC-32 mismatch")


def decode_frame(
    data: bytes, *, party: Party | None = None, max_payload: int = DEFAULT_MAX_PAYLOAD
) -> Frame:
    """Decode a buffer that must hold exactly one frame.

    Implements spec §4.1.2 `decode_frame` (spec/04-messages.md#decode_frame).

    Raises:
        ProtocolError: ``truncated_frame``, ``trailing_bytes``, ``bad_label``, ``bad_round``,
            ``too_large`` or ``bad_checksum``.
    """
    if len(data) < 1:
        raise ProtocolError("truncated_frame", party, "", "empty buffer")
    head_len = 1 + data[0] + 12
    if len(data) < head_len:
        raise ProtocolError("truncated_frame", party, "", "buffer ends inside the frame header")
    label, round_, length = parse_header(data[:head_len], party=party, max_payload=max_payload)
    total = head_len + length + 4
    if len(data) < total:
        raise ProtocolError(
            "truncated_frame", party, label, f"frame needs {total} bytes, got {len(data)}"
        )
    if len(data) > total:
        raise ProtocolError(
            "trailing_bytes", party, label, f"{len(data) - total} bytes after the frame"
        )
    check_crc(data, party=party, label=label)
    return Frame(label, round_, data[head_len : head_len + length])
