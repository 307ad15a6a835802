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

from secmoe.encoding import FixedPoint, Ring
from secmoe.model.piecewise import PiecewiseTable
from secmoe.net.pattern import (
    Message,
    Pattern,
    Phase,
    Summary,
    bit_bytes,
    exchange,
    exchange_many,
    peer,
    ring_bytes,
    send,
    seq,
    summary,
)
from secmoe.ot.cost import (
    and_triples_pattern,
    beaver_triples_pattern,
    both_cots,
    correction_bytes,
    cot_pattern,
    derand,
    ext_bytes,
    gilboa_bits,
    one_of_n_pattern,
    ot_pattern,
    ot_setup_pattern,
    refill,
    rot_pattern,
)
from secmoe.protocols.compare import LEAF_BITS, tree_levels
from secmoe.protocols.piecewise import plan

# The building blocks are re-exported: every cost module composes from here.
__all__ = [
    "Message",
    "Pattern",
    "Phase",
    "Summary",
    "and_triples_pattern",
    "beaver_triples_pattern",
    "bit_bytes",
    "both_cots",
    "correction_bytes",
    "cot_pattern",
    "derand",
    "exchange",
    "exchange_many",
    "ext_bytes",
    "gilboa_bits",
    "one_of_n_pattern",
    "ot_pattern",
    "ot_setup_pattern",
    "peer",
    "refill",
    "ring_bytes",
    "rot_pattern",
    "send",
    "seq",
    "summary",
]


# --- §30 protocols ----------------------------------------------------------------------------------


def mul_cost(n: int, bits: int) -> Pattern:
    """``mul`` (§30.1.1) without triples: n l COTs each way, d of n l bits and corrections of
    widths l - j, both directions in the same two rounds."""
    m = n * bits
    u, d, y = ext_bytes(m), bit_bytes(m), bit_bytes(gilboa_bits(n, bits))
    return seq(exchange_many([(u, u, "offline", m), (d, d, "online", 0)]), exchange(y, y, "online"))


def beaver_mul_cost(n: int, bits: int) -> Pattern:
    """``mul`` (§30.1.1) with triples supplied: both open 2n ring elements."""
    w = 2 * n * ring_bytes(bits)
    return exchange(w, w, "online")


def square_cost(n: int, bits: int) -> Pattern:
    """``square`` (§30.1.3): n (l - 1) COTs, the client choosing; widths l - 1 - j."""
    m = n * (bits - 1)
    if m == 0:
        return Pattern()
    return seq(
        derand("client", m, "online"), send("server", bit_bytes(gilboa_bits(n, bits - 1)), "online")
    )


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
    parts = [one_of_n_pattern("server", n * q, 1 << LEAF_BITS, 2 * fan, "online")]
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
    """``trunc`` (§30.4.1): millionaire on s bits, one AND, b2a of n bits at width l and n at s."""
    b2a = seq(
        derand("client", 2 * n, "online"), send("server", bit_bytes(n * (bits + s)), "online")
    )
    return seq(millionaire_cost(n, s), and_bits_cost(n), b2a)


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
        parts += [square_cost(n, bits), trunc_cost(n, bits, frac)]
    if quad or lin:
        parts.append(mux_cost((quad + lin) * n, bits))
    if cut:
        parts.append(trunc_cost(cut * n, bits, frac))
    return seq(parts)
