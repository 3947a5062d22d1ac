"""The control: is the rule told apart by more than "which rule learns faster"?

The loss-curve classifier (the same classifiers on the loss / test-accuracy curves alone) says
how far performance alone identifies the rule. The performance-matched control then compares
rules at matched performance: runs are matched across classes by their curves, and what the
measurable observables identify on the matched runs is what they add beyond performance.

Matching (nearest neighbours with a caliper, one run per class per matched set): each run's
curves at the recorded time points (sign(x) log(1 + |x|), as the classifiers read them) are
standardised per time point over all runs, z; the distance of two runs is the root mean square
difference d(a, b) = sqrt(mean_j (z_aj - z_bj)^2), in standard deviations. Sets are built
greedily around the runs of the class with the fewest runs (the runs whose nearest other-class
neighbours are closest first): each other class gives its nearest unused run, and the set is
kept only if every member lies within `caliper` of the anchor (an infinite caliper keeps every
set: nearest-neighbour matching that balances the classes). Where fewer than `min_sets`
sets form, the class whose removal leaves the most sets is dropped (and named), down to two.

A match is accepted when it passes two checks, from the loosest caliper to the tightest
(`CALIPERS`, standard deviations): balance, the largest standardised mean difference between
two matched classes at any time point, max |mean_a(z_j) - mean_b(z_j)| <= `MAX_SMD` (Austin
2009, Stat Med 28:3083, for the two-group form); then the loss-curve classifier (random forest)
rerun on the matched runs is at chance under its label-permutation null on the same splits
(p > 0.05, with at least `MIN_PERMUTATIONS` permutations so that it can fail). Without a
caliper (the first try) only the second check applies: where the loss curves do not identify
the class on every run, no matching is needed.

The curves are always read as recorded on the step axis (`run_curves`), whatever features the
measurable observables use (`--features relative`, `--time-axis progress`): a control of
performance keeps all of it, including how fast a rule learns (which the progress axis
removes) and how low its loss gets, as recorded; a weaker control would overstate what the
measurable observables add.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import xarray as xr

from lrsim.analysis.features import Samples, TrajectoryFeatures, make_samples
from lrsim.analysis.null import null_test
from lrsim.analysis.progress import Progress, silent
from lrsim.analysis.results import MatchedControl
from lrsim.analysis.siblings import blocks_for
from lrsim.analysis.splits import RepeatedStratifiedGroupSplit

CALIPERS = (float("inf"), 1.0, 0.7, 0.5, 0.35, 0.25, 0.18, 0.125, 0.09)
MIN_SETS = 5
MAX_SMD = 0.2
# the verdict "at chance" (p > 0.05) can fail only with >= 19 permutations
MIN_PERMUTATIONS = 19
METHOD = "nearest-neighbour matched sets on the standardised loss / test-accuracy curves"


def run_curves(data: xr.Dataset, control_observables: Sequence[str], label: str
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(run ids, curves (run, feature), labels) in store order: the control observables at
    every time point, read as the classifiers read them."""
    s = make_samples(data, TrajectoryFeatures(list(control_observables), depth=False), label)
    _, first = np.unique(s.groups, return_index=True)
    first = np.sort(first)
    return s.groups[first], s.X[first], s.y[first]


def standardise(curves: np.ndarray) -> np.ndarray:
    """Columns standardised over runs (constant columns dropped)."""
    sd = curves.std(axis=0)
    keep = sd > 1e-12
    return (curves[:, keep] - curves[:, keep].mean(axis=0)) / sd[keep]


def curve_distances(curves: np.ndarray) -> np.ndarray:
    """RMS distance between runs' standardised curves (`standardise`)."""
    z = standardise(curves)
    if z.shape[1] == 0:
        return np.zeros((len(curves), len(curves)))
    sq = (z ** 2).sum(axis=1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2 * z @ z.T, 0.0) / z.shape[1]
    return np.sqrt(d2)


def max_smd(z: np.ndarray, y: np.ndarray, rows: Sequence[int]) -> float:
    """The largest standardised mean difference between two classes among `rows`, over the
    columns of `z` (already standardised over all runs)."""
    rows = np.asarray(rows, int)
    if z.shape[1] == 0 or len(rows) == 0:
        return 0.0
    means = {c: z[rows][y[rows] == c].mean(axis=0) for c in sorted(set(y[rows]))}
    return float(max((np.abs(means[a] - means[b]).max()
                      for a, b in itertools.combinations(means, 2)), default=0.0))


def matched_sets(dist: np.ndarray, y: np.ndarray, classes: Sequence[str], caliper: float
                 ) -> list[list[int]]:
    """Greedy matched sets, one run (row index) per class in `classes`, every member within
    `caliper` of the set's anchor (a run of the class with the fewest runs)."""
    idx = {c: np.flatnonzero(y == c) for c in classes}
    anchor = min(classes, key=lambda c: (len(idx[c]), str(c)))
    others = [c for c in classes if c != anchor]
    if not others:
        return []

    def nearest(a: int, c: str) -> float:
        return float(dist[a, idx[c]].min())

    order = sorted(idx[anchor], key=lambda a: (max(nearest(a, c) for c in others), a))
    used: set[int] = set()
    sets = []
    for a in order:
        members = [int(a)]
        for c in others:
            free = [j for j in idx[c] if j not in used]
            if not free:
                return sets
            j = min(free, key=lambda j: (dist[a, j], j))
            if dist[a, j] > caliper:
                break
            members.append(int(j))
        else:
            used.update(members)
            sets.append(members)
    return sets


