"""Accuracy against the number of training networks (`lrsim.analysis.training_size`), against
known answers.

- Thinning keeps, in every (class, condition) cell, the number of networks worked out by hand
  (round(f n), at least one), every layer of a kept network, and nothing else; the thinned
  splits keep the base splitter's test sides.
- On planted samples the curve has the shape the design fixes: a signature one network per
  class already gives is learnt at every fraction (flat at 100%); a weak one buried in noise
  needs many networks (the curve rises). An `identify` run with `--test` carries both curves
  and the summary prints them.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier

from lrsim.analysis.crossval import cross_validate
from lrsim.analysis.features import Samples, synthetic_scan
from lrsim.analysis.identify import identify
from lrsim.analysis.results import Breakdown, Headline, SweepPoint
from lrsim.analysis.splits import RepeatedStratifiedGroupSplit
from lrsim.analysis.training_size import ThinnedSplits, cells, held_out_curve, thin
from lrsim.commands.identify import summary_lines

SIZES = {("a", "x"): 1, ("a", "y"): 4, ("b", "x"): 8, ("b", "y"): 3, ("c", "x"): 6,
         ("c", "y"): 2}


def _samples(sizes=SIZES, n_layers=2, signal=0.0, noise=1.0, seed=0, prefix="r"):
    """Samples of runs laid out by (class, task) cell, `n_layers` samples per run; the class
    shifts the first 3 of 20 features by `signal` (class index x signal)."""
    rng = np.random.default_rng(seed)
    X, y, groups, task = [], [], [], []
    for (c, t), n in sizes.items():
        for j in range(n):
            run = f"{prefix}{c}{t}{j}"
            for _ in range(n_layers):
                x = rng.normal(scale=noise, size=20)
                x[:3] += "abc".index(c) * signal
                X.append(x)
                y.append(c)
                groups.append(run)
                task.append(t)
    n = len(y)
    return Samples(np.array(X), np.array(y), np.array(groups), np.zeros(n), [], [], 1, 0,
                   {"task": np.array(task)})


def test_thinning_keeps_round_f_n_per_cell_and_whole_networks():
    s = _samples()
    cell = cells(s)
    for f in (0.125, 0.25, 0.5, 1.0):
        keep = thin(s.groups, cell, f, np.random.default_rng(1))
        kept_runs = set(s.groups[keep])
        for (c, t), n in SIZES.items():
            runs = {g for g in set(s.groups) if g.startswith(f"r{c}{t}")}
            assert len(runs & kept_runs) == max(1, round(f * n)), (f, c, t)
        # every layer of a kept network, nothing of another
        assert keep.sum() == 2 * len(kept_runs)
        assert all(keep[s.groups == g].all() for g in kept_runs)
    draws = {frozenset(s.groups[thin(s.groups, cell, 0.5, np.random.default_rng(d))])
             for d in range(8)}
    assert len(draws) > 1
    with pytest.raises(ValueError, match=r"in \(0, 1\]"):
        thin(s.groups, cell, 0.0, np.random.default_rng(0))


def test_thinned_splits_keep_the_test_sides_and_thin_the_training_sides():
    s = _samples({(c, t): 8 for c in "abc" for t in "xy"})
    base = RepeatedStratifiedGroupSplit(4, 0.25, 0)
    thinned = ThinnedSplits(base, cells(s), 0.5, random_state=3)
    pairs = zip(base.split(s.X, s.y, s.groups), thinned.split(s.X, s.y, s.groups))
    for (tr, te), (tr2, te2) in pairs:
        assert np.array_equal(te, te2)
        assert set(tr2) <= set(tr)
        for c in "abc":
            for t in "xy":
                n = len({g for g in s.groups[tr] if g.startswith(f"r{c}{t}")})
                n2 = len({g for g in s.groups[tr2] if g.startswith(f"r{c}{t}")})
                assert n2 == max(1, round(0.5 * n))
    assert len(thinned.n_train_runs) == 4
    assert all(n == len(set(s.groups[tr2])) for n, (tr2, _) in zip(
        thinned.n_train_runs, thinned.split(s.X, s.y, s.groups)))


def _forest():
    return RandomForestClassifier(100, random_state=0)


def test_a_signature_one_network_shows_is_learnt_at_every_fraction():
    sizes = {(c, t): 16 for c in "abc" for t in "xy"}
    train, test = _samples(sizes, signal=10.0), _samples(sizes, signal=10.0, seed=1, prefix="q")
    classes = np.unique(train.y)
    curve = held_out_curve(_forest(), train, test, classes, [0.0625, 0.5, 1.0], draws=2)
    assert [p.n_train_runs for p in curve] == [6, 48, 96]
    assert all(p.accuracy == 1.0 for p in curve)


def test_a_weak_signature_needs_many_networks():
    sizes = {(c, t): 32 for c in "abc" for t in "xy"}
    train = _samples(sizes, signal=1.0, noise=1.0, n_layers=1)
    test = _samples(sizes, signal=1.0, noise=1.0, n_layers=1, seed=1, prefix="q")
    classes = np.unique(train.y)
    curve = held_out_curve(_forest(), train, test, classes, [1 / 32, 1.0], draws=3)
    few, all_ = curve
    assert few.n_train_runs == 6 and all_.n_train_runs == 192
    assert all_.accuracy - few.accuracy > 0.1, (few.accuracy, all_.accuracy)
    # within-store: the thinned splits' curve rises the same way
    splitter = RepeatedStratifiedGroupSplit(3, 0.25, 0)
    low = cross_validate(train, _forest(), ThinnedSplits(splitter, cells(train), 1 / 24))
    high = cross_validate(train, _forest(), splitter)
    assert high.accuracy - low.accuracy > 0.1, (low.accuracy, high.accuracy)


def test_identify_reports_the_curve_within_the_store_and_held_out():
    train = synthetic_scan(12, n_time=5, layers_per_arch=(2,), seed=0)
    test = synthetic_scan(6, n_time=5, layers_per_arch=(2,), seed=1, run_prefix="t")
    r = identify(train, test_ds=test, classifiers=["forest"], quick=True, n_splits=3,
                 n_permutations=2, test_store="t")
    within = r.headline.breakdown.training_networks
    assert [p.value for p in within] == [0.25, 0.5, 1.0]
    # 12 runs per class x 3 classes, 75% to training: 27 networks; a quarter of each cell
    assert within[-1].n_train_runs == pytest.approx(27, abs=1)
    assert within[0].n_train_runs < within[1].n_train_runs < within[2].n_train_runs
    held = r.headline.held_out[0].breakdown.training_networks
    assert [p.n_train_runs for p in held] == [9, 18, 36]
    assert held[-1].accuracy > 0.9  # the planted channel: learnt from all 36 networks
    assert r.settings.network_draws == 2
    text = "\n".join(summary_lines(r))
    assert "training networks: 9 " in text and "36 " in text
    costs = r.headline.halving_costs()
    assert [c[0] for c in costs] == ["cross-validated", "held out --test t"]
    assert "halving the training networks costs (per layer): cross-validated" in text


def test_the_last_doubling_is_read_against_its_standard_error():
    def curve(half, full, sem):
        return Breakdown("forest", training_networks=[SweepPoint(0.5, half, sem, half, 50),
                                                      SweepPoint(1.0, full, sem, full, 100)])
    cost, se = curve(0.60, 0.70, 0.01).halving_cost()
    assert cost == pytest.approx(0.10) and se == pytest.approx(0.01 * 2 ** 0.5)
    assert Breakdown("forest").halving_cost() is None

    rising = Headline(None, None, curve(0.60, 0.70, 0.01)).halving_costs()
    noisy = Headline(None, None, curve(0.60, 0.70, 0.05)).halving_costs()   # 0.10 < 2 x 0.071
    flat = Headline(None, None, curve(0.69, 0.70, 0.0)).halving_costs()     # 0.01 < 0.02
    assert [c[3] for c in rising + noisy + flat] == [True, False, False]
