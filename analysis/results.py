"""Typed results of rule identification (`lrsim.analysis.identify.identify`).

Everything the report, the CLI summary and `results.json` show is a field of these dataclasses;
`IdentifyResult.to_dict()` is the JSON form. Accuracies are fractions in [0, 1]. "Sample"
accuracy scores one (run, layer) sample at a time; "run" accuracy averages the class
probabilities of a run's layers, then takes the argmax (one vote per network). A `sem` is the
standard error of the mean over repeated grouped splits; an `se` on a single held-out test is
the binomial standard error sqrt(p (1 - p) / n_test_runs).
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lrsim.analysis.defaults import describe_features

# What a feature set is made of (`Section.kind`, `ObservableScore.kind`)
MEASURABLE = "measurable"           # what an experiment could record
MODEL_INTERNAL = "model-internal"   # e.g. alignment: no experiment reads it directly
CONTROL = "control"                 # the loss / test-accuracy curves: behaviour
EVERYTHING = "everything recorded"  # measurable + model-internal together


@dataclass
class Confusion:
    """Counts, rows = true class, columns = predicted class, both in `classes` order."""

    classes: list[str]
    counts: list[list[int]]

    def fractions(self) -> np.ndarray:
        """Rows normalised to the fraction of each true class (0 for an empty row)."""
        m = np.asarray(self.counts, float)
        return m / np.maximum(m.sum(axis=1, keepdims=True), 1)

    def confused_pairs(self, threshold: float = 0.2) -> list[ConfusedPair]:
        """Pairs of classes told apart worst: the mean of the fraction of a's samples called b
        and of b's called a, where it is at least `threshold`, most confused first."""
        out = []
        for i, a in enumerate(self.classes):
            for b in self.classes[i + 1:]:
                rate = self.pair_rate(a, b)
                if rate >= threshold:
                    out.append(ConfusedPair(a, b, rate))
        return sorted(out, key=lambda p: -p.rate)

    def pair_rate(self, a: str, b: str) -> float:
        """How often a's samples are called b and b's are called a (mean of the two
        fractions); NaN where either class is not in `classes`."""
        if a not in self.classes or b not in self.classes:
            return math.nan
        f = self.fractions()
        i, j = self.classes.index(a), self.classes.index(b)
        return float((f[i, j] + f[j, i]) / 2)


@dataclass
class ConfusedPair:
    """Two classes and how often each is called the other (mean of the two fractions)."""

    a: str
    b: str
    rate: float


@dataclass
class CVScore:
    """One classifier on one feature set over repeated grouped splits: mean +/- sem."""

    classifier: str
    accuracy: float
    accuracy_sem: float
    run_accuracy: float
    run_accuracy_sem: float
    chance_majority: float
    n_splits: int
    accuracy_per_split: list[float]
    confusion: Confusion
    best_params: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class TestScore:
    """One classifier fitted on a training set and scored once on a disjoint test set."""

    classifier: str
    accuracy: float
    accuracy_se: float
    run_accuracy: float
    n_test_runs: int
    chance_majority: float
    confusion: Confusion
    best_params: dict[str, Any] = field(default_factory=dict)


@dataclass
class SweepPoint:
    """Accuracy with one factor set to `value` (units and time points are ints), the others at
    the full view; `n_train_runs`: the networks trained on (mean over splits or draws), where
    the factor is the fraction of training networks kept."""

    value: int | float
    accuracy: float
    accuracy_sem: float
    run_accuracy: float
    n_train_runs: float | None = None


