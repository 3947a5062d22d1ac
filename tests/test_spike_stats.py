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


def test_chi_ground_truths():
    """Golomb-Rinzel chi^2 = Var_t(population mean) / mean_n Var_t(neuron n) (Golomb 2007):
    1 for identical trains, 1/N in expectation for N independent ones, and (1/m - p) / (1 - p)
    for m equal, internally synchronous clusters firing in disjoint bins (p = spikes per bin
    per neuron; Var of a neuron's counts p (1 - p), of the population mean p / m - p^2)."""
    rng = np.random.default_rng(5)
    n, duration, w = 400, 20.0, 0.002
    i, t = poisson_trains(n, 20.0, duration, seed=4)
    chi = ss.synchrony_chi(ss.bin_counts(i, t, n, 0.0, duration, w))
    assert chi * np.sqrt(n) == pytest.approx(1.0, abs=0.1)
    # identical Poisson trains (not only clocks): chi = 1
    one = np.sort(rng.uniform(0, 2.0, 40))
    counts = ss.bin_counts(np.repeat(np.arange(5), 40), np.tile(one, 5), 5, 0.0, 2.0, 0.001)
    assert ss.synchrony_chi(counts) == pytest.approx(1.0)
    # m clusters, cluster c fires at k T + c T / m, every neuron once per period T
    period, w = 0.004, 0.0005
    for m in (2, 4):
        size = 50
        times = np.arange(0.0, 1.0, period) + 0.1 * w
        i = np.concatenate([np.repeat(np.arange(c * size, (c + 1) * size), len(times))
                            for c in range(m)])
        t = np.concatenate([np.tile(times + c * period / m, size) for c in range(m)])
        counts = ss.bin_counts(i, t, m * size, 0.0, 1.0, w)
        p = w / period
        assert counts.sum(axis=0).max() == size  # clusters fire in disjoint bins
        assert ss.synchrony_chi(counts) == pytest.approx(np.sqrt((1 / m - p) / (1 - p)))
    # the bin must be short against the period: one bin per period averages the rhythm out
    counts = ss.bin_counts(i, t, m * size, 0.0, 1.0, period)
    assert np.isnan(ss.synchrony_chi(counts))  # every neuron: one spike in every bin


def test_population_rate_is_a_histogram():
    i, t = poisson_trains(30, 40.0, 1.0, seed=6)
    a = ss.population_rate(t, 30, 0.1, 0.9, 0.001)
    h, _ = np.histogram(t, bins=0.1 + 0.001 * np.arange(801))
    np.testing.assert_allclose(a, h / (30 * 0.001))


def test_rate_spectrum_matches_scipy_welch_and_poisson_level():
    from scipy.signal import welch

    n, rate, duration, dt = 200, 20.0, 20.0, 2e-4
    i, t = poisson_trains(n, rate, duration, seed=7)
    f, s = ss.rate_spectrum(t, n, 0.0, duration, dt=dt, segment=0.1)
    a = ss.population_rate(t, n, 0.0, duration, dt)
    f_ref, s_ref = welch(a, fs=1 / dt, window="hann", nperseg=500, noverlap=0,
                         detrend="constant", scaling="density")
    np.testing.assert_allclose(f, f_ref)
    np.testing.assert_allclose(s, s_ref, rtol=1e-9, atol=1e-12)
    # independent Poisson neurons: white spectrum at 2 r / n (one-sided, Hz^2/Hz)
    assert np.mean(s[(f > 20) & (f < 2000)]) == pytest.approx(2 * rate / n, rel=0.03)
    pk = ss.spectral_peak(f, s)
    assert pk["contrast"] < 2  # no peak: the largest of ~1,000 bins, each averaged over 200
    white_fraction = 2 * 0.1 * pk["freq"] / (f[-1] - 5.0)
    assert pk["fraction"] == pytest.approx(white_fraction, rel=0.2)


def test_spectral_peak_of_a_modulated_population():
    """Inhomogeneous Poisson neurons with rate r (1 + a sin 2 pi f0 t), drawn by thinning
    (Lewis & Shedler 1979): a line at f0 of integrated power (r a)^2 / 2 over the white
    floor 2 r / n."""
    rng = np.random.default_rng(8)
    n, r, a, f0, duration = 100, 30.0, 0.5, 80.0, 20.0
    counts = rng.poisson(r * (1 + a) * duration, n)
    t = rng.uniform(0, duration, counts.sum())
    keep = rng.random(len(t)) < (1 + a * np.sin(2 * np.pi * f0 * t)) / (1 + a)
    f, s = ss.rate_spectrum(t[keep], n, 0.0, duration, dt=5e-4, segment=0.2)
    pk = ss.spectral_peak(f, s, rel_band=0.1)
    assert pk["freq"] == pytest.approx(f0)
    floor = 2 * r / n * (2 * 0.1 * f0)  # white power inside the band
    assert pk["power"] - floor == pytest.approx((r * a) ** 2 / 2, rel=0.1)
    # a Hann window spreads the line over an equivalent noise bandwidth of 1.5 bins
    df = f[1] - f[0]
    assert pk["contrast"] == pytest.approx((r * a) ** 2 / 2 / (1.5 * df) / (2 * r / n), rel=0.3)
