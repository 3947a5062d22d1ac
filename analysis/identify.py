"""Rule identification, the whole study: `identify(store) -> IdentifyResult`.

The headline is what an experiment could record: the measurable observables alone
(`lrsim.analysis.measurable`), cross-validated over repeated splits grouped by run
(`lrsim.analysis.splits`, `lrsim.analysis.crossval`) with every classifier, tested against the
label-permutation null (`lrsim.analysis.null`), broken down by units / noise / time points
(`lrsim.analysis.sweeps`) and, when asked for, tested on held-out runs (`--holdout`, `--test`;
`lrsim.analysis.generalisation`). Around it, each labelled: the control (the loss-curve
classifier, on every run and on runs matched for their curves; `lrsim.analysis.control`),
the model-internal quantities (`alignment`), accuracy per observable, the most informative
statistics (`lrsim.analysis.importance`), automatic hold-outs of every architecture / task /
activation / substrate, the protocol search with its cost-accuracy frontier
(`lrsim.analysis.protocol`) and the trajectory panels (`lrsim.analysis.trajectories`).

Features (`features`, `time_axis`; `--features`, `--time-axis`): every sample of the measurable
and model-internal observables, wherever it is built (the headline's cross-validation, the
null, the breakdowns, importance, the held-out tests and automatic hold-outs, the measurable
part of the matched control, the protocol search, the per-observable and model-internal
scores), is read the same way: "recorded" (the values as recorded) or "relative" (every channel
relative to its value before learning, `TrajectoryFeatures(reference="initial")`), on the
recorded step axis or on each network's learning-progress axis. The control's loss /
test-accuracy curves are always read as recorded on the step axis (see `_Study.control`). The
trajectory panels show the recorded statistics.

Every check of the request (`plan`) runs before any fit.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import xarray as xr
from sklearn.base import clone

from lrsim.analysis.classifiers import CLASSIFIERS, make_classifier
from lrsim.analysis.control import matched_control
from lrsim.analysis.crossval import cross_validate, mode_params, short_warning_filters
from lrsim.analysis.defaults import (
    FEATURES,
    FEATURES_DEFAULT,
    FOREST_SEEDS,
    FOREST_SEEDS_QUICK,
    N_SPLITS,
    SPLIT_BY_DEFAULT,
    TARGET_ACCURACY,
    TIME_AXES,
    TIME_AXIS_DEFAULT,
    describe_features,
)
from lrsim.analysis.features import (
    Samples,
    TrajectoryFeatures,
    all_observables,
    default_observables,
    make_samples,
    run_values,
    unrecorded_observables,
    usable_runs,
)
from lrsim.analysis.generalisation import (
    GENERALISATION_KEYS,
    check_classes,
    forest_seed_accuracies,
    held_out_breakdown,
    holdout_mask,
    holdout_split,
    parse_holdout,
    score_held_out,
    seen_in_training,
)
from lrsim.analysis.importance import importance
from lrsim.analysis.labels import check_label_name, per_run_keys, with_label
from lrsim.analysis.measurable import split_observables
from lrsim.analysis.novelty import training_distance
from lrsim.analysis.null import default_permutations, null_test
from lrsim.analysis.progress import Progress, silent
from lrsim.analysis.protocol import search_protocols, views
from lrsim.analysis.results import (
    CONTROL,
    EVERYTHING,
    MEASURABLE,
    MODEL_INTERNAL,
    Control,
    FeatureSet,
    Headline,
    HeldOut,
    IdentifyResult,
    ModelInternal,
    ObservableScore,
    Section,
    Settings,
)
from lrsim.analysis.siblings import SplitUnits, split_units
from lrsim.analysis.splits import TEST_SIZE, RepeatedStratifiedGroupSplit
from lrsim.analysis.sweeps import SweepScorer, time_point_values
from lrsim.analysis.training_size import FACTOR as TRAINING_NETWORKS
from lrsim.analysis.training_size import HELD_OUT_DRAWS, HELD_OUT_DRAWS_QUICK, held_out_curve
from lrsim.analysis.trajectories import trajectory_panels
from lrsim.errors import ConfigError

META_KEYS = (*GENERALISATION_KEYS, "optimizer", "rule", "rule_family", "lr", "seed")


@dataclass
class Plan:
    """A checked request: the usable runs with their label, the observables by kind, the
    held-out tests asked for, how the features read the measurable observables."""

    data: xr.Dataset
    label: str
    classes: list[str]
    observables: list[str]
    measurable: list[str]
    internal: list[str]
    control: list[str]
    left_out: dict[str, int]
    statuses: dict[str, int]
    n_runs_total: int
    units: int
    noise: float
    holdout: tuple[str, str] | None
    test_data: xr.Dataset | None
    features: str = FEATURES_DEFAULT
    time_axis: str = TIME_AXIS_DEFAULT
    split: SplitUnits = field(default_factory=lambda: SplitUnits("run", None, "grouped by run"))

    @property
    def reference(self) -> str:
        """The `TrajectoryFeatures` reference of `features` ("none" / "initial")."""
        return FEATURES[self.features]

    def feature_set(self) -> FeatureSet:
        return FeatureSet(self.features, self.reference, self.time_axis,
                          describe_features(self.features, self.time_axis))

    def trajectory_features(self, observables: Sequence[str], **kwargs: Any
                            ) -> TrajectoryFeatures:
        """Features of measurable / model-internal `observables` in the full view, read as
        asked (`features`, `time_axis`)."""
        kwargs = {"units": self.units, "noise": self.noise, **kwargs}
        return TrajectoryFeatures(list(observables), reference=self.reference,
                                  time_axis=self.time_axis, **kwargs)


def _check_label_values(data: xr.Dataset, label: str) -> list[str]:
    counts = Counter(run_values(data, label).astype(str))
    if len(counts) < 2:
        raise ConfigError(f"label '{label}' has a single value ({next(iter(counts), '-')}) "
                          f"among usable runs; nothing to identify")
    few = [k for k, n in counts.items() if n < 2]
    if few:
        raise ConfigError(f"label '{label}': class(es) {', '.join(sorted(few))} have fewer than "
                          f"2 usable runs; grouped splits need at least 2 per class")
    return sorted(counts)


def full_view(ds: xr.Dataset) -> tuple[int, float]:
    """(units, noise) of the richest view recorded: all units (0) and the least noise."""
    units = views(ds, "units", 0)
    return (0 if 0 in units else max(units)), min(views(ds, "noise", 0.0))


def check_feature_names(features: str, time_axis: str) -> None:
    """`features` and `time_axis` are known; ConfigError (one line) otherwise."""
    if features not in FEATURES:
        raise ConfigError(f"--features must be one of {', '.join(FEATURES)} (got {features!r})")
    if time_axis not in TIME_AXES:
        raise ConfigError(f"--time-axis must be one of {', '.join(TIME_AXES)} "
                          f"(got {time_axis!r})")


def check_features(ds: xr.Dataset, features: str, time_axis: str, what: str = "the store"
                   ) -> None:
    """`check_feature_names`, and `ds` records what they need (the progress axis:
    `activity_change`); ConfigError (one line) otherwise."""
    check_feature_names(features, time_axis)
    if time_axis == "progress" and "activity_change" not in ds.data_vars:
        raise ConfigError(f"--time-axis progress needs activity_change (learning progress is "
                          f"the path the output layer's activity travels), which {what} does "
                          f"not record (it has {', '.join(sorted(map(str, ds.data_vars)))}); "
                          f"use --time-axis step or record activity_change")


def plan(ds: xr.Dataset, *, label: str = "rule", classifiers: Sequence[str] = CLASSIFIERS,
         holdout: str | None = None, test_ds: xr.Dataset | None = None, n_splits: int = N_SPLITS,
         n_permutations: int | None = None, target: float = TARGET_ACCURACY,
         observables: Sequence[str] | None = None, features: str = FEATURES_DEFAULT,
         time_axis: str = TIME_AXIS_DEFAULT, split_by: str = SPLIT_BY_DEFAULT) -> Plan:
    """Check everything about the request that can be checked without fitting; ConfigError
    (one line: the problem and what is allowed) otherwise."""
    bad = [c for c in classifiers if c not in CLASSIFIERS]
    if bad or not classifiers:
        raise ConfigError(f"unknown classifier(s) {', '.join(bad) or '(none)'}; allowed: "
                          f"{', '.join(CLASSIFIERS)}")
    if n_splits < 2:
        raise ConfigError(f"--splits must be >= 2 (got {n_splits})")
    if n_permutations is not None and n_permutations < 1:
        raise ConfigError(f"--permutations must be >= 1 (got {n_permutations})")
    if not (isinstance(target, int | float) and 0 < target <= 1):
        raise ConfigError(f"--target must be an accuracy in (0, 1], e.g. 0.9 (got {target!r})")
    check_label_name(label)
    check_features(ds, features, time_axis)
    if test_ds is not None:
        check_features(test_ds, features, time_axis, "the --test store")
    statuses = (Counter(np.asarray(ds["status"].values).astype(str)) if "status" in ds.coords
                else Counter({"ok": ds.sizes["run"]}))
    data = usable_runs(ds)
    if data.sizes.get("run", 0) == 0:
        raise ConfigError("the store has no usable runs (status 'ok')")
    data = with_label(data, label)
    classes = _check_label_values(data, label)
    split = split_units(data, run_values(data, label).astype(str), split_by)

    left_out = unrecorded_observables(data) if observables is None else {}
    if observables is None:
        observables = all_observables(data)
    else:
        observables = list(dict.fromkeys(observables))
        TrajectoryFeatures(observables).fit(data)  # ConfigError naming what is not recorded
    measurable, internal, _ = split_observables(data, observables)
    # the control is always the loss / test-accuracy curves the store records
    control = split_observables(data, [str(v) for v in data.data_vars])[2]
    if not measurable:
        raise ConfigError(f"observables: name at least one measurable observable (got "
                          f"{', '.join(observables)}; the store has "
                          f"{', '.join(default_observables(data)) or 'none'})")
    units, noise = full_view(data)

    held = None
    if holdout:
        key, value = parse_holdout(holdout)
        if key not in per_run_keys(data):
            raise ConfigError(f"--holdout {key}=...: '{key}' is not a per-run key of this store; "
                              f"allowed: {', '.join(per_run_keys(data))}")
        values = run_values(data, key)
        mask = holdout_mask(values, value)
        if not mask.any():
            raise ConfigError(f"--holdout {key}={value}: no usable run has that value; the store "
                              f"has {key} = {', '.join(sorted({str(v) for v in values}))}")
        if mask.all():
            raise ConfigError(f"--holdout {key}={value}: every run has that value; nothing left "
                              f"to train on")
        labels = run_values(data, label).astype(str)
        check_classes(labels[~mask], labels[mask], f"--holdout {key}={value}", label)
        held = (key, value)

    test_data = None
    if test_ds is not None:
        test_data = usable_runs(test_ds)
        if test_data.sizes.get("run", 0) == 0:
            raise ConfigError("--test store has no usable runs (status 'ok')")
        try:
            test_data = with_label(test_data, label)
        except ConfigError as err:
            raise ConfigError(f"--test store: {err}") from None
        clash = ({str(r) for r in data["run"].values}
                 & {str(r) for r in test_data["run"].values})
        if clash:
            raise ConfigError(f"--test store shares {len(clash)} run id(s) with the training "
                              f"store (e.g. {sorted(clash)[0]}); use a store of other runs")
        check_classes(classes, run_values(test_data, label).astype(str), "--test store", label)
        for obs, how in ((measurable, {"reference": FEATURES[features], "time_axis": time_axis}),
                         (control, {})):
            if not obs:
                continue
            mine = TrajectoryFeatures(obs, units=units, noise=noise, **how).fit(data)
            try:
                theirs = TrajectoryFeatures(obs, units=units, noise=noise, **how).fit(test_data)
            except ConfigError as err:
                raise ConfigError(f"--test store does not match the training store: "
                                  f"{err}") from None
            if theirs.channels_ != mine.channels_ or theirs.n_times_ != mine.n_times_:
                raise ConfigError("--test store records other observables, stats or time "
                                  "points than the training store; both need the same "
                                  "[observe] settings")
    return Plan(data, label, classes, list(observables), measurable, internal, control,
                left_out, dict(statuses), int(ds.sizes["run"]), units, noise, held, test_data,
                features, time_axis, split)


def identify(ds: xr.Dataset, *, label: str = "rule", classifiers: Sequence[str] = CLASSIFIERS,
             holdout: str | None = None, test_ds: xr.Dataset | None = None,
             quick: bool = False, n_splits: int = N_SPLITS, n_permutations: int | None = None,
             target: float = TARGET_ACCURACY, random_state: int = 0, n_jobs: int = 1,
             progress: Progress | None = None, store: str = "", test_store: str = "",
             observables: Sequence[str] | None = None, features: str = FEATURES_DEFAULT,
             time_axis: str = TIME_AXIS_DEFAULT, split_by: str = SPLIT_BY_DEFAULT
             ) -> IdentifyResult:
    """The whole identification study on a store Dataset (dim `run`); see the module
    docstring. `features`: "recorded" (the values as recorded) or "relative" (every channel
    relative to its value before learning); `time_axis`: "step" or "progress" (each network's
    learning progress; needs `activity_change`). `split_by`: what the within-store splits keep
    on one side, "siblings" (networks sharing a seed and condition), "run", or "auto" (siblings
    where the store allows it; `lrsim.analysis.siblings`). BLAS runs single-threaded inside
    (the problems are small; threaded BLAS on a busy machine slows them down many times)."""
    from threadpoolctl import threadpool_limits

    p = plan(ds, label=label, classifiers=classifiers, holdout=holdout, test_ds=test_ds,
             n_splits=n_splits, n_permutations=n_permutations, target=target,
             observables=observables, features=features, time_axis=time_axis,
             split_by=split_by)
    with threadpool_limits(limits=1, user_api="blas"), short_warning_filters():
        return _Study(p, list(classifiers), quick=quick, n_splits=n_splits,
                      n_permutations=n_permutations, target=target, random_state=random_state,
                      n_jobs=n_jobs, progress=progress or silent()).run(store, test_store)


class _Study:
    """The phases of one identification study over a checked `Plan`."""

    def __init__(self, p: Plan, classifiers: list[str], *, quick: bool, n_splits: int,
                 n_permutations: int | None, target: float, random_state: int, n_jobs: int,
                 progress: Progress):
        self.p = p
        self.classifiers = classifiers
        self.quick = quick
        self.n_splits = n_splits
        self.n_perm = n_permutations if n_permutations is not None else \
            default_permutations(quick)
        self.target = float(target)
        self.rs = random_state
        self.n_jobs = n_jobs
        self.progress = progress
        blocks = p.split.blocks
        self.splitter = RepeatedStratifiedGroupSplit(n_splits, TEST_SIZE, random_state, blocks)
        self.null_splits = RepeatedStratifiedGroupSplit(min(3, n_splits), TEST_SIZE,
                                                        random_state, blocks)
        # sweeps, importance and the protocol search: fewer splits with --quick
        self.sweep_splits = RepeatedStratifiedGroupSplit(min(5, n_splits) if quick else n_splits,
                                                         TEST_SIZE, random_state, blocks)
        meta = [k for k in META_KEYS if k in p.data.coords]
        if p.holdout and p.holdout[0] not in meta:
            meta.append(p.holdout[0])
        self.meta_keys = meta
        # how every sweep reads its observables: as asked, but the control's curves as recorded
        self.how = {"reference": p.reference, "time_axis": p.time_axis,
                    "as_recorded": list(p.control)}

    # -- helpers -----------------------------------------------------------------------------

    def make(self, name: str, samples: Samples, tune: bool = True) -> Callable[[], Any]:
        return lambda: make_classifier(name, n_times=samples.n_times, n_static=samples.n_static,
                                       quick=self.quick, tune=tune, n_jobs=self.n_jobs,
                                       random_state=self.rs)

    def section(self, kind: str, observables: list[str], samples: Samples, what: str
                ) -> Section:
        scores = {}
        for clf in self.classifiers:
            with self.progress.phase(f"{what}: {clf}", self.n_splits, "splits") as tick:
                scores[clf] = cross_validate(samples, clf, self.splitter, quick=self.quick,
                                             n_jobs=self.n_jobs, random_state=self.rs,
                                             tick=tick)
        return Section(kind, observables, scores)

    def observable_score(self, name: str, kind: str, observables: list[str]
                         ) -> ObservableScore:
        r = self.sweep.score(observables)
        return ObservableScore(name, kind, observables, r["accuracy_mean"], r["accuracy_sem"],
                               r["run_accuracy_mean"])

    # -- the study ---------------------------------------------------------------------------

    def run(self, store: str, test_store: str) -> IdentifyResult:
        p, say = self.p, self.progress.say
        data = p.data
        meas_samples = make_samples(data, p.trajectory_features(p.measurable), p.label,
                                    self.meta_keys)
        say(f"{meas_samples.n_runs} runs, {len(meas_samples.y)} samples, "
            f"{len(p.classes)} classes of {p.label}; measurable: {', '.join(p.measurable)}; "
            f"features: {describe_features(p.features, p.time_axis)}")

        headline = self.section(MEASURABLE, p.measurable, meas_samples, "cross-validation")
        self.chosen = headline.best  # leads every held-out test: chosen before they are read
        # The sweep classifier: the random forest with the hyperparameters inner CV chose most
        # often on the headline (defaults where the forest was not run).
        sweep_params = (mode_params(headline.scores["forest"].best_params)
                        if "forest" in headline.scores else {})
        self.sweep_est = make_classifier("forest", quick=self.quick, tune=False,
                                         n_jobs=self.n_jobs, random_state=self.rs)
        self.sweep_est.set_params(**sweep_params)
        self.sweep = SweepScorer(data, p.label, self.sweep_est, self.sweep_splits,
                                 units=p.units, noise=p.noise, random_state=self.rs,
                                 meta_keys=self.meta_keys, **self.how)

        with self.progress.phase("permutation null", 1 + self.n_perm, "fits") as tick:
            _, null = null_test(meas_samples, self.sweep_est, self.null_splits, self.n_perm,
                                random_state=self.rs, tick=tick)
        values = self.sweep.factor_values(self.quick)
        with self.progress.phase("breakdown by units / noise / time points / fraction / "
                                 "training networks",
                                 sum(len(v) for v in values.values()), "points") as tick:
            breakdown = self.sweep.breakdown(p.measurable, values, tick=tick)

        per_obs, model_internal = self.per_observable()
        control = self.control(meas_samples)
        with self.progress.phase("importance", self.sweep_splits.n_repeats, "splits") as tick:
            ranked = importance(meas_samples, self.sweep_est, self.sweep_splits,
                                n_repeats=2 if self.quick else 5, random_state=self.rs,
                                tick=tick)
        held = []
        if p.holdout:
            held.append(self.holdout(meas_samples, *p.holdout, kind="holdout", full=True))
        if p.test_data is not None:
            held.append(self.across_stores(test_store))
        generalisation = self.generalisation(meas_samples)
        protocol = self.protocols()
        kinds = {**{o: MEASURABLE for o in p.measurable},
                 **{o: MODEL_INTERNAL for o in p.internal}, **{o: CONTROL for o in p.control}}
        panels = trajectory_panels(data, p.label, kinds, [r.channel for r in ranked],
                                   p.units, p.noise)
        settings = Settings(self.n_splits, TEST_SIZE, self.quick, self.classifiers, self.rs,
                            self.n_perm, self.null_splits.n_repeats, self.sweep_splits.n_repeats,
                            self.target, "forest", sweep_params, p.split.by,
                            p.split.description,
                            HELD_OUT_DRAWS_QUICK if self.quick else HELD_OUT_DRAWS)
        return IdentifyResult(
            store=store, test_store=test_store, label=p.label, classes=p.classes,
            n_runs=int(data.sizes["run"]), n_runs_total=p.n_runs_total,
            runs_by_status=p.statuses,
            runs_per_class={c: int(len(set(meas_samples.groups[meas_samples.y == c])))
                            for c in p.classes},
            n_samples=int(len(meas_samples.y)), observables=p.observables,
            measurable_observables=p.measurable, model_internal_observables=p.internal,
            control_observables=p.control, observables_left_out=p.left_out,
            stats=[str(s) for s in data["stat"].values] if "stat" in data.coords else [],
            n_time=int(data.sizes["time"]), view={"units": p.units, "noise": p.noise},
            settings=settings, chance=1.0 / len(p.classes),
            chance_majority=next(iter(headline.scores.values())).chance_majority,
            headline=Headline(headline, null, breakdown, held,
                              headline.scores[headline.best].confusion.confused_pairs()),
            control=control,
            model_internal=model_internal, per_observable=per_obs, importance=ranked,
            generalisation=generalisation, protocol=protocol, trajectories=panels,
            features=p.feature_set())

    def per_observable(self) -> tuple[list[ObservableScore], ModelInternal | None]:
        p = self.p
        jobs: list[tuple[str, str, list[str]]] = [(o, MEASURABLE, [o]) for o in p.measurable]
        if len(p.measurable) > 1:
            jobs.append(("+".join(p.measurable), MEASURABLE, list(p.measurable)))
        jobs += [(o, MODEL_INTERNAL, [o]) for o in p.internal]
        if p.internal:
            jobs.append((EVERYTHING, EVERYTHING, [*p.measurable, *p.internal]))
        jobs += [(o, CONTROL, [o]) for o in p.control]
        rows = []
        with self.progress.phase("accuracy per observable", len(jobs), "sets") as tick:
            for name, kind, obs in jobs:
                rows.append(self.observable_score(name, kind, obs))
                tick(1)
        internal = None
        if p.internal:
            measurable = self.observable_score("+".join(p.measurable), MEASURABLE,
                                               list(p.measurable))
            everything = next(r for r in rows if r.kind == EVERYTHING)
            internal = ModelInternal(list(p.internal),
                                     [r for r in rows if r.kind == MODEL_INTERNAL], everything,
                                     everything.accuracy - measurable.accuracy)
        return rows, internal

    def control(self, meas_samples: Samples) -> Control | None:
        """The loss-curve classifier and the matched control. The curves are read as recorded
        on the step axis whatever `features` / `time_axis` say. The control asks how far
        performance alone identifies the rule, so it must keep all of it: how fast a rule
        learns is exactly the information the progress axis removes, and the loss and
        accuracy as recorded (not relative to their value before learning, which the task
        and the initialisation set) say how well it learned. A control read like the
        measurable features would be weaker than what performance tells, and would overstate
        what the measurable observables add. The measurable part of the matched control reads
        the headline's samples (`features`, `time_axis`)."""
        p = self.p
        if not p.control:
            return None
        ctrl = make_samples(p.data, TrajectoryFeatures(p.control, depth=True), p.label,
                            self.meta_keys)
        section = self.section(CONTROL, list(p.control), ctrl, "loss-curve classifier")
        matched = matched_control(p.data, p.label, ctrl, meas_samples, self.sweep_est,
                                  control_observables=p.control,
                                  n_splits=self.sweep_splits.n_repeats,
                                  n_permutations=self.n_perm, random_state=self.rs,
                                  progress=self.progress, blocks=p.split.blocks)
        return Control(list(p.control), section, matched)

    def _pair(self, key: str, value: str) -> Callable[..., tuple[Samples, Samples]]:
        def pair_at(observables: Sequence[str] | None = None, **view: Any
                    ) -> tuple[Samples, Samples]:
            s = self.sweep.samples(observables or self.p.measurable, **view)
            mask = holdout_mask(s.meta[key], value)
            return s.subset(~mask), s.subset(mask)
        return pair_at

    def _held_out(self, kind: str, key: str, value: str,
                  pair_at: Callable[..., tuple[Samples, Samples]], full: bool,
                  n_train: int, n_test: int, unseen: list[str],
                  seen: dict[str, list[str]] | None = None) -> HeldOut:
        p = self.p
        train, test = pair_at()
        classes = np.unique(np.concatenate([train.y, test.y]))
        names = self.classifiers if full else ["forest"]
        estimators = {c: (self.make(c, train) if full else (lambda: clone(self.sweep_est)))
                      for c in names}
        chosen = self.chosen if full else "forest"
        values = self.sweep.factor_values(self.quick)
        values.pop("fraction")
        network_fractions = values.pop(TRAINING_NETWORKS)
        if not full:
            values, network_fractions = {}, []
        draws = HELD_OUT_DRAWS_QUICK if self.quick else HELD_OUT_DRAWS
        seeds = (list(range(self.rs, self.rs + (FOREST_SEEDS_QUICK if self.quick
                                                 else FOREST_SEEDS))) if full else [])
        extra = int(bool(p.control)) + int(bool(p.internal))
        total = (len(estimators) + sum(len(v) for v in values.values()) + len(seeds) + extra
                 + len(network_fractions))
        name = f"--test {value}" if kind == "test_store" else f"{key}={value}"
        what = "generalisation" if kind == "generalisation" else "held out"
        with self.progress.phase(f"{what} {name}", total, "fits") as tick:
            scores = score_held_out(train, test, classes, estimators, tick=tick,
                                    inner_groups=self.splitter.units(train.groups))
            spread = forest_seed_accuracies(self.sweep_est, train, test, classes, seeds,
                                            tick=tick)
            breakdown = (held_out_breakdown(pair_at, self.sweep_est, classes, values, tick=tick)
                         if values else None)
            if breakdown is not None and network_fractions:
                breakdown.training_networks = held_out_curve(
                    self.sweep_est, train, test, classes, network_fractions, draws=draws,
                    random_state=self.rs, tick=tick)
            ctrl = every = None
            forest = {"forest": lambda: clone(self.sweep_est)}
            if p.control:
                ctrl = score_held_out(*pair_at(observables=p.control), classes, forest,
                                      tick=tick)["forest"]
            if p.internal:
                every = score_held_out(*pair_at(observables=[*p.measurable, *p.internal]),
                                       classes, forest, tick=tick)["forest"]
        distance = training_distance(train, test, GENERALISATION_KEYS) if full else None
        return HeldOut(kind, key, value, n_train, n_test, [str(c) for c in classes], unseen,
                       scores, breakdown, ctrl, every, chosen, spread,
                       scores[chosen].confusion.confused_pairs(), seen or {}, distance)

    def holdout(self, samples: Samples, key: str, value: str, kind: str, full: bool
                ) -> HeldOut:
        mask = holdout_split(samples, key, value)
        train, test = samples.subset(~mask), samples.subset(mask)
        unseen = sorted(set(test.y) - set(train.y))
        return self._held_out(kind, key, value, self._pair(key, value), full, train.n_runs,
                              test.n_runs, unseen)

    def across_stores(self, name: str) -> HeldOut:
        p = self.p
        other = SweepScorer(p.test_data, p.label, self.sweep_est, self.sweep_splits,
                            units=p.units, noise=p.noise, random_state=self.rs, **self.how)

        def pair_at(observables: Sequence[str] | None = None, **view: Any
                    ) -> tuple[Samples, Samples]:
            obs = observables or p.measurable
            return self.sweep.samples(obs, **view), other.samples(obs, **view)

        train, test = pair_at()
        return self._held_out("test_store", "store", name, pair_at, True, train.n_runs,
                              test.n_runs, [], seen_in_training(p.data, p.test_data))

    def generalisation(self, samples: Samples) -> list[HeldOut]:
        todo = [(k, v) for k in GENERALISATION_KEYS if k in samples.meta
                for v in sorted({str(x) for x in samples.meta[k]})
                if len({str(x) for x in samples.meta[k]}) > 1]
        out = []
        for key, value in todo:
            out.append(self.holdout(samples, key, value, kind="generalisation", full=False))
        return out

    def protocols(self) -> Any:
        p = self.p
        tps = time_point_values(int(p.data.sizes["time"]), self.quick)
        n_units = len(views(p.data, "units", 0))
        n_noise = len(views(p.data, "noise", 0.0))
        n_obs = len(p.measurable) + (1 if len(p.measurable) > 1 else 0)
        total = n_obs * n_units * n_noise * len(tps)
        with self.progress.phase(f"protocol search (target {self.target:.0%})", total,
                                 "protocols") as tick:
            def score(observables: Sequence[str], units: int, noise: float,
                      time_points: int) -> dict[str, float]:
                r = self.sweep.score(observables, units=units, noise=noise,
                                     time_points=time_points)
                tick(1)
                return r

            out = search_protocols(p.data, p.measurable, tps, score, self.target, p.label)
            tick(total - len(out.tried))  # protocols pruned by the search count as done
        return out
