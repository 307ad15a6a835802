"""Vector table of the foundations (spec §1-§4): encoding, PRG, sharing and framing."""

from __future__ import annotations

from typing import Any

import numpy as np

from secmoe.encoding import (
    FixedPoint,
    Ring,
    bit_vec_encode,
    fxp_encode,
    fxp_trunc,
    ring_vec_decode,
    ring_vec_encode,
)
from secmoe.errors import Party, SpecError
from secmoe.net.frame import decode_frame, encode_frame
from secmoe.randomness import Prg, derive_seed, dst, instance_prg
from secmoe.session import PartyContext
from secmoe.sharing import arith_reveal, arith_share, bool_reveal, bool_share, share_add_reveal
from secmoe.vectors.build import (
    hex_bits,
    hex_ring,
)
from secmoe.vectors.play import (
    CaseSpec,
    Group,
    Play,
    bits_of,
    both,
    case_fxp,
    param,
    ring_of,
    table_file,
)
from secmoe.vectors.registry import Json, Note, case_seed, inputs_prg

EDGE = Note("EDGE_CASE", "a boundary of the input domain")
INVALID = Note("INVALID", "an input the function must reject with the stated error")
NORMAL = Note("NORMAL", "an ordinary input")


def _dec(values: np.ndarray) -> list[str]:
    """Integers as decimal strings (JSON numbers above 2^53 are not portable)."""
    return [str(int(v)) for v in np.asarray(values).reshape(-1)]


# --- encoding -----------------------------------------------------------------------------------


def _extremes(fxp: FixedPoint) -> list[float]:
    """Encodable binary64 values at the edges of the range +-2^(l-1-f), in a fixed order."""
    top = 2.0 ** (fxp.ring.bits - 1 - fxp.frac_bits)
    ulp = 2.0**-fxp.frac_bits
    candidates = [
        top - ulp,
        top - 0.75 * ulp,
        float(np.nextafter(top, 0.0)),
        -top,
        -top - 0.25 * ulp,
    ]
    out: list[float] = []
    for x in candidates:
        if x in out:
            continue
        try:
            fxp_encode(fxp, [x])
        except SpecError:
            continue
        out.append(x)
    return out


INVALID_ERROR: Json = {"party": None, "label": ""}  # a local function's error names no party


def _invalid(case_id: str, why: str, base: str, inputs: Json, kind: str) -> CaseSpec:
    error = {"kind": kind, **INVALID_ERROR}
    return CaseSpec(case_id, why, inputs, ("Invalid",), base_id=base, error=error)


def _fxp(inputs: Json, params: Json) -> tuple[Json, Json | None]:
    fxp = case_fxp(params)
    v = fxp_encode(fxp, [float(x) for x in inputs["x"]])
    decoded = [repr(float(d)) for d in fxp.decode(v)]
    return {"v": hex_ring(fxp.ring, v), "decoded": decoded}, None


def _fxp_groups() -> list[Group]:
    groups = []
    for bits, frac in ((64, 18), (32, 12), (16, 8)):
        fxp = FixedPoint(Ring(bits), frac)
        ulp = 2.0**-frac
        top = 2.0 ** (bits - 1 - frac)
        samples: list[tuple[str, list[float], str]] = [
            ("normal/0", [0.0, 1.0, -1.0, 0.5, -2.25, 3.14159], "Normal"),
            (
                "rounding/halves",
                [ulp / 2, -ulp / 2, 1.5 * ulp, -1.5 * ulp, ulp / 4, -ulp * 0.75],
                "Rounding",
            ),
            ("range/extremes", _extremes(fxp), "Range"),
        ]
        prefix = f"encoding.fxp/l{bits}f{frac}"
        comment = f"encode then decode, l={bits}, f={frac}"
        cases = [
            CaseSpec(f"{prefix}/{cid}", comment, {"x": [repr(float(x)) for x in xs]}, (flag,))
            for cid, xs, flag in samples
        ]
        below = -top - ulp if -top - ulp != -top else float(np.nextafter(-top, -np.inf))
        for cid, x, why in (
            ("invalid/too_large", top, "x * 2^f rounds to 2^(l-1), outside the signed range"),
            ("invalid/too_small", below, "x * 2^f rounds below -2^(l-1)"),
            ("invalid/nan", float("nan"), "NaN has no encoding"),
            ("invalid/inf", float("-inf"), "infinity has no encoding"),
        ):
            inputs = {"x": [repr(float(x))]}
            cases.append(
                _invalid(f"{prefix}/{cid}", why, f"{prefix}/normal/0", inputs, "spec_error")
            )
        groups.append(Group({"ring_bits": bits, "frac_bits": frac}, cases))
    return groups