@dataclass
class Breakdown:
    """Accuracy against the recording protocol, one factor varied at a time: units recorded per
    layer (0 = all), relative measurement noise, time points, fraction of the trajectory seen;
    and against the fraction of the training networks kept per class and condition
    (`lrsim.analysis.training_size`). Empty where not computed."""

    classifier: str
    units: list[SweepPoint] = field(default_factory=list)
    noise: list[SweepPoint] = field(default_factory=list)
    time_points: list[SweepPoint] = field(default_factory=list)
    fraction: list[SweepPoint] = field(default_factory=list)
    training_networks: list[SweepPoint] = field(default_factory=list)

    def factors(self) -> dict[str, list[SweepPoint]]:
        return {k: v for k, v in (("units", self.units), ("noise", self.noise),
                                  ("time_points", self.time_points),
                                  ("fraction", self.fraction),
                                  ("training_networks", self.training_networks)) if v}

    def halving_cost(self) -> tuple[float, float] | None:
        """(per-layer accuracy with all training networks minus with half of them, its s.e.
        from the two points' s.e.m.), None where the curve lacks either point: what the last
        doubling of the networks bought."""
        by = {p.value: p for p in self.training_networks}
        if 1.0 not in by or 0.5 not in by:
            return None
        full, half = by[1.0], by[0.5]
        return full.accuracy - half.accuracy, math.hypot(full.accuracy_sem, half.accuracy_sem)


@dataclass
class NullTest:
    """Label-permutation null (Ojala & Garriga 2010): the cross-validation rerun with run labels
    shuffled; p = (1 + #{null >= observed}) / (1 + n_permutations)."""

    classifier: str
    n_permutations: int
    n_splits: int
    scores: list[float]
    mean: float
    q95: float
    observed: float
    p_value: float

    @property
    def at_chance(self) -> bool:
        """Not better than chance at the 5% level."""
        return self.p_value > 0.05


@dataclass
class Section:
    """One feature set evaluated by every classifier (repeated grouped splits)."""

    kind: str
    observables: list[str]
    scores: dict[str, CVScore]

    @property
    def best(self) -> str:
        """The classifier with the highest mean sample accuracy."""
        return max(self.scores, key=lambda c: self.scores[c].accuracy)


@dataclass
class TrainingDistance:
    """How far the test runs lie from the training runs in the classifier's feature space
    (`lrsim.analysis.novelty`): `test`, the median over test samples of the mean distance to
    their `neighbours` nearest training samples (features scaled by the training median and
    interquartile range); `conditions`, per training condition (`keys` joined with '/'), the
    same distance of its samples from the other training conditions: what a condition never
    trained on looks like from the rest. `observables`: which observables put the test runs
    there (each one's share of the excess of the test samples' squared scaled values over the
    training samples', largest first)."""

    test: float
    conditions: dict[str, float] = field(default_factory=dict)
    neighbours: int = 5
    keys: list[str] = field(default_factory=list)
    observables: dict[str, float] = field(default_factory=dict)

    @property
    def rank(self) -> float:
        """The fraction of training conditions that lie nearer the rest than the test runs lie
        to the training runs (NaN without conditions)."""
        ref = list(self.conditions.values())
        return float(np.mean([r < self.test for r in ref])) if ref else math.nan

    @property
    def text(self) -> str:
        """One line, e.g. 'the test runs lie 27.7 from the training runs; each of the 72
        training conditions left out lies 6.5-35.9 from the others (median 13.8): farther
        than 88% of them; most of it in coupling 62%, weights 20%' (observables with 5% or
        more of the excess, at most 3)."""
        line = f"the test runs lie {self.test:.1f} from the training runs"
        ref = list(self.conditions.values())
        if ref:
            line += (f"; each of the {len(ref)} training conditions left out lies "
                     f"{min(ref):.1f}-{max(ref):.1f} from the others (median "
                     f"{np.median(ref):.1f}): farther than {self.rank:.0%} of them")
        most = [f"{o} {v:.0%}" for o, v in list(self.observables.items())[:3] if v >= 0.05]
        return line + (f"; most of it in {', '.join(most)}" if most else "")


