"""Honest evaluation of rule identification: grouped splits, nulls, controls, held-out tests.

Every split is grouped by run: all layers of one network fall on one side (Nayebi et al. 2020
let layers of one network fall in both train and test; we do not). Scores are the mean and the
standard error of the mean over `n_splits` repeated stratified group splits,
sem = std(acc, ddof=1) / sqrt(n_splits) (splits overlap, so this understates the spread of a
fresh study; the label-permutation null (Ojala & Garriga 2010, JMLR) is the test of "better
than chance": p = (1 + #{null >= observed}) / (1 + n_permutations)).

Also here: the performance-matched control (the same classifiers on the loss / test-accuracy
curves alone), accuracy against the recording protocol (units, noise, time points, fraction
seen, observable), grouped permutation importance (Breiman 2001; a channel's whole trajectory
is permuted across test samples at once), held-out generalisation (`KEY=VALUE`) and
train-on-one-store / test-on-another, and the cheapest protocol reaching 90% accuracy.
"""

from __future__ import annotations

import contextlib
import functools
import math
import sys
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import xarray as xr
from sklearn.base import clone
from sklearn.metrics import confusion_matrix

from lrsim.analysis.classifiers import CLASSIFIERS, best_params, fit_grouped, make_classifier
from lrsim.analysis.features import (
    CONTROL_OBSERVABLES,
    Samples,
    TrajectoryFeatures,
    all_observables,
    default_observables,
    make_samples,
    run_values,
    time_index,
    unrecorded_observables,
    usable_runs,
)
from lrsim.contract import MODEL_INTERNAL
from lrsim.errors import ConfigError

TARGET_ACCURACY = 0.90
GENERALISATION_KEYS = ("architecture", "task", "activation", "substrate")
# What a recording costs an experimentalist, per observable: activations and their change come
# from the same activity recording, as do the spike-train statistics of spiking runs; the E/I
# balance needs intracellular currents, and synaptic weights are the hardest to measure.
ALL_MEASURABLE = "all measurable"
OBSERVABLE_COST = {"activations": 1, "activity_change": 1, "rate": 1, "cv_isi": 1, "fano": 1,
                   "correlation": 1, "synchrony": 1, "ei_balance": 2, "ei_correlation": 2,
                   "weights": 2}
OBSERVABLE_NAMES = {"rate": "the firing rates", "cv_isi": "the CV of the interspike intervals",
                    "fano": "the Fano factors", "correlation": "the spike-count correlations",
                    "synchrony": "the synchrony", "ei_balance": "the E/I current balance",
                    "ei_correlation": "the E/I current correlation"}


@contextlib.contextmanager
def _short_warning_filters() -> Iterator[None]:
    """A short warnings filter list while fitting: under long lists (pytest's), the many
    `warnings.catch_warnings` blocks inside scikit-learn's fits cost several times the fits
    themselves (measured here: 264 s against 31 s for one test)."""
    with warnings.catch_warnings():
        warnings.resetwarnings()
        warnings.simplefilter("default")
        yield