table_file(
    "encoding.fxp",
    "encoding/fxp.json",
    section="1.2",
    anchor="spec/01-encoding.md#fxp_encode",
    params={"ring_bits": 64, "frac_bits": 18},
    header=[
        "Fixed-point encode v = floor(x * 2^f + 1/2) and decode signed(v) / 2^f.",
        "Reals are given as Python repr strings (shortest round-trip decimal of a binary64).",
        "Outputs: v as a ring vector (hex of its wire encoding) and decode(v) as repr strings.",
    ],
    notes={"Normal": NORMAL, "Rounding": EDGE, "Range": EDGE, "Invalid": INVALID},
    fn=_fxp,
    groups=_fxp_groups,
)


def _fxp_trunc(inputs: Json, params: Json) -> tuple[Json, Json | None]:
    fxp = case_fxp(params)
    a = ring_of(fxp.ring, inputs["a"])
    return {"b": hex_ring(fxp.ring, fxp_trunc(fxp, a, int(inputs["s"])))}, None


def _fxp_trunc_groups() -> list[Group]:
    groups = []
    for bits in (64, 20):
        ring = Ring(bits)
        cases = []
        for s in (1, 8, bits - 2):
            case_id = f"encoding.fxp_trunc/l{bits}/s{s}"
            edges = [0, 1, -1, 2**s, -(2**s), 2**s - 1, -(2**s) + 1]
            edges += [2 ** (bits - 1) - 1, -(2 ** (bits - 1))]
            a = np.concatenate(
                [
                    ring.from_int(edges),
                    inputs_prg("encoding.fxp_trunc", case_id).next_ring(4, bits),
                ]
            )
            inputs = {"a": hex_ring(ring, a), "s": s}
            cases.append(CaseSpec(case_id, f"truncate by s={s} in Z_2^{bits}", inputs, ("Sign",)))
        groups.append(Group({"ring_bits": bits}, cases))
    return groups


table_file(
    "encoding.fxp_trunc",
    "encoding/fxp_trunc.json",
    section="1.3",
    anchor="spec/01-encoding.md#fxp_trunc",
    params={"ring_bits": 64, "frac_bits": 18},
    header=["Exact truncation of public values: floor(signed(a) / 2^s) mod 2^l."],
    notes={"Normal": NORMAL, "Sign": EDGE},
    fn=_fxp_trunc,
    groups=_fxp_trunc_groups,
)


def _ring_vec(inputs: Json, params: Json) -> tuple[Json, Json | None]:
    """Encode ``values``; or decode ``bytes`` as ``n`` elements (the invalid cases)."""
    ring = Ring(param(params, "ring_bits"))
    if "bytes" in inputs:
        ring_vec_decode(ring, bytes.fromhex(inputs["bytes"]), param(inputs))
        return {}, None
    values = ring.from_int([int(v) for v in inputs["values"]])
    return {"bytes": ring_vec_encode(ring, values).hex()}, None


