"""GGM trees over 16-byte nodes, expanded a whole level at a time (spec/11-silent-ot.md#ggm_expand).

A batch of ``t`` trees of depth ``h`` is an array of shape ``(t, 2^l, 16)`` per level ``l``.
Each level is computed with two AES-128-ECB calls (one per child side) over every node of every
tree at once, which is what makes the expansion fast in numpy.
"""

from __future__ import annotations

import hashlib

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from numpy.typing import NDArray

from secmoe.errors import SpecError

Nodes = NDArray[np.uint8]  # (t, width, 16)

KEY_LEFT = hashlib.shake_256(b"secmoe/v1/ot.ferret/ggm-left").digest(16)
KEY_RIGHT = hashlib.shake_256(b"secmoe/v1/ot.ferret/ggm-right").digest(16)
_LEFT = Cipher(algorithms.AES(KEY_LEFT), modes.ECB())
_RIGHT = Cipher(algorithms.AES(KEY_RIGHT), modes.ECB())


def _mmo(cipher: Cipher[modes.ECB], x: Nodes, out: Nodes) -> None:
    """out = pi(x) XOR x for every 16-byte node, pi = AES-128 under a fixed public key."""
    enc = cipher.encryptor()
    raw = np.ascontiguousarray(x, dtype=np.uint8)
    # update_into writes straight into numpy memory: an order of magnitude faster than update()
    # for large inputs; the API wants block_size - 1 bytes of slack.
    buf = np.empty(raw.size + 15, dtype=np.uint8)
    enc.update_into(raw.reshape(-1).data, buf.data)
    np.bitwise_xor(buf[: raw.size].reshape(x.shape), raw, out=out)


def ggm_children(parents: Nodes) -> Nodes:
    """The next level: node j's children are 2j (left, key K_L) and 2j + 1 (right, key K_R)."""
    t, width, _ = parents.shape
    out = np.empty((t, width, 2, 16), dtype=np.uint8)
    _mmo(_LEFT, parents, out[:, :, 0])
    _mmo(_RIGHT, parents, out[:, :, 1])
    return out.reshape(t, 2 * width, 16)


def side_sums(level: Nodes) -> Nodes:
    """(t, 2, 16): XOR of the even-index (left) and of the odd-index (right) nodes of a level."""
    t, width, _ = level.shape
    words = level.view(np.uint64).reshape(t, width // 2, 2, 2)
    sums = np.bitwise_xor.reduce(words, axis=1)
    return np.ascontiguousarray(sums).view(np.uint8).reshape(t, 2, 16)


def xor_all(level: Nodes) -> NDArray[np.uint8]:
    """(t, 16): XOR of every node of each tree."""
    t, width, _ = level.shape
    words = level.view(np.uint64).reshape(t, width, 2)
    return np.ascontiguousarray(np.bitwise_xor.reduce(words, axis=1)).view(np.uint8).reshape(t, 16)


def ggm_expand(roots: NDArray[np.uint8], depth: int) -> tuple[Nodes, Nodes]:
    """Expand t roots into t trees of depth h: the leaves and every level's two side sums.

    Implements spec §11.2.1 `ggm_expand` (spec/11-silent-ot.md#ggm_expand).

    Returns ``leaves`` (t, 2^h, 16) and ``sums`` (t, h, 2, 16), where ``sums[i, l - 1, b]`` is
    the XOR of the nodes of level l of tree i whose index has parity b.
    """
    if depth < 1:
        raise SpecError("a GGM tree has depth at least 1")
    r = np.ascontiguousarray(roots, dtype=np.uint8)
    if r.ndim != 2 or r.shape[1] != 16:
        raise SpecError("roots must have shape (t, 16)")
    t = r.shape[0]
    sums = np.empty((t, depth, 2, 16), dtype=np.uint8)
    level = r.reshape(t, 1, 16)
    for lvl in range(depth):
        # Step 2: level l + 1 from level l, both sides in one AES call each.
        level = ggm_children(level)
        # Step 3: K_l^0, K_l^1.
        sums[:, lvl] = side_sums(level)
    return level, sums


def ggm_puncture(alpha: NDArray[np.int64], known: Nodes, depth: int) -> Nodes:
    """Rebuild every leaf but leaf alpha_i of each tree from the off-path side sums.

    Implements spec §11.2.2 `ggm_puncture` (spec/11-silent-ot.md#ggm_puncture).

    ``alpha`` (t,) are the punctured leaves, ``known`` (t, h, 16) holds
    ``K_l^{1 - a_l}`` for level l = 1..h, a_l being bit h - l of alpha (most significant first).
    Returns (t, 2^h, 16) with leaf alpha_i of tree i set to zero.
    """
    a = np.asarray(alpha, dtype=np.int64).reshape(-1)
    t = a.size
    if known.shape != (t, depth, 16):
        raise SpecError("known sums must have shape (t, depth, 16)")
    if np.any(a < 0) or np.any(a >= 1 << depth):
        raise SpecError("alpha out of range")
    trees = np.arange(t)
    path = np.zeros(t, dtype=np.int64)  # the on-path node of the previous level
    level = np.zeros((t, 1, 16), dtype=np.uint8)  # the root: unknown, kept as zero
    for lvl in range(depth):
        bit = (a >> (depth - 1 - lvl)) & 1
        # Step 2: expand the known nodes; the unknown on-path node's children are zeroed.
        level = ggm_children(level)
        level[trees, 2 * path] = 0
        level[trees, 2 * path + 1] = 0
        # Step 3: the off-path sibling is K_l^{1-a_l} minus every other node on its side.
        sums = side_sums(level)
        off = 1 - bit
        level[trees, 2 * path + off] = known[:, lvl] ^ sums[trees, off]
        path = 2 * path + bit
    return level
