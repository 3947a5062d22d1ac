"""The study script's observable-family comparison (`benchmarks/identification_study.py
--only families`) against a planted answer: a synthetic store whose rule is written into one
weight statistic and nowhere else."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from lrsim.analysis.features import TrajectoryFeatures, make_samples, synthetic_scan

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "identification_study.py"
FAMILIES = {"weights": ("weights",), "activations": ("activations",),
            "activity change": ("activity_change",)}


@pytest.fixture(scope="module")
def study():
    spec = importlib.util.spec_from_file_location("identification_study", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def samples():
    def read(seed: int, prefix: str):
        ds = synthetic_scan(n_runs_per_rule=16, planted="weights.abs_q75", seed=seed,
                            run_prefix=prefix)
        feats = TrajectoryFeatures(["weights", "activations", "activity_change"], units=0,
                                   noise=0.0)
        return make_samples(ds, feats, "rule")

    return read(0, "train"), read(1, "test")


def test_family_columns_are_the_family_and_depth(study, samples):
    s, _ = samples
    cols = study.family_columns(s, ("activations",))
    names = np.array(s.feature_names)
    assert set(names[cols]) == {n for n in names if n.startswith("activations.")} | {"depth"}
    assert study.family_columns(s, ()).sum() == 1  # depth alone


def test_families_compare_finds_the_planted_family(study, samples):
    tr, te = samples
    classes = np.unique(tr.y)
    r = study.families_compare(tr, te, classes, FAMILIES, trees=50, forests=2)
    assert set(r) == {"all", "fused", *[f"without {k}" for k in FAMILIES]}
    assert r["all"] >= 0.9 and r["without activations"] >= 0.9
    assert r["without weights"] <= 0.6  # chance is 1/3: the rule is nowhere else
    # two of the three family forests see noise only; their averaged probabilities do not
    # outvote the one that sees the rule
    assert r["fused"] >= 0.8


def test_by_optimizer_chooses_without_the_test_store_and_finds_the_planted_classes(study):
    # four classes rule + optimizer, each a level of one planted weight statistic (the
    # optimizers apart by one threshold, the rules within each by another); two "tasks"
    names = {"a": "bp+adam", "b": "fa+adam", "c": "bp+sgd", "d": "fa+sgd"}

    def read(seed: int, prefix: str):
        ds = synthetic_scan(n_runs_per_rule=16, rules=tuple(names), planted="weights.abs_q75",
                            seed=seed, run_prefix=prefix, effect=4.0)
        feats = TrajectoryFeatures(["weights", "activations", "activity_change"], units=0,
                                   noise=0.0)
        s = make_samples(ds, feats, "rule")
        s.y = np.array([names[r] for r in s.y])
        s.meta["task"] = np.array([f"t{int(g[-3:]) % 2}" for g in s.groups])
        return s

    tr, te = read(0, "train"), read(1, "test")
    r = study.by_optimizer(tr, te, FAMILIES, trees=30, forests=1)
    assert set(r["optimizers"]) == {"adam", "sgd"}
    for opt in r["optimizers"].values():
        assert set(opt["candidates"]) == {"all", *[f"without {k}" for k in FAMILIES]}
        assert opt["chosen"] != "without weights"  # the rule is in the weights only
        assert opt["candidates"]["without weights"]["held_out_mean"] <= 0.8  # chance 1/2
    assert r["two_stage_mean"] >= 0.9
