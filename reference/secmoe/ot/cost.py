"""Communication of every OT flavour and correlation as message patterns (spec/10-ot.md §10.7).

Each function returns the pattern (``secmoe.net.pattern``) the code sends; a just-in-time pool
refill is a message marked with its COT count (``Pattern.warm()`` drops them). ``Cost`` and the
``*_cost`` helpers evaluate them (``fresh`` puts ``ot_setup`` first); the tests compare both with
the channel's counts byte for byte.
"""

from __future__ import annotations

from dataclasses import dataclass

from secmoe.errors import Party
from secmoe.net.pattern import (
    Pattern,
    Phase,
    bit_bytes,
    exchange,
    exchange_many,
    peer,
    send,
    seq,
)
from secmoe.ot.base import POINT_BYTES
from secmoe.ot.iknp import KAPPA, padded


def ext_bytes(m: int) -> int:
    """IKNP extension of m OTs: U, 128 columns of padded(m) bits (spec §10.3.2)."""
    return KAPPA * padded(m) // 8


def correction_bytes(n: int, bits: int) -> int:
    """COT corrections y: n elements of l bits, packed (spec §10.5.3)."""
    return bit_bytes(n * bits)


def gilboa_bits(n: int, bits: int) -> int:
    """Correction bits of n Gilboa products over Z_2^l: sum_j (l - j) = l (l + 1) / 2 each."""
    return n * bits * (bits + 1) // 2


# --- OT-level patterns (spec §10.4-10.6) ----------------------------------------------------------


def ot_setup_pattern() -> Pattern:
    """``ot_setup`` (§10.4.1): base OTs for the client-sender direction, then the server-sender
    one; in each the extension receiver sends A (32 bytes), the extension sender 128 points."""
    a, b = POINT_BYTES, KAPPA * POINT_BYTES
    return seq(
        send("server", a, "offline"),
        send("client", b, "offline"),
        send("client", a, "offline"),
        send("server", b, "offline"),
    )


def refill(receiver: Party, m: int) -> Pattern:
    """A just-in-time pool refill of m COTs by the "iknp" engine (§10.4.1): U from R."""
    return send(receiver, ext_bytes(m), "offline", cots=m) if m else Pattern()


def derand(receiver: Party, m: int, phase: Phase) -> Pattern:
    """Refill if needed, then the receiver's derandomisation d (m bits), back to back."""
    return seq(refill(receiver, m), send(receiver, bit_bytes(m), phase))


def cot_pattern(sender: Party, n: int, bits: int, phase: Phase) -> Pattern:
    """n COTs over Z_2^l (§10.5.3): d from the receiver, the packed corrections back."""
    return seq(derand(peer(sender), n, phase), send(sender, correction_bytes(n, bits), phase))


def rot_pattern(sender: Party, n: int, phase: Phase) -> Pattern:
    """n random-message OTs with chosen choices (§10.5.1): d only."""
    return derand(peer(sender), n, phase)


def ot_pattern(sender: Party, n: int, length: int, phase: Phase) -> Pattern:
    """n chosen-message OTs of L bytes (§10.5.5): d, then both masked messages."""
    return seq(derand(peer(sender), n, phase), send(sender, 2 * n * length, phase))


def one_of_n_pattern(sender: Party, n: int, n_msgs: int, width: int, phase: Phase) -> Pattern:
    """n 1-of-N OTs of b-bit messages (§10.5.7): d of n ceil(log2 N) bits, then n N b bits."""
    k = (n_msgs - 1).bit_length()
    return seq(
        derand(peer(sender), n * k, phase), send(sender, bit_bytes(n * n_msgs * width), phase)
    )


def both_cots(n: int, bits: int, phase: Phase) -> Pattern:
    """n COTs in each direction at once (``mux``): each party refills and sends d as receiver,
    takes its COTs as sender, then both send and receive the corrections."""
    u, d, y = ext_bytes(n), bit_bytes(n), correction_bytes(n, bits)
    return seq(exchange_many([(u, u, "offline", n), (d, d, phase, 0)]), exchange(y, y, phase))


def beaver_triples_pattern(n: int, bits: int) -> Pattern:
    """n Beaver triples over Z_2^l (§10.6.1): n l COTs each way, corrections of widths l - j."""
    u, y = ext_bytes(n * bits), bit_bytes(gilboa_bits(n, bits))
    return seq(exchange_many([(u, u, "offline", n * bits)]), exchange(y, y, "offline"))


def and_triples_pattern(n: int) -> Pattern:
    """n AND triples (§10.6.2): n random COTs each way, no message on a warm pool."""
    u = ext_bytes(n)
    return exchange_many([(u, u, "offline", n)])


@dataclass(frozen=True)
class Cost:
    """Payload bytes client-to-server and server-to-client, and rounds."""

    c2s: int
    s2c: int
    rounds: int

    def __add__(self, other: Cost) -> Cost:
        return Cost(self.c2s + other.c2s, self.s2c + other.s2c, self.rounds + other.rounds)


def setup_cost(sender: Party) -> Cost:
    """Base OTs of one direction: the extension receiver sends A (32 bytes), the extension
    sender the 128 points B_i; 2 rounds."""
    from_sender, from_receiver = KAPPA * POINT_BYTES, POINT_BYTES
    if sender == "client":
        return Cost(from_sender, from_receiver, 2)
    return Cost(from_receiver, from_sender, 2)


def _eval(pattern: Pattern, fresh: bool, warm: bool) -> Cost:
    p = pattern.warm() if warm else pattern
    if fresh:
        p = seq(ot_setup_pattern(), p)
    return Cost(p.c2s, p.s2c, p.rounds())


def rot_cost(sender: Party, n: int, fresh: bool, warm: bool = False) -> Cost:
    return _eval(rot_pattern(sender, n, "online"), fresh, warm)


def cot_cost(sender: Party, n: int, bits: int, fresh: bool, warm: bool = False) -> Cost:
    return _eval(cot_pattern(sender, n, bits, "online"), fresh, warm)


def ot_cost(sender: Party, n: int, length: int, fresh: bool, warm: bool = False) -> Cost:
    return _eval(ot_pattern(sender, n, length, "online"), fresh, warm)


def one_of_n_cost(
    sender: Party, n: int, n_msgs: int, width: int, fresh: bool, warm: bool = False
) -> Cost:
    return _eval(one_of_n_pattern(sender, n, n_msgs, width, "online"), fresh, warm)


def beaver_cost(n: int, bits: int, fresh: bool, warm: bool = False) -> Cost:
    """n arithmetic triples over Z_2^l: n l COTs per direction, corrections of widths l - j."""
    return _eval(beaver_triples_pattern(n, bits), fresh, warm)


def and_cost(n: int, fresh: bool, warm: bool = False) -> Cost:
    """n Boolean triples: n random COTs per direction, no message on a warm pool."""
    return _eval(and_triples_pattern(n), fresh, warm)
