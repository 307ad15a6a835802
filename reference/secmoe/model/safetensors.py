"""The safetensors file format (spec/06-models.md#68-loading-checkpoint-weights).

The reader validates the whole header itself (an 8-byte little-endian header length, a JSON
header, a row-major little-endian byte buffer, checked more strictly than the ``safetensors``
package does), then reads only the tensors asked for: F64, F32 and F16 through the package's
numpy API, BF16 (which numpy has no dtype for) by its own conversion. The writer is its own:
it rounds once to the target dtype and writes the bytes spec §6.8.2 defines.
"""

from __future__ import annotations

import json
import math
import os
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal, get_args

import numpy as np
from numpy.typing import ArrayLike, NDArray
from safetensors import SafetensorError, safe_open

from secmoe.errors import SpecError

Floats = NDArray[np.float64]
StrPath = str | os.PathLike[str]

# The reference implementation refuses larger headers before parsing them (a JSON bomb guard).
MAX_HEADER_BYTES = 100_000_000
# The reference writer pads the header with spaces to this multiple so the buffer is aligned.
HEADER_ALIGN = 8
# Element sizes of every dtype the format defines, so that any valid file can be validated even
# where it holds tensors this loader does not convert.
DTYPE_SIZES: dict[str, int] = {
    "BOOL": 1,
    "U8": 1,
    "I8": 1,
    "F8_E5M2": 1,
    "F8_E4M3": 1,
    "I16": 2,
    "U16": 2,
    "F16": 2,
    "BF16": 2,
    "I32": 4,
    "U32": 4,
    "F32": 4,
    "I64": 8,
    "U64": 8,
    "F64": 8,
}
FloatDtype = Literal["F64", "F32", "F16", "BF16"]
FLOAT_DTYPES: tuple[FloatDtype, ...] = get_args(FloatDtype)
_NUMPY_LE = {"F64": "<f8", "F32": "<f4", "F16": "<f2"}
_ENTRY_KEYS = frozenset({"dtype", "shape", "data_offsets"})
METADATA_KEY = "__metadata__"


