"""Communication of every OT flavour as a formula (spec/10-ot.md §10.6); tests compare it with
the channel's counts byte for byte."""

from __future__ import annotations

from dataclasses import dataclass

from secmoe.errors import Party
from secmoe.ot.base import POINT_BYTES
from secmoe.ot.iknp import KAPPA, padded


@dataclass(frozen=True)
class Cost:
    """Payload bytes client-to-server and server-to-client, and rounds."""

    c2s: int
    s2c: int
    rounds: int

    def __add__(self, other: Cost) -> Cost:
        return Cost(self.c2s + other.c2s, self.s2c + other.s2c, self.rounds + other.rounds)


def _dir(sender: Party, from_sender: int, from_receiver: int) -> tuple[int, int]:
    """(c2s, s2c) for bytes sent by the extension sender and by the extension receiver."""
    return (from_sender, from_receiver) if sender == "client" else (from_receiver, from_sender)


def setup_cost(sender: Party) -> Cost:
    """Base OTs of one direction: the extension receiver sends A (32 bytes), the extension
    sender the 128 points B_i; 2 rounds."""
    c2s, s2c = _dir(sender, KAPPA * POINT_BYTES, POINT_BYTES)
    return Cost(c2s, s2c, 2)


def extension_bytes(m: int) -> int:
    """U: 128 columns of padded(m) bits, from the extension receiver."""
    return KAPPA * padded(m) // 8


def rot_cost(sender: Party, n: int, fresh: bool) -> Cost:
    c2s, s2c = _dir(sender, 0, extension_bytes(n))
    return (setup_cost(sender) if fresh else Cost(0, 0, 0)) + Cost(c2s, s2c, 1)


def cot_cost(sender: Party, n: int, bits: int, fresh: bool) -> Cost:
    y = (n + 7) // 8 if bits == 1 else n * ((bits + 7) // 8)
    c2s, s2c = _dir(sender, y, extension_bytes(n))
    return (setup_cost(sender) if fresh else Cost(0, 0, 0)) + Cost(c2s, s2c, 2)


def ot_cost(sender: Party, n: int, length: int, fresh: bool) -> Cost:
    c2s, s2c = _dir(sender, 2 * n * length, extension_bytes(n))
    return (setup_cost(sender) if fresh else Cost(0, 0, 0)) + Cost(c2s, s2c, 2)


def one_of_n_cost(sender: Party, n: int, n_msgs: int, length: int, fresh: bool) -> Cost:
    k = (n_msgs - 1).bit_length()
    c2s, s2c = _dir(sender, n * n_msgs * length, extension_bytes(n * k))
    return (setup_cost(sender) if fresh else Cost(0, 0, 0)) + Cost(c2s, s2c, 2)


def _triple_cost(cots: int, bits: int, fresh: bool) -> Cost:
    """Both directions of ``cots`` COTs at once: each party sends one U and one correction.

    Fresh sessions add both setups, run one after the other: 3 more rounds than the 2 of the
    generation itself, as the second setup's first message overlaps the first's second.
    """
    y = (cots + 7) // 8 if bits == 1 else cots * ((bits + 7) // 8)
    each = extension_bytes(cots) + y
    body = Cost(each, each, 2)
    if not fresh:
        return body
    setups = setup_cost("client") + setup_cost("server")
    return Cost(setups.c2s + each, setups.s2c + each, 5)


def beaver_cost(n: int, bits: int, fresh: bool) -> Cost:
    """n arithmetic triples over Z_2^l: n l COTs per direction with l-bit corrections."""
    return _triple_cost(n * bits, bits, fresh)


def and_cost(n: int, fresh: bool) -> Cost:
    """n Boolean triples: n COTs over Z_2 per direction, corrections as a bit vector."""
    return _triple_cost(n, 1, fresh)
