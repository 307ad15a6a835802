"""Message patterns: a protocol's messages and each party's order of sends and receives
(spec/30-protocols.md §30.0), evaluated for bytes and, by the causal rule of spec §4.2, rounds.

The building blocks (``send``, ``exchange``, ``seq``) live here, below the OT layer, so that the
OT flavours' formulas (``secmoe.ot.cost``) and the protocols' (``secmoe.protocols.cost``) are
the same kind of object.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from secmoe.errors import Party, SpecError

# The protocols' phases; ``input`` / ``output`` are a session's delivery steps (spec §40.5).
Phase = Literal["offline", "online", "input", "output"]


@dataclass(frozen=True)
class Message:
    """One message; ``cots`` > 0 marks a pool refill of that many COTs (spec §10.4.1), which a
    pre-filled (*warm*) pool does not send."""

    sender: Party
    nbytes: int
    phase: Phase
    cots: int = 0


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

    def warm(self) -> Pattern:
        """The same protocol on pools that already hold its COTs: the refills dropped."""
        keep = [i for i, m in enumerate(self.messages) if not m.cots]
        new = {old: k for k, old in enumerate(keep)}

        def prog(p: tuple[tuple[str, int], ...]) -> tuple[tuple[str, int], ...]:
            return tuple((op, new[m]) for op, m in p if m in new)

        return Pattern(tuple(self.messages[i] for i in keep), prog(self.client), prog(self.server))

    def cots(self, receiver: Party | None = None) -> int:
        """COTs the protocol takes from the pools (refilled by ``receiver``, or all)."""
        return sum(m.cots for m in self.messages if receiver in (None, m.sender))

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


def peer(party: Party) -> Party:
    return "server" if party == "client" else "client"


def send(sender: Party, nbytes: int, phase: Phase, cots: int = 0) -> Pattern:
    """One message: ``sender`` sends it, the peer receives it."""
    prog_s, prog_r = (("send", 0),), (("recv", 0),)
    msg = (Message(sender, nbytes, phase, cots),)
    if sender == "client":
        return Pattern(msg, prog_s, prog_r)
    return Pattern(msg, prog_r, prog_s)


def exchange(c2s: int, s2c: int, phase: Phase) -> Pattern:
    """Both parties send at once, then both receive (e.g. the openings of ``mul``)."""
    return exchange_many([(c2s, s2c, phase, 0)])


def exchange_many(msgs: list[tuple[int, int, Phase, int]]) -> Pattern:
    """Both parties send all their messages ``(c2s, s2c, phase, cots)`` in order, then
    receive all the peer's in order."""
    out: list[Message] = []
    cprog: list[tuple[str, int]] = []
    sprog: list[tuple[str, int]] = []
    crecv: list[tuple[str, int]] = []
    srecv: list[tuple[str, int]] = []
    for c2s, s2c, phase, cots in msgs:
        out.append(Message("client", c2s, phase, cots))
        cprog.append(("send", len(out) - 1))
        srecv.append(("recv", len(out) - 1))
        out.append(Message("server", s2c, phase, cots))
        sprog.append(("send", len(out) - 1))
        crecv.append(("recv", len(out) - 1))
    return Pattern(tuple(out), tuple(cprog + crecv), tuple(sprog + srecv))


def ring_bytes(bits: int) -> int:
    """w(l): bytes of one ring element (spec §1.4.1)."""
    return (bits + 7) // 8


def bit_bytes(n: int) -> int:
    """Bytes of an n-bit vector (spec §1.4.3)."""
    return (n + 7) // 8
