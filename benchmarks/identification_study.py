"""Rule identification on a training store and a held-out test store: the measurements behind
the README section "Identification: the anchor study".

One command per study (stores from `lrsim scan`, see the experiment files):

    .venv/bin/python benchmarks/identification_study.py anchor      # 6 rule x optimizer classes
    .venv/bin/python benchmarks/identification_study.py seven       # the 7 rules of issue 11
    .venv/bin/python benchmarks/identification_study.py anchor --quick   # fewer splits / trees

reads `runs/<study>-train` and `runs/<study>-test` (`--train`, `--test` to change), writes
`runs/<study>-results.json` (`--out`) and prints the tables. What it measures, each for raw
features and for features relative to their value before learning
(`TrajectoryFeatures(reference="initial")`), with a random forest on one sample per (network,
layer) and the network's rule read from its layers' averaged class probabilities ("run
accuracy"; per-layer accuracy beside it):

- within the training store: repeated grouped splits (no network in both train and test),
- on the test store (networks of a task, activation and architecture never trained on),
- per observable set (measurable only: weights, activations, activity change, population
  geometry; the loss / accuracy curves alone as the control; everything recorded including
  the model-internal `alignment` for reference),
- against the recording: units recorded, measurement noise, time points,
- per observable against the recording (robustness to undersampling and noise),
- held out by factor inside the training store (each task, activation, architecture left out),
- which statistics carry the rule (permutation and impurity importance),
- confusion matrices of the headline,
- `--only heldout`: the held-out test alone (training on every store of the study, 5 forest
  seeds of 200 trees; all classes and the anchor's 4; the control beside it); `--only heldout
  target`: the same with the similarity with the task's targets (`rsa_target`) added, on
  stores that record it; `--only heldout synapses`: the same with the synaptic similarity
  (`synaptic_similarity`) added; `--only heldout change`: with the alignment of the activity
  change with the initial correlations (`change_alignment`) added; `--forests N` averages N
  forest seeds instead of 5 (the held-out figure moves by several points between groups of 5).
  `--root DIR` reads the stores from DIR instead of runs/; `--test DIR` holds out another
  store, e.g. the second test condition (experiments/anchor-test2.toml, and its XOR variant).
- `--only tasks-out`: each task of the training stores left out in turn (trained on the other
  tasks, tested on its networks; `--forests` seeds of 200 trees, all classes and the anchor's
  4, measurable and the control; with `change`, `target` or `synapses` also the measurable
  set with that observable added): how far the held-out figure of one test condition stands
  for a task never seen in general.
- `--only task-shots`: the same, with n = 0, 1, 2, 4, 8 networks per class of the task left
  out moved into training (drawn at random; `--forests` draws, each with its own forest seed),
  tested on the task's other networks, and those 8 per class alone as the training set: how
  many simulations of a new task the classifier needs.
- `--only condition-shots`: each condition (task, activation, architecture) of the training
  stores on its own, 1, 2, 4 or 8 networks per class of one seed as the whole training set,
  tested on its networks of the other seed and other learning-rate draws: how typical the
  calibration store's figure on the test condition is.
- `--only siblings`: within-store cross-validation grouped by run against grouped by
  (condition, seed): how much networks that share a test network's condition and seed (the
  same initial weights and minibatches) lift the within-store figure.
- `--only matched`: the performance-matched control of `lrsim identify`
  (`lrsim.analysis.control.matched_control`) on the training stores, all classes and the
  anchor's 4: runs matched across classes for their loss / accuracy curves until the
  loss-curve forest is at chance, then the measurable observables scored on the same runs
  (splits keep sibling groups whole where the matched runs allow it; 19 permutations).
- `--only heldout no-geometry` (or `tasks-out no-geometry`, with `change` etc. as above): every
  observable set also without the population geometry.
- `--only by-optimizer`: rule x optimizer in two stages: the optimizer from every family,
  then the rule by a forest of that optimizer's networks on the families (all, or all but
  one) that score best on the training tasks left out in turn (chosen without the test store).
- `--only families`: observable families (weights, activations, activity change, geometry,
  and `change_alignment` where both stores record it): one forest without each family in
  turn, and late fusion (one forest per family, class probabilities averaged), on the held-out
  test (`--forests` seeds) and on each training task left out (one seed).
- `--only networks`: the held-out test with the forest trained on 1/8, 1/4, 1/2 and all of the
  training networks, thinned per (class, condition) cell (`lrsim.analysis.training_size`, the
  curve `lrsim identify` reports) or by whole conditions; `--forests` seeds x 3 draws.

Everything runs single-threaded (BLAS and torch) at nice priority when started with `nice`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402
from sklearn.ensemble import RandomForestClassifier  # noqa: E402
from sklearn.model_selection import GroupShuffleSplit  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

import lrsim  # noqa: E402
from lrsim.analysis.control import matched_control  # noqa: E402
from lrsim.analysis.evaluation import (  # noqa: E402
    RepeatedStratifiedGroupSplit,
    cross_validate,
    fit_and_score,
    importance,
)
from lrsim.analysis.features import (  # noqa: E402
    TrajectoryFeatures,
    make_samples,
    observable_of,
    usable_runs,
)
from lrsim.analysis.siblings import split_units  # noqa: E402
from lrsim.analysis.training_size import held_out_curve  # noqa: E402

MEASURED = ("weights", "activations", "activity_change")
GEOMETRY = ("dimensionality", "rsa_initial", "rsa_previous", "rsa_layer", "coupling")
# recorded by stores that list it, tried on top of the measurable set (`--only target`), not
# part of the headline: the similarity with the task's targets
TARGET = "rsa_target"
# recorded by stores that list it, tried on top of the measurable set (`--only synapses`): the
# similarity of the recorded units' incoming and outgoing synaptic changes
SYNAPSES = "synaptic_similarity"
# recorded by stores that list it, tried on top of the measurable set (`--only change`): how
# far the recorded units' activity changed along the correlations they started with
CHANGE = "change_alignment"
CONTROL = ("loss", "test_accuracy")
STUDIES = {"anchor": "rule_optimizer", "seven": "rule", "tasks": "rule_optimizer",
           "activations": "rule_optimizer", "factorial": "rule_optimizer",
           "seven-diverse": "rule", "tasks6": "rule_optimizer", "all": "rule_optimizer",
           "tasks8": "rule_optimizer", "all8": "rule_optimizer",
           "anchor-calibrated": "rule_optimizer", "all-calibrated": "rule_optimizer",
           "variants": "rule_optimizer", "conditions": "rule_optimizer"}
# the diversity arms: the anchor's training store plus experiments/anchor-tasks.toml (tasks),
# plus experiments/anchor-activations.toml (activations); the factor each arm varies
TRAIN_STORES = {"tasks": ("runs/anchor-train", "runs/anchor-tasks"),
                "activations": ("runs/anchor-train", "runs/anchor-tasks",
                                "runs/anchor-activations")}
TEST_STORES = {"tasks": "runs/anchor-test", "activations": "runs/anchor-test",
               "factorial": "runs/anchor-factorial"}
TRAIN_STORES["factorial"] = TRAIN_STORES["activations"]
# six tasks (experiments/anchor-tasks2.toml adds parity and rings), and every anchor store
TRAIN_STORES["tasks6"] = (*TRAIN_STORES["tasks"], "runs/anchor-tasks2")
TRAIN_STORES["all"] = (*TRAIN_STORES["activations"], "runs/anchor-tasks2")
TEST_STORES.update({"tasks6": "runs/anchor-test", "all": "runs/anchor-test"})
# eight tasks (experiments/anchor-tasks3.toml adds random_labels and linear_modes)
TRAIN_STORES["tasks8"] = (*TRAIN_STORES["tasks6"], "runs/anchor-tasks3")
TRAIN_STORES["all8"] = (*TRAIN_STORES["all"], "runs/anchor-tasks3")
TEST_STORES.update({"tasks8": "runs/anchor-test", "all8": "runs/anchor-test"})
# a few networks of the test condition added to training (experiments/anchor-calibration.toml)
TRAIN_STORES["anchor-calibrated"] = ("runs/anchor-train", "runs/anchor-calibration")
TRAIN_STORES["all-calibrated"] = (*TRAIN_STORES["all"], "runs/anchor-calibration")
TEST_STORES.update({"anchor-calibrated": "runs/anchor-test", "all-calibrated": "runs/anchor-test"})
# more conditions of related tasks (experiments/anchor-variants.toml: 2 and 5 classes,
# two more architectures)
TRAIN_STORES["variants"] = (*TRAIN_STORES["all"], "runs/anchor-variants")
TEST_STORES["variants"] = "runs/anchor-test"
# one network per class in each of 150 more conditions (experiments/anchor-conditions.toml)
TRAIN_STORES["conditions"] = (*TRAIN_STORES["variants"], "runs/anchor-conditions")
TEST_STORES["conditions"] = "runs/anchor-test"
# the seven rules' diversity arm: experiments/seven-rules-diverse.toml
TRAIN_STORES["seven-diverse"] = ("runs/seven-train", "runs/seven-diverse")
TEST_STORES["seven-diverse"] = "runs/seven-test"
# the factorial test store's seen values (those of experiments/anchor-train.toml)
SEEN = {"task": "digits", "activation": "relu", "architecture": "128-128"}  # of CONDITION
# the factor each diversity arm varies, the fixed training size, the draws per combination
DIVERSITY = {"tasks": ("task", 144, 3), "activations": ("activation", 144, 3),
             "tasks6": ("task", 144, 1)}
# the anchor's four classes (Nayebi et al. 2020): SGD-M, Adam, FA, IA
ANCHOR_FOUR = ("backprop+momentum", "backprop+adam", "feedback_alignment+momentum",
               "information_alignment+momentum")


def open_store(path: str | Path) -> xr.Dataset:
    """The usable runs of a store, with the derived label rule_optimizer = rule+optimizer."""
    ds = usable_runs(lrsim.open_scan(path))
    lab = np.char.add(np.char.add(ds["rule"].values.astype(str), "+"),
                      ds["optimizer"].values.astype(str))
    return ds.assign_coords(rule_optimizer=("run", lab.astype(object)))


def open_stores(paths: list[str]) -> xr.Dataset:
    """The usable runs of one or more stores, as one Dataset along `run`."""
    parts = [open_store(p) for p in paths]
    if len(parts) == 1:
        return parts[0]
    # keep what every store records (task parameters differ between tasks)
    common = set.intersection(*(set(d.variables) for d in parts))
    parts = [d.drop_vars([v for v in d.variables if v not in common]) for d in parts]
    return xr.concat(parts, dim="run", join="outer", combine_attrs="drop_conflicts")


def n_runs(path: str | Path) -> dict[str, int]:
    ds = lrsim.open_scan(path)
    status = ds["status"].values.astype(str)
    return {s: int((status == s).sum()) for s in sorted(set(status))}


FOREST_JOBS = 1  # threads per forest (`--jobs`); the trees do not depend on it


def forest(trees: int, seed: int = 0) -> RandomForestClassifier:
    return RandomForestClassifier(n_estimators=trees, max_features="sqrt", n_jobs=FOREST_JOBS,
                                  random_state=seed)


def _get(r: Any, *keys: str) -> Any:
    """A value of an evaluation result, dict (today) or dataclass (typed results)."""
    for k in keys:
        if isinstance(r, dict) and k in r:
            return r[k]
        if hasattr(r, k):
            return getattr(r, k)
    raise KeyError(keys)


def _confusion(r: Any) -> list[list[int]]:
    c = _get(r, "confusion")
    return [list(map(int, row)) for row in (c.counts if hasattr(c, "counts") else c)]


def subset(ds: xr.Dataset, label: str, classes: tuple[str, ...] | None) -> xr.Dataset:
    if classes is None:
        return ds
    keep = np.isin(ds[label].values.astype(str), list(classes))
    return ds.isel(run=np.flatnonzero(keep))


def train_test_samples(train: xr.Dataset, test: xr.Dataset, label: str,
                       observables: list[str], *, reference: str, units: int, noise: float,
                       time_points: int | None = None, meta_keys: tuple[str, ...] = ()
                       ) -> tuple[Any, Any, np.ndarray]:
    """(training samples, test samples, classes of both): the same features read from both
    stores, each fitted on its own store (the channels and time grid depend on the settings
    only)."""
    def read(ds: xr.Dataset) -> Any:
        feats = TrajectoryFeatures(observables, units=units, noise=noise,
                                   time_points=time_points, reference=reference)
        return make_samples(ds, feats, label, meta_keys=meta_keys)

    s_tr, s_te = read(train), read(test)
    return s_tr, s_te, np.unique(np.concatenate([s_tr.y, s_te.y]))


def measure(train: xr.Dataset, test: xr.Dataset | None, label: str, observables: list[str],
            *, reference: str, units: int, noise: float, time_points: int | None,
            splits: int, trees: int) -> dict[str, Any]:
    """Within-store CV on `train` and, with `test`, train on all of it and test on `test`."""
    feats = TrajectoryFeatures(observables, units=units, noise=noise, time_points=time_points,
                               reference=reference)
    s_tr = make_samples(train, feats, label)
    cv = cross_validate(s_tr, forest(trees), RepeatedStratifiedGroupSplit(splits, 0.25, 0))
    out: dict[str, Any] = {
        "cv_run": _get(cv, "run_accuracy_mean", "run_accuracy"),
        "cv_run_sem": _get(cv, "run_accuracy_sem"),
        "cv_layer": _get(cv, "accuracy_mean", "accuracy"),
        "cv_confusion": _confusion(cv), "classes": list(map(str, np.unique(s_tr.y))),
        "n_features": int(s_tr.X.shape[1]), "n_train_runs": int(s_tr.n_runs)}
    if test is not None:
        f_te = TrajectoryFeatures(observables, units=units, noise=noise,
                                  time_points=time_points, reference=reference).fit(test)
        s_te = make_samples(test, f_te, label)
        classes = np.unique(np.concatenate([s_tr.y, s_te.y]))
        r = fit_and_score(forest(trees), s_tr, s_te, classes)
        r = r[0] if isinstance(r, tuple) else r
        out.update({"test_run": _get(r, "run_accuracy"), "test_layer": _get(r, "accuracy"),
                    "test_confusion": _confusion(r), "test_classes": list(map(str, classes)),
                    "n_test_runs": int(s_te.n_runs)})
    return out


def scores(r: dict[str, Any]) -> dict[str, Any]:
    """The four accuracies of a `measure` result (within-store and held out, per run / layer)."""
    return {k: r[k] for k in ("cv_run", "cv_layer", "test_run", "test_layer")}


def by_factor(train: xr.Dataset, label: str, observables: list[str], *, reference: str,
              units: int, noise: float, trees: int) -> list[dict[str, Any]]:
    """Leave each value of task / activation / architecture out of the training store: train
    on the rest, test on it."""
    rows = []
    for key in ("task", "activation", "architecture"):
        values = sorted(set(train[key].values.astype(str)))
        if len(values) < 2:
            continue
        for v in values:
            held = train[key].values.astype(str) == v
            r = measure(train.isel(run=np.flatnonzero(~held)), train.isel(run=np.flatnonzero(held)),
                        label, observables, reference=reference, units=units, noise=noise,
                        time_points=None, splits=2, trees=trees)
            rows.append({"key": key, "value": v, "test_run": r["test_run"],
                         "test_layer": r["test_layer"], "n_test_runs": r["n_test_runs"]})
    return rows


def channel_importance(train: xr.Dataset, label: str, observables: list[str], *, units: int,
                       noise: float, trees: int, splits: int) -> dict[str, Any]:
    """Which statistics carry the rule, for relative features at this view: grouped
    permutation importance per channel (a channel's whole trajectory permuted across test
    samples; `lrsim.analysis.evaluation.importance`) and the forest's impurity importance summed
    per channel, per statistic (e.g. `median` over weights / activations / transforms) and per
    observable (Nayebi et al. 2020 read the forest's impurity importances)."""
    feats = TrajectoryFeatures(observables, units=units, noise=noise, reference="initial")
    s = make_samples(train, feats, label)
    rows = importance(s, forest(trees), RepeatedStratifiedGroupSplit(splits, 0.25, 0),
                      n_repeats=2)
    perm = [{"channel": _get(r, "channel"), "drop": _get(r, "drop_mean", "drop")}
            for r in rows]
    est = forest(trees).fit(s.X, s.y)
    imp = est.feature_importances_
    per_channel: dict[str, float] = {}
    for name, v in zip(s.feature_names, imp):
        per_channel[name.split("[")[0]] = per_channel.get(name.split("[")[0], 0.0) + float(v)
    by_stat: dict[str, float] = {}
    by_obs: dict[str, float] = {}
    for ch, v in per_channel.items():
        obs, _, stat = ch.partition(".")
        key = stat.split("_", 1)[1] if "_" in stat else (stat or obs)
        by_stat[key] = by_stat.get(key, 0.0) + v
        by_obs[obs] = by_obs.get(obs, 0.0) + v
    return {"permutation": perm,
            "impurity_by_channel": [{"channel": k, "impurity": v} for k, v in
                                    sorted(per_channel.items(), key=lambda kv: -kv[1])],
            "impurity_by_statistic": [{"statistic": k, "impurity": v} for k, v in
                                      sorted(by_stat.items(), key=lambda kv: -kv[1])],
            "impurity_by_observable": [{"observable": k, "impurity": v} for k, v in
                                       sorted(by_obs.items(), key=lambda kv: -kv[1])]}


def balanced_runs(ds: xr.Dataset, label: str, factor: str, values: tuple[str, ...],
                  n_train: int, rng: np.random.Generator) -> np.ndarray:
    """Run ids of a training set of about `n_train` networks drawn evenly from the `values` of
    `factor` and, within each, evenly from every class (without replacement; n_train //
    (values x classes) per cell)."""
    classes = sorted(set(ds[label].values.astype(str)))
    per = n_train // (len(values) * len(classes))
    of, lab = ds[factor].values.astype(str), ds[label].values.astype(str)
    runs = np.asarray(ds["run"].values).astype(str)
    chosen = []
    for v in values:
        for c in classes:
            pool = runs[(of == v) & (lab == c)]
            if len(pool) < per:
                raise SystemExit(f"{factor} {v}, class {c}: {len(pool)} networks, {per} needed")
            chosen.extend(rng.choice(pool, per, replace=False))
    return np.asarray(chosen)


def diversity(train: xr.Dataset, test: xr.Dataset, label: str, observables: list[str],
              factor: str, *, reference: str, units: int, noise: float, trees: int,
              n_train: int, draws: int) -> list[dict[str, Any]]:
    """Held-out accuracy against the number of values of `factor` (task, activation) seen in
    training, at a fixed training-set size: for every combination of k of the training
    store's values, `draws` training sets of about `n_train` networks balanced over values and
    classes, each tested on the whole test store (whose value none of them saw); then
    leave-one-value-out over all values, and all training networks at once."""
    from itertools import combinations

    s_all, s_te, classes = train_test_samples(train, test, label, observables,
                                              reference=reference, units=units, noise=noise)
    values = tuple(sorted(set(train[factor].values.astype(str))))
    rows = []
    for k in range(1, len(values) + 1):
        for combo in combinations(values, k):
            for d in range(draws):
                rng = np.random.default_rng([k, d, *map(values.index, combo)])
                runs = balanced_runs(train, label, factor, combo, n_train, rng)
                r, _ = fit_and_score(forest(trees, seed=d), s_all.subset(
                    np.isin(s_all.groups, runs)), s_te, classes)
                rows.append({"n_values": k, "values": "+".join(combo), "draw": d,
                             "n_train_runs": len(runs), "test_run": _get(r, "run_accuracy"),
                             "test_layer": _get(r, "accuracy")})
    value_of = dict(zip(np.asarray(train["run"].values).astype(str),
                        train[factor].values.astype(str)))
    sample_value = np.array([value_of[g] for g in s_all.groups])
    for v in values:
        r, _ = fit_and_score(forest(trees), s_all.subset(sample_value != v),
                             s_all.subset(sample_value == v), classes)
        rows.append({"n_values": len(values) - 1, "values": f"all but {v} (tested on {v})",
                     "draw": "-", "n_train_runs": int(len(set(s_all.groups[sample_value != v]))),
                     "test_run": _get(r, "run_accuracy"), "test_layer": _get(r, "accuracy")})
    r, _ = fit_and_score(forest(trees), s_all, s_te, classes)
    rows.append({"n_values": len(values), "values": "all networks", "draw": "-",
                 "n_train_runs": s_all.n_runs, "test_run": _get(r, "run_accuracy"),
                 "test_layer": _get(r, "accuracy")})
    return rows


CONDITION = ("task", "activation", "architecture")


def standardised(s: Any) -> Any:
    """Samples with every feature z-scored within its condition (task, activation,
    architecture) and layer: the condition's mean and spread over its networks removed. For a
    test store this needs a batch of networks of the new condition, unlabelled, with the
    classes among them (an assumption of this analysis, not of a single recording)."""
    from dataclasses import replace

    key = np.array(["|".join(p) for p in zip(*(s.meta[k].astype(str) for k in CONDITION),
                                             s.layers.astype(str))])
    x = np.array(s.X, dtype=float, copy=True)
    for g in np.unique(key):
        m = key == g
        sd = x[m].std(0)
        x[m] = (x[m] - x[m].mean(0)) / np.where(sd > 0, sd, 1.0)
    return replace(s, X=x)


def standardised_score(train: xr.Dataset, test: xr.Dataset, label: str,
                       observables: list[str], *, reference: str, units: int, noise: float,
                       trees: int) -> dict[str, Any]:
    """Held-out accuracy on `test` with features z-scored within each condition and layer
    (`standardised`), training on all of `train`."""
    s_tr, s_te, classes = train_test_samples(train, test, label, observables,
                                             reference=reference, units=units, noise=noise,
                                             meta_keys=CONDITION)
    s_tr, s_te = standardised(s_tr), standardised(s_te)
    r, _ = fit_and_score(forest(trees), s_tr, s_te, classes)
    return {"test_run": _get(r, "run_accuracy"), "test_layer": _get(r, "accuracy"),
            "test_confusion": _confusion(r), "test_classes": list(map(str, classes)),
            "n_train_runs": s_tr.n_runs, "n_test_runs": s_te.n_runs}


def by_cell(train: xr.Dataset, test: xr.Dataset, label: str, observables: list[str], *,
            reference: str, units: int, noise: float, trees: int,
            standardise: bool = False) -> list[dict[str, Any]]:
    """Train once on `train`, then the held-out run accuracy in each cell of the factorial test
    store (task x activation x architecture), each cell marked by which of its values the
    training store has. `standardise`: features z-scored within each condition and layer."""
    from lrsim.analysis.crossval import class_proba, run_level_accuracy

    keys = CONDITION
    s_tr, s_te, classes = train_test_samples(train, test, label, observables,
                                             reference=reference, units=units, noise=noise,
                                             meta_keys=keys)
    if standardise:
        s_tr, s_te = standardised(s_tr), standardised(s_te)
    _, est = fit_and_score(forest(trees), s_tr, s_te, classes)
    proba = class_proba(est, s_te.X, classes)
    trained = {k: set(train[k].values.astype(str)) for k in keys}
    cells = sorted(set(zip(*(s_te.meta[k].astype(str) for k in keys))))
    rows = []
    for cell in cells:
        mask = np.all([s_te.meta[k].astype(str) == v for k, v in zip(keys, cell)], axis=0)
        unseen = [k for k, v in zip(keys, cell) if v not in trained[k]]
        rows.append({**dict(zip(keys, cell)), "unseen": "+".join(unseen) or "none",
                     "n_unseen": len(unseen), "n_test_runs": len(set(s_te.groups[mask])),
                     "test_run": run_level_accuracy(proba[mask], s_te.groups[mask],
                                                    s_te.y[mask], classes),
                     "test_layer": float(np.mean(classes[np.argmax(proba[mask], 1)]
                                                 == s_te.y[mask]))})
    return rows


def pooled(train: xr.Dataset, test: xr.Dataset, label: str, observables: list[str], *,
           reference: str, units: int, noise: float, trees: int, seeds: int = 5
           ) -> dict[str, Any]:
    """Train on all of `train`, test on `test`, with `seeds` forests of different seeds: the
    held-out run accuracy's mean, min and max over forest seeds, and the last confusion."""
    s_tr, s_te, classes = train_test_samples(train, test, label, observables,
                                             reference=reference, units=units, noise=noise)
    accs = []
    for seed in range(seeds):
        r, _ = fit_and_score(forest(trees, seed=seed), s_tr, s_te, classes)
        accs.append(_get(r, "run_accuracy"))
    return {"test_run_mean": float(np.mean(accs)), "test_run_min": float(np.min(accs)),
            "test_run_max": float(np.max(accs)), "test_runs": accs,
            "n_train_runs": s_tr.n_runs, "n_test_runs": s_te.n_runs,
            "test_confusion": _confusion(r), "test_classes": list(map(str, classes))}


SHOTS = (0, 1, 2, 4, 8)  # networks per class of the task left out, moved into training


def task_shots(s: Any, tasks: np.ndarray, *, trees: int, draws: int,
               shots: tuple[int, ...] = SHOTS) -> list[dict[str, Any]]:
    """Each task left out in turn, with n networks per class of it (n in `shots`, drawn at
    random across its conditions) moved into training: the run accuracy on the task's other
    networks (the same ones for every n: those outside the largest draw), and the largest draw
    alone as the training set ("task alone"). `s`: the samples of every network, `tasks` the
    task of each sample. `draws` draws of the networks, each with its own forest seed."""
    classes = np.unique(s.y)
    rows = []
    for task in np.unique(tasks):
        held = tasks == task
        acc: dict[Any, list[float]] = {n: [] for n in (*shots, "task alone")}
        n_eval = 0
        for d in range(draws):
            rng = np.random.default_rng(d)
            order = {c: rng.permutation(np.unique(s.groups[held & (s.y == c)]))
                     for c in classes}
            panel = {n: np.concatenate([o[:n] for o in order.values()]) for n in shots}
            in_largest = np.isin(s.groups, panel[max(shots)])
            test = s.subset(held & ~in_largest)
            n_eval = test.n_runs
            for n in shots:
                train = s.subset(~held | np.isin(s.groups, panel[n]))
                r, _ = fit_and_score(forest(trees, seed=d), train, test, classes)
                acc[n].append(_get(r, "run_accuracy"))
            r, _ = fit_and_score(forest(trees, seed=d), s.subset(in_largest), test, classes)
            acc["task alone"].append(_get(r, "run_accuracy"))
        for n, a in acc.items():
            rows.append({"task": str(task), "shots": n, "n_test_runs": n_eval,
                         "test_run_mean": float(np.mean(a)), "test_run_min": float(np.min(a)),
                         "test_run_max": float(np.max(a)), "test_runs": a})
    return rows


CONDITION_SHOTS = (1, 2, 4, 8)  # networks per class of a condition, the only training set


def condition_shots(s: Any, conditions: np.ndarray, *, trees: int, draws: int,
                    shots: tuple[int, ...] = CONDITION_SHOTS) -> list[dict[str, Any]]:
    """Each condition (task, activation, architecture) on its own: n networks per class of it
    as the whole training set, tested on the condition's other networks, with no test network
    sharing a seed (initial weights, minibatch order) or a learning-rate draw with a training
    network of its class: the training networks are those of one seed, taken draw by draw in
    a random order; the test networks are those of the other seeds and of the draws the
    largest training set did not touch. n runs over the `shots` every class has room for;
    conditions of one seed are left out. `draws` random orders, each with its own forest
    seed; `s.meta["lr"]` and `s.meta["seed"]` name the draws and seeds."""
    classes = np.unique(s.y)
    lr, seed = s.meta["lr"].astype(str), s.meta["seed"].astype(str)
    rows = []
    for cond in np.unique(conditions):
        here = conditions == cond
        seeds = np.unique(seed[here])
        if len(seeds) < 2:
            continue
        acc: dict[int, list[float]] = {}
        for d in range(draws):
            rng = np.random.default_rng(d)
            first = seeds[rng.integers(len(seeds))]
            # per class, (learning rate, the first seed's networks of it), in a random order
            order = {c: [(v, np.unique(s.groups[here & (s.y == c) & (seed == first) & (lr == v)]))
                         for v in rng.permutation(np.unique(lr[here & (s.y == c)]))]
                     for c in classes}
            room = min(sum(len(g) for _, g in o[:-1]) for o in order.values())
            fits = [n for n in shots if n <= room]
            if not fits:
                break
            touched_lr = np.zeros(len(s.y), bool)
            panel: dict[int, list[np.ndarray]] = {n: [] for n in fits}
            for c, o in order.items():
                flat = np.concatenate([g for _, g in o])
                for n in fits:
                    panel[n].append(flat[:n])
                start = np.cumsum([0] + [len(g) for _, g in o[:-1]])
                for (v, g), st in zip(o, start):
                    if st < max(fits) and len(g):
                        touched_lr |= (s.y == c) & (lr == v)
            test = s.subset(here & (seed != first) & ~touched_lr)
            for n in fits:
                r, _ = fit_and_score(forest(trees, seed=d),
                                     s.subset(np.isin(s.groups, np.concatenate(panel[n]))),
                                     test, classes)
                acc.setdefault(n, []).append(_get(r, "run_accuracy"))
        for n, a in acc.items():
            if len(a) < draws:
                continue
            rows.append({"condition": str(cond), "shots": n, "n_test_runs": test.n_runs,
                         "test_run_mean": float(np.mean(a)), "test_run_min": float(np.min(a)),
                         "test_run_max": float(np.max(a)), "test_runs": a})
    return rows


NETWORK_FRACTIONS = (0.125, 0.25, 0.5, 1.0)


def network_curves(tr: Any, te: Any, classes: np.ndarray, *, trees: int, forests: int,
                   classes_name: str, draws: int = 3) -> list[dict[str, Any]]:
    """Held-out run accuracy of forests trained on a fraction of the training networks: per
    (class, condition) cell ("per cell", `lrsim.analysis.training_size.held_out_curve`) and
    by whole conditions ("conditions": a fraction of the conditions drawn at random, all
    their networks). Per fraction: `forests` forest seeds x `draws` draws (one at 1.0)."""
    rows = []
    conds = joined(tr, CONDITION)
    names = np.array(sorted(set(conds)))
    for f in NETWORK_FRACTIONS:
        per_cell, by_cond, n_cell, n_cond = [], [], [], []
        for seed in range(forests):
            curve = held_out_curve(forest(trees, seed=seed), tr, te, classes, [f],
                                   draws=draws, random_state=seed)
            per_cell.append(curve[0].run_accuracy)
            n_cell.append(curve[0].n_train_runs)
            for d in range(1 if f >= 1 else draws):
                rng = np.random.default_rng([seed, d, 7])
                kept = rng.choice(names, max(1, round(f * len(names))), replace=False)
                sub = tr.subset(np.isin(conds, kept))
                if len(set(sub.y)) < len(classes):
                    continue
                r, _ = fit_and_score(forest(trees, seed=seed), sub, te, classes)
                by_cond.append(_get(r, "run_accuracy"))
                n_cond.append(sub.n_runs)
        for thinned, accs, ns in (("per cell", per_cell, n_cell),
                                  ("conditions", by_cond, n_cond)):
            rows.append({"classes": classes_name, "thinned": thinned, "fraction": f,
                         "n_train_runs": float(np.mean(ns)), "test_run_mean": float(np.mean(accs)),
                         "test_run_min": float(np.min(accs)), "test_run_max": float(np.max(accs)),
                         "test_runs": accs})
    return rows


def sibling_cv(s: Any, coarse: np.ndarray, *, trees: int, splits: int) -> dict[str, Any]:
    """Within-store cross-validation with whole groups of `coarse` on one side of every split
    (scikit-learn's `GroupShuffleSplit`, 25% of the groups in test; a group may hold several
    classes), scored per network (`s.groups` stay the run ids)."""
    classes = np.unique(s.y)
    accs = []
    for tr, te in GroupShuffleSplit(splits, test_size=0.25, random_state=0).split(
            s.X, s.y, coarse):
        r, _ = fit_and_score(forest(trees), s.subset(tr), s.subset(te), classes)
        accs.append(_get(r, "run_accuracy"))
    return {"cv_run": float(np.mean(accs)), "cv_run_min": float(np.min(accs)),
            "cv_run_max": float(np.max(accs)), "cv_runs": accs}


def matched(ds: xr.Dataset, label: str, measurable: list[str], *, trees: int, splits: int,
            units: int, noise: float) -> dict[str, Any]:
    """`lrsim identify`'s performance-matched control on `ds` (its sibling groups whole where
    the matched runs allow it): the matched classes and runs, the loss-curve forest on them
    with its null (at chance when matched), the measurable observables on the same runs with
    theirs, per (network, layer)."""
    ctrl = make_samples(ds, TrajectoryFeatures(list(CONTROL), depth=True), label)
    meas = make_samples(ds, TrajectoryFeatures(measurable, units=units, noise=noise,
                                               reference="none"), label)
    blocks = split_units(ds, ds[label].values.astype(str), "auto").blocks
    m = matched_control(ds, label, ctrl, meas, forest(trees), control_observables=list(CONTROL),
                        n_splits=splits, n_permutations=19, blocks=blocks)
    if m.loss_curve is None:
        return {"matched_classes": [], "n_sets": 0, "attempts": m.attempts}
    return {"matched_classes": m.classes, "dropped_classes": m.dropped_classes,
            "n_sets": m.n_sets, "caliper": m.caliper, "max_smd": m.max_smd,
            "loss_curve": m.loss_curve.accuracy, "loss_curve_run": m.loss_curve.run_accuracy,
            "loss_curve_p": m.loss_curve_null.p_value, "measurable": m.measurable.accuracy,
            "measurable_run": m.measurable.run_accuracy,
            "measurable_p": m.measurable_null.p_value, "chance": m.chance,
            "matched": m.matched, "split_by": m.split_by, "attempts": m.attempts}


def shots_summary(rows: list[dict[str, Any]], over: str = "task") -> list[dict[str, Any]]:
    """Mean over `over` (tasks, conditions) of `task_shots` / `condition_shots` rows, per class
    view, observables and shots."""
    keys = sorted({(r["classes"], r["observables"], str(r["shots"])) for r in rows})
    out = []
    for classes, obs, shots in keys:
        sel = [r for r in rows if (r["classes"], r["observables"], str(r["shots"]))
               == (classes, obs, shots)]
        vals = [r["test_run_mean"] for r in sel]
        out.append({"classes": classes, "observables": obs, "shots": shots,
                    f"{over}s": len(sel), "test_run_mean": float(np.mean(vals)),
                    f"{over}_min": float(np.min(vals)), f"{over}_max": float(np.max(vals))})
    return out


def cells_summary(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Held-out run accuracy pooled over the factorial cells with the same number of unseen
    factors (networks weighted equally), per training set, features, standardisation and
    observables."""
    out: dict[tuple, list[float]] = {}
    for r in rows:
        key = (r["train"], r["features"], r["standardised"], r["observables"], r["n_unseen"])
        acc = out.setdefault(key, [0.0, 0.0])
        acc[0] += r["test_run"] * r["n_test_runs"]
        acc[1] += r["n_test_runs"]
    return [{"train": t, "features": f, "standardised": st, "observables": o, "n_unseen": n,
             "n_test_runs": int(c), "test_run": a / c} for (t, f, st, o, n), (a, c) in out.items()]


def diversity_summary(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean, min and max held-out run accuracy per (features, observables, number of values)
    over the fixed-size training sets (combinations x draws)."""
    out: dict[tuple, list[float]] = {}
    for r in rows:
        if r["draw"] != "-":
            out.setdefault((r["features"], r["observables"], r["n_values"]), []).append(
                r["test_run"])
    return [{"features": f, "observables": o, "n_values": k, "fits": len(v),
             "test_run_mean": float(np.mean(v)), "test_run_min": float(np.min(v)),
             "test_run_max": float(np.max(v))} for (f, o, k), v in out.items()]


def rows_and_summary(rows: list[dict[str, Any]], summary: list[dict[str, Any]],
                     cols: list[str], summary_cols: list[str], **extra: Any) -> dict[str, Any]:
    """Print the rows and their summary as tables; return both (and `extra`) for the JSON."""
    print(table(rows, cols))
    print(table(summary, summary_cols))
    return {**extra, "rows": rows, "summary": summary}


def joined(s: Any, keys: tuple[str, ...]) -> np.ndarray:
    """Per sample, the values of the run metadata `keys` joined with '/' (e.g. a condition)."""
    return np.array(["/".join(p) for p in zip(*(s.meta[k].astype(str) for k in keys))])


# the four training stores of the anchor study (as scanned with change_alignment) and the
# observables read with it, for the scripts that read the headline view directly
ANCHOR_TRAINING = ("anchor-train", "anchor-tasks", "anchor-tasks2", "anchor-activations")
WITH_CHANGE = [*MEASURED, *GEOMETRY, CHANGE]


def headline_samples(paths: list[str], meta_keys: tuple[str, ...]) -> Any:
    """One sample per (network, layer) of the stores at `paths`, label rule_optimizer, read at
    the headline view (100 units, 10% noise, 11 time points, recorded features) from the
    measurable observables with change_alignment."""
    feats = TrajectoryFeatures(WITH_CHANGE, units=100, noise=0.1, time_points=11,
                               reference="none")
    return make_samples(open_stores(paths), feats, "rule_optimizer", meta_keys=meta_keys)


def sample_views(train: xr.Dataset, label: str, measurable: list[str],
                 class_views: tuple[tuple[str, Any], ...], meta_keys: tuple[str, ...],
                 say: Any, part: str, **view: Any) -> Any:
    """(observables name, classes name, samples) for the measurable observables and the
    control, each read once from every network of `train` (recorded features) and restricted
    to each class view."""
    for name, obs in (("measurable", measurable), ("control", list(CONTROL))):
        say(f"{part} / features of every network / {name}")
        feats = TrajectoryFeatures(obs, reference="none", time_points=None, **view)
        s_all = make_samples(train, feats, label, meta_keys=meta_keys)
        for classes_name, keep in class_views:
            say(f"{part} / {classes_name} / {name}")
            yield name, classes_name, (s_all if keep is None
                                       else s_all.subset(np.isin(s_all.y, keep)))


def family_columns(s: Any, family: tuple[str, ...]) -> np.ndarray:
    """The feature columns of the observables in `family` (and the static layer depth)."""
    obs = np.array([observable_of(n) for n in s.feature_names])
    return np.isin(obs, [*family, "depth"])


def forest_proba(tr: Any, x_test: np.ndarray, mask: np.ndarray, classes: np.ndarray, *,
                 trees: int, seed: int) -> np.ndarray:
    """Class probabilities (in `classes` order) of the samples x_test from a forest of seed
    `seed` fitted on the training samples `tr`, both on the feature columns in `mask`."""
    from lrsim.analysis.crossval import class_proba

    f = forest(trees, seed=seed).fit(tr.X[:, mask], tr.y)
    return class_proba(f, x_test[:, mask], classes)


def families_compare(s_tr: Any, s_te: Any, classes: np.ndarray,
                     families: dict[str, tuple[str, ...]], *, trees: int, forests: int
                     ) -> dict[str, float]:
    """Held-out run accuracy (mean over `forests` seeds) of one forest on every family's
    features ("all"), of one forest without each family in turn ("without <family>"), and of
    late fusion: one forest per family, their class probabilities averaged ("fused")."""
    from lrsim.analysis.crossval import run_level_accuracy

    def fit_proba(mask: np.ndarray, seed: int) -> np.ndarray:
        return forest_proba(s_tr, s_te.X, mask, classes, trees=trees, seed=seed)

    masks = family_sets(s_tr, families)
    out: dict[str, list[float]] = {}
    for seed in range(forests):
        for name, mask in masks.items():
            proba = fit_proba(mask, seed)
            out.setdefault(name, []).append(run_level_accuracy(proba, s_te.groups, s_te.y,
                                                               classes))
        proba = np.mean([fit_proba(family_columns(s_tr, fam), seed)
                         for fam in families.values()], axis=0)
        out.setdefault("fused", []).append(run_level_accuracy(proba, s_te.groups, s_te.y,
                                                              classes))
    return {k: float(np.mean(v)) for k, v in out.items()}


def family_sets(s: Any, families: dict[str, tuple[str, ...]]) -> dict[str, np.ndarray]:
    """Column masks: every family ("all"), and every family but one ("without <family>")."""
    every = np.any([family_columns(s, fam) for fam in families.values()], axis=0)
    depth = family_columns(s, ())
    return {"all": every, **{f"without {name}": every & (~family_columns(s, fam) | depth)
                             for name, fam in families.items()}}


def tasks_out_accuracy(s: Any, mask: np.ndarray, *, trees: int) -> list[float]:
    """Run accuracy on each task of `s` left out in turn (one forest, seed 0, per task)."""
    from lrsim.analysis.crossval import run_level_accuracy

    tasks = s.meta["task"].astype(str)
    classes = np.unique(s.y)
    out = []
    for task in sorted(set(tasks)):
        tr, te = s.subset(tasks != task), s.subset(tasks == task)
        proba = forest_proba(tr, te.X, mask, classes, trees=trees, seed=0)
        out.append(run_level_accuracy(proba, te.groups, te.y, classes))
    return out


def by_optimizer(s_tr: Any, s_te: Any, families: dict[str, tuple[str, ...]], *, trees: int,
                 forests: int) -> dict[str, Any]:
    """Rule x optimizer in two stages: the optimizer from every family's features (one forest
    on all training networks), then the rule by a forest trained on that optimizer's networks
    only, on the set of families (all, or all but one) that scores best on the training tasks
    left out in turn among that optimizer's networks: chosen without the test store. Returns
    each optimizer's candidates (tasks left out, held out), its choice, and the two-stage
    run accuracy on the test store per forest seed."""
    from lrsim.analysis.crossval import run_level_accuracy

    def optimizer_of(y: np.ndarray) -> np.ndarray:
        return np.array([c.split("+", 1)[1] for c in y])

    def rule_of(y: np.ndarray) -> np.ndarray:
        return np.array([c.split("+", 1)[0] for c in y])

    sets = family_sets(s_tr, families)
    every = sets["all"]
    opt_classes = np.unique(optimizer_of(s_tr.y))
    per_opt: dict[str, Any] = {}
    # each candidate rule forest's probabilities on every test sample (a test network goes
    # to the rule forest of the optimizer predicted for it, not of its true one)
    rule_proba: dict[str, dict[str, list[np.ndarray]]] = {}
    rule_classes: dict[str, np.ndarray] = {}
    for opt in opt_classes:
        tr = s_tr.subset(optimizer_of(s_tr.y) == opt)
        tr.y = rule_of(tr.y)
        rules = rule_classes[opt] = np.unique(tr.y)
        own = optimizer_of(s_te.y) == opt
        rows, rule_proba[opt] = {}, {}
        for name, mask in sets.items():
            out = tasks_out_accuracy(tr, mask, trees=trees)
            probas = rule_proba[opt][name] = [
                forest_proba(tr, s_te.X, mask, rules, trees=trees, seed=seed)
                for seed in range(forests)]
            held = [run_level_accuracy(p[own], s_te.groups[own], rule_of(s_te.y[own]), rules)
                    for p in probas]
            rows[name] = {"tasks_out_mean": float(np.mean(out)), "tasks_out": out,
                          "held_out_mean": float(np.mean(held)), "held_out": held}
        chosen = max(rows, key=lambda k: rows[k]["tasks_out_mean"])
        per_opt[opt] = {"candidates": rows, "chosen": chosen}
    runs_te = np.unique(s_te.groups)
    truth = {g: s_te.y[s_te.groups == g][0] for g in runs_te}
    tr_opt = type(s_tr)(s_tr.X, optimizer_of(s_tr.y), s_tr.groups, s_tr.layers,
                        s_tr.feature_names, s_tr.channels, s_tr.n_times, s_tr.n_static)
    accs = []
    for seed in range(forests):
        p_opt = forest_proba(tr_opt, s_te.X, every, opt_classes, trees=trees, seed=seed)
        correct = []
        for g in runs_te:
            rows_g = s_te.groups == g
            opt = opt_classes[np.argmax(p_opt[rows_g].mean(0))]
            p_rule = rule_proba[opt][per_opt[opt]["chosen"]][seed][rows_g]
            rule = rule_classes[opt][np.argmax(p_rule.mean(0))]
            correct.append(f"{rule}+{opt}" == truth[g])
        accs.append(float(np.mean(correct)))
    return {"optimizers": per_opt, "two_stage_runs": accs,
            "two_stage_mean": float(np.mean(accs))}


def table(rows: list[dict[str, Any]], cols: list[str]) -> str:
    head = "| " + " | ".join(cols) + " |\n| " + " | ".join("---" for _ in cols) + " |\n"
    body = ""
    for r in rows:
        cells = []
        for c in cols:
            v = r.get(c, "")
            cells.append(f"{v:.3f}" if isinstance(v, float) else str(v))
        body += "| " + " | ".join(cells) + " |\n"
    return head + body


def confusion_text(classes: list[str], counts: list[list[int]]) -> str:
    short = [c.replace("information_alignment", "IA").replace("feedback_alignment", "FA")
             .replace("direct_FA", "DFA").replace("backprop", "BP")
             .replace("momentum", "mom").replace("sign_symmetry", "SS")
             .replace("kolen_pollack", "KP").replace("weight_mirror", "WM") for c in classes]
    w = max(len(s) for s in short) + 1
    lines = ["true \\ predicted".ljust(w) + "".join(s[:10].rjust(11) for s in short)]
    for s, row in zip(short, counts):
        lines.append(s.ljust(w) + "".join(str(v).rjust(11) for v in row))
    return "\n".join(lines)


PARTS = ("headline", "sensitivity", "robustness", "factors", "importance", "anchor4",
         "diversity", "cells", "standardised", "pooled", "heldout", "target", "synapses",
         "change", "tasks-out", "task-shots", "condition-shots", "siblings", "matched",
         "networks", "families", "no-geometry", "by-optimizer")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("study", choices=sorted(STUDIES))
    p.add_argument("--train", nargs="+", help="training store(s), read as one")
    p.add_argument("--test")
    p.add_argument("--out")
    p.add_argument("--quick", action="store_true", help="3 splits, 100 trees")
    p.add_argument("--only", nargs="*", default=None, choices=PARTS, metavar="PART",
                   help="parts to run: " + " ".join(PARTS))
    p.add_argument("--root", default="runs",
                   help="folder holding the stores named runs/<store> above (default runs)")
    p.add_argument("--jobs", type=int, default=1, help="threads per forest (default 1)")
    p.add_argument("--forests", type=int, default=5,
                   help="forest seeds averaged in the held-out parts (default 5)")
    args = p.parse_args()
    global FOREST_JOBS
    FOREST_JOBS = args.jobs

    def rooted(path: str) -> str:
        return str(Path(args.root) / Path(path).relative_to("runs")) \
            if path.startswith("runs/") else path

    for name in list(TRAIN_STORES):
        TRAIN_STORES[name] = tuple(rooted(q) for q in TRAIN_STORES[name])
    for name in list(TEST_STORES):
        TEST_STORES[name] = rooted(TEST_STORES[name])
    label = STUDIES[args.study]
    train_paths = args.train or list(TRAIN_STORES.get(args.study,
                                                      [rooted(f"runs/{args.study}-train")]))
    test_path = args.test or TEST_STORES.get(args.study, rooted(f"runs/{args.study}-test"))
    out_path = Path(args.out or f"runs/{args.study}-results.json")
    splits, trees = (3, 100) if args.quick else (5, 200)
    parts = set(args.only or ["headline", "sensitivity", "robustness", "factors", "importance",
                               "anchor4"] + (["diversity"] if args.study in DIVERSITY else [])
                + (["cells"] if args.study == "factorial" else []))
    t0, c0 = time.time(), time.process_time()
    train, test = open_stores(train_paths), open_store(test_path)
    results: dict[str, Any] = {
        "study": args.study, "label": label, "train": train_paths, "test": test_path,
        "train_status": {p: n_runs(p) for p in train_paths}, "test_status": n_runs(test_path),
        "settings": {"splits": splits, "trees": trees, "classifier": "random forest, "
                     "max_features sqrt, one sample per (network, layer), run accuracy = "
                     "argmax of the layers' mean class probabilities"}}
    goal = {"units": 100, "noise": 0.1}
    # the class sets tested on the held-out store: all, and the anchor's 4 where they exist
    class_views = (("all classes", None),) + ((("anchor's 4", ANCHOR_FOUR),)
                                              if label == "rule_optimizer" else ())
    measurable = list(MEASURED) + [g for g in GEOMETRY if g in train.data_vars]

    def say(msg: str) -> None:
        print(f"[{time.time() - t0:7.0f} s] {msg}", file=sys.stderr, flush=True)

    try:
        with threadpool_limits(limits=1):
            if "headline" in parts:
                sets = {"measurable (weights, activations, activity change, geometry)": measurable,
                        "weights, activations, activity change": list(MEASURED),
                        "weights": ["weights"], "activations": ["activations"],
                        "activity change": ["activity_change"],
                        "population geometry": [g for g in GEOMETRY if g in train.data_vars],
                        "loss / accuracy curves (control)": list(CONTROL),
                        "everything incl. alignment (model-internal)":
                            measurable + ["alignment", *CONTROL]}
                rows = []
                for view_name, view in (("goal view: 100 units, 10% noise", goal),
                                        ("all units, no noise", {"units": 0, "noise": 0.0})):
                    for ref in ("none", "initial"):
                        for name, obs in sets.items():
                            if name.startswith(("weights", "activations", "activity", "population",
                                                "everything")) and view_name.startswith("all"):
                                continue
                            say(f"headline {view_name} / {ref} / {name}")
                            r = measure(train, test, label, obs, reference=ref, time_points=None,
                                        splits=splits, trees=trees, **view)
                            rows.append({"view": view_name, "features": ref, "observables": name,
                                         **r})
                results["headline"] = rows
                print(table(rows, ["view", "features", "observables", "cv_run", "cv_layer",
                                   "test_run", "test_layer"]))
            if "sensitivity" in parts:
                rows = []
                for units in (0, 100, 30):
                    for noise in (0.0, 0.1, 0.3):
                        for tp in (11, 6, 3):
                            if tp != 11 and (units, noise) != (100, 0.1):
                                continue
                            say(f"sensitivity units {units} noise {noise} time points {tp}")
                            r = measure(train, test, label, measurable, reference="initial",
                                        units=units, noise=noise, time_points=tp, splits=splits,
                                        trees=trees)
                            rows.append({"units": units, "noise": noise, "time_points": tp,
                                         **scores(r)})
                results["sensitivity"] = rows
                print(table(rows, ["units", "noise", "time_points", "cv_run", "cv_layer",
                                   "test_run", "test_layer"]))
            if "robustness" in parts:
                # the anchor's claim: statistics of activity are more robust to undersampling and
                # measurement noise than those of the weights
                rows = []
                for name, obs in (("weights", ["weights"]), ("activations", ["activations"]),
                                  ("activity change", ["activity_change"])):
                    for units, noise in ((0, 0.0), (100, 0.1), (30, 0.3)):
                        say(f"robustness {name} units {units} noise {noise}")
                        r = measure(train, test, label, obs, reference="initial", units=units,
                                    noise=noise, time_points=None, splits=splits, trees=trees)
                        rows.append({"observables": name, "units": units, "noise": noise,
                                     **scores(r)})
                results["robustness"] = rows
                print(table(rows, ["observables", "units", "noise", "cv_run", "cv_layer",
                                   "test_run", "test_layer"]))
            if "factors" in parts:
                rows = []
                for ref in ("none", "initial"):
                    say(f"held out by factor / {ref}")
                    for r in by_factor(train, label, measurable, reference=ref, trees=trees,
                                       **goal):
                        rows.append({"features": ref, **r})
                    say(f"held out by factor / {ref} / control")
                    for r in by_factor(train, label, list(CONTROL), reference=ref, trees=trees,
                                       **goal):
                        rows.append({"features": ref, "control": True, **r})
                results["factors"] = rows
                print(table(rows, ["features", "control", "key", "value", "test_run",
                                   "test_layer"]))
            if "importance" in parts:
                say("importance (grouped permutation and forest impurity)")
                results["importance"] = channel_importance(train, label, measurable, trees=trees,
                                                           splits=splits, **goal)
                imp = results["importance"]
                print(table(imp["permutation"][:15], ["channel", "drop"]))
                print(table(imp["impurity_by_channel"][:15], ["channel", "impurity"]))
                print(table(imp["impurity_by_statistic"], ["statistic", "impurity"]))
                print(table(imp["impurity_by_observable"], ["observable", "impurity"]))
            if "anchor4" in parts and label == "rule_optimizer":
                rows = []
                tr4, te4 = subset(train, label, ANCHOR_FOUR), subset(test, label, ANCHOR_FOUR)
                for ref in ("none", "initial"):
                    for name, obs in (("measurable", measurable), ("control", list(CONTROL))):
                        say(f"anchor's four classes / {ref} / {name}")
                        r = measure(tr4, te4, label, obs, reference=ref, time_points=None,
                                    splits=splits, trees=trees, **goal)
                        rows.append({"features": ref, "observables": name, **r})
                results["anchor4"] = rows
                print(table(rows, ["features", "observables", "cv_run", "cv_layer", "test_run",
                                   "test_layer"]))
            if "cells" in parts and args.study == "factorial":
                rows = []
                sets = {"anchor-train (2 tasks, relu/tanh)": open_store(TRAIN_STORES["tasks"][0]),
                        "all training stores (4 tasks, 5 activations)": train}
                for set_name, tr in sets.items():
                    for ref in ("none", "initial"):
                        for std in (False, True):
                            for name, obs in (("measurable", measurable),
                                              ("control", list(CONTROL))):
                                say(f"factorial cells / {set_name} / {ref} / standardised {std} "
                                    f"/ {name}")
                                for r in by_cell(tr, test, label, obs, reference=ref, trees=trees,
                                                 standardise=std, **goal):
                                    rows.append({"train": set_name, "features": ref,
                                                 "standardised": std, "observables": name, **r})
                results["cells"] = rows
                print(table(rows, ["train", "features", "standardised", "observables", "task",
                                   "activation", "architecture", "unseen", "n_test_runs",
                                   "test_run", "test_layer"]))
            if "pooled" in parts and args.study in TRAIN_STORES:
                rows = []
                stores = TRAIN_STORES[args.study]
                for n in sorted({1, len(stores)}):
                    tr_all = open_stores(list(stores[:n]))
                    for classes_name, keep in class_views:
                        tr, te = subset(tr_all, label, keep), subset(test, label, keep)
                        for ref in ("none", "initial"):
                            for name, obs in (("measurable", measurable),
                                              ("control", list(CONTROL))):
                                say(f"pooled / {n} store(s) / {classes_name} / {ref} / {name}")
                                r = pooled(tr, te, label, obs, reference=ref, trees=200, **goal)
                                rows.append({"train": ", ".join(stores[:n]),
                                             "classes": classes_name, "features": ref,
                                             "observables": name, **r})
                results["pooled"] = rows
                print(table(rows, ["train", "classes", "features", "observables", "n_train_runs",
                                   "test_run_mean", "test_run_min", "test_run_max"]))
            # observables tried on top of the measurable set where the stores record them
            # (`--only ... target / synapses / change`), by the held-out test and tasks-out
            extras = {"target": TARGET, "synapses": SYNAPSES, "change": CHANGE}
            sets = [("measurable", measurable), ("control", list(CONTROL))]
            for part, extra in extras.items():
                if part not in parts:
                    continue
                if extra not in train.data_vars or extra not in test.data_vars:
                    raise SystemExit(f"--only {part}: the stores do not record {extra}")
                sets.insert(-1, (f"measurable + {extra}", [*measurable, extra]))
            if "no-geometry" in parts:
                # each set above also without the population geometry (weights, activations
                # and activity change, plus the extra observable where one was asked for)
                sets[-1:-1] = [(f"{name} without geometry", [o for o in obs if o not in GEOMETRY])
                               for name, obs in sets[:-1]]
            if "heldout" in parts or (parts & set(extras) and "tasks-out" not in parts):
                # the held-out test of the headline protocol (recorded features, measurable
                # observables and the loss-curve control; all classes and the anchor's 4; 5
                # forest seeds) and the same with each extra observable asked for added
                rows = []
                for classes_name, keep in class_views:
                    tr, te = subset(train, label, keep), subset(test, label, keep)
                    for name, obs in sets:
                        say(f"held out / {classes_name} / {name}")
                        r = pooled(tr, te, label, obs, reference="none", trees=200,
                                   seeds=args.forests, **goal)
                        rows.append({"classes": classes_name, "observables": name, **r})
                results["heldout"] = rows
                print(table(rows, ["classes", "observables", "n_train_runs", "n_test_runs",
                                   "test_run_mean", "test_run_min", "test_run_max"]))
            if "tasks-out" in parts:
                # each training task left out in turn: the spread of "a task never seen"
                rows = []
                tasks = sorted(set(train["task"].values.astype(str)))
                for classes_name, keep in class_views:
                    tr_all = subset(train, label, keep)
                    for task in tasks:
                        held = tr_all["task"].values.astype(str) == task
                        tr = tr_all.isel(run=np.flatnonzero(~held))
                        te = tr_all.isel(run=np.flatnonzero(held))
                        for name, obs in sets:
                            say(f"tasks out / {classes_name} / {task} / {name}")
                            r = pooled(tr, te, label, obs, reference="none", trees=200,
                                       seeds=args.forests, **goal)
                            rows.append({"classes": classes_name, "task": task,
                                         "observables": name, **r})
                results["tasks_out"] = rows
                print(table(rows, ["classes", "task", "observables", "n_train_runs",
                                   "n_test_runs", "test_run_mean", "test_run_min",
                                   "test_run_max"]))
            families = {"weights": ("weights",), "activations": ("activations",),
                        "activity change": ("activity_change",),
                        "geometry": tuple(g for g in GEOMETRY if g in train.data_vars)}
            if CHANGE in train.data_vars and CHANGE in test.data_vars:
                families["change alignment"] = (CHANGE,)
            if parts & {"families", "by-optimizer"}:
                every = [o for fam in families.values() for o in fam]
                say("families / features of every network")
                s_tr, s_te, classes = train_test_samples(train, test, label, every,
                                                         reference="none",
                                                         meta_keys=("task",), **goal)
            if "by-optimizer" in parts and label == "rule_optimizer":
                # the optimizer first, then the rule among that optimizer's networks on the
                # families chosen by the training tasks left out
                say("by optimizer")
                r = by_optimizer(s_tr, s_te, families, trees=200, forests=args.forests)
                results["by_optimizer"] = r
                rows = [{"optimizer": opt, "set": name, **{k: v for k, v in c.items()
                                                          if k.endswith("_mean")},
                         "chosen": name == o["chosen"]}
                        for opt, o in r["optimizers"].items()
                        for name, c in o["candidates"].items()]
                print(table(rows, ["optimizer", "set", "tasks_out_mean", "held_out_mean",
                                   "chosen"]))
                print(f"two stages, 6 classes on the test store: {r['two_stage_mean']:.3f} "
                      f"({min(r['two_stage_runs']):.3f}-{max(r['two_stage_runs']):.3f})")
            elif "by-optimizer" in parts:
                say(f"by-optimizer skipped: it needs the label rule_optimizer, not {label}")
            if "families" in parts:
                # observable families: one forest without each family in turn, and late
                # fusion (one forest per family, probabilities averaged), on the held-out
                # test (`--forests` seeds) and on each training task left out (one seed)
                rows = []
                for classes_name, keep in class_views:
                    tr = s_tr if keep is None else s_tr.subset(np.isin(s_tr.y, keep))
                    te = s_te if keep is None else s_te.subset(np.isin(s_te.y, keep))
                    cl = classes if keep is None else np.array(sorted(keep))
                    say(f"families / held out / {classes_name}")
                    rows.append({"classes": classes_name, "test": "held-out store",
                                 **families_compare(tr, te, cl, families, trees=200,
                                                    forests=args.forests)})
                    tasks = tr.meta["task"].astype(str)
                    for task in sorted(set(tasks)):
                        say(f"families / tasks out / {classes_name} / {task}")
                        rows.append({"classes": classes_name, "test": f"task {task} out",
                                     **families_compare(tr.subset(tasks != task),
                                                        tr.subset(tasks == task), cl, families,
                                                        trees=200, forests=1)})
                results["families"] = {"families": {k: list(v) for k, v in families.items()},
                                       "rows": rows}
                print(table(rows, ["classes", "test", "all", "fused",
                                   *[f"without {k}" for k in families]]))
            if "task-shots" in parts:
                # a task left out, with a few of its networks per class trained on: how many
                # simulations of a new task the classifier needs
                rows = []
                for name, classes_name, s in sample_views(train, label, measurable, class_views,
                                                          ("task",), say, "task shots", **goal):
                    for r in task_shots(s, s.meta["task"].astype(str), trees=200,
                                        draws=args.forests):
                        rows.append({"classes": classes_name, "observables": name, **r})
                results["task_shots"] = rows_and_summary(
                    rows, shots_summary(rows),
                    ["classes", "task", "observables", "shots", "n_test_runs", "test_run_mean",
                     "test_run_min", "test_run_max"],
                    ["classes", "observables", "shots", "tasks", "test_run_mean", "task_min",
                     "task_max"], shots=list(SHOTS))
            if "condition-shots" in parts:
                # each condition alone, a few of its networks per class as the training set:
                # how typical the calibration store's figure on the test condition is
                rows = []
                for name, classes_name, s in sample_views(train, label, measurable, class_views,
                                                          (*CONDITION, "lr", "seed"), say,
                                                          "condition shots", **goal):
                    for r in condition_shots(s, joined(s, CONDITION), trees=200,
                                             draws=args.forests):
                        rows.append({"classes": classes_name, "observables": name, **r})
                results["condition_shots"] = rows_and_summary(
                    rows, shots_summary(rows, over="condition"),
                    ["classes", "condition", "observables", "shots", "n_test_runs",
                     "test_run_mean"],
                    ["classes", "observables", "shots", "conditions", "test_run_mean",
                     "condition_min", "condition_max"], shots=list(CONDITION_SHOTS))
            if "networks" in parts:
                # held-out accuracy against the number of training networks: the same fraction
                # of every class in every condition (lrsim.analysis.training_size), and a
                # fraction of the conditions with all their networks (fewer conditions)
                rows = []
                s_tr, s_te, classes = train_test_samples(train, test, label, measurable,
                                                         reference="none", meta_keys=CONDITION,
                                                         **goal)
                for classes_name, keep in class_views:
                    tr = s_tr if keep is None else s_tr.subset(np.isin(s_tr.y, keep))
                    te = s_te if keep is None else s_te.subset(np.isin(s_te.y, keep))
                    cl = classes if keep is None else np.array(sorted(keep))
                    say(f"training networks / {classes_name}")
                    rows += network_curves(tr, te, cl, trees=200, forests=args.forests,
                                           classes_name=classes_name)
                results["networks"] = rows
                print(table(rows, ["classes", "thinned", "fraction", "n_train_runs",
                                   "test_run_mean", "test_run_min", "test_run_max"]))
            if "siblings" in parts:
                # grouped by run, networks of one condition and seed (the same initial weights
                # and minibatches; rules and learning rates apart) fall on both sides of a
                # split; grouped by (condition, seed) they do not. (Grouping by condition,
                # seed and class instead would put a test network's other-class siblings in
                # training and teach the forest to call that seed anything but its class.)
                rows = []
                for name, classes_name, s in sample_views(train, label, measurable, class_views,
                                                          (*CONDITION, "seed"), say, "siblings",
                                                          **goal):
                    for grouping, coarse in (("run", s.groups),
                                             ("condition, seed", joined(s, (*CONDITION, "seed")))):
                        r = sibling_cv(s, coarse, trees=trees, splits=splits)
                        rows.append({"classes": classes_name, "observables": name,
                                     "grouped_by": grouping, **r})
                results["siblings"] = rows
                print(table(rows, ["classes", "observables", "grouped_by", "cv_run",
                                   "cv_run_min", "cv_run_max"]))
            if "matched" in parts:
                rows = []
                for classes_name, keep in class_views:
                    say(f"matched control / {classes_name}")
                    rows.append({"classes": classes_name,
                                 **matched(subset(train, label, keep), label, measurable,
                                           trees=trees, splits=splits, **goal)})
                results["matched"] = rows
                print(table(rows, ["classes", "matched_classes", "n_sets", "caliper", "max_smd",
                                   "loss_curve", "loss_curve_p", "measurable",
                                   "measurable_p", "chance", "split_by"]))
            if "standardised" in parts:
                rows = []
                stores = TRAIN_STORES.get(args.study, train_paths)
                sets = {f"{', '.join(stores[:i])}": open_stores(list(stores[:i]))
                        for i in range(1, len(stores) + 1)} if args.study in TRAIN_STORES \
                    else {", ".join(train_paths): train}
                for set_name, tr in sets.items():
                    for ref in ("none", "initial"):
                        for name, obs in (("measurable", measurable), ("control", list(CONTROL))):
                            say(f"standardised within condition / {set_name} / {ref} / {name}")
                            r = standardised_score(tr, test, label, obs, reference=ref,
                                                   trees=trees, **goal)
                            rows.append({"train": set_name, "features": ref, "observables": name,
                                         **r})
                            print(confusion_text(r["test_classes"], r["test_confusion"]),
                                  file=sys.stderr)
                results["standardised"] = rows
                print(table(rows, ["train", "features", "observables", "n_train_runs",
                                   "test_run", "test_layer"]))
            if "diversity" in parts and args.study in DIVERSITY:
                factor, n_train, draws = DIVERSITY[args.study]
                rows = []
                for ref in ("none", "initial"):
                    for name, obs in (("measurable", measurable), ("control", list(CONTROL))):
                        say(f"{factor} diversity / {ref} / {name}")
                        for r in diversity(train, test, label, obs, factor, reference=ref,
                                           trees=trees, n_train=n_train, draws=draws,
                                           **goal):
                            rows.append({"features": ref, "observables": name, **r})
                results["diversity"] = rows_and_summary(
                    rows, diversity_summary(rows),
                    ["features", "observables", "n_values", "values", "draw", "n_train_runs",
                     "test_run", "test_layer"],
                    ["features", "observables", "n_values", "fits", "test_run_mean",
                     "test_run_min", "test_run_max"], factor=factor)
    finally:  # what was measured is kept, also when a later part fails
        results["compute"] = {"wall_s": round(time.time() - t0, 1),
                              "cpu_s": round(time.process_time() - c0, 1)}
        old = json.loads(out_path.read_text()) if out_path.exists() else {}
        old.update(results)
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_text(json.dumps(old, indent=1, default=float))
        say(f"wrote {out_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