def _ring_vec_groups() -> list[Group]:
    groups = []
    for bits in (64, 32, 12, 1):
        ring = Ring(bits)
        values = ring.from_int([0, 1, (1 << bits) - 1, 1 << (bits - 1)])
        case_id = f"encoding.ring_vec/l{bits}/boundary"
        extra = inputs_prg("encoding.ring_vec", case_id).next_ring(3, bits)
        values = np.concatenate([values, extra])
        data = ring_vec_encode(ring, values)
        comment = f"0, 1, 2^l - 1, 2^(l-1) and random elements of Z_2^{bits}"
        cases = [CaseSpec(case_id, comment, {"values": _dec(values)}, ("Boundary",))]
        n = int(values.size)
        if bits < 64 and bits % 8:
            bad = bytearray(data)
            bad[ring.byte_width - 1] |= 0x80  # sets bit 8w-1 >= l of element 0
            cases.append(
                _invalid(
                    f"encoding.ring_vec/l{bits}/invalid/high_bit",
                    "decoding an element with a bit at position >= l set",
                    case_id,
                    {"bytes": bytes(bad).hex(), "n": n},
                    "out_of_range",
                )
            )
        cases.append(
            _invalid(
                f"encoding.ring_vec/l{bits}/invalid/short",
                "decoding one byte fewer than n * ceil(l/8)",
                case_id,
                {"bytes": data[:-1].hex(), "n": n},
                "wrong_length",
            )
        )
        groups.append(Group({"ring_bits": bits}, cases))
    return groups


table_file(
    "encoding.ring_vec",
    "encoding/ring_vec.json",
    section="1.4",
    anchor="spec/01-encoding.md#ring_vec_encode",
    params={},
    header=[
        "Byte encoding of ring vectors: ceil(l/8) bytes little-endian per element.",
        "Values are given as decimal strings; bytes as hex.",
    ],
    notes={"Normal": NORMAL, "Boundary": EDGE, "Invalid": INVALID},
    fn=_ring_vec,
    groups=_ring_vec_groups,
)


def _bit_vec(inputs: Json, params: Json) -> tuple[Json, Json | None]:
    """Encode ``bits``; or decode ``bytes`` as ``n`` bits (the invalid case)."""
    if "bytes" in inputs:
        bits_of(inputs["bytes"], param(inputs))
        return {}, None
    bits = np.asarray(inputs["bits"], dtype=np.uint8)
    return {"bytes": bit_vec_encode(bits).hex()}, None


def _bit_vec_groups() -> list[Group]:
    cases = []
    for n in (1, 8, 13):
        case_id = f"encoding.bit_vec/n{n}"
        bits = inputs_prg("encoding.bit_vec", case_id).next_bits(n)
        flag = "Padding" if n % 8 else "Normal"
        cases.append(CaseSpec(case_id, f"{n} bits", {"bits": [int(b) for b in bits]}, (flag,)))
    data = bytearray(bit_vec_encode(np.asarray(cases[-1].inputs["bits"], dtype=np.uint8)))
    data[-1] |= 0x80
    cases.append(
        _invalid(
            "encoding.bit_vec/invalid/padding",
            "a padding bit (position >= n) is set",
            "encoding.bit_vec/n13",
            {"bytes": bytes(data).hex(), "n": 13},
            "out_of_range",
        )
    )
    return [Group({}, cases)]


table_file(
    "encoding.bit_vec",
    "encoding/bit_vec.json",
    section="1.4",
    anchor="spec/01-encoding.md#bit_vec_encode",
    params={},
    header=[
        "Bit vectors: 8 bits a byte, bit i at position i mod 8 of byte i div 8.",
        "inputs.bits is a JSON array of 0/1 (spec 5.1); bytes are hex.",
    ],
    notes={"Normal": NORMAL, "Padding": EDGE, "Invalid": INVALID},
    fn=_bit_vec,
    groups=_bit_vec_groups,
)


# --- randomness ---------------------------------------------------------------------------------


