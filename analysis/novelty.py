"""How far the test runs' recordings lie from the training runs', against how far each
training condition lies from the others.

A held-out accuracy says how well the classifier does on these test networks; it does not say
whether they resemble what it was trained on. On a condition unlike every training condition
the figure need not carry over to the next one (the anchor study's held-out conditions ranged
34-73% for the same classifier). This module measures the distance in the classifier's own
feature space:

- features scaled per column by the training samples' median and interquartile range (a
  column with no spread, or a missing value, counts as 0);
- a sample's distance: the mean Euclidean distance to its k nearest training samples;
- the test distance: the median over the test samples;
- which observables put the test samples there: per observable, its share of the excess of
  the test samples' squared scaled values over the training samples' (medians per column);
- the reference: each training condition (its task, activation, architecture, substrate) in
  turn, the median distance of its samples to the k nearest training samples of *other*
  conditions, i.e. what a condition never trained on looks like from the rest of the store.

The test distance's rank among the references says whether the test runs are as far from
training as a typical new condition of the store (rank ~ 0.5) or farther than all of them.
It is a warning sign, not a prediction: on the anchor study's nine held-out sets (six training
tasks left out in turn, three test stores; `benchmarks/training_distance.py`) the 6-class
accuracy fell with the distance (Spearman rho = -0.77), and the three sets farther than 85% of
the training conditions scored 40-52%; but one set as near as a typical condition scored 46%.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from lrsim.analysis.features import Samples, observable_of
from lrsim.analysis.results import TrainingDistance

NEIGHBOURS = 5
# medians are read from at most this many evenly spaced query samples (all training samples
# stay in the reference): the cost stays near linear in the store's size
TEST_QUERIES = 2000
QUERIES_PER_CONDITION = 200
_CHUNK = 512  # query rows per distance block


def evenly(index: np.ndarray, cap: int) -> np.ndarray:
    """At most `cap` entries of `index`, evenly spaced (all of them when there are fewer)."""
    if len(index) <= cap:
        return index
    return index[np.linspace(0, len(index) - 1, cap).round().astype(int)]


def robust_scale(train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(median, interquartile range) per column of `train`, ignoring NaN; a range that is 0
    or undefined is 1."""
    med = np.nanmedian(train, axis=0)
    q75, q25 = np.nanpercentile(train, [75, 25], axis=0)
    iqr = q75 - q25
    iqr[~(iqr > 0)] = 1.0
    med[~np.isfinite(med)] = 0.0
    return med, iqr


def _scaled(x: np.ndarray, med: np.ndarray, iqr: np.ndarray) -> np.ndarray:
    return np.nan_to_num((x - med) / iqr, nan=0.0, posinf=0.0, neginf=0.0)


def nearest_distances(reference: np.ndarray, query: np.ndarray, k: int = NEIGHBOURS,
                      exclude: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Per query row, the mean Euclidean distance to its k nearest rows of `reference`
    (already scaled). `exclude` = (reference labels, query labels): a query row ignores the
    reference rows that carry its own label (with fewer than k rows left, the mean is over
    those; NaN where none is left)."""
    k = min(k, len(reference))
    ref_sq = np.einsum("ij,ij->i", reference, reference)
    out = np.empty(len(query))
    for start in range(0, len(query), _CHUNK):
        q = query[start:start + _CHUNK]
        d2 = np.einsum("ij,ij->i", q, q)[:, None] + ref_sq[None, :] - 2.0 * q @ reference.T
        np.maximum(d2, 0.0, out=d2)
        if exclude is not None:
            d2[exclude[1][start:start + _CHUNK, None] == exclude[0][None, :]] = np.inf
        part = np.sqrt(np.partition(d2, k - 1, axis=1)[:, :k])
        part[np.isinf(part)] = np.nan
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a row with nothing left: NaN
            out[start:start + len(q)] = np.nanmean(part, axis=1)
    return out


def outside_shares(train: np.ndarray, test: np.ndarray, names: Sequence[str]
                   ) -> dict[str, float]:
    """Which observables put the test samples outside the training samples (both scaled):
    per column the excess max(0, median over test of z^2 - median over training of z^2),
    summed per observable and divided by the sum over all columns; largest first, observables
    without excess left out (empty when no column has any)."""
    excess = np.maximum(0.0, np.median(test ** 2, axis=0) - np.median(train ** 2, axis=0))
    total = float(excess.sum())
    if total <= 0:
        return {}
    per: dict[str, float] = {}
    for name, e in zip(names, excess):
        per[observable_of(name)] = per.get(observable_of(name), 0.0) + float(e) / total
    return {k: v for k, v in sorted(per.items(), key=lambda kv: -kv[1]) if v > 0}


def conditions(samples: Samples, keys: Sequence[str]) -> np.ndarray:
    """Per sample, its condition: the values of the meta `keys` it has, joined with '/'."""
    present = [k for k in keys if k in samples.meta]
    if not present:
        return np.full(len(samples.y), "", dtype=object)
    return np.array(["/".join(map(str, v)) for v in zip(*(samples.meta[k] for k in present))],
                    dtype=object)


def training_distance(train: Samples, test: Samples, keys: Sequence[str],
                      k: int = NEIGHBOURS, test_queries: int = TEST_QUERIES,
                      queries_per_condition: int = QUERIES_PER_CONDITION) -> TrainingDistance:
    """The test samples' distance from the training samples and, per training condition
    (`keys`), that condition's distance from the other training conditions (module
    docstring), each a median over at most `test_queries` / `queries_per_condition` evenly
    spaced samples. With one training condition there is no reference (empty)."""
    med, iqr = robust_scale(train.X)
    ref = _scaled(train.X, med, iqr)
    queries = evenly(np.arange(len(test.X)), test_queries)
    asked = _scaled(test.X[queries], med, iqr)
    test_d = float(np.median(nearest_distances(ref, asked, k)))
    shares = outside_shares(ref, asked, train.feature_names)
    cond = conditions(train, keys)
    names = sorted(set(cond))
    per_condition: dict[str, float] = {}
    if len(names) > 1:
        codes = np.searchsorted(names, cond)
        for i, name in enumerate(names):
            own = evenly(np.flatnonzero(codes == i), queries_per_condition)
            d = nearest_distances(ref, ref[own], k, exclude=(codes, codes[own]))
            per_condition[name] = float(np.median(d))
    return TrainingDistance(test=test_d, conditions=per_condition, neighbours=k,
                            keys=[key for key in keys if key in train.meta],
                            observables=shares)
