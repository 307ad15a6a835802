"""Communication of the protocols on shares as message patterns (spec/30-protocols.md §30.0).

A protocol's cost is its *pattern*: the messages it sends (sender, payload bytes, phase) and,
for each party, the order in which that party sends and receives them. Bytes are closed-form
sums; the round count follows from the pattern by the causal rule of spec §4.2 (a message is
sent with round ``R_recv + 1``), evaluated by :meth:`Pattern.rounds`. Sequential composition is
concatenation of the parties' programs, exactly as the protocol code runs one step after the
other. Every formula assumes warm OT sessions (both directions set up, spec §10.3.1): a run that
starts with ``ot_setup`` has the pattern ``seq(ot_setup_pattern(), ...)``. Tests compare these
patterns with the channel's counts byte for byte and round for round.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from secmoe.encoding import FixedPoint, Ring
from secmoe.errors import Party, SpecError
from secmoe.model.piecewise import PiecewiseTable
from secmoe.ot.base import POINT_BYTES
from secmoe.ot.iknp import KAPPA, padded
from secmoe.protocols.compare import LEAF_BITS, tree_levels
from secmoe.protocols.piecewise import plan

# The protocols' phases; ``input`` / ``output`` are a session's delivery steps (spec §40.5).
Phase = Literal["offline", "online", "input", "output"]


@dataclass(frozen=True)
class Message:
    sender: Party
    nbytes: int
    phase: Phase


@dataclass(frozen=True)
class Pattern:
    """Messages and each party's program: ``("send" | "recv", message index)`` in order."""

    messages: tuple[Message, ...] = ()
    client: tuple[tuple[str, int], ...] = ()
    server: tuple[tuple[str, int], ...] = ()

    def then(self, other: Pattern) -> Pattern:
        """This pattern followed by ``other`` (both parties run ``other`` after ``self``)."""
        k = len(self.messages)

        def shift(prog: tuple[tuple[str, int], ...]) -> tuple[tuple[str, int], ...]:
            return tuple((op, m + k) for op, m in prog)

        return Pattern(
            self.messages + other.messages,
            self.client + shift(other.client),
            self.server + shift(other.server),
        )

    def bytes(self, sender: Party, phase: Phase | None = None) -> int:
        """Payload bytes sent by ``sender`` (in ``phase``, or in all phases)."""
        return sum(
            m.nbytes for m in self.messages if m.sender == sender and phase in (None, m.phase)
        )

    @property
    def c2s(self) -> int:
        return self.bytes("client")

    @property
    def s2c(self) -> int:
        return self.bytes("server")

    def rounds(self) -> int:
        """The highest round of any message under the causal rule of spec §4.2."""
        programs: dict[Party, tuple[tuple[str, int], ...]] = {
            "client": self.client,
            "server": self.server,
        }
        pos: dict[Party, int] = {"client": 0, "server": 0}
        seen: dict[Party, int] = {"client": 0, "server": 0}
        sent: dict[int, int] = {}
        moved = True
        while moved:
            moved = False
            for party, prog in programs.items():
                while pos[party] < len(prog):
                    op, m = prog[pos[party]]
                    if op == "send":
                        sent[m] = seen[party] + 1
                    elif m in sent:
                        seen[party] = max(seen[party], sent[m])
                    else:
                        break
                    pos[party] += 1
                    moved = True
        if any(pos[p] < len(programs[p]) for p in programs):
            raise SpecError("the pattern deadlocks: a party waits for a message never sent")
        return max(sent.values(), default=0)


@dataclass(frozen=True)
class Summary:
    """What a test compares with a run: bytes per phase and direction, and rounds."""

    bytes: dict[str, tuple[int, int]] = field(default_factory=dict)  # phase -> (c2s, s2c)
    rounds: int = 0


def summary(p: Pattern) -> Summary:
    phases: dict[str, tuple[int, int]] = {}
    for phase in dict.fromkeys(m.phase for m in p.messages):
        pair = (p.bytes("client", phase), p.bytes("server", phase))
        if pair != (0, 0):
            phases[phase] = pair
    return Summary(phases, p.rounds())


