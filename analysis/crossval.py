"""Fit-and-score and repeated grouped cross-validation of rule classifiers.

A test sample is one (run, layer); run-level accuracy averages the class probabilities of a
run's layers and takes the argmax (one vote per network). Hyperparameters are chosen inside
each training set by inner cross-validation grouped by run (`lrsim.analysis.classifiers`).
"""

from __future__ import annotations

import contextlib
import functools
import math
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
from sklearn.base import clone
from sklearn.metrics import confusion_matrix

from lrsim.analysis.classifiers import best_params, fit_grouped, make_classifier
from lrsim.analysis.features import Samples
from lrsim.analysis.results import Confusion, CVScore, TestScore
from lrsim.analysis.splits import sem

Tick = Callable[[int], None]


@contextlib.contextmanager
def short_warning_filters() -> Iterator[None]:
    """A short warnings filter list while fitting: under long lists (pytest's), the many
    `warnings.catch_warnings` blocks inside scikit-learn's fits cost several times the fits
    themselves (measured here: 264 s against 31 s for one test)."""
    with warnings.catch_warnings():
        warnings.resetwarnings()
        warnings.simplefilter("default")
        yield


def quiet(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Run `fn` under `short_warning_filters`."""
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with short_warning_filters():
            return fn(*args, **kwargs)
    return wrapper


def run_level_accuracy(proba: np.ndarray, groups: np.ndarray, y: np.ndarray,
                       classes: np.ndarray) -> float:
    """Accuracy per network: average the class probabilities of a run's layers, then argmax."""
    correct = []
    for g in np.unique(groups):
        m = groups == g
        correct.append(classes[np.argmax(proba[m].mean(axis=0))] == y[m][0])
    return float(np.mean(correct))


def class_proba(est: Any, X: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Class probabilities in the order of `classes` (columns of unseen classes are 0)."""
    p = est.predict_proba(X)
    out = np.zeros((len(X), len(classes)))
    for j, c in enumerate(est.classes_):
        out[:, np.searchsorted(classes, c)] = p[:, j]
    return out


def fit_and_score(est: Any, train: Samples, test: Samples, classes: np.ndarray,
                  name: str = "", inner_groups: np.ndarray | None = None
                  ) -> tuple[TestScore, Any]:
    """Fit on `train` (inner CV grouped by run, or by `inner_groups`, one per training sample),
    score on `test`: (score, fitted estimator). Confusion counts: rows = true class, columns =
    predicted, in `classes` order."""
    overlap = set(train.groups) & set(test.groups)
    if overlap:
        raise AssertionError(f"run(s) in both train and test: {sorted(overlap)[:3]}")
    est = fit_grouped(est, train.X, train.y,
                      train.groups if inner_groups is None else inner_groups)
    proba = class_proba(est, test.X, classes)
    pred = classes[np.argmax(proba, axis=1)]
    majority = Counter(train.y).most_common(1)[0][0]
    acc = float(np.mean(pred == test.y))
    n_runs = test.n_runs
    score = TestScore(
        classifier=name, accuracy=acc, accuracy_se=math.sqrt(acc * (1 - acc) / max(n_runs, 1)),
        run_accuracy=run_level_accuracy(proba, test.groups, test.y, classes), n_test_runs=n_runs,
        chance_majority=float(np.mean(test.y == majority)),
        confusion=Confusion([str(c) for c in classes],
                            confusion_matrix(test.y, pred, labels=classes).tolist()),
        best_params=best_params(est))
    return score, est


@quiet
def cross_validate(samples: Samples, classifier: str | Any, splitter: Any, *,
                   quick: bool = False, tune: bool = True, n_jobs: int = 1,
                   random_state: int = 0, name: str | None = None,
                   tick: Tick | None = None) -> CVScore:
    """Repeated grouped splits: mean and sem of sample-level and run-level accuracy, the
    majority-class chance level, summed confusion counts, hyperparameters chosen per split
    (inner CV grouped as `splitter` groups: by sibling group or by run).
    `classifier`: a name (`make_classifier`, a fresh one per split) or an estimator (cloned)."""
    classes = np.unique(samples.y)
    label = name or (classifier if isinstance(classifier, str) else type(classifier).__name__)
    scores, run_scores, chance, params = [], [], [], []
    conf = np.zeros((len(classes), len(classes)), dtype=int)
    for i, (tr, te) in enumerate(splitter.split(samples.X, samples.y, samples.groups)):
        if isinstance(classifier, str):
            est = make_classifier(classifier, n_times=samples.n_times,
                                  n_static=samples.n_static, quick=quick, tune=tune,
                                  n_jobs=n_jobs, random_state=random_state + i)
        else:
            est = clone(classifier)
        r, _ = fit_and_score(est, samples.subset(tr), samples.subset(te), classes,
                             inner_groups=splitter_units(splitter, samples.groups[tr]))
        scores.append(r.accuracy)
        run_scores.append(r.run_accuracy)
        chance.append(r.chance_majority)
        conf += np.asarray(r.confusion.counts)
        params.append(r.best_params)
        if tick is not None:
            tick(1)
    return CVScore(classifier=label, accuracy=float(np.mean(scores)), accuracy_sem=sem(scores),
                   run_accuracy=float(np.mean(run_scores)), run_accuracy_sem=sem(run_scores),
                   chance_majority=float(np.mean(chance)), n_splits=len(scores),
                   accuracy_per_split=[float(s) for s in scores],
                   confusion=Confusion([str(c) for c in classes], conf.tolist()),
                   best_params=params)


def splitter_units(splitter: Any, groups: np.ndarray) -> np.ndarray:
    """What `splitter` keeps on one side, per sample (its `units`: sibling groups or runs);
    the runs for a splitter without them (e.g. scikit-learn's)."""
    units = getattr(splitter, "units", None)
    return groups if units is None else units(groups)


def mode_params(params: list[dict[str, Any]]) -> dict[str, Any]:
    """The hyperparameters chosen most often over the splits ({} if untuned)."""
    if not params or not params[0]:
        return {}
    key = Counter(tuple(sorted(p.items())) for p in params).most_common(1)[0][0]
    return dict(key)