@dataclass
class HeldOut:
    """Train on some runs, test on others never seen: `--holdout KEY=VALUE`, a `--test` store
    (key "store", value its path), or an automatic hold-out of one value of a key that varies.
    `scores`: measurable observables, per classifier; `control`: the loss-curve classifier;
    `everything`: measurable + model-internal (forest; labelled, never the headline).
    `chosen`: the classifier the within-store cross-validation ranked first, chosen before the
    test runs were read: its held-out score leads (the best score on the test runs would be
    chosen on them, and read high). `forest_seeds`: the random forest's per-network accuracy
    on the test runs refitted with consecutive seeds (the classifier's own randomness moves a
    held-out figure by several points when the test networks lie off the training
    distribution). `confused_pairs`: the pairs of classes the chosen classifier confuses most
    on the test runs. `seen_in_training` (a `--test` store): per condition key (task,
    activation, architecture, substrate), the test runs' values the training runs have too
    (empty lists: a condition never trained on). `distance` (a `--test` store or a
    `--holdout`): how far the test runs' features lie from the training runs', against the
    training conditions left out in turn."""

    kind: str
    key: str
    value: str
    n_train_runs: int
    n_test_runs: int
    classes: list[str]
    unseen_classes: list[str]
    scores: dict[str, TestScore]
    breakdown: Breakdown | None = None
    control: TestScore | None = None
    everything: TestScore | None = None
    chosen: str = ""
    forest_seeds: list[float] = field(default_factory=list)
    confused_pairs: list[ConfusedPair] = field(default_factory=list)
    seen_in_training: dict[str, list[str]] = field(default_factory=dict)
    distance: TrainingDistance | None = None

    @property
    def new_to_training(self) -> list[str]:
        """The condition keys (task, activation, ...) whose test-run values no training run has
        ([] where all were trained on, or where it was not recorded)."""
        return [k for k, v in self.seen_in_training.items() if not v]

    @property
    def condition(self) -> str:
        """The test runs' condition against the training runs' (`seen_in_training`), e.g.
        'new to training: task, activation, architecture; also trained on: substrate rate';
        '' where it was not recorded (a --holdout, or results written before)."""
        new = self.new_to_training
        seen = ", ".join(f"{k} {', '.join(v)}" for k, v in self.seen_in_training.items() if v)
        return "; ".join(([f"new to training: {', '.join(new)}"] if new else [])
                         + ([f"also trained on: {seen}"] if seen else []))

    @property
    def best(self) -> str:
        """The classifier that scored highest on the test runs (chosen on them: see
        `lead`)."""
        return max(self.scores, key=lambda c: self.scores[c].accuracy)

    @property
    def lead(self) -> str:
        """The classifier whose held-out score leads: `chosen` (by cross-validation on the
        training runs); results written before it was recorded fall back to `best`."""
        return self.chosen if self.chosen in self.scores else self.best

    @property
    def name(self) -> str:
        return f"--test {self.value}" if self.kind == "test_store" else f"{self.key}={self.value}"


@dataclass
class Headline:
    """What an experiment could record (`observables`, all measurable), cross-validated,
    with its null, its breakdown by units / noise / time points and, when asked for, the
    held-out tests (`--holdout`, `--test`); `confused_pairs`: the pairs of classes the best
    classifier confuses most (cross-validated)."""

    section: Section
    null: NullTest
    breakdown: Breakdown
    held_out: list[HeldOut] = field(default_factory=list)
    confused_pairs: list[ConfusedPair] = field(default_factory=list)

    def halving_costs(self) -> list[tuple[str, float, float, bool]]:
        """("cross-validated" or "held out NAME", what halving the training networks costs per
        layer, its s.e., whether the curve still rises: cost >= max(0.02, 2 s.e.)) for each
        breakdown that has the curve (`Breakdown.halving_cost`)."""
        named = [("cross-validated", self.breakdown)] + [
            (f"held out {ho.name}", ho.breakdown) for ho in self.held_out]
        out = []
        for name, b in named:
            c = b.halving_cost() if b is not None else None
            if c is not None:
                out.append((name, c[0], c[1], c[0] >= max(0.02, 2 * c[1])))
        return out


