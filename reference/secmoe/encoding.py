"""The ring Z_{2^l}, fixed-point encoding and byte encodings (spec/01-encoding.md).

Ring elements live in ``numpy.uint64`` arrays holding the canonical representative in
``[0, 2^l)``. numpy's uint64 arithmetic wraps mod 2^64, which is the ring for l = 64; for
l < 64 every operation here reduces with the mask ``2^l - 1`` explicitly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from secmoe.errors import Party, ProtocolError, SpecError

RingVec = NDArray[np.uint64]
BitVec = NDArray[np.uint8]

DEFAULT_RING_BITS = 64
DEFAULT_FRAC_BITS = 18


@dataclass(frozen=True)
class Ring:
    """The ring Z_{2^l} with l in [1, 64].

    Implements spec §1.1.1 `Ring` (spec/01-encoding.md#ring).
    """

    bits: int = DEFAULT_RING_BITS

    def __post_init__(self) -> None:
        if not isinstance(self.bits, int) or not 1 <= self.bits <= 64:
            raise SpecError(f"ring bit width l must be an integer in [1, 64], got {self.bits!r}")

    @property
    def mask(self) -> np.uint64:
        return np.uint64((1 << self.bits) - 1)

    @property
    def modulus(self) -> int:
        return 1 << self.bits

    @property
    def byte_width(self) -> int:
        """Bytes one element takes on the wire: ceil(l / 8)."""
        return (self.bits + 7) // 8

    def reduce(self, a: NDArray[np.uint64]) -> RingVec:
        if self.bits == 64:
            return a
        return a & self.mask

    def from_int(self, values: ArrayLike) -> RingVec:
        """Map Python/numpy integers of any sign to their residues mod 2^l."""
        if isinstance(values, list | tuple | int):
            # Python integers of any size and sign: reduce exactly, without a float detour.
            arr = np.asarray(values, dtype=object)
            flat = [int(v) % (1 << 64) for v in arr.reshape(-1)]
            return self.reduce(np.array(flat, dtype=np.uint64).reshape(arr.shape))
        arr = np.asarray(values)
        if arr.dtype == np.uint64:
            return self.reduce(arr.copy())
        if arr.dtype.kind in "iu":
            return self.reduce(arr.astype(np.int64, copy=False).view(np.uint64).copy())
        if arr.dtype == object or arr.size == 0:
            flat = [int(v) % (1 << 64) for v in arr.reshape(-1)]
            out = np.array(flat, dtype=np.uint64).reshape(arr.shape)
            return self.reduce(out)
        raise SpecError(f"ring elements must be integers, got dtype {arr.dtype}")

    def check(self, a: NDArray[np.uint64], what: str = "value") -> RingVec:
        """Return ``a`` if it is a uint64 array of canonical residues, else raise SpecError."""
        if not isinstance(a, np.ndarray) or a.dtype != np.uint64:
            raise SpecError(f"{what} must be a numpy uint64 array")
        if self.bits < 64 and np.any(a > self.mask):
            raise SpecError(f"{what} has elements >= 2^{self.bits}")
        return a

    def add(self, a: RingVec, b: RingVec) -> RingVec:
        return self.reduce(a + b)

    def sub(self, a: RingVec, b: RingVec) -> RingVec:
        return self.reduce(a - b)

    def neg(self, a: RingVec) -> RingVec:
        return self.reduce(np.uint64(0) - a)

    def mul(self, a: RingVec, b: RingVec) -> RingVec:
        return self.reduce(a * b)

    def matmul(self, a: RingVec, b: RingVec) -> RingVec:
        """Matrix product mod 2^l (exact: uint64 products and sums wrap mod 2^64)."""
        return self.reduce(np.matmul(a, b))

    def to_signed(self, a: RingVec) -> NDArray[np.int64]:
        """Two's complement reading: residues >= 2^(l-1) map to negative integers."""
        if self.bits == 64:
            return a.view(np.int64)
        half = np.uint64(1 << (self.bits - 1))
        signed = a.astype(np.int64)
        # a - 2^l in two steps: 2^l itself overflows int64 when l = 63.
        half_i = np.int64(1 << (self.bits - 1))
        return np.where(a >= half, signed - half_i - half_i, signed)

    def msb(self, a: RingVec) -> BitVec:
        """The most significant bit (bit l-1) of each element."""
        return ((a >> np.uint64(self.bits - 1)) & np.uint64(1)).astype(np.uint8)

    def shift_right_arith(self, a: RingVec, s: int) -> RingVec:
        """floor(signed(a) / 2^s) mod 2^l: the exact local truncation of a public value."""
        if not 0 <= s < self.bits:
            raise SpecError(f"shift must be in [0, l), got {s}")
        return self.from_int(self.to_signed(a) >> np.int64(s))

    # --- byte encoding: spec §1.4 ring_vec_encode / ring_vec_decode ---------------------------

    def encode_vec(self, a: RingVec) -> bytes:
        """See :func:`ring_vec_encode`."""
        return ring_vec_encode(self, a)

    def decode_vec(
        self, data: bytes, n: int, *, label: str = "", party: Party | None = None
    ) -> RingVec:
        """See :func:`ring_vec_decode`."""
        return ring_vec_decode(self, data, n, label=label, party=party)


def ring_vec_encode(ring: Ring, a: RingVec) -> bytes:
    """Byte encoding of a ring vector, row-major, each element ceil(l/8) bytes little-endian.

    Implements spec §1.4.1 `ring_vec_encode` (spec/01-encoding.md#ring_vec_encode).
    """
    a = ring.check(np.ascontiguousarray(a), "ring vector")
    le = a.reshape(-1).astype("<u8").view(np.uint8).reshape(-1, 8)
    return le[:, : ring.byte_width].tobytes()


def ring_vec_decode(
    ring: Ring, data: bytes, n: int, *, label: str = "", party: Party | None = None
) -> RingVec:
    """Inverse of :func:`ring_vec_encode` for exactly ``n`` elements.

    Implements spec §1.4.2 `ring_vec_decode` (spec/01-encoding.md#ring_vec_decode).

    Raises:
        ProtocolError: ``wrong_length`` if ``len(data) != n * ceil(l/8)``; ``out_of_range``
            if an element has a bit at or above position l set.
    """
    w = ring.byte_width
    if len(data) != n * w:
        raise ProtocolError(
            "wrong_length",
            party,
            label,
            f"expected {n * w} bytes for {n} elements, got {len(data)}",
        )
    raw = np.frombuffer(data, dtype=np.uint8).reshape(n, w)
    padded = np.zeros((n, 8), dtype=np.uint8)
    padded[:, :w] = raw
    out = padded.view("<u8").reshape(n).astype(np.uint64)
    if ring.bits < 64 and np.any(out > ring.mask):
        raise ProtocolError("out_of_range", party, label, f"element >= 2^{ring.bits}")
    return out


@dataclass(frozen=True)
class FixedPoint:
    """Fixed-point numbers with f fractional bits in Z_{2^l}.

    Implements spec §1.2.1 `FixedPoint` (spec/01-encoding.md#fixedpoint).
    """

    ring: Ring = Ring()
    frac_bits: int = DEFAULT_FRAC_BITS

    def __post_init__(self) -> None:
        if not isinstance(self.frac_bits, int) or not 0 <= self.frac_bits < self.ring.bits:
            raise SpecError(f"frac_bits f must satisfy 0 <= f < l, got {self.frac_bits!r}")

    @property
    def scale(self) -> float:
        return float(1 << self.frac_bits)

    def encode(self, x: ArrayLike) -> RingVec:
        """See :func:`fxp_encode`."""
        return fxp_encode(self, x)

    def decode(self, a: RingVec) -> NDArray[np.float64]:
        """See :func:`fxp_decode`."""
        return fxp_decode(self, a)

    def trunc(self, a: RingVec, s: int | None = None) -> RingVec:
        """See :func:`fxp_trunc`."""
        return fxp_trunc(self, a, s)

    def mul(self, a: RingVec, b: RingVec) -> RingVec:
        """Fixed-point product of public values: ring product, then ``fxp_trunc`` by f."""
        return fxp_trunc(self, self.ring.mul(a, b))


def fxp_encode(fxp: FixedPoint, x: ArrayLike) -> RingVec:
    """Encode reals: v = floor(x * 2^f + 1/2), which must lie in [-2^(l-1), 2^(l-1)).

    Implements spec §1.2.2 `fxp_encode` (spec/01-encoding.md#fxp_encode).

    Raises:
        SpecError: on NaN, infinity, or a value whose encoding is out of range (no silent
            wrap-around).
    """
    arr = np.asarray(x, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise SpecError("fixed-point encode: input has NaN or infinity")
    # Scaling by a power of two is exact in float64, and so is floor(y + 1/2): wherever y has
    # a fractional part, y + 1/2 is representable.
    # In place after the first product: a model's weight stack can be gigabytes.
    v = np.asarray(arr * fxp.scale)  # an array also when x is a scalar
    v += 0.5
    np.floor(v, out=v)
    bound = float(1 << (fxp.ring.bits - 1))
    bad = (v < -bound) | (v >= bound)
    if np.any(bad):
        first = arr.reshape(-1)[int(np.argmax(bad.reshape(-1)))]
        e = fxp.ring.bits - 1 - fxp.frac_bits
        raise SpecError(f"fixed-point encode: {first!r} is outside the range [-2^{e}, 2^{e})")
    del bad
    ints = v.astype(np.int64)
    del v
    return fxp.ring.from_int(ints)


def fxp_decode(fxp: FixedPoint, a: RingVec) -> NDArray[np.float64]:
    """Decode: signed(a) / 2^f (the int64 to float64 conversion rounds to nearest even).

    Implements spec §1.2.3 `fxp_decode` (spec/01-encoding.md#fxp_decode).
    """
    signed = fxp.ring.to_signed(fxp.ring.check(np.asarray(a), "fixed-point value"))
    return signed.astype(np.float64) / fxp.scale


def fxp_trunc(fxp: FixedPoint, a: RingVec, s: int | None = None) -> RingVec:
    """Exact truncation of a public value by s bits (default f): floor(signed(a) / 2^s).

    Implements spec §1.3.1 `fxp_trunc` (spec/01-encoding.md#fxp_trunc).
    """
    return fxp.ring.shift_right_arith(a, fxp.frac_bits if s is None else s)


# --- bit vectors: spec §1.4 bit_vec_encode / bit_vec_decode -------------------------------------


def bit_vec_encode(bits: BitVec) -> bytes:
    """Pack 0/1 values 8 to a byte, bit i at position i mod 8 of byte i div 8 (LSB first).

    Implements spec §1.4.3 `bit_vec_encode` (spec/01-encoding.md#bit_vec_encode).
    """
    b = np.asarray(bits).reshape(-1)
    if b.size and (b.dtype.kind not in "biu" or np.any((b != 0) & (b != 1))):
        raise SpecError("bit vector must hold only 0 and 1")
    return np.packbits(b.astype(np.uint8), bitorder="little").tobytes()


def bit_vec_decode(data: bytes, n: int, *, label: str = "", party: Party | None = None) -> BitVec:
    """Inverse of :func:`bit_vec_encode` for exactly n bits; padding bits must be zero.

    Implements spec §1.4.4 `bit_vec_decode` (spec/01-encoding.md#bit_vec_decode).
    """
    if len(data) != (n + 7) // 8:
        raise ProtocolError(
            "wrong_length",
            party,
            label,
            f"expected {(n + 7) // 8} bytes for {n} bits, got {len(data)}",
        )
    bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8), bitorder="little")
    if np.any(bits[n:]):
        raise ProtocolError(
            "out_of_range", party, label, "padding bits of a bit vector are not zero"
        )
    return bits[:n].copy()


