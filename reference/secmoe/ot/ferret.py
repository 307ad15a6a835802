"""Ferret-style silent correlated OT: SPCOT, MPCOT, LPN, bootstrapping (spec/11-silent-ot.md).

One direction: the extension sender S holds the global correlation Delta (IKNP's ``s`` of the
same direction) and gets rows q_i; the extension receiver R gets rows t_i and bits r_i with
``t_i = q_i XOR r_i Delta``. A session is set up once (:func:`ferret_setup`: IKNP bootstrap and
one pre-iteration at the small parameter set) and then extended any number of times
(:func:`ferret_extend_send` / :func:`ferret_extend_recv`), each iteration keeping
``k + t log_bin`` of its COTs for the next one and returning the rest.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from secmoe.encoding import BitVec
from secmoe.errors import Party, SpecError
from secmoe.ot.base import POINT_BYTES
from secmoe.ot.ggm import ggm_expand, ggm_puncture, xor_nodes
from secmoe.ot.iknp import (
    KAPPA,
    IknpReceiver,
    IknpSender,
    Rows,
    iknp_extend_recv,
    iknp_extend_send,
    iknp_setup,
    padded,
)
from secmoe.ot.lpn import lpn_code, lpn_encode, lpn_encode_pair
from secmoe.ot.tccr import tccr_hash, tweaks
from secmoe.session import PartyContext

ROW = 16
TWEAK_FERRET = 1 << 63  # high bit of the tweak's second word: Ferret's hashes (spec §11.3)
LABEL_SUMS = "ot/ferret/sums"
LABEL_CORR = "ot/ferret/corr"


@dataclass(frozen=True)
class FerretParams:
    """One LPN parameter set (spec §11.7): n = t 2^log_bin outputs, secret length k, weight t.

    ``boot`` is the set of the pre-iteration that turns the IKNP bootstrap into this set's
    first reserve (``None`` for a set that is itself only a bootstrap set).
    """

    name: str
    n: int
    k: int
    t: int
    log_bin: int
    d: int
    insecure: bool
    boot: FerretParams | None = None

    def __post_init__(self) -> None:
        if self.n != self.t << self.log_bin:
            raise SpecError(f"{self.name}: n must be t 2^log_bin")
        if not 1 <= self.d <= self.k or self.log_bin < 1:
            raise SpecError(f"{self.name}: need 1 <= d <= k and log_bin >= 1")
        if self.out < 1:
            raise SpecError(f"{self.name}: n must exceed the reserve k + t log_bin")
        if self.boot is not None and self.boot.n < self.reserve:
            raise SpecError(f"{self.name}: the bootstrap set must output at least the reserve")

    @property
    def reserve(self) -> int:
        """COTs kept from each iteration for the next: k (LPN secret) + t log_bin (trees)."""
        return self.k + self.t * self.log_bin

    @property
    def out(self) -> int:
        """COTs an iteration returns."""
        return self.n - self.reserve


_B13_BOOT = FerretParams("ferret-b13-boot", 470_016, 32_768, 918, 9, 10, False)
FERRET_128 = FerretParams("ferret-b13", 10_485_760, 452_000, 1280, 13, 10, False, _B13_BOOT)
_TOY_BOOT = FerretParams("ferret-toy-boot-INSECURE", 64, 16, 2, 5, 10, True)
FERRET_TOY = FerretParams("ferret-toy-INSECURE", 128, 32, 4, 5, 10, True, _TOY_BOOT)


@dataclass
class FerretSender:
    """S's state of one direction: Delta and the reserved rows q for the next iteration."""

    params: FerretParams
    delta: Rows  # (16,)
    q: Rows  # (reserve, 16): [0, k) the LPN secret's rows, [k, reserve) the trees' COTs
    iteration: int = 1


@dataclass
class FerretReceiver:
    """R's state of one direction: the reserved rows t and bits r for the next iteration."""

    params: FerretParams
    t: Rows  # (reserve, 16)
    r: BitVec  # (reserve,)
    iteration: int = 1


def _hash(index: NDArray[np.int64], iteration: int, rows: Rows) -> Rows:
    """H((j, 2^63 + it), row) for the tree COT j of iteration it (spec §11.3)."""
    return tccr_hash(tweaks(index.astype(np.uint64), TWEAK_FERRET + iteration), rows)


def spcot_send(
    roots: NDArray[np.uint8], delta: Rows, q: Rows, iteration: int
) -> tuple[NDArray[np.uint8], Rows, Rows]:
    """The sender's side of t single-point COTs: leaves, masked level sums, corrections.

    Implements spec §11.3.1 `spcot_send` (spec/11-silent-ot.md#spcot_send).

    ``roots`` (t, 16), ``q`` (t h, 16): the rows of the t h tree COTs, tree i level l at
    ``i h + l - 1``. Returns the leaves (2^h, t, 16) (leaf x of tree i at ``[x, i]``), the masked
    sums (t h, 2, 16) and the corrections (t, 16).
    """
    t = roots.shape[0]
    h = q.shape[0] // t
    # Step 1: the trees and their level sums.
    leaves, sums = ggm_expand(roots, h)
    # Step 2: each level's two sums, masked with the hashes of q_j and q_j XOR Delta.
    j = np.arange(t * h, dtype=np.int64)
    masked = np.empty((t * h, 2, ROW), dtype=np.uint8)
    masked[:, 0] = sums.reshape(t * h, 2, ROW)[:, 0] ^ _hash(j, iteration, q)
    masked[:, 1] = sums.reshape(t * h, 2, ROW)[:, 1] ^ _hash(j, iteration, q ^ delta)
    # Step 3: c_i = Delta XOR the sum of all leaves.
    corr = xor_nodes(leaves) ^ delta
    return leaves, masked, corr


def spcot_recv(
    masked: Rows, corr: Rows, t_rows: Rows, r: BitVec, iteration: int
) -> tuple[NDArray[np.uint8], NDArray[np.int64]]:
    """The receiver's side of t single-point COTs: leaves (2^h, t, 16) and the points alpha.

    Implements spec §11.3.2 `spcot_recv` (spec/11-silent-ot.md#spcot_recv).
    """
    t = corr.shape[0]
    h = t_rows.shape[0] // t
    j = np.arange(t * h, dtype=np.int64)
    # Step 1: the choice bit b_j of tree COT j opens K^{b_j}; the path bit is a = 1 - b.
    b = np.asarray(r, dtype=np.int64)
    known = masked[j, b] ^ _hash(j, iteration, t_rows)
    a = (1 - b).reshape(t, h)
    alpha = (a << np.arange(h, dtype=np.int64)).sum(axis=1)  # level l gives bit l - 1
    # Step 2: every leaf but alpha_i.
    leaves = ggm_puncture(alpha, known.reshape(t, h, ROW), h)
    # Step 3: leaf alpha_i = c_i XOR the sum of the others = the sender's leaf XOR Delta.
    leaves[alpha, np.arange(t)] = corr ^ xor_nodes(leaves)
    return leaves, alpha


def mpcot_send(
    ctx: PartyContext, params: FerretParams, delta: Rows, q: Rows, iteration: int
) -> Rows:
    """Regular multi-point COT, sender: t SPCOTs, bin i = positions x t + i; returns w (n, 16).

    Implements spec §11.4.1 `mpcot_send` (spec/11-silent-ot.md#mpcot_send).
    """
    # Step 1: the t roots.
    roots = np.frombuffer(ctx.prg("ot.ferret", "ggm").next_bytes(ROW * params.t), np.uint8)
    leaves, masked, corr = spcot_send(roots.reshape(params.t, ROW), delta, q, iteration)
    # Step 2: the two messages.
    ctx.channel.send(LABEL_SUMS, masked.tobytes())
    ctx.channel.send(LABEL_CORR, corr.tobytes())
    return leaves.reshape(params.n, ROW)


def mpcot_recv(
    ctx: PartyContext, params: FerretParams, t_rows: Rows, r: BitVec, iteration: int
) -> tuple[Rows, NDArray[np.int64]]:
    """Regular multi-point COT, receiver: v (n, 16) and the t noise positions.

    Implements spec §11.4.2 `mpcot_recv` (spec/11-silent-ot.md#mpcot_recv).
    """
    t, h = params.t, params.log_bin
    raw = ctx.channel.recv(LABEL_SUMS, 2 * ROW * t * h)
    masked = np.frombuffer(raw, np.uint8).reshape(t * h, 2, ROW)
    corr = np.frombuffer(ctx.channel.recv(LABEL_CORR, ROW * t), np.uint8).reshape(t, ROW)
    leaves, alpha = spcot_recv(masked, corr, t_rows, r, iteration)
    positions = alpha * t + np.arange(t, dtype=np.int64)
    return leaves.reshape(params.n, ROW), positions


def _iterate_send(
    ctx: PartyContext, params: FerretParams, delta: Rows, q: Rows, iteration: int
) -> Rows:
    """One iteration at ``params`` from ``reserve`` rows q: all n output rows."""
    w = mpcot_send(ctx, params, delta, q[params.k :], iteration)
    return lpn_encode(w, q[: params.k], lpn_code(params.n, params.k, params.d))


def _iterate_recv(
    ctx: PartyContext, params: FerretParams, t_rows: Rows, r: BitVec, iteration: int
) -> tuple[Rows, BitVec]:
    v, positions = mpcot_recv(ctx, params, t_rows[params.k :], r[params.k :], iteration)
    e = np.zeros(params.n, dtype=np.uint8)
    e[positions] = 1
    code = lpn_code(params.n, params.k, params.d)
    # z = lpn_encode(v, t'), r = lpn_encode(e, u), in one pass over the code.
    return lpn_encode_pair(v, t_rows[: params.k], e, r[: params.k], code)


