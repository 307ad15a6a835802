"""The tweakable correlation-robust hash from fixed-key AES (spec/10-ot.md#tccr_hash)."""

from __future__ import annotations

import hashlib

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from numpy.typing import NDArray

Blocks = NDArray[np.uint8]  # shape (n, 16)

FIXED_KEY = hashlib.shake_256(b"secmoe/v1/ot.tccr/fixed-key").digest(16)
_ECB = Cipher(algorithms.AES(FIXED_KEY), modes.ECB())


def aes_fixed(x: Blocks) -> Blocks:
    """pi(x): AES-128 under the public fixed key, on each 16-byte row."""
    enc = _ECB.encryptor()
    out = enc.update(np.ascontiguousarray(x, dtype=np.uint8).tobytes()) + enc.finalize()
    return np.frombuffer(out, dtype=np.uint8).reshape(-1, 16)


def tweaks(index: NDArray[np.uint64], word: NDArray[np.uint64] | int = 0) -> Blocks:
    """Tweak blocks u64(index) || u64(word), little-endian."""
    idx = np.asarray(index, dtype=np.uint64).reshape(-1)
    out = np.zeros((idx.size, 2), dtype="<u8")
    out[:, 0] = idx
    out[:, 1] = np.asarray(word, dtype=np.uint64)
    return out.view(np.uint8).reshape(-1, 16)


def tccr_hash(tweak: Blocks, x: Blocks) -> Blocks:
    """H(tau, x) = pi(pi(x) XOR tau) XOR pi(x) row by row.

    Implements spec §10.1.1 `tccr_hash` (spec/10-ot.md#tccr_hash).
    """
    px = aes_fixed(x)
    return aes_fixed(px ^ tweak) ^ px


def hash_to_bytes(index: NDArray[np.uint64], x: Blocks, length: int) -> NDArray[np.uint8]:
    """``length`` bytes per row: H((i, 0), x) || H((i, 1), x) || ... truncated (spec §10.1.1)."""
    blocks = (length + 15) // 16
    parts = [tccr_hash(tweaks(index, w), x) for w in range(blocks)]
    return np.concatenate(parts, axis=1)[:, :length] if parts else np.zeros((len(x), 0), np.uint8)
