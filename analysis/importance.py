"""Which statistics identify the rule: grouped permutation importance (Breiman 2001), where a
channel's whole trajectory (all its time columns, jointly) is permuted across test samples:
importance_c = acc - mean_r acc(X with block c permuted), averaged over grouped splits."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import clone

from lrsim.analysis.crossval import Tick, quiet
from lrsim.analysis.features import Samples
from lrsim.analysis.results import ImportanceRow
from lrsim.analysis.splits import sem


def grouped_permutation_importance(est: Any, test: Samples, rng: np.random.Generator,
                                   n_repeats: int = 3) -> dict[str, float]:
    """Accuracy drop of fitted `est` on `test` when one channel's block of columns (or the
    static `depth`) is permuted across samples, averaged over `n_repeats` permutations."""
    base = float(np.mean(est.predict(test.X) == test.y))
    blocks = {c: np.arange(i * test.n_times, (i + 1) * test.n_times)
              for i, c in enumerate(test.channels)}
    if test.n_static:
        blocks["depth"] = np.arange(test.X.shape[1] - test.n_static, test.X.shape[1])
    out = {}
    for name, cols in blocks.items():
        drops = []
        for _ in range(n_repeats):
            x = test.X.copy()
            x[:, cols] = x[rng.permutation(len(x))][:, cols]
            drops.append(base - float(np.mean(est.predict(x) == test.y)))
        out[name] = float(np.mean(drops))
    return out


@quiet
def importance(samples: Samples, est: Any, splitter: Any, *, n_repeats: int = 3,
               random_state: int = 0, tick: Tick | None = None) -> list[ImportanceRow]:
    """Grouped permutation importance of every channel, mean and sem over the splits, sorted
    from most to least informative."""
    rng = np.random.default_rng(random_state + 7)
    per: dict[str, list[float]] = {}
    for tr, te in splitter.split(samples.X, samples.y, samples.groups):
        fitted = clone(est).fit(samples.X[tr], samples.y[tr])
        for k, v in grouped_permutation_importance(fitted, samples.subset(te), rng,
                                                   n_repeats).items():
            per.setdefault(k, []).append(v)
        if tick is not None:
            tick(1)
    rows = [ImportanceRow(k, float(np.mean(v)), sem(v)) for k, v in per.items()]
    return sorted(rows, key=lambda r: -r.drop)
