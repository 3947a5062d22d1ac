"""Grouped splits for rule identification: whole runs fall on one side.

Every split is grouped by run: all layers of one network fall on one side (Nayebi et al. 2020
let layers of one network fall in both train and test; we do not). Scores are the mean and the
standard error of the mean over `n_repeats` repeated stratified group splits,
sem = std(acc, ddof=1) / sqrt(n_repeats) (splits overlap, so this understates the spread of a
fresh study; the label-permutation null in `lrsim.analysis.null` is the test against chance).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

TEST_SIZE = 0.25


class RepeatedStratifiedGroupSplit:
    """`n_repeats` random train/test splits of whole groups (runs), stratified by label: in
    each repeat, for every label, round(test_size * n) of its n runs (at least 1, at most n-1)
    go to test. Labels must be constant within a group."""

    def __init__(self, n_repeats: int = 10, test_size: float = TEST_SIZE,
                 random_state: int = 0):
        self.n_repeats = n_repeats
        self.test_size = test_size
        self.random_state = random_state

    def get_n_splits(self, X: Any = None, y: Any = None, groups: Any = None) -> int:
        return self.n_repeats

    def split(self, X: Any, y: Sequence[Any], groups: Sequence[Any]
              ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        y, groups = np.asarray(y), np.asarray(groups)
        label_of: dict[Any, Any] = {}
        for g, label in zip(groups, y):
            if label_of.setdefault(g, label) != label:
                raise ValueError(f"group {g!r} has more than one label")
        by_label: dict[Any, list[Any]] = {}
        for g, label in label_of.items():
            by_label.setdefault(label, []).append(g)
        rng = np.random.default_rng(self.random_state)
        for _ in range(self.n_repeats):
            test_groups = []
            for label in sorted(by_label, key=str):
                runs = sorted(by_label[label], key=str)
                n = len(runs)
                k = min(max(1, int(round(self.test_size * n))), n - 1) if n > 1 else 0
                test_groups.extend(rng.permutation(np.asarray(runs, dtype=object))[:k])
            is_test = np.isin(groups, np.asarray(test_groups, dtype=groups.dtype))
            yield np.flatnonzero(~is_test), np.flatnonzero(is_test)


def sem(values: Sequence[float]) -> float:
    """Standard error of the mean, std(ddof=1) / sqrt(n) (0 for n < 2)."""
    v = np.asarray(values, float)
    return float(v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else 0.0