def ferret_setup(
    ctx: PartyContext, sender: Party, params: FerretParams
) -> FerretSender | FerretReceiver:
    """Set up one direction: IKNP bootstrap, then the pre-iteration at ``params.boot``.

    Implements spec §11.6.1 `ferret_setup` (spec/11-silent-ot.md#ferret_setup).

    Runs in phase ``offline``; the IKNP session of the direction is the one of spec §10.3
    (created here if it does not exist yet), so Delta is its ``s``.
    """
    boot = params.boot
    if boot is None:
        raise SpecError(f"{params.name} has no bootstrap set")
    # The public code of P, built (once per process) before the first iteration needs it.
    lpn_code(params.n, params.k, params.d)
    with ctx.channel.phase("offline"):
        session = iknp_setup(ctx, sender)
        if ctx.party == sender:
            assert isinstance(session, IknpSender)
            # Step 2 (S): the bootstrap COTs from IKNP.
            q_boot, delta, _ = iknp_extend_send(ctx, boot.reserve)
            # Step 3 (S): the pre-iteration; its first `reserve` outputs are kept.
            q = _iterate_send(ctx, boot, delta, q_boot, 0)
            return FerretSender(params, delta.copy(), q[: params.reserve].copy())
        assert isinstance(session, IknpReceiver)
        # Step 2 (R): random choice bits for the bootstrap COTs.
        r_boot = ctx.prg("ot.ferret", "boot").next_bits(boot.reserve)
        t_boot, _ = iknp_extend_recv(ctx, r_boot)
        # Step 3 (R).
        t_rows, r = _iterate_recv(ctx, boot, t_boot, r_boot, 0)
        return FerretReceiver(params, t_rows[: params.reserve].copy(), r[: params.reserve].copy())


def ferret_extend_send(ctx: PartyContext, st: FerretSender) -> Rows:
    """One iteration, sender: the ``out`` rows q_i; the next reserve stays in ``st``.

    Implements spec §11.6.2 `ferret_extend_send` (spec/11-silent-ot.md#ferret_extend_send).
    """
    p = st.params
    y = _iterate_send(ctx, p, st.delta, st.q, st.iteration)
    st.q = y[: p.reserve].copy()
    st.iteration += 1
    return y[p.reserve :]


def ferret_extend_recv(ctx: PartyContext, st: FerretReceiver) -> tuple[Rows, BitVec]:
    """One iteration, receiver: the ``out`` rows t_i and bits r_i.

    Implements spec §11.6.3 `ferret_extend_recv` (spec/11-silent-ot.md#ferret_extend_recv).
    """
    p = st.params
    z, r = _iterate_recv(ctx, p, st.t, st.r, st.iteration)
    st.t, st.r = z[: p.reserve].copy(), r[: p.reserve].copy()
    st.iteration += 1
    return z[p.reserve :], r[p.reserve :]


# --- cost (spec §11.8) ---------------------------------------------------------------------------


@dataclass(frozen=True)
class CostMessage:
    label: str
    sender: Party
    nbytes: int


@dataclass(frozen=True)
class FerretCost:
    """The messages of a step in order; every party receives all before its next send."""

    messages: tuple[CostMessage, ...]

    def bytes_from(self, party: Party) -> int:
        return sum(m.nbytes for m in self.messages if m.sender == party)

    def rounds(self, last_sender: Party | None = None) -> int:
        """Rounds added after a preceding message from ``last_sender`` (None: nothing before).

        The messages form one chain, so a message opens a new round exactly when its sender
        differs from the previous message's (spec §4.2).
        """
        rounds, prev = 0, last_sender
        for m in self.messages:
            if m.sender != prev:
                rounds += 1
            prev = m.sender
        return rounds


def _peer(party: Party) -> Party:
    return "server" if party == "client" else "client"


def _iteration_messages(params: FerretParams, sender: Party) -> tuple[CostMessage, ...]:
    t, h = params.t, params.log_bin
    return (
        CostMessage(LABEL_SUMS, sender, 2 * ROW * t * h),
        CostMessage(LABEL_CORR, sender, ROW * t),
    )


def ferret_setup_cost(params: FerretParams, sender: Party, fresh: bool = True) -> FerretCost:
    """The messages of :func:`ferret_setup`; ``fresh``: the direction's IKNP session is new."""
    if params.boot is None:
        raise SpecError(f"{params.name} has no bootstrap set")
    receiver = _peer(sender)
    base = (
        (
            CostMessage("ot/base/a", receiver, POINT_BYTES),
            CostMessage("ot/base/b", sender, KAPPA * POINT_BYTES),
        )
        if fresh
        else ()
    )
    ext = CostMessage("ot/iknp/u", receiver, KAPPA * padded(params.boot.reserve) // 8)
    return FerretCost((*base, ext, *_iteration_messages(params.boot, sender)))


def ferret_extend_cost(params: FerretParams, sender: Party) -> FerretCost:
    """The messages of one iteration: 32 t log_bin + 16 t bytes from S, one round."""
    return FerretCost(_iteration_messages(params, sender))
