"""Comparison from 1-of-N OT and AND (spec/30-protocols.md §30.3): the millionaire protocol, the
most significant bit of a shared value, and comparison with a public constant."""

from __future__ import annotations

import numpy as np

from secmoe.encoding import BitVec, Ring, RingVec
from secmoe.errors import SpecError
from secmoe.ot.flavours import one_of_n_recv, one_of_n_send
from secmoe.ot.triples import BitTriple, and_triples
from secmoe.protocols.mul import and_bits
from secmoe.session import PartyContext

LEAF_BITS = 4  # m: leaves of 4 bits, so each leaf is one 1-of-16 OT


def _leaves(values: RingVec, bits: int) -> tuple[np.ndarray, int]:
    """Leaf j (j = 0 the most significant) of each value: (n, q) ints, q = ceil(bits / m).

    The value is zero-extended on the left to q m bits."""
    q = -(-bits // LEAF_BITS)
    shifts = np.arange(q - 1, -1, -1, dtype=np.uint64) * np.uint64(LEAF_BITS)
    leaves = (values[:, None] >> shifts[None, :]) & np.uint64((1 << LEAF_BITS) - 1)
    return leaves.astype(np.int64), q


def _slice(t: BitTriple, start: int, count: int) -> BitTriple:
    return t[0][start : start + count], t[1][start : start + count], t[2][start : start + count]


def millionaire(ctx: PartyContext, value: RingVec, bits: int, fan: int = 1) -> BitVec:
    """XOR shares of [u < v] for the server's u and the client's v, all in [0, 2^bits).

    Implements spec §30.3.1 `millionaire` (spec/30-protocols.md#millionaire). With ``fan`` = k
    the client holds n values v_j and the server k n values u_{i,j} (comparison-major, position
    i n + j); every v_j is compared with its k values u_{i,j} through one OT choice.
    """
    return _compare(ctx, value, bits, fan)[0]


def equal(ctx: PartyContext, value: RingVec, bits: int, fan: int = 1) -> BitVec:
    """XOR shares of [u = v] for the server's u and the client's v, all in [0, 2^bits).

    Implements spec §30.3.4 `equal` (spec/30-protocols.md#equal): the eq output of the same
    leaf-and-tree computation as ``millionaire`` (``fan`` as there).
    """
    return _compare(ctx, value, bits, fan)[1]


def _compare(ctx: PartyContext, value: RingVec, bits: int, fan: int) -> tuple[BitVec, BitVec]:
    """Shares of ([u < v], [u = v]) by leaves and an AND tree (spec §30.3.1), k = fan server
    values per client value, outputs at position i n + j."""
    if not 1 <= bits <= 64:
        raise SpecError("bits must be in [1, 64]")
    if fan < 1:
        raise SpecError("fan must be at least 1")
    vals = Ring(bits).check(np.asarray(value, dtype=np.uint64).reshape(-1), "value")
    if ctx.party == "server" and vals.size % fan:
        raise SpecError(f"the server needs {fan} values per client value")
    n = vals.size if ctx.party == "client" else vals.size // fan
    leaves, q = _leaves(vals, bits)
    size = 1 << LEAF_BITS
    # Step 1: one 1-of-16 OT per client leaf; the server's message c carries, for every i < k,
    # the bits (lt_i ^ [u_{i,j} < c], eq_i ^ [u_{i,j} = c]) at bit positions 2i and 2i + 1.
    with ctx.channel.phase("online"):
        if ctx.party == "server":
            prg = ctx.prg("proto.millionaire", "masks")
            masks = prg.next_bits(2 * n * q * fan).reshape(n * q, fan, 2)
            c = np.arange(size)[None, None, :]
            u = leaves.reshape(fan, n * q).T[:, :, None]  # (n q, k, 1)
            lt_table = (u < c).astype(np.uint8) ^ masks[:, :, :1]
            eq_table = (u == c).astype(np.uint8) ^ masks[:, :, 1:]
            table = np.stack([lt_table, eq_table], axis=2)  # (n q, k, 2, 16)
            bits_ = table.transpose(0, 3, 1, 2).reshape(n * q, size, 2 * fan)
            one_of_n_send(ctx, bits_)
            own = masks.transpose(1, 0, 2).reshape(fan * n, q, 2)
            lt, eq = own[:, :, 0].copy(), own[:, :, 1].copy()
        else:
            got = one_of_n_recv(ctx, leaves.reshape(-1), size, 2 * fan)
            both = got.reshape(n, q, fan, 2).transpose(2, 0, 1, 3).reshape(fan * n, q, 2)
            lt, eq = both[:, :, 0].copy(), both[:, :, 1].copy()
    rows = fan * n
    # Step 2: combine neighbouring leaves, most significant first, until one remains:
    # lt = lt_hi ^ (eq_hi & lt_lo), eq = eq_hi & eq_lo. Triples for every level at once.
    needed = 2 * sum(tree_levels(q))
    triples = and_triples(ctx, rows * needed) if needed else None
    used = 0
    while lt.shape[1] > 1:
        pairs = lt.shape[1] // 2
        hi, lo = slice(0, 2 * pairs, 2), slice(1, 2 * pairs, 2)
        count = 2 * rows * pairs
        assert triples is not None
        x = np.concatenate([eq[:, hi].reshape(-1), eq[:, hi].reshape(-1)])
        y = np.concatenate([lt[:, lo].reshape(-1), eq[:, lo].reshape(-1)])
        prod = and_bits(ctx, x, y, _slice(triples, used, count))
        used += count
        new_lt = lt[:, hi] ^ prod[: rows * pairs].reshape(rows, pairs)
        new_eq = prod[rows * pairs :].reshape(rows, pairs)
        if lt.shape[1] % 2:  # an odd leaf out moves up unchanged
            new_lt = np.concatenate([new_lt, lt[:, -1:]], axis=1)
            new_eq = np.concatenate([new_eq, eq[:, -1:]], axis=1)
        lt, eq = new_lt, new_eq
    return lt[:, 0].copy(), eq[:, 0].copy()


def tree_levels(q: int) -> list[int]:
    """The number of pairs combined at each level of the AND tree over q leaves."""
    out = []
    while q > 1:
        out.append(q // 2)
        q -= q // 2
    return out


def msb(ctx: PartyContext, x: RingVec, width: int | None = None) -> BitVec:
    """XOR shares of the most significant bit of a shared x in Z_2^m (m = width, default l).

    Implements spec §30.3.2 `msb` (spec/30-protocols.md#msb): both parties reduce their shares
    mod 2^m (exact, 2^m divides 2^l); MSB(x) = MSB(x_C) ^ MSB(x_S) ^ c with the carry
    c = [x_C' + x_S' >= 2^(m-1)] on the low m - 1 bits, that is [2^(m-1) - 1 - x_S' < x_C'],
    one millionaire comparison.
    """
    ring = ctx.ring
    m = ring.bits if width is None else width
    if not 1 <= m <= ring.bits:
        raise SpecError(f"msb needs a width in [1, l = {ring.bits}], got {m}")
    xs = ring.check(np.asarray(x), "x").reshape(-1)
    # Step 1: the shares in Z_2^m.
    if m < ring.bits:
        xs = xs & np.uint64((1 << m) - 1)
    # Step 2: the carry out of the low m - 1 bits, by one millionaire.
    low = np.uint64((1 << (m - 1)) - 1)
    mine = xs & low
    value = low - mine if ctx.party == "server" else mine
    carry = millionaire(ctx, value, m - 1) if m > 1 else np.zeros(xs.size, np.uint8)
    # Step 3: MSB(x_C) ^ MSB(x_S) ^ c, each party its own top bit.
    top = ((xs >> np.uint64(m - 1)) & np.uint64(1)).astype(np.uint8)
    out: BitVec = (top ^ carry).reshape(np.asarray(x).shape)
    return out


def lt_public(ctx: PartyContext, x: RingVec, c: RingVec, width: int | None = None) -> BitVec:
    """XOR shares of [x < c] for shared x and public c.

    Implements spec §30.3.3 `lt_public` (spec/30-protocols.md#lt_public): MSB(x - c) in
    Z_2^m, the client subtracting c. Without ``width`` (m = l) both x and c must be of magnitude
    below 2^(l-2); with it, |x - c| < 2^(m-1).
    """
    ring = ctx.ring
    xs = ring.check(np.asarray(x), "x")
    cs = ring.check(np.asarray(c), "c")
    diff = ring.sub(xs, cs) if ctx.party == "client" else xs
    return msb(ctx, diff, width)


def lt_public_many(ctx: PartyContext, x: RingVec, cs: RingVec, width: int | None = None) -> BitVec:
    """XOR shares of [x_j < c_i] for shared x (n,) and k public constants c (k,): (k, n).

    Implements spec §30.3.6 `lt_public_many` (spec/30-protocols.md#lt_public_many): MSB(x - c_i)
    in Z_2^m as ``lt_public``, but the *server* subtracts c_i, so the client's millionaire value
    is the same for all k comparisons and one OT choice serves them (``fan`` = k).
    """
    ring = ctx.ring
    m = ring.bits if width is None else width
    if not 1 <= m <= ring.bits:
        raise SpecError(f"lt_public_many needs a width in [1, l = {ring.bits}], got {m}")
    xs = ring.check(np.asarray(x), "x").reshape(-1)
    consts = ring.check(np.asarray(cs), "c").reshape(-1)
    k, n = consts.size, xs.size
    if k < 1:
        raise SpecError("lt_public_many needs at least one constant")
    # Step 1: the shares of x - c_i in Z_2^m: the client's x_C for every i, the server's x_S - c_i.
    mask = np.uint64((1 << m) - 1) if m < 64 else np.uint64(0xFFFFFFFFFFFFFFFF)
    if ctx.party == "client":
        shares = np.tile(xs & mask, (k, 1))
    else:
        shares = ring.sub(xs[None, :], consts[:, None]) & mask
    # Step 2: the carries out of the low m - 1 bits, one millionaire with fan-out k.
    low = np.uint64((1 << (m - 1)) - 1)
    mine = shares & low
    if m == 1:
        carry = np.zeros(k * n, np.uint8)
    elif ctx.party == "server":
        carry = millionaire(ctx, (low - mine).reshape(-1), m - 1, fan=k)
    else:
        carry = millionaire(ctx, mine[0], m - 1, fan=k)
    # Step 3: MSB(x_C) ^ MSB(x_S - c_i) ^ carry_i.
    top = ((shares >> np.uint64(m - 1)) & np.uint64(1)).astype(np.uint8)
    out: BitVec = top ^ carry.reshape(k, n)
    return out


def onehot(ctx: PartyContext, index: RingVec, entries: int) -> BitVec:
    """XOR shares of the one-hot vectors of shared indices in [0, entries), (n, entries).

    Implements spec §30.3.5 `onehot` (spec/30-protocols.md#onehot): with b = ceil(log2 entries)
    and the shares reduced mod 2^b, [i = j] = [(-i_C) mod 2^b = (i_S - j) mod 2^b], one
    ``equal`` with fan-out E (one OT choice per leaf for all j).
    """
    if entries < 2:
        raise SpecError("onehot needs at least two entries")
    ring = ctx.ring
    bits = (entries - 1).bit_length()
    if bits > ring.bits:
        raise SpecError("the ring is too small for that many entries")
    mask = np.uint64((1 << bits) - 1)
    idx = ring.check(np.asarray(index), "index").reshape(-1) & mask
    n = idx.size
    j = np.arange(entries, dtype=np.uint64)
    # [i = j] = [(-i_C) mod 2^b = (i_S - j) mod 2^b]: the client's value is the same for all j,
    # so one OT choice per leaf serves all E tests (fan-out E).
    if ctx.party == "client":
        values = (np.uint64(0) - idx) & mask
    else:
        values = ((idx[None, :] - j[:, None]) & mask).reshape(-1)  # position j n + t
    out: BitVec = equal(ctx, values, bits, fan=entries).reshape(entries, n).T.copy()
    return out
