"""What leads a held-out test, and how far its figure is to be trusted.

- The classifier whose held-out score leads is the one the within-store cross-validation ranked
  first, chosen before the test runs are read; the best score on the test runs would be chosen
  on them (and read high). Results written before the choice was recorded fall back to it.
- The random forest refitted with several seeds: each per-network accuracy equals scikit-learn's
  forest of that seed, fitted and scored here by hand (layers' probabilities averaged per run).
- The pairs told apart worst on the test runs, and how often the loss-curve classifier confuses
  the same pair, computed here from the confusion counts with numpy.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier

from lrsim.analysis import results
from lrsim.analysis.defaults import FOREST_SEEDS_QUICK
from lrsim.analysis.features import TrajectoryFeatures, make_samples, synthetic_scan
from lrsim.analysis.generalisation import forest_seed_accuracies
from lrsim.analysis.identify import identify
from lrsim.analysis.report import render
from lrsim.analysis.results import Confusion, HeldOut, IdentifyResult
from lrsim.commands.identify import summary_lines

FAST = dict(quick=True, n_splits=4, n_permutations=3)


def _store(seed: int, prefix: str, n: int, effect: float):
    return synthetic_scan(n, planted="weights.abs_q75", effect=effect, n_time=5, seed=seed,
                          run_prefix=prefix, layers_per_arch=(2,))


@pytest.fixture(scope="module")
def two_classifiers():
    """A weak planted signal (so that classifiers and seeds differ), two classifiers, a
    held-out test store."""
    return identify(_store(3, "r", 8, 1.0), test_ds=_store(4, "s", 6, 1.0), test_store="other",
                    classifiers=["linear", "forest"], observables=["weights", "loss"], **FAST)


def _by_hand(counts: list[list[int]], classes: list[str]) -> dict[tuple[str, str], float]:
    m = np.asarray(counts, float)
    f = m / m.sum(axis=1, keepdims=True)
    return {(classes[i], classes[j]): (f[i, j] + f[j, i]) / 2
            for i in range(len(classes)) for j in range(i + 1, len(classes))}


def test_the_cross_validated_choice_leads_the_held_out_test(two_classifiers):
    r = two_classifiers
    (ho,) = r.headline.held_out
    cv = r.headline.section.scores
    assert set(ho.scores) == {"linear", "forest"}
    assert ho.chosen == max(cv, key=lambda c: cv[c].accuracy) == ho.lead
    lines = summary_lines(r)
    marked = [line for line in lines if "<- leads" in line]
    assert len(marked) == 1 and marked[0].strip().startswith(ho.chosen)
    assert "chosen before the test runs were read" in render(r)


def test_forest_seeds_and_confused_pairs_of_the_test_runs(two_classifiers):
    (ho,) = two_classifiers.headline.held_out
    assert len(ho.forest_seeds) == FOREST_SEEDS_QUICK
    assert all(0.0 <= a <= 1.0 for a in ho.forest_seeds)
    lead = ho.scores[ho.lead].confusion
    rates = _by_hand(lead.counts, lead.classes)
    want = sorted(((p, r) for p, r in rates.items() if r >= 0.2), key=lambda x: -x[1])
    assert [((p.a, p.b), p.rate) for p in ho.confused_pairs] == \
        [(p, pytest.approx(r)) for p, r in want]
    ctrl = _by_hand(ho.control.confusion.counts, ho.control.confusion.classes)
    for p in ho.confused_pairs:
        assert ho.control.confusion.pair_rate(p.a, p.b) == pytest.approx(ctrl[(p.a, p.b)])
    text = "\n".join(summary_lines(two_classifiers))
    assert f"forest refitted with {FOREST_SEEDS_QUICK} seeds" in text
    if ho.confused_pairs:
        assert "told apart worst on the test runs" in text and "loss curves" in text


def test_forest_seed_accuracies_equal_scikit_learn_by_hand():
    train_ds, test_ds = _store(5, "r", 10, 1.0), _store(6, "s", 6, 1.0)
    tr = make_samples(train_ds, TrajectoryFeatures(["weights"], units=10, noise=0.5), "rule")
    te = make_samples(test_ds, TrajectoryFeatures(["weights"], units=10, noise=0.5), "rule")
    classes = np.unique(tr.y)
    est = RandomForestClassifier(n_estimators=15, max_features="sqrt")
    got = forest_seed_accuracies(est, tr, te, classes, [0, 1, 2, 3])
    want = []
    for seed in range(4):
        f = RandomForestClassifier(n_estimators=15, max_features="sqrt", random_state=seed)
        proba = f.fit(tr.X, tr.y).predict_proba(te.X)
        runs = np.unique(te.groups)
        right = [f.classes_[proba[te.groups == g].mean(axis=0).argmax()] ==
                 te.y[te.groups == g][0] for g in runs]
        want.append(float(np.mean(right)))
    assert got == pytest.approx(want)
    assert len(set(want)) > 1  # the seeds do differ here: the test can tell them apart


def _score(name: str, acc: float) -> results.TestScore:
    return results.TestScore(name, acc, 0.1, acc, 10, 0.33,
                     Confusion(["a", "b"], [[5, 5], [0, 10]]))


def test_lead_is_the_choice_not_the_best_on_the_test_runs():
    ho = HeldOut("test_store", "store", "x", 10, 10, ["a", "b"], [],
                 {"linear": _score("linear", 0.9), "forest": _score("forest", 0.6)},
                 chosen="forest")
    assert ho.best == "linear" and ho.lead == "forest"
    older = HeldOut("test_store", "store", "x", 10, 10, ["a", "b"], [],
                    {"linear": _score("linear", 0.9), "forest": _score("forest", 0.6)})
    assert older.lead == "linear"  # results.json written before the choice was recorded


def test_older_results_read_back_without_the_new_fields(two_classifiers):
    d = two_classifiers.to_dict()
    for h in d["headline"]["held_out"]:
        for k in ("chosen", "forest_seeds", "confused_pairs"):
            h.pop(k)
    back = IdentifyResult.from_dict(d)
    (ho,) = back.headline.held_out
    assert ho.chosen == "" and ho.forest_seeds == [] and ho.lead == ho.best
    render(back)  # the page still renders
    summary_lines(back)


def test_pair_rate_from_a_known_matrix():
    c = Confusion(["a", "b", "c"], [[6, 4, 0], [2, 8, 0], [0, 1, 9]])
    assert c.pair_rate("a", "b") == pytest.approx((0.4 + 0.2) / 2)
    assert c.pair_rate("b", "c") == pytest.approx((0.0 + 0.1) / 2)
    assert np.isnan(c.pair_rate("a", "z"))
