"""Accuracy against the number of training networks: would more simulations help?

The classifier is refitted on a fraction f of its training networks and scored on the same
test networks. The training set is thinned cell by cell, a cell being one class in one
condition (task, activation, architecture, substrate, where the store records them): each cell
keeps round(f n_cell) of its n_cell networks, at least one, drawn at random. A thinned set
therefore keeps every class and every condition of the full one, in the same proportions, with
fewer networks (seeds, learning rates) per cell. A curve still rising at f = 1 says that more
networks of the same conditions would likely raise the accuracy; a flat one says they would
not, and that what the classifier lacks (if anything) is other conditions or other
observables. This is the learning curve of Perlich et al. 2003 (JMLR, "Tree induction vs.
logistic regression: a learning-curve analysis") read at a few points, stratified by cell.

- `thin`: the mask of the samples of the networks one draw keeps.
- `ThinnedSplits`: a splitter whose training sides are thinned (within-store curves).
- `held_out_curve`: the held-out accuracy at each fraction (held-out curves).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from sklearn.base import clone

from lrsim.analysis.crossval import Tick, fit_and_score, quiet, splitter_units
from lrsim.analysis.features import Samples
from lrsim.analysis.generalisation import GENERALISATION_KEYS
from lrsim.analysis.results import SweepPoint
from lrsim.analysis.splits import groups_per_label, sem

FACTOR = "training_networks"
FRACTIONS = (0.125, 0.25, 0.5, 1.0)
FRACTIONS_QUICK = (0.25, 0.5, 1.0)
HELD_OUT_DRAWS = 3  # thinned training sets drawn per fraction < 1 for a held-out test
HELD_OUT_DRAWS_QUICK = 2


def fractions(quick: bool) -> list[float]:
    return list(FRACTIONS_QUICK if quick else FRACTIONS)


def cells(samples: Samples) -> np.ndarray:
    """Each sample's cell: its class and the condition keys its samples carry in `meta`."""
    keys = [k for k in GENERALISATION_KEYS if k in samples.meta]
    out = samples.y.astype(str).astype(object)
    for k in keys:
        out = out + f"|{k}=" + samples.meta[k].astype(str).astype(object)
    return out


def thin(groups: np.ndarray, cell: np.ndarray, fraction: float,
         rng: np.random.Generator) -> np.ndarray:
    """Mask of the samples whose network (group) one draw keeps: in every cell, round(fraction
    x its networks) of them, at least one, drawn without replacement."""
    if not 0 < fraction <= 1:
        raise ValueError(f"a fraction of the training networks is in (0, 1], not {fraction}")
    groups = np.asarray(groups)
    by_cell = groups_per_label(groups, cell)  # a network's samples share its cell
    kept: list[Any] = []
    for c in sorted(by_cell, key=str):
        runs = sorted(by_cell[c], key=str)
        n = max(1, int(round(fraction * len(runs))))
        kept += [runs[i] for i in rng.choice(len(runs), n, replace=False)]
    return np.isin(groups, kept)


class ThinnedSplits:
    """The splits of `splitter` with each training side thinned to `fraction` of its networks
    per cell (`thin`; one draw per split, seeded by `random_state` and the split's index); the
    test sides are the splitter's own. `n_train_runs` lists the training networks of each split
    made so far."""

    def __init__(self, splitter: Any, cell: np.ndarray, fraction: float, random_state: int = 0):
        self.splitter, self.cell, self.fraction = splitter, np.asarray(cell), fraction
        self.random_state = random_state
        self.n_train_runs: list[int] = []

    def get_n_splits(self, X: Any = None, y: Any = None, groups: Any = None) -> int:
        return self.splitter.get_n_splits(X, y, groups)

    def units(self, groups: Sequence[Any]) -> np.ndarray:
        return splitter_units(self.splitter, np.asarray(groups))

    def split(self, X: Any, y: Sequence[Any], groups: Sequence[Any]
              ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        groups = np.asarray(groups)
        for i, (tr, te) in enumerate(self.splitter.split(X, y, groups)):
            rng = np.random.default_rng([self.random_state, i])
            tr = tr[thin(groups[tr], self.cell[tr], self.fraction, rng)]
            self.n_train_runs.append(len(np.unique(groups[tr])))
            yield tr, te


@quiet
def held_out_curve(est: Any, train: Samples, test: Samples, classes: np.ndarray,
                   values: Sequence[float], *, draws: int = HELD_OUT_DRAWS,
                   random_state: int = 0, tick: Tick | None = None) -> list[SweepPoint]:
    """Held-out accuracy of `est` refitted on thinned training sets: per fraction, the mean over
    `draws` draws (one fit at fraction 1) of the per-layer accuracy, its s.e.m. over draws (0
    for one draw), the per-network accuracy and the training networks."""
    cell = cells(train)
    points = []
    for f in values:
        accs, run_accs, n_runs = [], [], []
        for d in range(1 if f >= 1 else draws):
            keep = thin(train.groups, cell, f, np.random.default_rng([random_state, d]))
            sub = train.subset(keep)
            s, _ = fit_and_score(clone(est), sub, test, classes, "forest")
            accs.append(s.accuracy)
            run_accs.append(s.run_accuracy)
            n_runs.append(sub.n_runs)
        points.append(SweepPoint(f, float(np.mean(accs)), sem(accs), float(np.mean(run_accs)),
                                 float(np.mean(n_runs))))
        if tick is not None:
            tick(1)
    return points