# --- packed vectors of given widths: spec §1.4 packed_encode / packed_decode -----------------------


def packed_encode(values: RingVec, widths: NDArray[np.int64] | int) -> bytes:
    """Element i's low ``widths[i]`` bits, least significant first, concatenated over i and
    packed as one bit vector (§1.4.3): ``ceil(sum widths / 8)`` bytes.

    Implements spec §1.4.5 `packed_encode` (spec/01-encoding.md#packed_encode).
    """
    v = np.asarray(values, dtype=np.uint64).reshape(-1)
    w = np.broadcast_to(np.asarray(widths, dtype=np.int64), v.shape)
    if v.size and (w.min() < 1 or w.max() > 64):
        raise SpecError("packed widths must lie in [1, 64]")
    top = int(w.max()) if v.size else 0
    cols = np.arange(top, dtype=np.uint64)
    bits = ((v[:, None] >> cols[None, :]) & np.uint64(1)).astype(np.uint8)
    live = cols[None, :].astype(np.int64) < w[:, None]
    if np.any(bits[~live]):
        raise SpecError("a packed value has a bit at or above its width")
    return np.packbits(bits[live], bitorder="little").tobytes()


def packed_decode(
    data: bytes,
    widths: NDArray[np.int64] | int,
    n: int,
    *,
    label: str = "",
    party: Party | None = None,
) -> RingVec:
    """Inverse of :func:`packed_encode` for ``n`` elements of the given widths.

    Implements spec §1.4.6 `packed_decode` (spec/01-encoding.md#packed_decode): a wrong length
    is ``ProtocolError(wrong_length)``, a set padding bit ``ProtocolError(out_of_range)``.
    """
    w = np.broadcast_to(np.asarray(widths, dtype=np.int64), (n,))
    total = int(w.sum())
    flat = bit_vec_decode(data, total, label=label, party=party)
    top = int(w.max()) if n else 0
    cols = np.arange(top, dtype=np.uint64)
    live = cols[None, :].astype(np.int64) < w[:, None]
    bits = np.zeros((n, top), dtype=np.uint64)
    bits[live] = flat
    out: RingVec = (
        (bits << cols[None, :]).sum(axis=1, dtype=np.uint64) if n else np.zeros(0, np.uint64)
    )
    return out
