"""Seeded pseudorandom generation (spec/02-randomness.md).

Every random value either party uses comes from a :class:`Prg`: AES-128 in counter mode, keyed
by SHAKE-256 of a 32-byte seed, a domain-separation tag and a binder. The stream is seekable
(it is a pure function of the byte position), which keeps rejection sampling exact: a sampler
consumes exactly the bytes the spec says it consumes, however it batches its work.

The only function in secmoe that reads operating-system entropy is :func:`system_seed`.
"""

from __future__ import annotations

import hashlib
import os
import struct

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from numpy.typing import NDArray

from secmoe.encoding import BitVec, RingVec
from secmoe.errors import SpecError

SEED_BYTES = 32
DST_PREFIX = b"secmoe/v1/"
_KEY_TAG = b"secmoe/v1/prg-key"
_MAX_STREAM = 1 << 68  # 2^64 AES blocks: the counter space of one key


def lp(data: bytes) -> bytes:
    """Length-prefix: 8-byte little-endian length, then the bytes.

    Implements spec §2.1.1 `lp` (spec/02-randomness.md#lp).
    """
    return struct.pack("<Q", len(data)) + data


def dst(protocol: str, usage: str) -> bytes:
    """The domain separation tag ``b"secmoe/v1/" + protocol + b"/" + usage``.

    Implements spec §2.2.1 `dst` (spec/02-randomness.md#dst).
    """
    for part in (protocol, usage):
        if not part or not part.isascii() or any(c.isspace() for c in part):
            raise SpecError(f"dst parts must be non-empty printable ASCII, got {part!r}")
    return DST_PREFIX + protocol.encode() + b"/" + usage.encode()


def binder_u64(counter: int) -> bytes:
    """The binder of the counter-th instance: the counter as 8 bytes little-endian."""
    if not 0 <= counter < 1 << 64:
        raise SpecError(f"instance counter out of range: {counter}")
    return struct.pack("<Q", counter)


class Prg:
    """A seekable keystream: ``Prg(seed, dst, binder)``.

    Implements spec §2.1.2 `Prg` (spec/02-randomness.md#prg).

    key = SHAKE-256(lp("secmoe/v1/prg-key") || lp(seed) || lp(dst) || lp(binder))[0:16];
    byte p of the stream is byte p mod 16 of AES-128_key(int_to_be128(p div 16)).
    """

    def __init__(self, seed: bytes, dst: bytes, binder: bytes = b"") -> None:
        if not isinstance(seed, bytes | bytearray) or len(seed) != SEED_BYTES:
            raise SpecError(f"a PRG seed is exactly {SEED_BYTES} bytes")
        material = lp(_KEY_TAG) + lp(bytes(seed)) + lp(bytes(dst)) + lp(bytes(binder))
        self._key = hashlib.shake_256(material).digest(16)
        self._aes = algorithms.AES(self._key)
        self.position = 0

    def keystream(self, offset: int, n: int) -> bytes:
        """Bytes [offset, offset + n) of the stream, without moving :attr:`position`."""
        if n < 0 or offset < 0 or offset + n > _MAX_STREAM:
            raise SpecError("keystream request out of range")
        if n == 0:
            return b""
        block, skip = divmod(offset, 16)
        enc = Cipher(self._aes, modes.CTR(block.to_bytes(16, "big"))).encryptor()
        # update_into (15 bytes of slack, the API's rule) is an order of magnitude faster than
        # update() on large requests; the bytes are the same.
        buf = bytearray(skip + n + 15)
        enc.update_into(bytes(skip + n), buf)
        return bytes(memoryview(buf)[skip : skip + n])

    def next_bytes(self, n: int) -> bytes:
        """The next n bytes of the stream.

        Implements spec §2.3.1 `next_bytes` (spec/02-randomness.md#next_bytes).
        """
        out = self.keystream(self.position, n)
        self.position += n
        return out

    def next_u64(self, n: int) -> NDArray[np.uint64]:
        """n words, each 8 stream bytes read little-endian."""
        return np.frombuffer(self.next_bytes(8 * n), dtype="<u8").astype(np.uint64)

    def next_ring(self, n: int, bits: int = 64) -> RingVec:
        """n uniform elements of Z_{2^bits}: 8 bytes little-endian each, masked to ``bits`` bits.

        Implements spec §2.3.2 `next_ring` (spec/02-randomness.md#next_ring). Masking has no
        bias because 2^bits divides 2^64.
        """
        if not 1 <= bits <= 64:
            raise SpecError(f"bits must be in [1, 64], got {bits}")
        words = self.next_u64(n)
        return words if bits == 64 else words & np.uint64((1 << bits) - 1)

    def next_bits(self, n: int) -> BitVec:
        """n uniform bits from ceil(n/8) stream bytes, least significant bit first.

        Implements spec §2.3.3 `next_bits` (spec/02-randomness.md#next_bits).
        """
        raw = np.frombuffer(self.next_bytes((n + 7) // 8), dtype=np.uint8)
        return np.unpackbits(raw, bitorder="little")[:n].copy()

    def next_below(self, n: int, bound: int) -> NDArray[np.uint64]:
        """n uniform integers in [0, bound), 1 <= bound <= 2^64, by rejection.

        Implements spec §2.3.4 `next_below` (spec/02-randomness.md#next_below): candidates are
        consecutive 8-byte little-endian words w; w is accepted iff w < bound * floor(2^64 /
        bound), and then yields w mod bound. Exactly the bytes of the candidates examined
        up to the n-th acceptance are consumed.
        """
        if not 1 <= bound <= 1 << 64:
            raise SpecError(f"bound must be in [1, 2^64], got {bound}")
        if bound == 1 << 64:
            return self.next_u64(n)
        limit = np.uint64(bound * ((1 << 64) // bound) - 1)  # largest accepted word
        out = np.empty(n, dtype=np.uint64)
        filled = 0
        while filled < n:
            need = n - filled
            # Over-draw by (a bound on) the expected rejection rate, then give back what is
            # unused; the output does not depend on the batch size. The rate is below
            # bound / 2^64, so below 2^-10 for bounds under 2^54.
            batch = need + (need >> 9 if bound < 1 << 54 else need // 2) + 8
            start = self.position
            words = np.frombuffer(self.keystream(start, 8 * batch), dtype="<u8").astype(np.uint64)
            ok = np.flatnonzero(words <= limit)
            take = ok[:need]
            out[filled : filled + take.size] = words[take] % np.uint64(bound)
            filled += take.size
            used = int(take[-1]) + 1 if take.size == need else batch
            self.position = start + 8 * used
        return out


def instance_prg(seed: bytes, protocol: str, usage: str, counter: int) -> Prg:
    """The PRG of the counter-th instance of (protocol, usage) for the party holding ``seed``.

    Implements spec §2.2.2 `instance_prg` (spec/02-randomness.md#instance_prg):
    ``Prg(seed, dst(protocol, usage), binder_u64(counter))``.
    """
    return Prg(seed, dst(protocol, usage), binder_u64(counter))


def derive_seed(seed: bytes, label: str) -> bytes:
    """A 32-byte child seed: ``Prg(seed, b"secmoe/v1/seed/" + label).next_bytes(32)``.

    Implements spec §2.4.1 `derive_seed` (spec/02-randomness.md#derive_seed).
    """
    return Prg(seed, dst("seed", label)).next_bytes(SEED_BYTES)


def system_seed() -> bytes:
    """A fresh 32-byte seed from the operating system (the one place secmoe reads entropy)."""
    return os.urandom(SEED_BYTES)
