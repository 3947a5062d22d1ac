"""Grouped splits for rule identification: whole runs, or whole groups of sibling runs, fall
on one side.

Every split is grouped by run: all layers of one network fall on one side (Nayebi et al. 2020
let layers of one network fall in both train and test; we do not). Given `blocks` (run id ->
group, `lrsim.analysis.siblings`), whole groups of runs fall on one side: networks that share
a seed and condition start from the same weights and see the same minibatches whatever their
rule, so a test network's sibling of the same class and another learning rate in training
would tell the classifier its class without any rule signature. Scores are the mean and the
standard error of the mean over `n_repeats` repeated stratified group splits,
sem = std(acc, ddof=1) / sqrt(n_repeats) (splits overlap, so this understates the spread of a
fresh study; the label-permutation null in `lrsim.analysis.null` is the test against chance).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

TEST_SIZE = 0.25


def run_labels(y: np.ndarray, groups: np.ndarray) -> dict[Any, Any]:
    """{group: its label}; ValueError if a group has more than one label."""
    label_of: dict[Any, Any] = {}
    for g, label in zip(groups, y):
        if label_of.setdefault(g, label) != label:
            raise ValueError(f"group {g!r} has more than one label")
    return label_of


def groups_per_label(groups: Sequence[Any], labels: Sequence[Any]) -> dict[Any, set[Any]]:
    """{label: the groups holding a sample of it} (a group may hold several labels)."""
    out: dict[Any, set[Any]] = {}
    for g, label in zip(groups, labels):
        out.setdefault(label, set()).add(g)
    return out


class RepeatedStratifiedGroupSplit:
    """`n_repeats` random train/test splits of whole groups (runs), stratified by label: in
    each repeat, for every label, round(test_size * n) of its n runs (at least 1, at most n-1)
    go to test. Labels must be constant within a group.

    With `blocks` (run id -> block; every run of `groups` must have one), whole blocks go to
    test, which may hold runs of several labels: in each repeat the blocks are visited in a
    random order and one joins the test side when it brings the test side's run counts closer
    to the targets t_c = round(test_size * n_c) (at least 1, at most n_c - 1), measured as
    sum_c |test_c - t_c| / n_c, and leaves at least one run of every label in training."""

    def __init__(self, n_repeats: int = 10, test_size: float = TEST_SIZE,
                 random_state: int = 0, blocks: Mapping[str, str] | None = None):
        self.n_repeats = n_repeats
        self.test_size = test_size
        self.random_state = random_state
        self.blocks = None if blocks is None else dict(blocks)

    def get_n_splits(self, X: Any = None, y: Any = None, groups: Any = None) -> int:
        return self.n_repeats

    def units(self, groups: Sequence[Any]) -> np.ndarray:
        """What each sample's side is decided by: its block, else its group (run)."""
        groups = np.asarray(groups)
        if self.blocks is None:
            return groups
        return np.array([self.blocks[str(g)] for g in groups], dtype=object)

    def split(self, X: Any, y: Sequence[Any], groups: Sequence[Any]
              ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        y, groups = np.asarray(y), np.asarray(groups)
        if self.blocks is not None:
            yield from self._split_blocks(y, groups)
            return
        label_of = run_labels(y, groups)
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

    def _split_blocks(self, y: np.ndarray, groups: np.ndarray
                      ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        units = self.units(groups)
        label_of = run_labels(y, groups)
        labels = sorted({str(v) for v in label_of.values()})
        col = {c: j for j, c in enumerate(labels)}
        names = sorted({str(u) for u in units})
        counts = {b: np.zeros(len(labels)) for b in names}
        for g, label in label_of.items():
            counts[str(self.blocks[str(g)])][col[str(label)]] += 1
        n = sum(counts.values())
        target = np.minimum(np.maximum(1, np.round(self.test_size * n)), n - 1)

        def deviation(test: np.ndarray) -> float:
            return float(np.sum(np.abs(test - target) / n))

        rng = np.random.default_rng(self.random_state)
        unit_names = units.astype(str)
        for _ in range(self.n_repeats):
            chosen, test = [], np.zeros(len(labels))
            for b in rng.permutation(np.asarray(names, dtype=object)):
                after = test + counts[b]
                if np.any(after > n - 1):
                    continue
                if not chosen or deviation(after) < deviation(test):
                    chosen.append(b)
                    test = after
            is_test = np.isin(unit_names, np.asarray(chosen, dtype=str))
            yield np.flatnonzero(~is_test), np.flatnonzero(is_test)


def sem(values: Sequence[float]) -> float:
    """Standard error of the mean, std(ddof=1) / sqrt(n) (0 for n < 2)."""
    v = np.asarray(values, float)
    return float(v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else 0.0
