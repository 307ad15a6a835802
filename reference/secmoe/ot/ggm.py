"""GGM trees over 16-byte nodes, expanded a whole level at a time (spec/11-silent-ot.md#ggm_expand).

A batch of ``t`` trees is stored level-major: level ``l`` is an array of shape ``(2^l, t, 16)``
(node index first, tree second). With the child rule of spec §11.2 (node j's children are
j and j + 2^l), the next level is simply ``[G_L(level); G_R(level)]``: each half is one
AES-128-ECB call over every node of every tree, written straight into its half, and the side
sums are XOR reductions of the halves. No interleaving copy is ever made.
"""

from __future__ import annotations

import hashlib

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from numpy.typing import NDArray

from secmoe.errors import SpecError

Nodes = NDArray[np.uint8]  # (width, t, 16)

KEY_LEFT = hashlib.shake_256(b"secmoe/v1/ot.ferret/ggm-left").digest(16)
KEY_RIGHT = hashlib.shake_256(b"secmoe/v1/ot.ferret/ggm-right").digest(16)
_LEFT = Cipher(algorithms.AES(KEY_LEFT), modes.ECB())
_RIGHT = Cipher(algorithms.AES(KEY_RIGHT), modes.ECB())


def ggm_children(parents: Nodes) -> Nodes:
    """The next level (2w, t, 16): node j's children are j (left, G_L) and j + w (right, G_R).

    G_b(x) = pi_b(x) XOR x, pi_b = AES-128 under the fixed public key K_L or K_R. Each half is
    one ``update_into`` call writing straight into the level's memory (an order of magnitude
    faster than ``update()`` on large inputs); the API wants 15 spare bytes after the output,
    hence the slack at the end of the buffer.
    """
    width, t, _ = parents.shape
    src = np.ascontiguousarray(parents, dtype=np.uint8)
    size = src.size
    buf = np.empty(2 * size + 15, dtype=np.uint8)
    # Left half first: its call may use the slack, which the right half then overwrites.
    _LEFT.encryptor().update_into(src.reshape(-1).data, buf[: size + 15].data)
    _RIGHT.encryptor().update_into(src.reshape(-1).data, buf[size:].data)
    level = buf[: 2 * size].reshape(2 * width, t, 16)
    np.bitwise_xor(level[:width], src, out=level[:width])
    np.bitwise_xor(level[width:], src, out=level[width:])
    return level


def xor_nodes(nodes: Nodes) -> NDArray[np.uint8]:
    """(t, 16): the XOR over the node axis, tree by tree."""
    width, t, _ = nodes.shape
    words = nodes.reshape(width, t * 16).view(np.uint64)
    out: NDArray[np.uint64] = np.bitwise_xor.reduce(words, axis=0)
    return out.view(np.uint8).reshape(t, 16)


def side_sums(level: Nodes) -> Nodes:
    """(t, 2, 16): the XOR of the left half (side 0) and of the right half (side 1) of a level."""
    half = level.shape[0] // 2
    return np.stack([xor_nodes(level[:half]), xor_nodes(level[half:])], axis=1)


def ggm_expand(roots: NDArray[np.uint8], depth: int) -> tuple[Nodes, Nodes]:
    """Expand t roots into t trees of depth h: the leaves and every level's two side sums.

    Implements spec §11.2.1 `ggm_expand` (spec/11-silent-ot.md#ggm_expand).

    Returns ``leaves`` (2^h, t, 16), leaf x of tree i at ``[x, i]``, and ``sums``
    (t, h, 2, 16), ``sums[i, l - 1, b]`` = K_l^b of tree i.
    """
    if depth < 1:
        raise SpecError("a GGM tree has depth at least 1")
    r = np.ascontiguousarray(roots, dtype=np.uint8)
    if r.ndim != 2 or r.shape[1] != 16:
        raise SpecError("roots must have shape (t, 16)")
    t = r.shape[0]
    sums = np.empty((t, depth, 2, 16), dtype=np.uint8)
    level = r.reshape(1, t, 16)
    for lvl in range(depth):
        # Step 2: level l + 1 from level l, each side one AES call.
        level = ggm_children(level)
        # Step 3: K_l^0, K_l^1.
        sums[:, lvl] = side_sums(level)
    return level, sums


def ggm_puncture(alpha: NDArray[np.int64], known: Nodes, depth: int) -> Nodes:
    """Rebuild every leaf but leaf alpha_i of each tree from the off-path side sums.

    Implements spec §11.2.2 `ggm_puncture` (spec/11-silent-ot.md#ggm_puncture).

    ``alpha`` (t,) are the punctured leaves, ``known`` (t, h, 16) holds ``K_l^{1 - a_l}`` for
    l = 1..h, a_l being bit l - 1 of alpha (least significant first). Returns (2^h, t, 16)
    with leaf alpha_i of tree i set to zero.
    """
    a = np.asarray(alpha, dtype=np.int64).reshape(-1)
    t = a.size
    if known.shape != (t, depth, 16):
        raise SpecError("known sums must have shape (t, depth, 16)")
    if np.any(a < 0) or np.any(a >= 1 << depth):
        raise SpecError("alpha out of range")
    trees = np.arange(t)
    path = np.zeros(t, dtype=np.int64)  # the on-path node of the current level
    level = np.zeros((1, t, 16), dtype=np.uint8)  # the root: unknown, kept as zero
    for lvl in range(depth):
        width = level.shape[0]
        bit = (a >> lvl) & 1
        # Step 2: expand the known nodes; the unknown on-path node's children are zeroed.
        level = ggm_children(level)
        level[path, trees] = 0
        level[path + width, trees] = 0
        # Step 3: the off-path sibling is K_l^{1-a_l} minus every other node on its side.
        sums = side_sums(level)
        off = 1 - bit
        level[path + off * width, trees] = known[:, lvl] ^ sums[trees, off]
        path = path + bit * width
    return level
