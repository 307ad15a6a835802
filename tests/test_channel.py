"""Frames and the channel: round trip, every corruption rejected, typed errors (spec/04-messages.md)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from secmoe.encoding import Ring
from secmoe.errors import ProtocolError, SpecError
from secmoe.net.channel import Channel
from secmoe.net.frame import FRAME_OVERHEAD, decode_frame, encode_frame
from secmoe.net.transport import local_pair

labels = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_./-", min_size=1, max_size=40)


@given(
    label=labels, rnd=st.integers(min_value=1, max_value=2**32 - 1), payload=st.binary(max_size=200)
)
def test_frame_round_trip(label: str, rnd: int, payload: bytes) -> None:
    data = encode_frame(label, rnd, payload)
    assert len(data) == len(payload) + FRAME_OVERHEAD + len(label)
    f = decode_frame(data)
    assert (f.label, f.round, f.payload) == (label, rnd, payload)


@given(label=labels, payload=st.binary(max_size=64))
def test_every_truncation_is_rejected(label: str, payload: bytes) -> None:
    data = encode_frame(label, 7, payload)
    for cut in range(len(data)):
        with pytest.raises(ProtocolError) as e:
            decode_frame(data[:cut])
        assert e.value.kind == "truncated_frame"
    with pytest.raises(ProtocolError) as e:
        decode_frame(data + b"\x00")
    assert e.value.kind == "trailing_bytes"


@given(label=labels, payload=st.binary(max_size=48), flip=st.integers(min_value=1, max_value=255))
def test_every_single_byte_corruption_is_rejected(label: str, payload: bytes, flip: int) -> None:
    data = encode_frame(label, 3, payload)
    for i in range(len(data)):
        bad = bytearray(data)
        bad[i] ^= flip
        with pytest.raises(ProtocolError):
            decode_frame(bytes(bad))


def test_bad_labels_and_rounds_are_caller_errors() -> None:
    for label in ("", "A", "a b", "x" * 256, "é"):
        with pytest.raises(SpecError):
            encode_frame(label, 1, b"")
    with pytest.raises(SpecError):
        encode_frame("a", 0, b"")


def _pair(timeout: float = 2.0) -> tuple[Channel, Channel]:
    c, s = local_pair()
    return Channel(c, "client", timeout=timeout), Channel(s, "server", timeout=timeout)


def test_channel_checks_label_length_and_values() -> None:
    c, s = _pair()
    c.send("x/a", b"1234")
    with pytest.raises(ProtocolError) as e:
        s.recv("x/b")
    assert (e.value.kind, e.value.party, e.value.label) == ("unexpected_label", "server", "x/b")
    assert e.value.at_fault == "client"
    # Reading stops at the first violation (the body was never read): a fresh pair per check.
    c, s = _pair()
    c.send("x/a", b"1234")
    with pytest.raises(ProtocolError) as e:
        s.recv("x/a", 5)
    assert e.value.kind == "wrong_length"
    ring = Ring(12)
    c, s = _pair()
    c.send("x/r", bytes([0xFF, 0xFF]))
    with pytest.raises(ProtocolError) as e:
        s.recv_ring("x/r", ring, 1)
    assert e.value.kind == "out_of_range"


def test_channel_timeout_and_peer_closed_are_prompt() -> None:
    c, s = _pair(timeout=0.3)
    t0 = time.monotonic()
    with pytest.raises(ProtocolError) as e:
        s.recv("x/a")
    assert e.value.kind == "timeout"
    assert time.monotonic() - t0 < 2
    threading.Timer(0.1, c.close).start()
    t0 = time.monotonic()
    with pytest.raises(ProtocolError) as e:
        s.recv("x/a")
    assert e.value.kind == "peer_closed"
    assert time.monotonic() - t0 < 1


def test_round_numbers_and_causality() -> None:
    c, s = _pair()
    c.send("r/1", b"")  # round 1
    c.send("r/1b", b"")  # still round 1: nothing received yet
    assert s.recv("r/1") == b"" and s.recv("r/1b") == b""
    s.send("r/2", b"ab")  # round 2
    c.recv("r/2")
    c.send("r/3", b"abc")
    s.recv("r/3")
    assert c.cost.rounds == s.cost.rounds == 3
    assert c.cost.total().bytes_c2s == 3 and c.cost.total().bytes_s2c == 2
    # A peer cannot claim a round it could not have reached: forge a round-9 frame.
    c.transport.send_bytes(encode_frame("r/9", 9, b""))
    with pytest.raises(ProtocolError) as e:
        s.recv("r/9")
    assert e.value.kind == "bad_round"


def test_phases_split_costs() -> None:
    c, s = _pair()
    with c.phase("offline"), s.phase("offline"):
        c.send("p/a", bytes(10))
        s.recv("p/a")
        s.send("p/b", bytes(20))
        c.recv("p/b")
    with c.phase("online"), s.phase("online"):
        c.send_ring("p/c", Ring(64), np.arange(4, dtype=np.uint64))
        s.recv_ring("p/c", Ring(64), 4)
    for ch in (c, s):
        off, on = ch.cost.phases["offline"], ch.cost.phases["online"]
        assert (off.bytes_c2s, off.bytes_s2c, off.rounds) == (10, 20, 2)
        assert (on.bytes_c2s, on.bytes_s2c, on.rounds) == (32, 0, 1)
        assert ch.cost.rounds == 3
        assert ch.cost.total().wire_bytes == 62 + 3 * FRAME_OVERHEAD + 3 * 3


def test_simultaneous_large_sends_do_not_deadlock() -> None:
    c, s = _pair(timeout=20)
    big = bytes(8 << 20)
    c.send("x/big", big)
    s.send("x/big", big)
    assert len(c.recv("x/big", len(big))) == len(big) and len(s.recv("x/big", len(big))) == len(big)
