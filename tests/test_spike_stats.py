"""Spike-train statistics against numpy references, hand-computed values and the known values
of Poisson and regular processes."""

from __future__ import annotations

import numpy as np
import pytest

from lrsim.analysis import spike_stats as ss


def poisson_trains(n: int, rate: float, duration: float, seed: int = 0):
    """Independent homogeneous Poisson trains as Brian2-style (i, t) arrays."""
    rng = np.random.default_rng(seed)
    counts = rng.poisson(rate * duration, n)
    i = np.repeat(np.arange(n), counts)
    t = rng.uniform(0, duration, counts.sum())
    order = np.argsort(t)  # Brian2 gives spikes in time order
    return i[order], t[order]


def test_kernels_equal_numpy_references():
    i, t = poisson_trains(50, 15.0, 3.0, seed=1)
    np.testing.assert_array_equal(ss.bin_counts(i, t, 50, 0.0, 3.0, 0.05),
                                  ss.bin_counts_reference(i, t, 50, 0.0, 3.0, 0.05))
    np.testing.assert_allclose(ss.isi_cv(i, t, 50), ss.isi_cv_reference(i, t, 50),
                               rtol=1e-9, equal_nan=True)


def test_hand_computed_values():
    # neuron 0 spikes at 0.1, 0.3, 0.4 s: ISIs 0.2, 0.1 -> CV = 0.05 / 0.15
    i = np.array([0, 1, 0, 0])
    t = np.array([0.1, 0.2, 0.3, 0.4])
    cv = ss.isi_cv(i, t, 3)
    assert cv[0] == pytest.approx(1 / 3)
    assert np.isnan(cv[1]) and np.isnan(cv[2])  # fewer than 3 spikes
    counts = ss.bin_counts(i, t, 2, 0.0, 0.5, 0.25)
    np.testing.assert_array_equal(counts, [[1, 2], [1, 0]])
    # Fano factor of counts [1, 2]: var 0.25 / mean 1.5
    assert ss.fano_factor(counts)[0] == pytest.approx(0.25 / 1.5)


def test_poisson_process_statistics():
    i, t = poisson_trains(200, 20.0, 20.0, seed=2)
    st = ss.spike_statistics(i, t, 200, 0.0, 20.0, count_window=0.1, sync_bin=0.005)
    assert st["rate"] == pytest.approx(20.0, rel=0.02)
    assert st["cv_isi"] == pytest.approx(1.0, abs=0.03)
    assert st["fano"] == pytest.approx(1.0, abs=0.05)
    assert abs(st["correlation"]) < 0.01
    assert st["synchrony"] < 2.5 / np.sqrt(200)  # independent: chi ~ 1/sqrt(N)


def test_regular_and_identical_trains():
    times = np.arange(0.01, 2.0, 0.05)  # 20 Hz clock
    n = 10
    i = np.repeat(np.arange(n), len(times))
    t = np.tile(times, n)
    assert np.allclose(ss.isi_cv(i, t, n), 0.0, atol=1e-9)
    counts = ss.bin_counts(i, t, n, 0.0, 2.0, 0.01)
    assert ss.synchrony_chi(counts) == pytest.approx(1.0)  # identical trains: chi = 1
    rng = np.random.default_rng(0)
    noisy = counts + rng.poisson(0.01, counts.shape)
    assert ss.count_correlation(noisy) > 0.9


def test_count_correlation_matches_corrcoef():
    rng = np.random.default_rng(3)
    shared = rng.poisson(3, 400)
    counts = np.stack([shared + rng.poisson(2, 400) for _ in range(4)])
    c = np.corrcoef(counts)
    expected = c[np.triu_indices(4, 1)].mean()
    assert ss.count_correlation(counts) == pytest.approx(expected)
    assert 0.4 < expected < 0.8  # var shared / (var shared + private) = 3 / 5


def test_balance_index():
    tt = np.linspace(0, 1, 500)
    exc = np.stack([10 + np.sin(20 * tt), 10 + np.sin(20 * tt + 0.1)])
    inh = -0.9 * exc
    bal = ss.balance_index(exc, inh)
    assert bal["ei_balance"] == pytest.approx(0.1)
    assert bal["ei_correlation"] == pytest.approx(1.0)
    rng = np.random.default_rng(0)
    unrelated = ss.balance_index(exc, -10 - rng.standard_normal(exc.shape))
    assert abs(unrelated["ei_correlation"]) < 0.2
