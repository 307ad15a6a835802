"""The bundled tabular data sets of the accuracy evaluation and their split
(spec/60-accuracy.md §60.2).

The data ship inside scikit-learn (``pip install -e '.[accuracy]'``): nothing is downloaded.
The split is ours, from the project's PRG, so it does not depend on scikit-learn's or numpy's
random generators.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from secmoe.errors import SpecError
from secmoe.model.classifier import DATASETS
from secmoe.randomness import Prg, dst

Floats = NDArray[np.float64]
Ints = NDArray[np.int64]
SPLIT_SEED = hashlib.sha256(b"secmoe/v1/accuracy").digest()
TEST_DIVISOR = 5  # the test split is floor(n / 5) samples


@dataclass(frozen=True)
class Dataset:
    """A data set's features and labels, split into train and test."""

    name: str
    x_train: Floats
    y_train: Ints
    x_test: Floats
    y_test: Ints
    n_classes: int


def _load(name: str) -> tuple[Floats, Ints]:
    try:
        from sklearn import datasets as sk  # optional: the `accuracy` extra
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise SpecError(
            "the bundled data sets need scikit-learn: pip install -e '.[accuracy]'"
        ) from exc
    loaders: dict[str, Any] = {
        "digits": sk.load_digits,
        "iris": sk.load_iris,
        "wine": sk.load_wine,
        "breast_cancer": sk.load_breast_cancer,
    }
    bunch = loaders[name]()
    x = np.ascontiguousarray(bunch.data, dtype=np.float64)
    y = np.asarray(bunch.target, dtype=np.int64)
    return x, y


def split_indices(name: str, n: int) -> tuple[Ints, Ints]:
    """(train, test) sample indices, each increasing.

    Implements spec §60.2.1 `split_indices` (spec/60-accuracy.md#split_indices).
    """
    # Step 1: one u64 key per sample from the data set's own stream.
    keys = Prg(SPLIT_SEED, dst("accuracy", f"split/{name}")).next_u64(n)
    # Step 2: samples in increasing key order (stable: equal keys keep index order).
    order = np.argsort(keys, kind="stable").astype(np.int64)
    # Step 3: the first floor(n / 5) are the test split.
    n_test = n // TEST_DIVISOR
    return np.sort(order[n_test:]), np.sort(order[:n_test])


def load_dataset(name: str) -> Dataset:
    """A bundled data set (``digits``, ``iris``, ``wine``, ``breast_cancer``), split."""
    if name not in DATASETS:
        raise SpecError(f"dataset must be one of {DATASETS}, got {name!r}")
    x, y = _load(name)
    train, test = split_indices(name, x.shape[0])
    return Dataset(name, x[train], y[train], x[test], y[test], int(y.max()) + 1)
