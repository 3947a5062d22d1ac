"""Defaults of rule identification, in one place (light imports: the CLI's help reads them)."""

from lrsim.contract import LABELS as RUN_LABELS

# what identification can tell apart: the run-file labels and one derived per run
DERIVED_LABELS = {"rule_optimizer": ("rule", "optimizer")}   # "<rule>+<optimizer>"
LABELS = (*RUN_LABELS, *DERIVED_LABELS)
N_PERMUTATIONS = 99          # label permutations of the null
N_PERMUTATIONS_QUICK = 19    # with --quick (the smallest p is 1 / 20 = 0.05)
TARGET_ACCURACY = 0.90       # what the protocol search aims for
N_SPLITS = 10                # repeated grouped splits
FOREST_SEEDS = 5             # forest refits per held-out test (--holdout, --test): its spread
FOREST_SEEDS_QUICK = 3       # with --quick
# Which features identification reads the measurable and model-internal observables as
# (`--features`, `--time-axis`; `lrsim.analysis.features.TrajectoryFeatures`): "recorded" = the
# values as recorded (reference "none"), "relative" = every channel relative to its value before
# learning (reference "initial"); time on the recorded step axis or on each network's own
# learning-progress axis.
FEATURES = {"recorded": "none", "relative": "initial"}   # --features -> reference
TIME_AXES = ("step", "progress")
FEATURES_DEFAULT = "recorded"   # the default of --features
TIME_AXIS_DEFAULT = "step"      # the default of --time-axis
_FEATURE_WORDS = {"recorded": "values as recorded", "relative": "relative to initial value"}
_AXIS_WORDS = {"step": "time on the step axis", "progress": "time on the learning-progress axis"}


def describe_features(features: str, time_axis: str) -> str:
    """'relative to initial value, time on the step axis' (what the report and summary say)."""
    return f"{_FEATURE_WORDS[features]}, {_AXIS_WORDS[time_axis]}"
# What the within-store splits keep on one side (`--split-by`; `lrsim.analysis.siblings`):
# "siblings" = every network that shares a run's seed and condition (same initial weights and
# minibatch order, whatever its rule, optimizer or learning rate), "run" = each network alone,
# "auto" = siblings where the store allows it (a per-run seed, >= MIN_SIBLING_GROUPS groups,
# every class in >= 2 of them), else runs.
SPLIT_BY = ("auto", "siblings", "run")
SPLIT_BY_DEFAULT = "auto"
MIN_SIBLING_GROUPS = 4
