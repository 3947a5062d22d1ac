"""The performance-matched control against known answers: a store whose loss curves carry the
label (each run's learning speed is drawn from a class-dependent, overlapping distribution) and
whose weights carry it independently. Before matching the loss-curve classifier is well above
chance; on the matched runs it is at chance, the runs' latent speeds agree across classes, and
the weights still identify the class."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier

from lrsim.analysis.control import curve_distances, match, matched_control, matched_sets
from lrsim.analysis.crossval import cross_validate
from lrsim.analysis.features import TrajectoryFeatures, make_samples, synthetic_scan
from lrsim.analysis.splits import RepeatedStratifiedGroupSplit

RULES = ("a", "b", "c")
SHIFT = 1.2  # class means of the latent speed: 0, 1.2, 2.4 (standard normal noise)


def _speed_store(n_per_rule: int = 40, seed: int = 0):
    ds = synthetic_scan(n_runs_per_rule=n_per_rule, rules=RULES, planted="weights.abs_q75",
                        effect=8.0, n_time=11, seed=seed, layers_per_arch=(2,))
    rng = np.random.default_rng(seed + 100)
    k = np.array([RULES.index(r) for r in ds["rule"].values], float)
    speed = 1.0 + 0.5 * (rng.normal(size=len(k)) + SHIFT * k)
    t = np.linspace(0, 1, ds.sizes["time"])
    loss = 2.0 * np.exp(-3.0 * np.maximum(speed, 0.05)[:, None] * t[None, :])
    loss += 0.01 * rng.normal(size=loss.shape)
    acc = 1.0 - loss / 2.0 + 0.01 * rng.normal(size=loss.shape)
    ds["loss"] = (("run", "time"), loss)
    ds["test_accuracy"] = (("run", "time"), acc)
    return ds, dict(zip(ds["run"].values.astype(str), speed))


def _forest():
    return RandomForestClassifier(n_estimators=60, max_features=0.3, random_state=0)


@pytest.fixture(scope="module")
def speed_store():
    return _speed_store()


@pytest.fixture(scope="module")
def matched(speed_store):
    ds, _ = speed_store
    ctrl = make_samples(ds, TrajectoryFeatures(["loss", "test_accuracy"]), "rule")
    meas = make_samples(ds, TrajectoryFeatures(["weights"], stats=["abs_q75", "raw_mean"]),
                        "rule")
    mc = matched_control(ds, "rule", ctrl, meas, _forest(),
                         control_observables=["loss", "test_accuracy"], n_splits=3,
                         n_permutations=19)
    return ctrl, mc


def test_loss_curves_identify_the_class_before_matching(matched):
    ctrl, _ = matched
    r = cross_validate(ctrl, _forest(), RepeatedStratifiedGroupSplit(5, 0.25, 0))
    assert r.accuracy > 0.5 > 1 / 3, r.accuracy


def test_on_matched_runs_the_loss_classifier_is_at_chance_and_the_weights_are_not(matched):
    _, mc = matched
    assert mc.classes == list(RULES) and mc.dropped_classes == []
    assert mc.n_sets >= 5 and len(mc.runs) == 3 * mc.n_sets
    assert mc.matched, (mc.max_smd, mc.loss_curve.accuracy, mc.loss_curve_null.q95, mc.attempts)
    assert mc.loss_curve.accuracy < 0.5
    assert mc.measurable.accuracy >= 0.85
    assert mc.measurable_null.p_value == pytest.approx(1 / 20)
    assert mc.added > 0.35
    # without a caliper the classes stay apart in their curves, and the classifier sees it
    assert mc.attempts[0]["max_smd"] > 1.0 and mc.attempts[0]["verdict"] == "above chance"
    assert all(a["verdict"].startswith("imbalanced") for a in mc.attempts[1:-1])


def test_matched_runs_learn_at_the_same_speed(speed_store, matched):
    """The latent speeds (known to the test, never shown to the code) of the matched runs agree
    across classes; before matching the class means are 2 * SHIFT * 0.5 = 1.2 apart."""
    ds, speed = speed_store
    _, mc = matched
    rule = dict(zip(ds["run"].values.astype(str), ds["rule"].values.astype(str)))
    before = [np.mean([s for r, s in speed.items() if rule[r] == c]) for c in RULES]
    after = [np.mean([speed[r] for r in mc.runs if rule[r] == c]) for c in RULES]
    assert before[2] - before[0] > 1.0
    assert max(after) - min(after) < 0.12, after


def test_matched_sets_meet_the_caliper():
    """Against a direct computation: one run per class, disjoint, every member within the
    caliper of the set's anchor; distances equal numpy's on standardised curves."""
    rng = np.random.default_rng(3)
    curves = rng.normal(size=(60, 8)) * [1, 2, 3, 4, 1, 1, 1, 1] + 5
    y = np.repeat(np.array(["p", "q", "r"]), [15, 20, 25])
    dist = curve_distances(curves)
    z = (curves - curves.mean(0)) / curves.std(0)
    ref = np.sqrt(((z[:, None, :] - z[None, :, :]) ** 2).mean(-1))
    np.testing.assert_allclose(dist, ref, atol=1e-6)
    sets = matched_sets(dist, y, ["p", "q", "r"], caliper=1.2)
    assert sets
    members = [i for s in sets for i in s]
    assert len(members) == len(set(members))
    for s in sets:
        assert sorted(y[s]) == ["p", "q", "r"] and y[s[0]] == "p"  # anchored on the rarest
        assert all(dist[s[0], j] <= 1.2 for j in s)


def test_an_unmatchable_class_is_dropped_and_named():
    rng = np.random.default_rng(0)
    curves = np.concatenate([rng.normal(0, 1, (20, 4)), rng.normal(0, 1, (20, 4)),
                             rng.normal(30, 1, (20, 4))])
    y = np.repeat(np.array(["a", "b", "far"]), 20)
    sets, classes, dropped = match(curve_distances(curves), y, caliper=0.5, min_sets=5)
    assert dropped == ["far"] and classes == ["a", "b"] and len(sets) >= 5
