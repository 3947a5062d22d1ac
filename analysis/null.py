"""The label-permutation null (Ojala & Garriga 2010, JMLR): is a classifier better than
chance? The whole cross-validation is rerun with the runs' labels permuted (a run keeps one
label), and p = (1 + #{null >= observed}) / (1 + n_permutations). The splits are the observed
score's own (by run, or keeping sibling groups whole); the labels are permuted across all runs,
which under the null (labels unrelated to the recordings) are exchangeable."""

from __future__ import annotations

from typing import Any

import numpy as np

from lrsim.analysis.crossval import Tick, cross_validate, quiet
from lrsim.analysis.defaults import N_PERMUTATIONS, N_PERMUTATIONS_QUICK
from lrsim.analysis.features import Samples
from lrsim.analysis.results import CVScore, NullTest


def default_permutations(quick: bool) -> int:
    return N_PERMUTATIONS_QUICK if quick else N_PERMUTATIONS


def permuted_labels(samples: Samples, rng: np.random.Generator) -> Samples:
    """The same samples with labels permuted across runs (a run keeps one label)."""
    runs = np.unique(samples.groups)
    label_of = {g: samples.y[samples.groups == g][0] for g in runs}
    shuffled = dict(zip(runs, rng.permutation([label_of[g] for g in runs])))
    out = samples.subset(np.ones(len(samples.y), bool))
    out.y = np.array([shuffled[g] for g in samples.groups])
    return out


@quiet
def permutation_null(samples: Samples, classifier: str | Any, splitter: Any,
                     n_permutations: int, observed: float, *, quick: bool = True,
                     random_state: int = 0, n_jobs: int = 1, name: str = "forest",
                     tick: Tick | None = None) -> NullTest:
    """Label-permutation null of `classifier` (untuned) on `splitter`'s splits; `observed`
    must be the same classifier's accuracy on the same splits with the true labels."""
    rng = np.random.default_rng(random_state + 104729)
    null = []
    for _ in range(n_permutations):
        perm = permuted_labels(samples, rng)
        null.append(cross_validate(perm, classifier, splitter, quick=quick, tune=False,
                                   n_jobs=n_jobs, random_state=random_state).accuracy)
        if tick is not None:
            tick(1)
    arr = np.asarray(null)
    return NullTest(classifier=name, n_permutations=n_permutations,
                    n_splits=splitter.get_n_splits(), scores=[float(v) for v in null],
                    mean=float(arr.mean()), q95=float(np.quantile(arr, 0.95)),
                    observed=float(observed),
                    p_value=float((1 + np.sum(arr >= observed)) / (1 + n_permutations)))


def null_test(samples: Samples, classifier: Any, splitter: Any, n_permutations: int, *,
              random_state: int = 0, name: str = "forest", tick: Tick | None = None
              ) -> tuple[CVScore, NullTest]:
    """`classifier` (untuned) cross-validated on `splitter` and its permutation null on the
    same splits (the observed score counts as one more tick)."""
    observed = cross_validate(samples, classifier, splitter, random_state=random_state,
                              name=name)
    if tick is not None:
        tick(1)
    return observed, permutation_null(samples, classifier, splitter, n_permutations,
                                      observed.accuracy, random_state=random_state, name=name,
                                      tick=tick)