def seq(*parts: Pattern | Iterable[Pattern]) -> Pattern:
    """Sequential composition of patterns (or iterables of patterns), in order."""
    out = Pattern()
    for part in parts:
        for p in [part] if isinstance(part, Pattern) else part:
            out = out.then(p)
    return out


def _peer(party: Party) -> Party:
    return "server" if party == "client" else "client"


def send(sender: Party, nbytes: int, phase: Phase) -> Pattern:
    """One message: ``sender`` sends it, the peer receives it."""
    prog_s, prog_r = (("send", 0),), (("recv", 0),)
    if sender == "client":
        return Pattern((Message(sender, nbytes, phase),), prog_s, prog_r)
    return Pattern((Message(sender, nbytes, phase),), prog_r, prog_s)


def exchange(c2s: int, s2c: int, phase: Phase) -> Pattern:
    """Both parties send at once, then both receive (e.g. the openings of ``mul``)."""
    msgs = (Message("client", c2s, phase), Message("server", s2c, phase))
    return Pattern(msgs, (("send", 0), ("recv", 1)), (("send", 1), ("recv", 0)))


def ring_bytes(bits: int) -> int:
    """w(l): bytes of one ring element (spec §1.4.1)."""
    return (bits + 7) // 8


def bit_bytes(n: int) -> int:
    """Bytes of an n-bit vector (spec §1.4.3)."""
    return (n + 7) // 8


def ext_bytes(m: int) -> int:
    """IKNP extension of m OTs: U, 128 columns of padded(m) bits (spec §10.3.2)."""
    return KAPPA * padded(m) // 8


def correction_bytes(n: int, bits: int) -> int:
    """COT corrections y: a bit vector for l = 1, else n ring elements (spec §10.4.3)."""
    return bit_bytes(n) if bits == 1 else n * ring_bytes(bits)


# --- OT-level patterns (spec §10.4-10.5) ----------------------------------------------------------


def ot_setup_pattern() -> Pattern:
    """``ot_setup`` (§10.3.1): base OTs for the client-sender direction, then the server-sender
    one; in each the extension receiver sends A (32 bytes), the extension sender 128 points."""
    a, b = POINT_BYTES, KAPPA * POINT_BYTES
    return seq(
        send("server", a, "offline"),
        send("client", b, "offline"),
        send("client", a, "offline"),
        send("server", b, "offline"),
    )


def cot_pattern(sender: Party, n: int, bits: int, phase: Phase) -> Pattern:
    """n COTs over Z_2^l: the receiver sends U, the sender the corrections."""
    return seq(
        send(_peer(sender), ext_bytes(n), phase), send(sender, correction_bytes(n, bits), phase)
    )


def one_of_n_pattern(sender: Party, n: int, n_msgs: int, length: int, phase: Phase) -> Pattern:
    """n 1-of-N OTs of L-byte messages: n ceil(log2 N) random OTs, then every masked message."""
    k = (n_msgs - 1).bit_length()
    return seq(
        send(_peer(sender), ext_bytes(n * k), phase), send(sender, n * n_msgs * length, phase)
    )


def both_cots(n: int, bits: int, phase: Phase) -> Pattern:
    """n COTs in each direction at once: both U messages, then both corrections."""
    u, y = ext_bytes(n), correction_bytes(n, bits)
    return seq(exchange(u, u, phase), exchange(y, y, phase))


def beaver_triples_pattern(n: int, bits: int) -> Pattern:
    """n Beaver triples over Z_2^l by Gilboa: n l COTs each way (spec §10.5.1), offline."""
    return both_cots(n * bits, bits, "offline")


def and_triples_pattern(n: int) -> Pattern:
    """n AND triples: n COTs over Z_2 each way (spec §10.5.2), offline."""
    return both_cots(n, 1, "offline")


# --- §30 protocols ----------------------------------------------------------------------------------


