"""Held-out tests: train on some runs, test on runs never seen, of another kind.

`--holdout KEY=VALUE` trains on the runs whose KEY does not match VALUE and tests on those
that do (VALUE exact, numeric, or a range LO:HI); `--test STORE2` trains on one store and tests
on another; and every value of every key that varies in the store (architecture, task,
activation, substrate) is held out in turn. A single test has the binomial standard error
sqrt(p (1 - p) / n_test_runs).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import xarray as xr
from sklearn.base import clone

from lrsim.analysis.crossval import Tick, fit_and_score, quiet
from lrsim.analysis.features import Samples
from lrsim.analysis.labels import per_run_keys
from lrsim.analysis.results import Breakdown, SweepPoint, TestScore
from lrsim.errors import ConfigError

GENERALISATION_KEYS = ("architecture", "task", "activation", "substrate")


def seen_in_training(train: xr.Dataset, test: xr.Dataset,
                     keys: Sequence[str] = GENERALISATION_KEYS) -> dict[str, list[str]]:
    """Per key of the networks' condition (task, activation, architecture, substrate) that both
    stores hold per run: the test runs' values that training runs have too. Empty lists
    everywhere: a condition never trained on; a value listed: the test networks are new, that
    part of their condition is not (e.g. a calibration store of the test condition trained
    on)."""
    def values(ds: xr.Dataset, k: str) -> set[str]:
        return {str(v) for v in np.asarray(ds[k].values).ravel()}

    both = set(per_run_keys(train)) & set(per_run_keys(test))
    return {k: sorted(values(test, k) & values(train, k)) for k in keys if k in both}


def parse_holdout(spec: str) -> tuple[str, str]:
    """'KEY=VALUE' -> (key, value). VALUE is matched exactly (numerically where both are
    numbers), or is a numeric range 'LO:HI' (inclusive; either end may be empty)."""
    if "=" not in spec or not spec.split("=", 1)[0].strip():
        raise ConfigError(f"--holdout must be KEY=VALUE, e.g. architecture=64-64 or "
                          f"lr=0.01:0.1 (got {spec!r})")
    key, value = spec.split("=", 1)
    return key.strip(), value.strip()


def holdout_mask(values: np.ndarray, value: str) -> np.ndarray:
    """Which entries of `values` match the holdout VALUE (exact, numeric or 'LO:HI')."""
    def num(x: Any) -> float | None:
        try:
            return float(x)
        except (TypeError, ValueError):
            return None

    if ":" in value and all(p.strip() == "" or num(p) is not None for p in value.split(":", 1)):
        lo_s, hi_s = value.split(":", 1)
        lo = num(lo_s) if lo_s.strip() else -math.inf
        hi = num(hi_s) if hi_s.strip() else math.inf
        vals = np.array([num(v) if num(v) is not None else math.nan for v in values])
        return (vals >= lo) & (vals <= hi)
    target = num(value)
    if target is not None and all(num(v) is not None for v in values):
        return np.isclose(np.array([num(v) for v in values], float), target, rtol=1e-9)
    return np.array([str(v) == value for v in values])


def check_classes(train: Sequence[str], test: Sequence[str], what: str, label: str) -> None:
    """ConfigError if the test runs share no class with the training runs, or hold a class the
    training runs lack (a classifier cannot name a class it never saw)."""
    train_set, test_set = {str(c) for c in train}, {str(c) for c in test}
    if not train_set & test_set:
        raise ConfigError(f"{what} has no {label} in common with the training runs (test: "
                          f"{', '.join(sorted(test_set))}; training: "
                          f"{', '.join(sorted(train_set))})")
    unseen = sorted(test_set - train_set)
    if unseen:
        raise ConfigError(f"{what} has {label} {', '.join(unseen)}, which the training runs "
                          f"lack (training: {', '.join(sorted(train_set))}); test on classes "
                          f"the training runs have")


def holdout_split(samples: Samples, key: str, value: str) -> np.ndarray:
    """The mask of the held-out samples; ConfigError if none or all match."""
    mask = holdout_mask(samples.meta[key], value)
    if not mask.any():
        allowed = sorted({str(v) for v in samples.meta[key]})
        raise ConfigError(f"--holdout {key}={value}: no usable run has that value; the store "
                          f"has {key} = {', '.join(allowed)}")
    if mask.all():
        raise ConfigError(f"--holdout {key}={value}: every run has that value; nothing left "
                          f"to train on")
    return mask


@quiet
def score_held_out(train: Samples, test: Samples, classes: np.ndarray,
                   estimators: dict[str, Callable[[], Any]], tick: Tick | None = None,
                   inner_groups: np.ndarray | None = None) -> dict[str, TestScore]:
    """Each estimator (name -> factory of an unfitted one) fitted on `train` (a tuned one's
    inner CV grouped by run, or by `inner_groups`), scored on `test`."""
    out = {}
    for name, make in estimators.items():
        out[name], _ = fit_and_score(make(), train, test, classes, name, inner_groups)
        if tick is not None:
            tick(1)
    return out


@quiet
def forest_seed_accuracies(est: Any, train: Samples, test: Samples, classes: np.ndarray,
                           seeds: Sequence[int], tick: Tick | None = None) -> list[float]:
    """The per-network held-out accuracy of `est` (a random forest) refitted once per seed
    (`random_state`): how far the classifier's own randomness moves the held-out figure."""
    refits = {f"forest seed {seed}": (lambda seed=int(seed): clone(est).set_params(
        random_state=seed)) for seed in seeds}
    return [s.run_accuracy for s in score_held_out(train, test, classes, refits,
                                                   tick=tick).values()]


@quiet
def held_out_breakdown(pair_at: Callable[..., tuple[Samples, Samples]], est: Any,
                       classes: np.ndarray, values: dict[str, list[Any]],
                       tick: Tick | None = None) -> Breakdown:
    """Held-out accuracy with one factor (units, noise, time_points, fraction) varied at a
    time: `pair_at(**{factor: value})` gives (train, test) samples read from that view."""
    out = Breakdown(classifier="forest")
    for factor, vals in values.items():
        points = []
        for v in vals:
            train, test = pair_at(**{factor: v})
            s, _ = fit_and_score(clone(est), train, test, classes, "forest")
            points.append(SweepPoint(v, s.accuracy, s.accuracy_se, s.run_accuracy))
            if tick is not None:
                tick(1)
        setattr(out, factor, points)
    return out
