"""The distance of test runs from the training runs (`lrsim.analysis.novelty`) against an
independent computation: scipy's pairwise distances on features scaled with numpy's
percentiles, and planted conditions whose geometry is known (a copy of a training condition
lies nearer than every condition left out, a condition drawn like the training ones ranks
among them, one far away ranks above all)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from lrsim.analysis.features import Samples
from lrsim.analysis.novelty import nearest_distances, outside_shares, training_distance
from lrsim.analysis.results import TrainingDistance


def _samples(x: np.ndarray, tasks: list[str], names: list[str] | None = None) -> Samples:
    n = len(x)
    return Samples(x, np.array(["a", "b"] * (n // 2)), np.arange(n) // 2, np.zeros(n),
                   names or [f"f{i}" for i in range(x.shape[1])], [], 1, 0,
                   {"task": np.array(tasks, dtype=object)})


def _scaled_by_numpy(train: np.ndarray, x: np.ndarray) -> np.ndarray:
    q25, q50, q75 = (np.percentile(train, q, axis=0) for q in (25, 50, 75))
    iqr = np.where(q75 - q25 > 0, q75 - q25, 1.0)
    return (x - q50) / iqr


def _mean_k_smallest(d: np.ndarray, k: int) -> np.ndarray:
    return np.sort(d, axis=1)[:, :k].mean(axis=1)


def test_nearest_distances_equal_scipy_with_and_without_excluded_labels():
    rng = np.random.default_rng(0)
    ref, query = rng.normal(size=(700, 9)), rng.normal(size=(600, 9))  # > one chunk of rows
    want = _mean_k_smallest(cdist(query, ref), 5)
    assert np.allclose(nearest_distances(ref, query, 5), want, atol=1e-9)
    lab_r, lab_q = rng.integers(0, 4, 700), rng.integers(0, 4, 600)
    d = cdist(query, ref)
    d[lab_q[:, None] == lab_r[None, :]] = np.inf
    assert np.allclose(nearest_distances(ref, query, 3, exclude=(lab_r, lab_q)),
                       _mean_k_smallest(d, 3), atol=1e-9)
    # fewer rows of other labels than k: the mean over those left, NaN where none is
    few = nearest_distances(ref[:4], query[:2], 3, exclude=(np.array([0, 0, 0, 1]),
                                                            np.array([0, 1])))
    assert few[0] == pytest.approx(cdist(query[:1], ref[3:4])[0, 0])
    assert few[1] == pytest.approx(np.sort(cdist(query[1:2], ref[:3])[0]).mean())
    assert np.isnan(nearest_distances(ref[:2], query[:1], 2,
                                      exclude=(np.array([0, 0]), np.array([0])))[0])


@pytest.fixture(scope="module")
def planted():
    """Six training conditions (tasks), 40 samples each, centred at points drawn from
    N(0, 4 I) in 6 dimensions with unit spread around them."""
    rng = np.random.default_rng(1)
    centres = rng.normal(scale=2.0, size=(7, 6))
    x = np.concatenate([c + rng.normal(size=(40, 6)) for c in centres[:6]])
    tasks = [f"t{i}" for i in range(6) for _ in range(40)]
    new = centres[6] + rng.normal(size=(40, 6))
    return x, tasks, new


def test_test_distance_and_references_equal_an_independent_computation(planted):
    x, tasks, new = planted
    r = training_distance(_samples(x, tasks), _samples(new, ["u"] * 40), ["task"], k=5)
    ref, q = _scaled_by_numpy(x, x), _scaled_by_numpy(x, new)
    assert r.test == pytest.approx(np.median(_mean_k_smallest(cdist(q, ref), 5)))
    t = np.array(tasks)
    for name in sorted(set(tasks)):
        d = cdist(ref[t == name], ref[t != name])
        assert r.conditions[name] == pytest.approx(np.median(_mean_k_smallest(d, 5)))
    assert r.keys == ["task"] and r.neighbours == 5


def test_a_copy_is_near_a_new_condition_ranks_among_them_a_far_one_above_all(planted):
    x, tasks, new = planted
    train = _samples(x, tasks)
    copy = training_distance(train, _samples(x[:40], ["t0"] * 40), ["task"])
    assert copy.rank == 0.0 and copy.test < min(copy.conditions.values())
    like = training_distance(train, _samples(new, ["u"] * 40), ["task"])
    assert 0.0 < like.rank < 1.0
    far = training_distance(train, _samples(new + 50.0, ["u"] * 40), ["task"])
    assert far.rank == 1.0 and far.test > max(far.conditions.values())
    assert "farther than 100% of them" in far.text
    assert f"each of the 6 training conditions left out lies {min(far.conditions.values()):.1f}" \
        in far.text


def test_medians_read_from_evenly_spaced_queries_where_there_are_many(planted):
    x, tasks, new = planted
    r = training_distance(_samples(x, tasks), _samples(new, ["u"] * 40), ["task"], k=5,
                          test_queries=10, queries_per_condition=7)
    ref, q = _scaled_by_numpy(x, x), _scaled_by_numpy(x, new)
    rows = np.linspace(0, 39, 10).round().astype(int)
    assert r.test == pytest.approx(np.median(_mean_k_smallest(cdist(q[rows], ref), 5)))
    t = np.array(tasks)
    for name in sorted(set(tasks)):
        own = ref[t == name][np.linspace(0, 39, 7).round().astype(int)]
        d = cdist(own, ref[t != name])
        assert r.conditions[name] == pytest.approx(np.median(_mean_k_smallest(d, 5)))


def test_one_training_condition_has_no_reference_and_missing_values_count_as_the_median():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(20, 3))
    holes = x.copy()
    holes[:, 2] = np.nan  # a feature a test store lacks reads as the training median
    r = training_distance(_samples(x, ["t"] * 20), _samples(holes, ["u"] * 20), ["task"], k=2)
    q = _scaled_by_numpy(x, x)
    q[:, 2] = 0.0
    assert r.test == pytest.approx(np.median(_mean_k_smallest(cdist(q, _scaled_by_numpy(x, x)),
                                                              2)))
    assert r.conditions == {} and math.isnan(r.rank)
    assert r.text.startswith(f"the test runs lie {r.test:.1f} from the training runs")
    assert "training conditions" not in r.text
    assert TrainingDistance(1.0).conditions == {}


def test_the_observable_that_moved_gets_the_excess_computed_by_hand():
    rng = np.random.default_rng(3)
    names = ["a[t0]", "a[t1]", "b.mean[t0]", "b.sq_mean[t1]", "depth"]
    train = rng.normal(size=(300, 5))
    test = rng.normal(size=(200, 5))
    test[:, 2:4] += 6.0  # both columns of observable b move far outside the training range
    shares = outside_shares(train, test, names)
    excess = np.maximum(0, np.median(test ** 2, axis=0) - np.median(train ** 2, axis=0))
    want_b = excess[2:4].sum() / excess.sum()
    assert list(shares)[0] == "b" and shares["b"] == pytest.approx(want_b)
    assert shares["b"] > 0.95 and sum(shares.values()) == pytest.approx(1.0)
    assert outside_shares(train, train, names) == {}  # no excess anywhere
    r = training_distance(_samples(train, ["t"] * 300, names), _samples(test, ["u"] * 200),
                          ["task"])
    assert r.text.endswith(f"; most of it in b {r.observables['b']:.0%}")
