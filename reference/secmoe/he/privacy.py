"""Circuit privacy: mask, re-randomise and flood before the client decrypts (spec/20-he.md §20.5)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from secmoe.encoding import Ring
from secmoe.errors import SpecError
from secmoe.he import bfv, rns
from secmoe.he.bfv import Ciphertext, PublicKey, SecretKey
from secmoe.he.noise import flood_bits, max_floodable_bits
from secmoe.randomness import Prg

U64 = NDArray[np.uint64]


@dataclass(frozen=True)
class ClientKeys:
    """What the server holds of the client's keys: pk (for s) and, for degree-2 results, pk2 (for s^2)."""

    pk: PublicKey
    pk2: PublicKey | None = None


def mask_and_flood(
    ct: Ciphertext, keys: ClientKeys, prg: Prg, noise_bound_bits: float
) -> tuple[Ciphertext, U64]:
    """The server's last step before sending a result: returns (ciphertext, server's share).

    Implements spec §20.5.1 `mask_and_flood` (spec/20-he.md#mask_and_flood).

    1. r = prg.next_ring(N, 64); the ciphertext now encrypts m + r; the server's share is -r.
    2. Add Enc_pk(0) (and, for degree 2, Enc_pk2(0)): parts 1 and 2 become fresh-looking.
    3. Add to c_0 noise uniform in [-2^(F-1), 2^(F-1)), F = flood_bits(params).

    Raises:
        SpecError: if ``noise_bound_bits`` (the analytic bound of the circuit, spec §20.5)
            exceeds what flooding can hide with 2^-40 statistical distance.
    """
    p = ct.params
    if noise_bound_bits > max_floodable_bits(p):
        raise SpecError(
            f"noise bound 2^{noise_bound_bits:.1f} too large to flood at {p.name} (at most 2^{max_floodable_bits(p)})"
        )
    if ct.degree == 2 and keys.pk2 is None:
        raise SpecError("a degree-2 result needs the client's pk2 to re-randomise")
    # Step 1: mask.
    r = prg.next_ring(p.n, 64)
    out = bfv.ct_add_plain(ct, r)
    zero = np.zeros(p.n, dtype=np.uint64)
    # Step 2: re-randomise every non-constant part.
    out = bfv.ct_add(out, bfv.encrypt_pk(keys.pk, zero, prg))
    if ct.degree == 2:
        assert keys.pk2 is not None
        out = bfv.ct_add(out, bfv.encrypt_pk(keys.pk2, zero, prg))
    # Step 3: flood the noise.
    noise = rns.wide_uniform_residues(prg, p.n, flood_bits(p), p.q_primes)
    out.parts[0] = rns.add(out.parts[0], noise, p.q_primes)
    return Ciphertext(p, out.parts), Ring(64).neg(r)


def decrypt_share(sk: SecretKey, ct: Ciphertext) -> U64:
    """The client's share: the decryption m + r.

    Implements spec §20.5.2 `decrypt_share` (spec/20-he.md#decrypt_share).
    """
    return bfv.decrypt(sk, ct)