def _prg(inputs: Json, params: Json) -> tuple[Json, Json | None]:
    """A stream of draws of Prg(seed, dst, binder); or, given the seed only, derive_seed and
    instance_prg."""
    seed = bytes.fromhex(inputs["seed"])
    if "dst" not in inputs:
        return {
            "derive_seed_client": derive_seed(seed, "client").hex(),
            "instance_prg_p_u_2": instance_prg(seed, "p", "u", 2).next_bytes(16).hex(),
        }, None
    prg = Prg(seed, bytes.fromhex(inputs["dst"]), bytes.fromhex(inputs["binder"]))
    out: Json = {"next_bytes_40": prg.next_bytes(40).hex()}
    out["next_ring_3_64"] = _dec(prg.next_ring(3, 64))
    out["next_ring_3_13"] = _dec(prg.next_ring(3, 13))
    out["next_bits_11"] = [int(b) for b in prg.next_bits(11)]
    for q in (3, 12289, 2**61 - 1):
        out[f"next_below_5_{q}"] = _dec(prg.next_below(5, q))
    out["position"] = prg.position
    return out, {"aes_key": prg._key.hex()}


def _prg_groups() -> list[Group]:
    cases = []
    for i, (label, binder) in enumerate(
        (("a", b""), ("b", b"\x00"), ("sharing.arith_share/mask", bytes(8)))
    ):
        case_id = f"randomness.prg/{i}"
        seed = case_seed("randomness.prg", case_id)
        inputs = {"seed": seed.hex(), "dst": dst("test", label).hex(), "binder": binder.hex()}
        cases.append(CaseSpec(case_id, "a stream of draws", inputs))
    seed = case_seed("randomness.prg", "derive")
    comment = "derive_seed(seed, 'client') and instance_prg(seed, 'p', 'u', 2).next_bytes(16)"
    cases.append(CaseSpec("randomness.prg/derive_seed", comment, {"seed": seed.hex()}))
    return [Group({}, cases)]


table_file(
    "randomness.prg",
    "randomness/prg.json",
    section="2",
    anchor="spec/02-randomness.md#prg",
    params={},
    header=[
        "Prg(seed, dst, binder): AES-128-CTR keyed by SHAKE-256 of the length-prefixed inputs.",
        "Each case draws, in order: next_bytes(40), next_ring(3, 64), next_ring(3, 13),",
        "next_bits(11), next_below(5, q) for q = 3, 12289 and 2^61 - 1; then reports the position.",
        "next_bits_11 is a bit vector written as a JSON array of 0/1 (spec 5.1), not hex.",
    ],
    notes={"Normal": NORMAL},
    fn=_prg,
    groups=_prg_groups,
)


# --- sharing ------------------------------------------------------------------------------------

N_SHARED = 5  # elements of the sharing cases


def _owner(inputs: Json, key: str) -> Party:
    """The party whose inputs hold ``key`` (the owner of the shared value)."""
    owners: list[Party] = [p for p in ("client", "server") if key in inputs[p]]
    if len(owners) != 1:
        raise SpecError(f"exactly one party must hold {key!r}")
    return owners[0]


def _play_arith_share(case: Json, params: Json) -> Play:
    fxp = case_fxp(params)
    owner = _owner(case["inputs"], "x")
    x = ring_of(fxp.ring, case["inputs"][owner]["x"])

    def run(ctx: PartyContext) -> Any:
        return arith_share(ctx, owner, x if ctx.party == owner else None, param(params))

    return Play(fxp, run, run, both("share", lambda v: hex_ring(fxp.ring, v)))


def _play_bool_share(case: Json, params: Json) -> Play:
    n = param(params)
    owner = _owner(case["inputs"], "b")
    b = bits_of(case["inputs"][owner]["b"], n)

    def run(ctx: PartyContext) -> Any:
        return bool_share(ctx, owner, b if ctx.party == owner else None, n)

    return Play(case_fxp(params), run, run, both("share", hex_bits))


def _sharing_groups(kind: str) -> list[Group]:
    protocol = f"sharing.{kind}"
    groups = []
    for bits in (64, 16):
        cases = []
        for owner in ("client", "server"):
            case_id = f"{protocol}/l{bits}/{owner}"
            src = inputs_prg(protocol, case_id)
            x = src.next_ring(N_SHARED, bits)
            xb = src.next_bits(N_SHARED)
            value = {"x": hex_ring(Ring(bits), x)} if kind == "arith_share" else {"b": hex_bits(xb)}
            inputs = {p: value if p == owner else {} for p in ("client", "server")}
            cases.append(CaseSpec(case_id, f"the {owner} shares {N_SHARED} elements", inputs))
        frac = 8 if bits < 64 else 18
        groups.append(Group({"ring_bits": bits, "frac_bits": frac, "n": N_SHARED}, cases))
    return groups


table_file(
    "sharing.arith_share",
    "sharing/arith_share.json",
    section="3.2.1",
    anchor="spec/03-sharing.md#arith_share",
    params={"ring_bits": 64},
    header=["The owner sends r = its instance PRG's next_ring(n, l) and keeps x - r."],
    notes={"Normal": NORMAL},
    player=_play_arith_share,
    groups=lambda: _sharing_groups("arith_share"),
)
table_file(
    "sharing.bool_share",
    "sharing/bool_share.json",
    section="3.2.3",
    anchor="spec/03-sharing.md#bool_share",
    params={},
    header=["The owner sends r = its instance PRG's next_bits(n) and keeps b XOR r."],
    notes={"Normal": NORMAL},
    player=_play_bool_share,
    groups=lambda: _sharing_groups("bool_share"),
)


def _play_reveal(case: Json, params: Json) -> Play:
    fxp = case_fxp(params)
    kind, to = case["inputs"]["client"]["kind"], case["inputs"]["client"]["to"]
    arith = kind == "arith"

    def run(ctx: PartyContext, mine: Json) -> Any:
        if arith:
            return arith_reveal(ctx, ring_of(fxp.ring, mine["share"]), to)
        return bool_reveal(ctx, bits_of(mine["share"], param(mine)), to)

    def encode(party: Party, out: Any) -> Json:
        if out is None:
            return {}
        return {"x": hex_ring(fxp.ring, out) if arith else hex_bits(out)}

    inputs = case["inputs"]
    return Play(
        fxp, lambda ctx: run(ctx, inputs["client"]), lambda ctx: run(ctx, inputs["server"]), encode
    )


def _reveal_groups() -> list[Group]:
    ring = Ring(64)
    protocol = "sharing.reveal"
    cases = []
    for kind in ("arith", "bool"):
        for to in ("client", "server", "both"):
            case_id = f"{protocol}/{kind}/{to}"
            src = inputs_prg(protocol, case_id)
            if kind == "arith":
                shares = [hex_ring(ring, src.next_ring(4)) for _ in range(2)]
                n = 4
            else:
                shares = [hex_bits(src.next_bits(9)) for _ in range(2)]
                n = 9
            public = {"n": n, "kind": kind, "to": to}
            inputs = {
                "client": {"share": shares[0], **public},
                "server": {"share": shares[1], **public},
            }
            cases.append(CaseSpec(case_id, f"{kind}_reveal to {to}", inputs))
    return [Group({"ring_bits": 64}, cases)]


table_file(
    "sharing.reveal",
    "sharing/reveal.json",
    section="3.2.2",
    anchor="spec/03-sharing.md#arith_reveal",
    params={"ring_bits": 64},
    header=["arith_reveal and bool_reveal to the client, the server, and both."],
    notes={"Normal": NORMAL},
    player=_play_reveal,
    groups=_reveal_groups,
)


def _play_share_add_reveal(case: Json, params: Json) -> Play:
    fxp = case_fxp(params)
    inputs = case["inputs"]
    x, y = ring_of(fxp.ring, inputs["client"]["x"]), ring_of(fxp.ring, inputs["server"]["y"])

    def encode(party: Party, out: Any) -> Json:
        return {} if out is None else {"sum": hex_ring(fxp.ring, out)}

    return Play(
        fxp, lambda ctx: share_add_reveal(ctx, x), lambda ctx: share_add_reveal(ctx, y), encode
    )