@dataclass(frozen=True)
class TensorEntry:
    """One tensor of a safetensors header; offsets are relative to the byte buffer."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int


@dataclass(frozen=True)
class SafetensorsHeader:
    """A validated header: where the buffer starts in the file, the tensors, the metadata."""

    path: Path
    data_start: int  # 8 + N
    entries: dict[str, TensorEntry]
    metadata: dict[str, str]


def _nat(value: object) -> bool:
    # bool is an int subclass, and JSON true is not a dimension.
    return type(value) is int and value >= 0


def unique_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in pairs:
        if key in out:
            raise SpecError(f"safetensors header: duplicate key {key!r}")
        out[key] = value
    return out


def _no_constants(name: str) -> object:
    raise SpecError(f"safetensors header: {name} is not JSON")


def _entry(name: str, raw: object) -> TensorEntry:
    where = f"safetensors header: tensor {name!r}"
    if not isinstance(raw, dict) or set(raw) != _ENTRY_KEYS:
        got = sorted(raw) if isinstance(raw, dict) else type(raw).__name__
        raise SpecError(f"{where} must have exactly the keys {sorted(_ENTRY_KEYS)}, got {got}")
    dtype, shape, offsets = raw["dtype"], raw["shape"], raw["data_offsets"]
    if not isinstance(dtype, str) or dtype not in DTYPE_SIZES:
        raise SpecError(f"{where} has unknown dtype {dtype!r} (known: {sorted(DTYPE_SIZES)})")
    if not isinstance(shape, list) or not all(_nat(s) for s in shape):
        raise SpecError(f"{where}: shape must be a list of integers >= 0, got {shape!r}")
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(_nat(o) for o in offsets)
        or offsets[0] > offsets[1]
    ):
        raise SpecError(
            f"{where}: data_offsets must be [begin, end], 0 <= begin <= end, got {offsets!r}"
        )
    begin, end = offsets
    need = math.prod(shape) * DTYPE_SIZES[dtype]
    if end - begin != need:
        raise SpecError(
            f"{where}: data_offsets {offsets} span {end - begin} bytes, but {dtype} of shape "
            f"{shape} needs {need}"
        )
    return TensorEntry(name, dtype, tuple(shape), begin, end)


def read_header(path: StrPath) -> SafetensorsHeader:
    """Read and validate the header of a safetensors file (steps 1-6 of §6.8.1)."""
    p = Path(path)
    try:
        size = p.stat().st_size
        with p.open("rb") as f:
            prefix = f.read(8)
            # Step 1: the header length N, and the header fits in the file.
            if len(prefix) < 8:
                raise SpecError(f"{p}: {size} bytes, shorter than the 8-byte header length")
            (n,) = struct.unpack("<Q", prefix)
            if n > size - 8:
                raise SpecError(f"{p}: header length {n} exceeds the {size - 8} bytes after it")
            if n > MAX_HEADER_BYTES:
                raise SpecError(f"{p}: header length {n} exceeds the limit {MAX_HEADER_BYTES}")
            raw = f.read(n)
    except OSError as exc:
        raise SpecError(f"cannot read safetensors file {p}: {exc}") from exc
    # Step 2: UTF-8 JSON text that begins with '{' (trailing spaces are the format's padding).
    if not raw.startswith(b"{"):
        raise SpecError(f"{p}: the header must begin with '{{', got {raw[:1]!r}")
    try:
        text = raw.decode("utf-8")
        header = json.loads(text, object_pairs_hook=unique_keys, parse_constant=_no_constants)
    except UnicodeDecodeError as exc:
        raise SpecError(f"{p}: the header is not UTF-8: {exc}") from exc
    except (json.JSONDecodeError, RecursionError) as exc:
        raise SpecError(f"{p}: the header is not valid JSON: {exc}") from exc
    if not isinstance(header, dict):
        raise SpecError(f"{p}: the header must be a JSON object")
    # Step 3: the optional metadata, a string-to-string map.
    metadata = header.pop(METADATA_KEY, {})
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise SpecError(f"{p}: {METADATA_KEY} must map strings to strings")
    # Step 4: every entry, its dtype and its size.
    entries = {name: _entry(name, value) for name, value in header.items()}
    # Step 5: offsets inside the buffer, in order, without overlaps or holes.
    buffer_len = size - 8 - n
    pos = 0
    previous = ""
    for e in sorted(entries.values(), key=lambda e: (e.begin, e.end, e.name)):
        if e.end > buffer_len:
            raise SpecError(
                f"{p}: tensor {e.name!r} ends at {e.end}, outside the {buffer_len}-byte buffer"
            )
        if e.begin < pos:
            raise SpecError(f"{p}: tensor {e.name!r} overlaps tensor {previous!r}")
        if e.begin > pos:
            raise SpecError(f"{p}: bytes {pos}..{e.begin} of the buffer belong to no tensor")
        pos, previous = e.end, e.name
    # Step 6: the buffer is entirely indexed.
    if pos != buffer_len:
        raise SpecError(f"{p}: the last {buffer_len - pos} bytes of the buffer belong to no tensor")
    return SafetensorsHeader(p, 8 + n, entries, dict(metadata))


def check_readable(entry: TensorEntry) -> None:
    if entry.dtype not in FLOAT_DTYPES:
        raise SpecError(
            f"tensor {entry.name!r} has dtype {entry.dtype}; only {FLOAT_DTYPES} are read"
        )


def read_entry(f: BinaryIO, header: SafetensorsHeader, entry: TensorEntry) -> Floats:
    check_readable(entry)
    if entry.dtype != "BF16":
        return _package_read(header, entry)
    f.seek(header.data_start + entry.begin)
    count = entry.end - entry.begin
    raw = f.read(count)
    if len(raw) != count:
        raise SpecError(f"{header.path}: tensor {entry.name!r} is truncated (file changed?)")
    # Step 8: a bfloat16 is the upper half of a binary32: shift it back into place (exact).
    bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << np.uint32(16)
    values: NDArray[np.floating] = bits.view(np.float32)
    out: Floats = values.astype(np.float64).reshape(entry.shape)
    return out


def _package_read(header: SafetensorsHeader, entry: TensorEntry) -> Floats:
    """F64, F32, F16 through the ``safetensors`` package's numpy API (the header was validated
    by :func:`read_header` first, which is stricter than the package)."""
    try:
        with safe_open(header.path, framework="numpy") as st:
            values = st.get_tensor(entry.name)
    except (SafetensorError, OSError) as exc:
        raise SpecError(f"{header.path}: tensor {entry.name!r} cannot be read: {exc}") from exc
    if not isinstance(values, np.ndarray) or values.shape != entry.shape:
        raise SpecError(f"{header.path}: tensor {entry.name!r} does not read as {entry.shape}")
    # Step 8: every conversion to binary64 is exact (each source format is a subset of it).
    out: Floats = values.astype(np.float64)
    return out


def read_safetensors(path: StrPath, names: Iterable[str] | None = None) -> dict[str, Floats]:
    """The tensors ``names`` (default: all, sorted) of a safetensors file, as float64 arrays.

    Implements spec §6.8.1 `read_safetensors` (spec/06-models.md#read_safetensors).

    Only the requested tensors' bytes are read (a seek per tensor), so one layer of a multi-GB
    checkpoint costs its own size. F64, F32, F16 and BF16 convert exactly; other dtypes and every
    malformed header raise SpecError.
    """
    # Steps 1-6: the header.
    header = read_header(path)
    # Step 7: the requested names exist and have a float dtype, before any data is read.
    if isinstance(names, str):
        raise SpecError("names must be an iterable of tensor names, not one string")
    wanted = sorted(header.entries) if names is None else list(names)
    for name in wanted:
        if name not in header.entries:
            raise SpecError(f"{header.path}: no tensor named {name!r}")
        check_readable(header.entries[name])
    # Step 8: read and convert each.
    with header.path.open("rb") as f:
        return {name: read_entry(f, header, header.entries[name]) for name in wanted}


@dataclass(frozen=True)
class _BinaryFormat:
    """A binary floating-point format: p significant bits, the frexp exponent of its smallest
    normal value (x = m 2^e, m in [1/2, 1)), its largest finite value."""

    precision: int
    e_min: int
    largest: float


_FORMATS: dict[str, _BinaryFormat] = {
    "F32": _BinaryFormat(24, -125, float.fromhex("0x1.fffffep127")),
    "F16": _BinaryFormat(11, -13, 65504.0),
    "BF16": _BinaryFormat(8, -125, float.fromhex("0x1.fep127")),
}


def _round_to(name: str, a: Floats, dtype: str) -> Floats:
    """``a`` rounded to the nearest value of ``dtype`` (ties to even), directly from binary64.

    Rounding BF16 through F32 would round twice (1 + 2^-8 + 2^-30 would become 1, not
    1 + 2^-7); scaling by the quantum 2^(max(e, e_min) - p) and rounding once does not, and every
    step is exact in binary64.
    """
    fmt = _FORMATS[dtype]
    _, e = np.frexp(a)
    quantum = np.ldexp(1.0, np.maximum(e, fmt.e_min) - fmt.precision)
    out: Floats = np.round(a / quantum) * quantum  # numpy rounds halves to even
    if np.any(np.abs(out) > fmt.largest):
        raise SpecError(f"tensor {name!r} has entries beyond the range of {dtype}")
    return out


def _encode(name: str, value: ArrayLike, dtype: FloatDtype) -> tuple[tuple[int, ...], bytes]:
    a = np.asarray(value)
    if a.dtype.kind not in "fiu":
        raise SpecError(f"tensor {name!r}: a real numeric array is needed, got dtype {a.dtype}")
    # Not ascontiguousarray: it turns a 0-d scalar into shape (1,).
    a = np.asarray(a, dtype=np.float64, order="C")
    if not np.all(np.isfinite(a)):
        raise SpecError(f"tensor {name!r} has NaN or infinite entries")
    shape = tuple(int(s) for s in a.shape)
    if dtype == "F64":
        return shape, a.astype("<f8").tobytes()
    # Every cast below is exact: the values are already in the target format.
    r = _round_to(name, a, dtype)
    if dtype == "BF16":
        upper = r.astype(np.float32).view(np.uint32) >> np.uint32(16)
        return shape, upper.astype("<u2").tobytes()
    return shape, r.astype(_NUMPY_LE[dtype]).tobytes()


def write_safetensors(
    path: StrPath,
    tensors: Mapping[str, ArrayLike],
    dtype: FloatDtype = "F32",
    metadata: Mapping[str, str] | None = None,
) -> None:
    """Write ``tensors`` as a safetensors file, every tensor in ``dtype``; deterministic bytes.

    Implements spec §6.8.2 `write_safetensors` (spec/06-models.md#write_safetensors).

    Values are rounded once to the nearest ``dtype`` value, ties to even; non-finite values or
    values beyond the dtype's range raise SpecError.
    """
    # Step 1: arguments.
    if dtype not in FLOAT_DTYPES:
        raise SpecError(f"dtype must be one of {FLOAT_DTYPES}, got {dtype!r}")
    meta = dict(metadata or {})
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
        raise SpecError(f"{METADATA_KEY} must map strings to strings")
    for name in tensors:
        if not isinstance(name, str) or not name or name == METADATA_KEY:
            raise SpecError(f"invalid tensor name {name!r}")
    # Step 2: names in sorted order, each tensor encoded, offsets contiguous from 0.
    header: dict[str, object] = {}
    if meta:
        header[METADATA_KEY] = {k: meta[k] for k in sorted(meta)}
    blobs: list[bytes] = []
    offset = 0
    for name in sorted(tensors):
        shape, blob = _encode(name, tensors[name], dtype)
        header[name] = {
            "dtype": dtype,
            "shape": list(shape),
            "data_offsets": [offset, offset + len(blob)],
        }
        offset += len(blob)
        blobs.append(blob)
    # Step 3: compact JSON, padded with spaces to a multiple of 8 bytes.
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-len(text) % HEADER_ALIGN)
    # Step 4: N, the header, the buffer.
    try:
        with Path(path).open("wb") as f:
            f.write(struct.pack("<Q", len(text)))
            f.write(text)
            for blob in blobs:
                f.write(blob)
    except OSError as exc:
        raise SpecError(f"cannot write safetensors file {path}: {exc}") from exc