@dataclass
class MatchedControl:
    """Runs matched across classes by their loss / test-accuracy curves (nearest neighbours in
    standardised curve space within `caliper` standard deviations, inf = none, one run per
    class per matched set; `max_smd`: the largest standardised mean difference between two
    matched classes at a time point), then: the loss-curve classifier on the matched runs with
    its null (it should be at chance) and the measurable observables on the same runs with
    their null. `added` = measurable accuracy minus loss-curve accuracy on the matched runs.
    `attempts`: every caliper tried, with its verdict."""

    method: str
    caliper: float
    classes: list[str]
    dropped_classes: list[str]
    n_sets: int
    runs: list[str]
    max_smd: float
    smd_threshold: float
    loss_curve: CVScore | None
    loss_curve_null: NullTest | None
    measurable: CVScore | None
    measurable_null: NullTest | None
    attempts: list[dict[str, Any]] = field(default_factory=list)
    # what the matched runs' splits keep on one side: "siblings" or "run" (older results: run)
    split_by: str = "run"

    @property
    def at_chance(self) -> bool:
        """The loss-curve classifier is not better than chance on the matched runs."""
        return self.loss_curve_null is not None and self.loss_curve_null.at_chance

    @property
    def balanced(self) -> bool:
        return self.max_smd <= self.smd_threshold

    @property
    def matched(self) -> bool:
        """Performance does not identify the class on these runs: the loss-curve classifier at
        chance, and the classes balanced (or the runs unmatched: no caliper was needed)."""
        return self.at_chance and (self.balanced or not math.isfinite(self.caliper))

    @property
    def chance(self) -> float:
        return 1.0 / max(len(self.classes), 1)

    @property
    def added(self) -> float | None:
        if self.loss_curve is None or self.measurable is None:
            return None
        return self.measurable.accuracy - self.loss_curve.accuracy


@dataclass
class Control:
    """The loss / test-accuracy curves alone (a loss-curve classifier: "which rule learns
    faster"), on every run and on runs matched for their curves."""

    observables: list[str]
    loss_curve: Section
    matched: MatchedControl | None

    def added(self, headline: Section) -> dict[str, float]:
        """Measurable accuracy minus loss-curve accuracy, per classifier (all runs)."""
        return {c: headline.scores[c].accuracy - self.loss_curve.scores[c].accuracy
                for c in headline.scores if c in self.loss_curve.scores}


@dataclass
class ObservableScore:
    """The sweep classifier on one observable (or a named group of them)."""

    name: str
    kind: str
    observables: list[str]
    accuracy: float
    accuracy_sem: float
    run_accuracy: float


@dataclass
class ModelInternal:
    """Quantities no experiment records directly (e.g. `alignment`), shown apart from the
    headline: each alone and everything recorded (measurable + these) together."""

    observables: list[str]
    alone: list[ObservableScore]
    everything: ObservableScore
    added_to_measurable: float


@dataclass
class ImportanceRow:
    """Accuracy drop when one channel's whole trajectory is permuted across test samples."""

    channel: str
    drop: float
    drop_sem: float


@dataclass
class Protocol:
    """A recording protocol and the sweep classifier's accuracy from it."""

    observable: str
    units: int
    noise: float
    time_points: int
    accuracy: float
    accuracy_sem: float


@dataclass
class ProtocolSearch:
    """The cheapest protocol reaching `target` (None if none did), the most accurate one tried,
    and the cost-accuracy frontier over units x noise x time points of all the measurable
    observables together: the protocols of that grid that no other one beats in accuracy at no
    higher cost in units, time points and noise tolerated."""

    target: float
    cheapest: Protocol | None
    best: Protocol | None
    frontier: list[Protocol]
    tried: list[Protocol]
    n_candidates: int
    sentence: str


@dataclass
class Band:
    """A statistic over training for one class of `n_runs` runs: mean and mean -/+ one standard
    deviation over runs (each run averaged over its layers), on the training-progress axis."""

    label: str
    n_runs: int
    mean: list[float]
    lower: list[float]
    upper: list[float]