def _share_add_reveal_groups() -> list[Group]:
    fxp = FixedPoint()
    cases = []
    for i, (xs, ys) in enumerate((([1.0, -2.5, 3.25], [10.0, 20.0, -30.0]), ([0.0], [-1e-5]))):
        x, y = fxp_encode(fxp, xs), fxp_encode(fxp, ys)
        inputs = {
            "client": {"x": hex_ring(fxp.ring, x), "n": x.size},
            "server": {"y": hex_ring(fxp.ring, y), "n": y.size},
        }
        cases.append(
            CaseSpec(f"sharing.share_add_reveal/{i}", f"x = {xs}, y = {ys} in fixed point", inputs)
        )
    return [Group({}, cases)]


table_file(
    "sharing.share_add_reveal",
    "sharing/share_add_reveal.json",
    section="3.4.1",
    anchor="spec/03-sharing.md#share_add_reveal",
    params={"ring_bits": 64, "frac_bits": 18},
    header=["The worked example: both share, add locally, open the sum to the client."],
    notes={"Normal": NORMAL},
    player=_play_share_add_reveal,
    groups=_share_add_reveal_groups,
)


# --- framing ------------------------------------------------------------------------------------


def _frame(inputs: Json, params: Json) -> tuple[Json, Json | None]:
    """Encode a frame; or decode ``frame`` (the invalid cases)."""
    if "frame" in inputs:
        decode_frame(bytes.fromhex(inputs["frame"]))
        return {}, None
    payload = bytes.fromhex(inputs["payload"])
    return {"frame": encode_frame(inputs["label"], inputs["round"], payload).hex()}, None


def _frame_groups() -> list[Group]:
    samples = (
        ("net.frame/empty", "a/b", 1, b"", "Empty"),
        ("net.frame/short", "sharing/arith_share", 3, bytes(range(16)), "Normal"),
        ("net.frame/long_label", "x" * 255, 4294967295, b"\xff", "Normal"),
    )
    cases = [
        CaseSpec(
            case_id,
            f"label {label[:20]!r}, round {rnd}, {len(payload)}-byte payload",
            {"label": label, "round": rnd, "payload": payload.hex()},
            (flag,),
        )
        for case_id, label, rnd, payload, flag in samples
    ]
    good = encode_frame("sharing/arith_share", 3, bytes(range(16)))
    crc_bad = bytearray(good)
    crc_bad[-1] ^= 1
    payload_bad = bytearray(good)
    payload_bad[1 + 19 + 12] ^= 0x40
    label_bad = bytearray(good)
    label_bad[1] = ord("A")
    round0 = encode_frame("sharing/arith_share", 1, bytes(range(16)))
    round0 = round0[:20] + bytes(4) + round0[24:]
    mutations = (
        ("truncated", good[:-1], "truncated_frame", "the last CRC byte is missing"),
        ("header_only", good[:5], "truncated_frame", "the buffer ends inside the header"),
        ("trailing", good + b"\x00", "trailing_bytes", "one byte after the frame"),
        ("crc", bytes(crc_bad), "bad_checksum", "the CRC's low bit is flipped"),
        ("payload", bytes(payload_bad), "bad_checksum", "one payload bit is flipped"),
        ("label", bytes(label_bad), "bad_label", "an upper-case letter in the label"),
        ("round0", round0, "bad_round", "round 0"),
    )
    for name, data, kind, why in mutations:
        inputs = {"frame": data.hex()}
        cases.append(_invalid(f"net.frame/invalid/{name}", why, "net.frame/short", inputs, kind))
    return [Group({}, cases)]


table_file(
    "net.frame",
    "net/frame.json",
    section="4.1",
    anchor="spec/04-messages.md#encode_frame",
    params={},
    header=[
        "Frames: label_len u8 | label | round u32 LE | payload_len u64 LE | payload | crc32 LE.",
        "Invalid cases give a byte string that decode_frame must reject with the stated kind.",
    ],
    notes={"Normal": NORMAL, "Empty": EDGE, "Invalid": INVALID},
    fn=_frame,
    groups=_frame_groups,
)