def mul_cost(n: int, bits: int) -> Pattern:
    """``mul`` (§30.1.1): triples, then both open 2n ring elements."""
    w = 2 * n * ring_bytes(bits)
    return seq(beaver_triples_pattern(n, bits), exchange(w, w, "online"))


def and_bits_cost(n: int, with_triples: bool = True) -> Pattern:
    """``and_bits`` (§30.1.2): triples (unless supplied), then both open 2n bits."""
    body = exchange(bit_bytes(2 * n), bit_bytes(2 * n), "online")
    return seq(and_triples_pattern(n), body) if with_triples else body


def b2a_cost(n: int, bits: int) -> Pattern:
    """``b2a`` (§30.2.1): n COTs, the server sending."""
    return cot_pattern("server", n, bits, "online")


def mux_cost(n: int, bits: int) -> Pattern:
    """``mux`` (§30.2.2): n COTs in each direction at once."""
    return both_cots(n, bits, "online")


def millionaire_cost(n: int, bits: int, fan: int = 1) -> Pattern:
    """``millionaire`` / ``equal`` (§30.3.1, §30.3.4) of n client values, each against ``fan``
    server values: one 1-of-16 OT per client leaf with ceil(2 fan / 8)-byte messages, the tree's
    triples and one ``and_bits`` exchange per level for all fan n comparisons."""
    q = -(-bits // LEAF_BITS)
    levels = tree_levels(q)
    rows = fan * n
    parts = [one_of_n_pattern("server", n * q, 1 << LEAF_BITS, (2 * fan + 7) // 8, "online")]
    if levels:
        parts.append(and_triples_pattern(rows * 2 * sum(levels)))
    parts += [and_bits_cost(2 * rows * pairs, with_triples=False) for pairs in levels]
    return seq(parts)


def msb_cost(n: int, bits: int, width: int | None = None) -> Pattern:
    """``msb`` / ``lt_public`` (§30.3.2-30.3.3) in Z_2^m (m = width, default l): one millionaire
    on m - 1 bits."""
    m = bits if width is None else width
    return millionaire_cost(n, m - 1) if m > 1 else Pattern()


def lt_public_many_cost(n: int, k: int, bits: int, width: int | None = None) -> Pattern:
    """``lt_public_many`` (§30.3.6): n values against k constants, one millionaire on m - 1 bits
    with fan-out k."""
    m = bits if width is None else width
    return millionaire_cost(n, m - 1, fan=k) if m > 1 else Pattern()


def onehot_cost(n: int, entries: int) -> Pattern:
    """``onehot`` (§30.3.5): one ``equal`` of n values on ceil(log2 E) bits, fan-out E."""
    return millionaire_cost(n, (entries - 1).bit_length(), fan=entries)


def trunc_cost(n: int, bits: int, s: int) -> Pattern:
    """``trunc`` (§30.4.1): millionaire on s bits, one AND, b2a of 2n bits."""
    return seq(millionaire_cost(n, s), and_bits_cost(n), b2a_cost(2 * n, bits))


def piecewise_cost(n: int, table: PiecewiseTable, bits: int, frac: int) -> Pattern:
    """``piecewise`` (§30.5.1): k n comparisons in Z_2^m; b2a of the segments with c0 != 0; x2
    if some c2 != 0; one mux of the live (segment, power) pairs; one truncation of the selected
    products that need it."""
    p = plan(table, FixedPoint(Ring(bits), frac))
    k, width = len(p.bounds), p.width
    quad, lin, const = len(p.quad.segments), len(p.lin.segments), len(p.const.segments)
    cut = sum(1 for pw in (p.quad, p.lin) if pw.truncated)
    parts = [lt_public_many_cost(n, k, bits, width)]
    if const:
        parts.append(b2a_cost(const * n, bits))
    if quad:
        parts += [mul_cost(n, bits), trunc_cost(n, bits, frac)]
    if quad or lin:
        parts.append(mux_cost((quad + lin) * n, bits))
    if cut:
        parts.append(trunc_cost(cut * n, bits, frac))
    return seq(parts)