@dataclass
class TrajectoryPanel:
    """One observable's statistic over training, by class: `progress` is the fraction of
    training done; `units` the statistic's units (None where unknown); `averaged_over` the
    dimensions each run was averaged over (layer, population)."""

    observable: str
    kind: str
    statistic: str | None
    progress: list[float]
    bands: list[Band]
    units: str | None = None
    progress_label: str = "fraction of training"
    averaged_over: list[str] = field(default_factory=list)


@dataclass
class Settings:
    n_splits: int
    test_size: float
    quick: bool
    classifiers: list[str]
    random_state: int
    n_permutations: int
    null_splits: int
    sweep_splits: int
    target: float
    sweep_classifier: str
    sweep_params: dict[str, Any]
    # what the within-store splits keep on one side (`lrsim.analysis.siblings.SplitUnits`);
    # results.json written before this was a choice: grouped by run
    split_by: str = "run"
    split_description: str = "grouped by run"
    # thinned training sets drawn per fraction for a held-out test's training-networks curve
    network_draws: int = 0


@dataclass
class FeatureSet:
    """How the measurable and model-internal observables were read (`--features`,
    `--time-axis`): `features` "recorded" (the values as recorded) or "relative" (every channel
    relative to its value before learning), `reference` the `TrajectoryFeatures` reference it
    maps to ("none" / "initial"), `time_axis` "step" or "progress", and the words the report and
    the summary use. The control (loss / test-accuracy curves) is always read as recorded on
    the step axis."""

    features: str = "recorded"
    reference: str = "none"
    time_axis: str = "step"
    description: str = describe_features("recorded", "step")


@dataclass
class IdentifyResult:
    """Every number of one identification study."""

    store: str
    test_store: str
    label: str
    classes: list[str]
    n_runs: int
    n_runs_total: int
    runs_by_status: dict[str, int]
    runs_per_class: dict[str, int]
    n_samples: int
    observables: list[str]
    measurable_observables: list[str]
    model_internal_observables: list[str]
    control_observables: list[str]
    observables_left_out: dict[str, int]
    stats: list[str]
    n_time: int
    view: dict[str, float]
    settings: Settings
    chance: float
    chance_majority: float
    headline: Headline
    control: Control | None
    model_internal: ModelInternal | None
    per_observable: list[ObservableScore]
    importance: list[ImportanceRow]
    generalisation: list[HeldOut]
    protocol: ProtocolSearch
    trajectories: list[TrajectoryPanel]
    # results.json written before features were a choice read back as "recorded" / "step"
    features: FeatureSet = field(default_factory=FeatureSet)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict of every field (non-finite floats -> None)."""
        return _jsonable(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> IdentifyResult:
        """The result back from `to_dict()` (e.g. a `results.json`); None where a float was
        not finite reads as inf for a caliper, NaN elsewhere."""
        return _build(cls, d)


def _build(tp: Any, value: Any) -> Any:
    """`value` (JSON) as type `tp` (dataclasses, lists, dicts, optionals, scalars)."""
    origin = typing.get_origin(tp)
    if origin in (types.UnionType, typing.Union):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return math.nan if args == [float] else None
        return _build(args[0], value) if len(args) == 1 else value
    if dataclasses.is_dataclass(tp):
        hints = typing.get_type_hints(tp)
        kwargs = {}
        for f in dataclasses.fields(tp):
            if f.name in value:
                v = value[f.name]
                if f.name == "caliper" and v is None:
                    v = math.inf
                kwargs[f.name] = _build(hints[f.name], v)
        return tp(**kwargs)
    if origin is list:
        (arg,) = typing.get_args(tp) or (Any,)
        return [_build(arg, v) for v in value]
    if origin is dict:
        _, arg = typing.get_args(tp) or (Any, Any)
        return {k: _build(arg, v) for k, v in value.items()}
    if tp is float:
        return math.nan if value is None else float(value)
    return value


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj
