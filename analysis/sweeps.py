"""Accuracy against the recording protocol: the sweep classifier (a random forest with fixed
hyperparameters) scored over repeated grouped splits on samples read from any view (units,
noise, time points, fraction of the trajectory seen) of any set of observables; every score is
cached, so the breakdowns, the per-observable scores and the protocol search share fits."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import xarray as xr

from lrsim.analysis.crossval import Tick, cross_validate
from lrsim.analysis.features import Samples, TrajectoryFeatures, make_samples, time_index
from lrsim.analysis.protocol import views
from lrsim.analysis.results import Breakdown, SweepPoint
from lrsim.analysis.training_size import FACTOR as TRAINING_NETWORKS
from lrsim.analysis.training_size import ThinnedSplits, cells
from lrsim.analysis.training_size import fractions as network_fractions

FACTORS = ("units", "noise", "time_points", "fraction", TRAINING_NETWORKS)


def time_point_values(n_time: int, quick: bool) -> list[int]:
    """Numbers of time points tried: a few below the store's, and the store's."""
    return sorted({t for t in ((3, 9) if quick else (2, 3, 5, 9, 17, 33)) if t < n_time}
                  | {n_time})


def fraction_values(quick: bool) -> list[float]:
    return [0.25, 0.5, 1.0] if quick else [0.1, 0.25, 0.5, 0.75, 1.0]


class SweepScorer:
    """Samples and scores of `est` on `splitter`, per (observables, view), cached.

    `units`, `noise`: the full view (the default of every call); `meta_keys`: per-run keys the
    samples carry (for hold-outs); `reference`, `time_axis`: how the features read every set of
    observables (`TrajectoryFeatures`), except a set made only of `as_recorded` observables
    (the control's loss / test-accuracy curves), read as recorded on the step axis."""

    def __init__(self, data: xr.Dataset, label: str, est: Any, splitter: Any, *,
                 units: int, noise: float, random_state: int = 0,
                 meta_keys: Sequence[str] = (), reference: str = "none",
                 time_axis: str = "step", as_recorded: Sequence[str] = ()):
        self.data = data
        self.label = label
        self.est = est
        self.splitter = splitter
        self.units = units
        self.noise = noise
        self.reference = reference
        self.time_axis = time_axis
        self.as_recorded = set(as_recorded)
        self.random_state = random_state
        self.meta_keys = list(meta_keys)
        self.n_time = int(data.sizes["time"])
        self._samples: dict[tuple, Samples] = {}
        self._scores: dict[tuple, dict[str, float]] = {}

    def features(self, observables: Sequence[str], units: int | None = None,
                 noise: float | None = None, time_points: int | None = None,
                 fraction: float = 1.0, depth: bool = True) -> TrajectoryFeatures:
        recorded = set(observables) <= self.as_recorded
        return TrajectoryFeatures(list(observables),
                                  units=self.units if units is None else units,
                                  noise=self.noise if noise is None else noise,
                                  time_points=time_points, fraction=fraction, depth=depth,
                                  reference="none" if recorded else self.reference,
                                  time_axis="step" if recorded else self.time_axis)

    def _key(self, observables: Sequence[str], units: int | None, noise: float | None,
             time_points: int | None, fraction: float) -> tuple:
        n_seen = len(time_index(self.n_time, fraction, time_points))
        return (tuple(observables), self.units if units is None else units,
                float(self.noise if noise is None else noise), n_seen, float(fraction))

    def samples(self, observables: Sequence[str], units: int | None = None,
                noise: float | None = None, time_points: int | None = None,
                fraction: float = 1.0) -> Samples:
        key = self._key(observables, units, noise, time_points, fraction)
        if key not in self._samples:
            f = self.features(observables, units, noise, time_points, fraction)
            self._samples[key] = make_samples(self.data, f, self.label, self.meta_keys)
        return self._samples[key]

    def score(self, observables: Sequence[str], units: int | None = None,
              noise: float | None = None, time_points: int | None = None,
              fraction: float = 1.0) -> dict[str, float]:
        """{"accuracy_mean", "accuracy_sem", "run_accuracy_mean"} of the sweep classifier."""
        key = self._key(observables, units, noise, time_points, fraction)
        if key not in self._scores:
            s = self.samples(observables, units, noise, time_points, fraction)
            r = cross_validate(s, self.est, self.splitter, random_state=self.random_state,
                               name="forest")
            self._scores[key] = {"accuracy_mean": r.accuracy, "accuracy_sem": r.accuracy_sem,
                                 "run_accuracy_mean": r.run_accuracy}
        return self._scores[key]

    def factor_values(self, quick: bool) -> dict[str, list[Any]]:
        """The values each factor of the breakdown takes."""
        return {"units": views(self.data, "units", 0), "noise": views(self.data, "noise", 0.0),
                "time_points": time_point_values(self.n_time, quick),
                "fraction": fraction_values(quick),
                TRAINING_NETWORKS: network_fractions(quick)}

    def thinned(self, observables: Sequence[str], fraction: float) -> SweepPoint:
        """The sweep classifier at the full view, each split's training side thinned to
        `fraction` of its networks per class and condition (`ThinnedSplits`)."""
        s = self.samples(observables)
        if fraction >= 1:
            r = self.score(observables)
            n = [len(np.unique(s.groups[tr])) for tr, _ in self.splitter.split(s.X, s.y,
                                                                                 s.groups)]
            return SweepPoint(fraction, r["accuracy_mean"], r["accuracy_sem"],
                              r["run_accuracy_mean"], float(np.mean(n)))
        splits = ThinnedSplits(self.splitter, cells(s), fraction, self.random_state)
        r = cross_validate(s, self.est, splits, random_state=self.random_state, name="forest")
        return SweepPoint(fraction, r.accuracy, r.accuracy_sem, r.run_accuracy,
                          float(np.mean(splits.n_train_runs)))

    def breakdown(self, observables: Sequence[str], values: dict[str, list[Any]],
                  tick: Tick | None = None) -> Breakdown:
        """Accuracy with one factor varied at a time, the others at the full view."""
        out = Breakdown(classifier="forest")
        for factor, vals in values.items():
            points = []
            for v in vals:
                if factor == TRAINING_NETWORKS:
                    points.append(self.thinned(observables, v))
                    if tick is not None:
                        tick(1)
                    continue
                r = self.score(observables, **{factor: v})
                points.append(SweepPoint(v, r["accuracy_mean"], r["accuracy_sem"],
                                         r["run_accuracy_mean"]))
                if tick is not None:
                    tick(1)
            setattr(out, factor, points)
        return out
