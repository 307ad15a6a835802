"""Prepared expert weights (spec/40-moe.md §40.7): the multiply-accumulate equals dot_ntt's sum,
the prepared layer is bit-identical to the unprepared one (same transcript, same outputs), and
the cache file is keyed, checked and rebuilt."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import numpy as np
import pytest
from costs import measured_run
from hypothesis import given, settings
from hypothesis import strategies as st

from secmoe.errors import SpecError
from secmoe.he import modp, packing
from secmoe.he.params import preset
from secmoe.model.config import MoEConfig
from secmoe.model.default import default_weights
from secmoe.model.fixed import FixedWeights, encode_weights, moe_fixed
from secmoe.moe import prepare
from secmoe.moe.layer import moe
from secmoe.moe.mac import MAC_BATCH, plain_multiply_add, select_mac
from secmoe.moe.select import _block_ntt, expert_shape, select_params
from secmoe.randomness import Prg, dst

CONFIG = MoEConfig(d_model=8, d_ff=16, n_experts=4)


@settings(max_examples=10, deadline=None)
@given(st.integers(1, 9), st.integers(1, 3), st.integers(1, MAC_BATCH), st.integers(0, 2**32 - 1))
def test_select_mac_equals_the_exact_sum(experts: int, parts: int, count: int, seed: int) -> None:
    """Each of up to MAC_BATCH blocks taken at once gets its own exact sum."""
    p = preset("toy")
    rng = np.random.default_rng(seed)
    col = np.array(p.q_primes, dtype=np.uint64).reshape(1, -1, 1)
    shape = (experts, len(p.q_primes), p.n)
    ws = [
        (rng.integers(0, 2**31, shape, dtype=np.uint64) % col).astype(np.uint32)
        for _ in range(count)
    ]
    s = rng.integers(0, 2**31, (experts, parts, len(p.q_primes), p.n), dtype=np.uint64) % col
    got = select_mac(ws, s, p.q_primes)
    assert got.shape == (count, parts, len(p.q_primes), p.n)
    for w, one in zip(ws, got, strict=True):
        want = modp.dot(w.astype(np.uint64)[:, None], s, modp.moduli(p.q_primes))
        assert np.array_equal(one, want)
        exact = (w.astype(object)[:, None] * s.astype(object)).sum(axis=0) % col.astype(object)
        assert np.array_equal(one.astype(object), exact)
        assert np.array_equal(select_mac([w], s, p.q_primes)[0], one)
    assert plain_multiply_add(ws[0], s).shape == got.shape[1:]


def test_select_mac_refuses_mismatched_shapes() -> None:
    p = preset("toy")
    w = np.zeros((2, len(p.q_primes), p.n), dtype=np.uint32)
    s = np.zeros((2, 2, len(p.q_primes), p.n), dtype=np.uint64)
    with pytest.raises(SpecError):
        select_mac([w], np.zeros((3, 2, len(p.q_primes), p.n), dtype=np.uint64), p.q_primes)
    with pytest.raises(SpecError, match="blocks"):
        select_mac([], s, p.q_primes)
    with pytest.raises(SpecError, match="blocks"):
        select_mac([w] * (MAC_BATCH + 1), s, p.q_primes)
    with pytest.raises(SpecError, match="share"):
        select_mac([w, w.astype(np.uint64)], s, p.q_primes)


def fixed(seed: int) -> FixedWeights:
    return encode_weights(CONFIG, default_weights(CONFIG, bytes([seed]) * 32))


def run(fw: FixedWeights, x: np.ndarray) -> tuple[np.ndarray, list[tuple[str, int, str]]]:
    ring = CONFIG.fxp.ring
    xc = Prg(bytes(32), dst("test", "prepare")).next_ring(x.size).reshape(x.shape)
    xs = ring.sub(x, xc)
    _, res = measured_run(
        lambda c: moe(c, CONFIG, xc, None),
        lambda c: moe(c, CONFIG, xs, fw),
        CONFIG.fxp,
        record="hash",
    )
    y = ring.add(res.client.y, res.server.y)
    return y, [(e.label, e.length, e.sha256) for e in res.transcript]


@pytest.mark.parametrize("in_memory", [True, False])
def test_prepared_layer_is_bit_identical(tmp_path: Path, in_memory: bool) -> None:
    fw = fixed(5)
    x = CONFIG.fxp.encode(np.linspace(-1.0, 1.0, CONFIG.d_model).reshape(1, -1))
    y0, t0 = run(fw, x)
    budget = 1 << 40 if in_memory else 0
    model = prepare.prepare_model(CONFIG, fw, tmp_path, budget)
    try:
        assert prepare.lookup(fw) is model
        assert all(s.in_memory == in_memory for s in model.stacks.values())
        y1, t1 = run(fw, x)
    finally:
        prepare.forget(fw)
    assert np.array_equal(y0, y1)
    assert np.array_equal(y1, moe_fixed(CONFIG, fw, x).y)
    assert t0 == t1
    kept, in_files = prepare.prepared_sizes(CONFIG, budget)
    assert (kept, in_files) == (model.memory_bytes, model.nbytes - model.memory_bytes)
    files = sorted((tmp_path / "prepared").glob("*.bin")) if not in_memory else []
    assert len(files) == (0 if in_memory else 3)
    if not in_memory:
        assert model.read_stats().bytes_read == model.nbytes
        assert sum(f.stat().st_size for f in files) == model.nbytes + 3 * prepare.HEADER_BYTES


@pytest.mark.parametrize("keep", [0, 1, 3, 4, 9])
def test_a_file_with_some_blocks_in_memory(tmp_path: Path, keep: int) -> None:
    """A stack of four blocks in its file with ``keep`` of them also in memory: the same blocks
    in the same order, the kept blocks' bytes in memory, only the rest read from the file;
    ``memory_plan`` keeps the blocks that fit the budget left."""
    p = select_params()
    shape = packing.MatmulShape(1, CONFIG.d_model, CONFIG.d_ff, 1, 8, 4)
    w = CONFIG.fxp.ring.to_signed(fixed(7).w1)
    mem = prepare.prepare_stack(p, shape, w, _block_ntt, True)
    stack = prepare.prepare_stack(p, shape, w, _block_ntt, False, tmp_path, keep)
    block = stack.block_words * prepare.WORD_BYTES
    got = [(bo, bi, b.copy()) for bo, bi, b in stack.blocks()]
    want = list(mem.blocks())
    assert [(bo, bi) for bo, bi, _ in got] == [(bo, bi) for bo, bi, _ in want] and len(got) == 4
    assert all(np.array_equal(a[2], b[2]) for a, b in zip(got, want, strict=True))
    assert stack.memory_bytes == min(keep, 4) * block
    assert stack.stats.bytes_read == (4 - min(keep, 4)) * block
    plan = prepare.memory_plan([shape, shape], block, 4 * block + keep * block)
    assert plan == [(True, 4), (keep >= 4, min(keep, 4))]


@pytest.mark.parametrize("keep", [0, 5])
def test_a_streamed_batch_stays_valid_while_the_reader_reuses_buffers(
    tmp_path: Path, keep: int
) -> None:
    """Sixteen blocks, more than the reader's buffers: taken MAC_BATCH at a time, as
    expert_matmul takes them, every block of a batch still holds its own residues when the
    batch is complete (the reader reuses a buffer only after MAC_BATCH more were asked for)."""
    p = select_params()
    shape = packing.MatmulShape(1, CONFIG.d_model, CONFIG.d_ff, 1, 8, 1)
    w = CONFIG.fxp.ring.to_signed(fixed(8).w1)
    want = [b for _, _, b in prepare.prepare_stack(p, shape, w, _block_ntt, True).blocks()]
    stack = prepare.prepare_stack(p, shape, w, _block_ntt, False, tmp_path, keep)
    assert len(want) == 16 > prepare.MAC_BATCH + prepare.READ_AHEAD
    stream = stack.blocks()
    got = 0
    while batch := list(itertools.islice(stream, MAC_BATCH)):
        time.sleep(0.05)  # time for the reader to refill any buffer it was handed back
        for _, _, block in batch:
            assert np.array_equal(block, want[got])
            got += 1
    assert got == 16 and stack.stats.bytes_read == (16 - keep) * stack.block_words * 4


@pytest.mark.parametrize(
    ("blocks", "keep", "want"),
    [
        (4, 0, []),
        (4, 1, [3]),
        (4, 2, [1, 3]),
        (4, 4, [0, 1, 2, 3]),
        (4, 9, [0, 1, 2, 3]),
        (5, 2, [2, 4]),
        (192, 73, None),
    ],
)
def test_kept_blocks_are_spread_over_the_file(
    blocks: int, keep: int, want: list[int] | None
) -> None:
    """floor((j + 1) keep / blocks) > floor(j keep / blocks): ``keep`` sorted indices whose gaps
    differ by at most one (at Switch-Base size, E = 128: 73 of 192)."""
    got = prepare.kept_indices(blocks, keep)
    if want is not None:
        assert got == want
    assert len(got) == min(keep, blocks) and got == sorted(set(got))
    gaps = [b - a for a, b in itertools.pairwise([-1, *got])]
    assert not gaps or max(gaps) - min(gaps) <= 1


@pytest.mark.parametrize(
    "config",
    [
        MoEConfig(d_model=8, d_ff=16, n_experts=4),
        MoEConfig(d_model=8, d_ff=24, n_experts=3, expert_kind="relu", expert_bias=True),
        MoEConfig(d_model=16, d_ff=8, n_experts=2, expert_kind="swiglu", expert_bias=True),
    ],
)
def test_prepared_sizes_follow_the_memory_rule(config: MoEConfig) -> None:
    """prepared_sizes (from the configuration alone) = what prepare_model keeps and writes, for
    budgets that keep every stack, none, and only the first."""
    weights = encode_weights(config, default_weights(config, bytes(32)))
    sizes = {
        name: stack.nbytes
        for name, stack in prepare.prepare_model(config, weights, None, 1 << 40).stacks.items()
    }
    prepare.forget(weights)
    first = next(iter(sizes.values()))
    total = sum(sizes.values())
    for budget, kept in ((1 << 40, total), (0, 0), (first, first)):
        assert prepare.prepared_sizes(config, budget) == (kept, total - kept)


def test_cache_file_is_reused_keyed_and_rebuilt(tmp_path: Path) -> None:
    p = select_params()
    shape = expert_shape(p, CONFIG.d_model, CONFIG.d_ff)
    w = CONFIG.fxp.ring.to_signed(fixed(6).w1)
    first = prepare.prepare_stack(p, shape, w, _block_ntt, False, tmp_path)
    assert first.built and first.path is not None
    again = prepare.prepare_stack(p, shape, w, _block_ntt, False, tmp_path)
    assert not again.built and again.path == first.path
    blocks = [b.copy() for _, _, b in first.blocks()]
    mem = prepare.prepare_stack(p, shape, w, _block_ntt, True)
    assert mem.key == first.key
    assert all(np.array_equal(a, b) for a, (_, _, b) in zip(blocks, mem.blocks(), strict=True))
    want = np.stack([_block_ntt(p, shape, w[e], 0, 0) for e in range(w.shape[0])])
    assert np.array_equal(blocks[0], want)
    # Other weights: another key, another file.
    w2 = w.copy()
    w2[0, 0, 0] += 1
    other = prepare.prepare_stack(p, shape, w2, _block_ntt, False, tmp_path)
    assert other.key != first.key and other.built
    # A damaged header is rebuilt.
    assert first.path is not None
    with open(first.path, "r+b") as fh:
        fh.write(b"X")
    rebuilt = prepare.prepare_stack(p, shape, w, _block_ntt, False, tmp_path)
    assert rebuilt.built
    assert all(np.array_equal(a, b) for a, (_, _, b) in zip(blocks, rebuilt.blocks(), strict=True))

    # Another layout (a block builder that differs) changes the key.
    def shifted(*args: object) -> np.ndarray:
        return np.roll(_block_ntt(*args), 1, axis=1)  # type: ignore[arg-type]

    assert prepare.stack_key(p, shape, w, shifted) != first.key  # type: ignore[arg-type]


def test_refuses_weights_out_of_range_and_a_full_disk(tmp_path: Path) -> None:
    p = select_params()
    shape = expert_shape(p, CONFIG.d_model, CONFIG.d_ff)
    w = np.zeros((2, CONFIG.d_ff, CONFIG.d_model), dtype=np.int64)
    w[1, 2, 3] = 1 << 20
    with pytest.raises(SpecError, match="2\\^20"):
        prepare.prepare_stack(p, shape, w, _block_ntt, True)
    big = np.zeros((1 << 18, 1, 1), dtype=np.int64)
    huge = expert_shape(p, 1, 1)
    with pytest.raises(SpecError, match="GiB"):
        prepare.prepare_stack(p, huge, big, _block_ntt, False, tmp_path)


@pytest.mark.parametrize("experts", [1, 4, 5, 7, 8, 67])
def test_select_mac_at_the_largest_residues(experts: int) -> None:
    """Every product (p - 1)^2: the folds between partial sums must keep them below 2^64."""
    p = preset("he16384")
    col = np.array(p.q_primes, dtype=np.uint64).reshape(1, -1, 1)
    w = np.broadcast_to(col - 1, (experts, len(p.q_primes), 64)).astype(np.uint32)
    s = np.ascontiguousarray(np.broadcast_to((col - 1)[:, None], (experts, 2, len(p.q_primes), 64)))
    got = select_mac([w] * MAC_BATCH, s, p.q_primes)
    want = [(experts * (q - 1) ** 2) % q for q in p.q_primes]
    assert all(np.all(got[:, :, i] == want[i]) for i in range(len(p.q_primes)))