def match(dist: np.ndarray, y: np.ndarray, caliper: float, min_sets: int = MIN_SETS
          ) -> tuple[list[list[int]], list[str], list[str]]:
    """(sets, classes kept, classes dropped): drop the class whose removal leaves the most
    sets while fewer than `min_sets` form, down to two classes."""
    classes = sorted({str(c) for c in y})
    dropped: list[str] = []
    sets = matched_sets(dist, y, classes, caliper)
    while len(sets) < min_sets and len(classes) > 2:
        trials = {c: matched_sets(dist, y, [k for k in classes if k != c], caliper)
                  for c in classes}
        worst = max(classes, key=lambda c: (len(trials[c]), -int(np.sum(y == c)), c))
        classes = [k for k in classes if k != worst]
        dropped.append(worst)
        sets = trials[worst]
    return sets, classes, dropped


def matched_control(data: xr.Dataset, label: str, control_samples: Samples,
                    measurable_samples: Samples, est: Any, *, control_observables: Sequence[str],
                    n_splits: int, n_permutations: int,
                    random_state: int = 0, calipers: Sequence[float] = CALIPERS,
                    min_sets: int = MIN_SETS, progress: Progress | None = None,
                    blocks: dict[str, str] | None = None) -> MatchedControl:
    """Match runs by their curves, check balance and the loss-curve classifier with its null,
    and score the measurable observables on the matched runs (see the module docstring).
    `est`: the (untuned) classifier for the check and the measurable score. Where no caliper
    passes both checks, the last one verified (else the best balanced) is reported as such.
    `blocks` (run id -> sibling group): the matched runs' splits keep sibling groups on one
    side where the matched runs allow it (`lrsim.analysis.siblings.blocks_for`), else runs."""
    progress = progress or silent()
    runs, curves, y = run_curves(data, control_observables, label)
    z = standardise(curves)
    dist = curve_distances(curves)

    def splits_for(sets: list[list[int]]) -> RepeatedStratifiedGroupSplit:
        rows = [i for s in sets for i in s]
        mine = blocks_for(blocks, [str(runs[i]) for i in rows], [str(y[i]) for i in rows])
        return RepeatedStratifiedGroupSplit(n_splits, 0.25, random_state, mine)

    n_perm = max(n_permutations, MIN_PERMUTATIONS)
    attempts: list[dict[str, Any]] = []
    candidates = []
    for caliper in calipers:
        sets, classes, dropped = match(dist, y, caliper, min_sets)
        rows = [i for s in sets for i in s]
        row: dict[str, Any] = {"caliper": caliper, "n_sets": len(sets), "classes": classes,
                               "dropped_classes": dropped, "max_smd": max_smd(z, y, rows)}
        attempts.append(row)
        if len(sets) < min_sets:
            row["verdict"] = f"fewer than {min_sets} matched sets"
            continue
        candidates.append((row, sets))
        if math.isfinite(caliper) and row["max_smd"] > MAX_SMD:
            row["verdict"] = f"imbalanced (max SMD > {MAX_SMD:g})"
            continue
        if _verify(row, sets, runs, control_samples, est, splits_for(sets), n_perm,
                   random_state, progress):
            break
    verified = [(r, s) for r, s in candidates if "null" in r]
    if not candidates:
        return MatchedControl(METHOD, float(calipers[-1]), [], [], 0, [], math.inf, MAX_SMD,
                              None, None, None, None, _public(attempts))
    if not verified:  # nothing balanced: check the best balanced match anyway, and say so
        row, sets = min(candidates, key=lambda c: c[0]["max_smd"])
        _verify(row, sets, runs, control_samples, est, splits_for(sets), n_perm,
                random_state, progress)
        row["verdict"] += "; checked anyway"
        verified = [(row, sets)]
    row, sets = verified[-1]
    kept = [str(runs[i]) for i in sorted(i for s in sets for i in s)]
    meas = measurable_samples.subset(np.isin(measurable_samples.groups, kept))
    splits = splits_for(sets)
    with progress.phase("matched control: measurable observables", 1 + n_perm,
                        "fits") as tick:
        m_score, m_null = null_test(meas, est, splits, n_perm, random_state=random_state,
                                    tick=tick)
    return MatchedControl(METHOD, float(row["caliper"]), list(row["classes"]),
                          list(row["dropped_classes"]), len(sets), kept, float(row["max_smd"]),
                          MAX_SMD, row["score"], row["null"], m_score, m_null, _public(attempts),
                          "run" if splits.blocks is None else "siblings")


def _verify(row: dict[str, Any], sets: list[list[int]], runs: np.ndarray,
            control_samples: Samples, est: Any, splits: Any, n_perm: int, random_state: int,
            progress: Progress) -> bool:
    """Rerun the loss-curve classifier on the matched runs with its null; record it in `row`;
    whether it is at chance."""
    kept = [str(runs[i]) for s in sets for i in s]
    ctrl = control_samples.subset(np.isin(control_samples.groups, kept))
    caliper = row["caliper"]
    with progress.phase(f"matched control, caliper {caliper:g}: loss-curve classifier",
                        1 + n_perm, "fits") as tick:
        score, null = null_test(ctrl, est, splits, n_perm, random_state=random_state, tick=tick)
    row.update(score=score, null=null, loss_curve_accuracy=score.accuracy, null_q95=null.q95,
               p_value=null.p_value)
    row["verdict"] = "at chance" if null.at_chance else "above chance"
    return null.at_chance


def _public(attempts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in a.items() if k not in ("score", "null")} for a in attempts]