def _quiet(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with _short_warning_filters():
            return fn(*args, **kwargs)
    return wrapper


class RepeatedStratifiedGroupSplit:
    """`n_repeats` random train/test splits of whole groups (runs), stratified by label: in
    each repeat, for every label, round(test_size * n) of its n runs (at least 1, at most n-1)
    go to test. Labels must be constant within a group."""

    def __init__(self, n_repeats: int = 10, test_size: float = 0.25, random_state: int = 0):
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


def _run_level(proba: np.ndarray, groups: np.ndarray, y: np.ndarray, classes: np.ndarray
               ) -> float:
    """Accuracy per network: average the class probabilities of a run's layers, then argmax."""
    correct = []
    for g in np.unique(groups):
        m = groups == g
        correct.append(classes[np.argmax(proba[m].mean(axis=0))] == y[m][0])
    return float(np.mean(correct))


def _proba(est: Any, X: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Class probabilities in the order of `classes` (columns of unseen classes are 0)."""
    p = est.predict_proba(X)
    out = np.zeros((len(X), len(classes)))
    for j, c in enumerate(est.classes_):
        out[:, np.searchsorted(classes, c)] = p[:, j]
    return out


def fit_and_score(est: Any, train: Samples, test: Samples, classes: np.ndarray
                  ) -> dict[str, Any]:
    """Fit on `train` (inner CV grouped by run), score on `test`: sample and run accuracy,
    confusion counts (rows = true class, columns = predicted, in `classes` order)."""
    overlap = set(train.groups) & set(test.groups)
    if overlap:
        raise AssertionError(f"run(s) in both train and test: {sorted(overlap)[:3]}")
    est = fit_grouped(est, train.X, train.y, train.groups)
    proba = _proba(est, test.X, classes)
    pred = classes[np.argmax(proba, axis=1)]
    majority = Counter(train.y).most_common(1)[0][0]
    return {"accuracy": float(np.mean(pred == test.y)),
            "run_accuracy": _run_level(proba, test.groups, test.y, classes),
            "chance_majority": float(np.mean(test.y == majority)),
            "confusion": confusion_matrix(test.y, pred, labels=classes),
            "best_params": best_params(est), "estimator": est}


@_quiet
def cross_validate(samples: Samples, classifier: str | Any, splitter: Any, *,
                   quick: bool = False, tune: bool = True, n_jobs: int = 1,
                   random_state: int = 0, keep_estimators: bool = False) -> dict[str, Any]:
    """Repeated grouped splits: mean and sem of sample-level and run-level accuracy, the
    majority-class chance level, summed confusion counts, hyperparameters chosen per split."""
    classes = np.unique(samples.y)
    scores, run_scores, chance, params, ests = [], [], [], [], []
    conf = np.zeros((len(classes), len(classes)), dtype=int)
    for i, (tr, te) in enumerate(splitter.split(samples.X, samples.y, samples.groups)):
        if isinstance(classifier, str):
            est = make_classifier(classifier, n_times=samples.n_times,
                                  n_static=samples.n_static, quick=quick, tune=tune,
                                  n_jobs=n_jobs, random_state=random_state + i)
        else:
            est = clone(classifier)
        r = fit_and_score(est, samples.subset(tr), samples.subset(te), classes)
        scores.append(r["accuracy"])
        run_scores.append(r["run_accuracy"])
        chance.append(r["chance_majority"])
        conf += r["confusion"]
        params.append(r["best_params"])
        if keep_estimators:
            ests.append((r["estimator"], te))
    out = {"accuracy_mean": float(np.mean(scores)), "accuracy_sem": sem(scores),
           "accuracy_per_split": scores, "run_accuracy_mean": float(np.mean(run_scores)),
           "run_accuracy_sem": sem(run_scores), "chance_majority": float(np.mean(chance)),
           "confusion": conf.tolist(), "classes": classes.tolist(), "best_params": params,
           "n_splits": len(scores)}
    if keep_estimators:
        out["_estimators"] = ests
    return out


def permuted_labels(samples: Samples, rng: np.random.Generator) -> Samples:
    """The same samples with labels permuted across runs (a run keeps one label)."""
    runs = np.unique(samples.groups)
    label_of = {g: samples.y[samples.groups == g][0] for g in runs}
    shuffled = dict(zip(runs, rng.permutation([label_of[g] for g in runs])))
    out = samples.subset(np.ones(len(samples.y), bool))
    out.y = np.array([shuffled[g] for g in samples.groups])
    return out


@_quiet
def permutation_null(samples: Samples, classifier: str | Any, splitter: Any,
                     n_permutations: int, observed: float, *, quick: bool = True,
                     random_state: int = 0, n_jobs: int = 1) -> dict[str, Any]:
    """Label-permutation null: the full cross-validation rerun with run labels permuted."""
    rng = np.random.default_rng(random_state + 104729)
    null = []
    for _ in range(n_permutations):
        perm = permuted_labels(samples, rng)
        null.append(cross_validate(perm, classifier, splitter, quick=quick, tune=False,
                                   n_jobs=n_jobs, random_state=random_state)["accuracy_mean"])
    null_arr = np.asarray(null)
    return {"scores": null, "mean": float(null_arr.mean()), "q95": float(np.quantile(null_arr,
                                                                                   0.95)),
            "observed": observed, "n_permutations": n_permutations,
            "p_value": float((1 + np.sum(null_arr >= observed)) / (1 + n_permutations))}


def grouped_permutation_importance(est: Any, test: Samples, classes: np.ndarray,
                                   rng: np.random.Generator, n_repeats: int = 3
                                   ) -> dict[str, float]:
    """Accuracy drop when one channel's whole trajectory (all its time columns, jointly) is
    permuted across test samples: importance_c = acc - mean_r acc(X with block c permuted)."""
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


@_quiet
def importance(samples: Samples, est: Any, splitter: Any, *, n_repeats: int = 3,
               random_state: int = 0) -> list[dict[str, Any]]:
    """Grouped permutation importance of every channel, mean and sem over the splits, sorted
    from most to least informative."""
    classes = np.unique(samples.y)
    rng = np.random.default_rng(random_state + 7)
    per: dict[str, list[float]] = {}
    for tr, te in splitter.split(samples.X, samples.y, samples.groups):
        fitted = clone(est).fit(samples.X[tr], samples.y[tr])
        for k, v in grouped_permutation_importance(fitted, samples.subset(te), classes, rng,
                                                   n_repeats).items():
            per.setdefault(k, []).append(v)
    rows = [{"channel": k, "drop_mean": float(np.mean(v)), "drop_sem": sem(v)}
            for k, v in per.items()]
    return sorted(rows, key=lambda r: -r["drop_mean"])


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


def _print(progress: bool, msg: str) -> None:
    if progress:
        print(f"[identify] {msg}", file=sys.stderr, flush=True)


def _views(ds: xr.Dataset, dim: str, default: Any) -> list[Any]:
    return [v.item() for v in ds[dim].values] if dim in ds.coords else [default]


def _full_view(ds: xr.Dataset) -> tuple[int, float]:
    units = _views(ds, "units", 0)
    noise = _views(ds, "noise", 0.0)
    return (0 if 0 in units else max(units)), min(noise)


def _mode_params(params: list[dict[str, Any]]) -> dict[str, Any]:
    if not params or not params[0]:
        return {}
    key = Counter(tuple(sorted(p.items())) for p in params).most_common(1)[0][0]
    return dict(key)


def _summary(r: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in r.items() if not k.startswith("_")}


def _check_label(ds: xr.Dataset, label: str) -> np.ndarray:
    values = run_values(ds, label).astype(str)
    counts = Counter(values)
    if len(counts) < 2:
        raise ConfigError(f"label '{label}' has a single value ({next(iter(counts), '-')}) "
                          f"among usable runs; nothing to identify")
    few = [k for k, n in counts.items() if n < 2]
    if few:
        raise ConfigError(f"label '{label}': class(es) {', '.join(few)} have fewer than 2 "
                          f"usable runs; grouped splits need at least 2 per class")
    return values


def protocol_cost(observable: str, units: int, noise: float, time_points: int
                  ) -> tuple[float, int, int, float]:
    """The order 'cheapest first' of recording protocols: fewer units recorded (0 = all is the
    most), cheaper observables (activity-derived 1, weights 2, all of them 3), fewer time
    points, then more measurement noise tolerated."""
    obs_cost = OBSERVABLE_COST.get(observable, 3 if observable == ALL_MEASURABLE else 2)
    return (math.inf if units == 0 else units, obs_cost, time_points, -noise)


def protocol_sentence(protocol: dict[str, Any] | None, label: str, target: float) -> str:
    """The sentence naming the cheapest protocol that reaches `target` accuracy, if any."""
    if protocol is None:
        return (f"No recording protocol tried reached {target:.0%} accuracy for the {label}: "
                f"collect more runs or record more.")
    units = "all units" if protocol["units"] == 0 else f"{protocol['units']} units per layer"
    obs = ("all measurable observables" if protocol["observable"] == ALL_MEASURABLE
           else OBSERVABLE_NAMES.get(protocol["observable"],
                                     f"the {protocol['observable'].replace('_', ' ')}"))
    return (f"The cheapest recording protocol reaching {target:.0%} accuracy for the {label} is "
            f"{obs} from {units} with {protocol['noise']:g} relative measurement noise at "
            f"{protocol['time_points']} time points (random forest: "
            f"{protocol['accuracy_mean']:.1%} +/- {protocol['accuracy_sem']:.1%} s.e.m.).")


def identify(ds: xr.Dataset, **kwargs: Any) -> dict[str, Any]:
    """The whole identification study on a store Dataset (dim `run`); returns every number the
    report shows (JSON-safe). Keywords as `_identify`. BLAS runs single-threaded inside (the
    problems are small; threaded BLAS on a busy machine slows them down many times)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"), _short_warning_filters():
        return _identify(ds, **kwargs)


def _identify(ds: xr.Dataset, *, label: str = "rule",
             classifiers: Sequence[str] = CLASSIFIERS, holdout: str | None = None,
             test_ds: xr.Dataset | None = None, quick: bool = False, n_splits: int = 10,
             n_permutations: int | None = None, random_state: int = 0, n_jobs: int = 1,
             progress: bool = False, store: str = "", test_store: str = "",
             observables: Sequence[str] | None = None,
             log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Main evaluation (every classifier, all observables), control, null, per-observable and
    protocol sweeps, importance, held-out generalisation, --test store, cheapest protocol.
    `observables`: the variables to identify from (None: `all_observables`, i.e. the measurable
    ones every run records, then `alignment`); at least one must be measurable."""
    classifiers = list(classifiers)
    bad = [c for c in classifiers if c not in CLASSIFIERS]
    if bad or not classifiers:
        raise ConfigError(f"unknown classifier(s) {', '.join(bad) or '(none)'}; allowed: "
                          f"{', '.join(CLASSIFIERS)}")
    if n_splits < 2:
        raise ConfigError(f"n_splits must be >= 2 (got {n_splits})")
    say = log or (lambda m: _print(progress, m))
    statuses = Counter(np.asarray(ds["status"].values).astype(str)) if "status" in ds.coords \
        else Counter({"ok": ds.sizes["run"]})
    data = usable_runs(ds)
    if data.sizes.get("run", 0) == 0:
        raise ConfigError("the store has no usable runs (status 'ok')")
    _check_label(data, label)
    units0, noise0 = _full_view(data)
    left_out = unrecorded_observables(data) if observables is None else {}
    if observables is None:
        measurable = default_observables(data)
        observables = all_observables(data)
    else:
        observables = list(dict.fromkeys(observables))
        TrajectoryFeatures(observables).fit(data)  # ConfigError naming what is not recorded
        measurable = [o for o in observables if o not in (*MODEL_INTERNAL, *CONTROL_OBSERVABLES)]
        if not measurable:
            raise ConfigError(f"observables: name at least one measurable observable (got "
                              f"{', '.join(observables)}; the store has "
                              f"{', '.join(default_observables(data)) or 'none'})")
    control_obs = [o for o in CONTROL_OBSERVABLES if o in data.data_vars]
    meta_keys = [k for k in (*GENERALISATION_KEYS, "optimizer", "rule", "rule_family", "lr",
                             "seed") if k in data.coords]
    splitter = RepeatedStratifiedGroupSplit(n_splits, 0.25, random_state)
    n_time = int(data.sizes["time"])
    feats = TrajectoryFeatures(observables, units=units0, noise=noise0)
    samples = make_samples(data, feats, label, meta_keys)
    classes = np.unique(samples.y)
    n_perm = n_permutations if n_permutations is not None else (19 if quick else 99)
    null_splits = RepeatedStratifiedGroupSplit(min(3, n_splits), 0.25, random_state)
    # sweeps, importance and the protocol search: fewer splits with --quick
    sweep_splits = RepeatedStratifiedGroupSplit(min(5, n_splits) if quick else n_splits, 0.25,
                                                random_state)
    results: dict[str, Any] = {
        "store": store, "label": label, "classes": classes.tolist(),
        "n_runs": int(data.sizes["run"]), "n_runs_total": int(ds.sizes["run"]),
        "runs_by_status": dict(statuses), "n_samples": int(len(samples.y)),
        "runs_per_class": {c: int(len(set(samples.groups[samples.y == c]))) for c in classes},
        "observables": observables, "measurable_observables": measurable,
        # spiking statistics that only some runs record (a store mixing rate and spiking runs):
        # left out, with the number of runs lacking each
        "observables_left_out": left_out,
        "control_observables": control_obs,
        "stats": list(feats.stats_), "n_time": int(data.sizes["time"]),
        "view": {"units": units0, "noise": noise0},
        "settings": {"n_splits": n_splits, "test_size": 0.25, "quick": quick,
                     "classifiers": classifiers, "random_state": random_state,
                     "n_permutations": n_perm, "target_accuracy": TARGET_ACCURACY},
        "chance": {"uniform": 1.0 / len(classes)},
    }

    # Main evaluation: all observables, every classifier.
    results["main"] = {}
    forest_keep = None
    for clf in classifiers:
        say(f"{clf}: {n_splits} grouped splits over {len(samples.y)} samples "
            f"({results['n_runs']} runs)")
        r = cross_validate(samples, clf, splitter, quick=quick, n_jobs=n_jobs,
                           random_state=random_state)
        results["main"][clf] = r
        results["chance"]["majority"] = r["chance_majority"]
    # The sweep classifier: the random forest with the hyperparameters inner CV chose most often.
    sweep_est = make_classifier("forest", quick=quick, tune=False, n_jobs=n_jobs,
                                random_state=random_state)
    if "forest" in results["main"]:
        forest_keep = _mode_params(results["main"]["forest"]["best_params"])
        sweep_est.set_params(**forest_keep)
    results["sweep_classifier"] = {"name": "forest", "params": forest_keep or {},
                                   "n_splits": sweep_splits.n_repeats}

    cache: dict[tuple, dict[str, Any]] = {}

    def sweep_score(observables: Sequence[str] = tuple(observables), units: int = units0,
                    noise: float = noise0, time_points: int | None = None,
                    fraction: float = 1.0) -> dict[str, Any]:
        n_seen = len(time_index(n_time, fraction, time_points))
        key = (tuple(observables), units, float(noise), n_seen, fraction)
        if key not in cache:
            f = TrajectoryFeatures(list(observables), units=units, noise=noise,
                                   time_points=time_points, fraction=fraction)
            s = make_samples(data, f, label)
            r = cross_validate(s, sweep_est, sweep_splits, random_state=random_state)
            cache[key] = {"accuracy_mean": r["accuracy_mean"], "accuracy_sem": r["accuracy_sem"],
                          "run_accuracy_mean": r["run_accuracy_mean"],
                          "n_features": int(s.X.shape[1])}
        return cache[key]

    # Control: loss and accuracy curves alone.
    results["control"] = {}
    if control_obs:
        ctrl = make_samples(data, TrajectoryFeatures(control_obs, depth=True), label)
        for clf in classifiers:
            say(f"control ({', '.join(control_obs)} only): {clf}")
            results["control"][clf] = cross_validate(ctrl, clf, splitter, quick=quick,
                                                     n_jobs=n_jobs, random_state=random_state)
        results["added_by_observables"] = {
            clf: results["main"][clf]["accuracy_mean"] - results["control"][clf]["accuracy_mean"]
            for clf in classifiers}

    # Label-permutation null for the sweep classifier on all observables.
    say(f"label-permutation null: {n_perm} permutations")
    observed = sweep_score()
    on_null_splits = cross_validate(samples, sweep_est, null_splits, random_state=random_state)
    results["null"] = permutation_null(samples, sweep_est, null_splits, n_perm,
                                       on_null_splits["accuracy_mean"],
                                       random_state=random_state)
    results["null"]["n_splits"] = null_splits.n_repeats
    results["null"]["classifier"] = "forest"

    # Accuracy per observable, and against the recording protocol.
    say("accuracy per observable and against units / noise / time points / fraction")
    results["per_observable"] = {o: sweep_score(observables=[o]) for o in observables}
    if len(measurable) > 1:
        results["per_observable"]["+".join(measurable)] = sweep_score(observables=measurable)
    results["per_observable"]["all recorded"] = {k: observed[k] for k in
                                        ("accuracy_mean", "accuracy_sem", "run_accuracy_mean")}
    tp_values = sorted({t for t in ((3, 9) if quick else (2, 3, 5, 9, 17, 33)) if t < n_time}
                       | {n_time})
    fractions = [0.25, 0.5, 1.0] if quick else [0.1, 0.25, 0.5, 0.75, 1.0]
    results["sweeps"] = {
        "units": [{"value": u, **sweep_score(units=u)} for u in _views(data, "units", 0)],
        "noise": [{"value": n, **sweep_score(noise=n)} for n in _views(data, "noise", 0.0)],
        "time_points": [{"value": t, **sweep_score(time_points=t)} for t in tp_values],
        "fraction": [{"value": f, **sweep_score(fraction=f)} for f in fractions],
    }

    # Which statistics matter.
    say("grouped permutation importance")
    results["importance"] = importance(samples, sweep_est, sweep_splits,
                                       n_repeats=2 if quick else 5, random_state=random_state)

    # Held-out generalisation: every value of every key that varies, and --holdout.
    results["generalisation"] = []
    for key in GENERALISATION_KEYS:
        if key not in samples.meta:
            continue
        for value in sorted({str(v) for v in samples.meta[key]}):
            if len({str(v) for v in samples.meta[key]}) < 2:
                break
            say(f"held out: {key}={value}")
            results["generalisation"].append(
                _holdout(samples, key, value, ["forest"], sweep_est, quick, n_jobs,
                         random_state))
    if holdout:
        key, value = parse_holdout(holdout)
        if key not in samples.meta:
            samples.meta[key] = _meta_for(data, samples, key)
        say(f"--holdout {key}={value}")
        results["holdout"] = _holdout(samples, key, value, classifiers, None, quick, n_jobs,
                                      random_state)

    if test_ds is not None:
        say("train on this store, test on the other")
        results["test_store"] = _across_stores(data, test_ds, feats, label, classifiers, quick,
                                               n_jobs, random_state, test_store)

    # The cheapest protocol reaching the target.
    say("searching the cheapest protocol reaching 90%")
    results["protocol"] = cheapest_protocol(data, measurable, tp_values, sweep_score)
    results["protocol"]["sentence"] = protocol_sentence(results["protocol"]["cheapest"], label,
                                                        TARGET_ACCURACY)
    for clf in classifiers:
        results["main"][clf] = _summary(results["main"][clf])
    return results


def _meta_for(data: xr.Dataset, samples: Samples, key: str) -> np.ndarray:
    values = run_values(data, key)
    index = {r: i for i, r in enumerate(np.asarray(data["run"].values).astype(str))}
    return values[[index[g] for g in samples.groups]]


def _holdout(samples: Samples, key: str, value: str, classifiers: Sequence[str],
             fixed: Any, quick: bool, n_jobs: int, random_state: int) -> dict[str, Any]:
    """Train on the runs whose `key` does not match `value`, test on those that do."""
    mask = holdout_mask(samples.meta[key], value)
    if not mask.any():
        allowed = sorted({str(v) for v in samples.meta[key]})
        raise ConfigError(f"--holdout {key}={value}: no usable run has that value; the store "
                          f"has {key} = {', '.join(allowed)}")
    if mask.all():
        raise ConfigError(f"--holdout {key}={value}: every run has that value; nothing left "
                          f"to train on")
    train, test = samples.subset(~mask), samples.subset(mask)
    classes = np.unique(samples.y)
    out: dict[str, Any] = {"key": key, "value": value, "n_train_runs": train.n_runs,
                           "n_test_runs": test.n_runs,
                           "unseen_classes": sorted(set(test.y) - set(train.y)),
                           "classes": classes.tolist(), "results": {}}
    for clf in classifiers:
        est = (clone(fixed) if fixed is not None else
               make_classifier(clf, n_times=samples.n_times, n_static=samples.n_static,
                               quick=quick, n_jobs=n_jobs, random_state=random_state))
        r = fit_and_score(est, train, test, classes)
        acc = r["accuracy"]
        out["results"][clf] = {"accuracy": acc, "run_accuracy": r["run_accuracy"],
                               "accuracy_se": math.sqrt(acc * (1 - acc) / test.n_runs),
                               "chance_majority": r["chance_majority"],
                               "confusion": r["confusion"].tolist(),
                               "best_params": r["best_params"]}
    return out


def _across_stores(train_ds: xr.Dataset, test_ds: xr.Dataset, feats: TrajectoryFeatures,
                   label: str, classifiers: Sequence[str], quick: bool, n_jobs: int,
                   random_state: int, name: str) -> dict[str, Any]:
    test_ds = usable_runs(test_ds)
    if test_ds.sizes.get("run", 0) == 0:
        raise ConfigError("--test store has no usable runs (status 'ok')")
    test_feats = clone(feats)
    try:
        test_feats.fit(test_ds)
    except ConfigError as err:
        raise ConfigError(f"--test store does not match the training store: {err}") from None
    if test_feats.channels_ != feats.channels_ or test_feats.n_times_ != feats.n_times_:
        raise ConfigError("--test store records other observables, stats or time points than "
                          "the training store; both need the same [observe] settings")
    train = make_samples(train_ds, feats, label)
    test = make_samples(test_ds, test_feats, label)
    clash = set(train.groups) & set(test.groups)
    if clash:
        raise ConfigError(f"--test store shares {len(clash)} run id(s) with the training store "
                          f"(e.g. {sorted(clash)[0]}); use a store of other runs")
    classes = np.unique(np.concatenate([train.y, test.y]))
    out: dict[str, Any] = {"store": name, "n_train_runs": train.n_runs,
                           "n_test_runs": test.n_runs, "classes": classes.tolist(),
                           "unseen_classes": sorted(set(test.y) - set(train.y)), "results": {}}
    for clf in classifiers:
        est = make_classifier(clf, n_times=train.n_times, n_static=train.n_static,
                              quick=quick, n_jobs=n_jobs, random_state=random_state)
        r = fit_and_score(est, train, test, classes)
        acc = r["accuracy"]
        out["results"][clf] = {"accuracy": acc, "run_accuracy": r["run_accuracy"],
                               "accuracy_se": math.sqrt(acc * (1 - acc) / test.n_runs),
                               "chance_majority": r["chance_majority"],
                               "confusion": r["confusion"].tolist()}
    return out


def cheapest_protocol(data: xr.Dataset, observables: Sequence[str], time_points: Sequence[int],
                      score: Callable[..., dict[str, Any]],
                      target: float = TARGET_ACCURACY) -> dict[str, Any]:
    """The cheapest protocol (`protocol_cost`) over observable (each, or all) x units x noise x
    time points whose mean accuracy (`score(observables=..., units=..., noise=...,
    time_points=...)`) reaches `target`.

    Observables without a `units` (`noise`) dim are tried at the full view only.
    Search, assuming accuracy does not fall with more units, less noise or more time points:
    for each observable and (units, noise) view from the richest down, the view is tried with
    all time points; a view that fails prunes every view it dominates (fewer units, more
    noise); a view that passes gets the fewest time points that pass by bisection."""
    units_all = _views(data, "units", 0)
    noise_all = sorted(_views(data, "noise", 0.0))
    rich = sorted(units_all, key=lambda u: -(math.inf if u == 0 else u))
    tps = sorted(time_points)
    tried: list[dict[str, Any]] = []
    passing: list[dict[str, Any]] = []

    def evaluate(o: str, u: int, n: float, t: int) -> bool:
        obs = list(observables) if o == ALL_MEASURABLE else [o]
        r = score(observables=obs, units=u, noise=n, time_points=t)
        row = {"observable": o, "units": u, "noise": n, "time_points": t,
               "accuracy_mean": r["accuracy_mean"], "accuracy_sem": r["accuracy_sem"]}
        tried.append(row)
        if r["accuracy_mean"] >= target:
            passing.append(row)
            return True
        return False

    def richer(a: int, b: int) -> bool:  # units a >= units b, 0 = all
        return (math.inf if a == 0 else a) >= (math.inf if b == 0 else b)

    for o in [*observables, ALL_MEASURABLE]:
        failed: list[tuple[int, float]] = []
        # an observable recorded without a units / noise dim (the spiking statistics, from
        # every recorded neuron) is the same in every view: only the full one names it honestly
        dims = set(data[o].dims) if o in data.data_vars else {"units", "noise"}
        for u in rich if "units" in dims else rich[:1]:
            for n in noise_all if "noise" in dims else noise_all[:1]:
                if any(richer(fu, u) and fn <= n for fu, fn in failed):
                    continue
                if not evaluate(o, u, n, tps[-1]):
                    failed.append((u, n))
                    continue
                lo, hi = 0, len(tps) - 1  # tps[hi] passes
                while lo < hi:
                    mid = (lo + hi) // 2
                    if evaluate(o, u, n, tps[mid]):
                        hi = mid
                    else:
                        lo = mid + 1
    cheapest = min(passing, key=lambda r: protocol_cost(r["observable"], r["units"], r["noise"],
                                                         r["time_points"]), default=None)
    return {"tried": tried, "cheapest": cheapest, "target": target,
            "n_candidates": (len(observables) + 1) * len(units_all) * len(noise_all) * len(tps)}
