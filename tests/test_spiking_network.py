"""The balanced E/I network against reference statistics of the asynchronous irregular state
(Brunel 2000; Renart et al. 2010), Brunel's synchronous regular and asynchronous irregular
regimes (Fig. 8), Dale's law and determinism.

Targets: the fast tests use Brian2's numpy target (no compilation); the cython ones are marked
slow (first use compiles for ~1-5 min, cached in ~/.cython/brian_extensions)."""

from __future__ import annotations

import numpy as np
import pytest
from brian2 import Hz, ms, mV, second

from lrsim.analysis.spike_stats import balance_index, rate_spectrum, spectral_peak, spike_statistics
from lrsim.models.spiking.network import NetworkParams, brunel_params, build_balanced, configure

WARMUP = 0.2  # s discarded (initial transient)


def simulate(p: NetworkParams, seed: int, duration: float, target: str = "numpy",
             currents: int = 0):
    configure(target, dt=0.1 * ms)
    bn = build_balanced(p, seed, record_currents=currents)
    bn.network.run(duration * second)
    i, t = np.asarray(bn.spikes_e.i), np.asarray(bn.spikes_e.t / second)
    return bn, i, t


def test_default_network_is_asynchronous_irregular_and_balanced():
    p = NetworkParams()
    bn, i, t = simulate(p, seed=3, duration=1.2, currents=50)
    st = spike_statistics(i, t, p.n_e, WARMUP, 1.2, count_window=0.1, sync_bin=0.002)
    assert 1.0 <= st["rate"] <= 30.0, st
    assert 0.7 <= st["cv_isi"] <= 1.3, st
    assert 0.5 <= st["fano"] <= 1.5, st
    assert st["correlation"] < 0.05, st
    assert st["synchrony"] < 0.3, st
    keep = np.asarray(bn.currents.t / second) >= WARMUP
    bal = balance_index(np.asarray(bn.currents.I_e)[:, keep], np.asarray(bn.currents.I_i)[:, keep])
    assert bal["ei_balance"] < 0.3, bal
    assert bal["ei_correlation"] > 0.5, bal


def brunel_state(g: float, eta: float, seed: int, duration: float, warmup: float,
                 target: str = "numpy", n_e: int = 2000, sync_bin: float = 5e-4):
    """Simulate `brunel_params(g, eta)`; spike statistics of the E population (chi on
    `sync_bin` bins) and the largest peak of its population-rate spectrum."""
    p = brunel_params(g, eta, n_e=n_e)
    _, i, t = simulate(p, seed, duration, target)
    st = spike_statistics(i, t, p.n_e, warmup, duration, count_window=0.05, sync_bin=sync_bin)
    f, s = rate_spectrum(t, p.n_e, warmup, duration, dt=1e-4, segment=0.05)
    pk = spectral_peak(f, s, f_min=5.0, f_max=2000.0)  # far below 1 / (2 dt) = 5 kHz
    pk["depth"] = float(np.sqrt(2 * pk["power"]) / st["rate"])  # amplitude / mean rate
    keep = t >= warmup
    isi = np.concatenate([np.diff(t[keep][i[keep] == n]) for n in range(0, p.n_e, 10)])
    return st, pk, float(np.median(isi))


def two_cluster_chi(rate: float, width: float) -> float:
    """chi of two equal clusters, each perfectly synchronous, firing in disjoint bins of
    `width` s: chi^2 = (1/2 - p) / (1 - p) with p = rate * width (tests/test_spike_stats.py
    checks this ground truth)."""
    p = rate * width
    return float(np.sqrt((0.5 - p) / (1 - p)))


def poisson_cv_estimate(rate: float, window: float, n: int = 2000, seed: int = 0) -> float:
    """The mean ISI CV that `spike_statistics` reports for independent Poisson trains of
    `rate` over `window` s (below 1 for short windows: long intervals do not fit)."""
    rng = np.random.default_rng(seed)
    counts = rng.poisson(rate * window, n)
    i = np.repeat(np.arange(n), counts)
    t = rng.uniform(0, window, counts.sum())
    return spike_statistics(i, t, n, 0.0, window)["cv_isi"]


def test_brunel_synchronous_regular_and_asynchronous_irregular():
    """Brunel (2000) Fig. 8 in one model family (`brunel_params`: fixed in-degree C_E = 500,
    J C_E = 100 mV, D = 1.5 ms, tau_rp = 2 ms, 0.1 ms synapses), only g differs.

    SR (Fig. 8A, g = 3, eta = 2): regular firing at high rate, strongly synchronous. Since
    D < tau_rp the network fires in two alternating clusters: the population rate oscillates at
    twice the single-neuron rate (peak at ~600 Hz, fundamental amplitude ~2x the mean rate,
    measured), every neuron fires every other volley (median ISI = 2 / f_peak), and chi
    (0.5 ms bins) ~0.6, close to the ~0.64 of two perfect clusters. AI (g = 7, eta = 2): low
    rate (~18 Hz), irregular (CV ~0.7, ~0.85 of what the same estimator gives for Poisson
    trains over the same 0.4 s), chi ~0.1. Measured (numpy target, 2 CPU cores shared with
    other jobs): ~10 s."""
    sr, pk_sr, isi_sr = brunel_state(3.0, 2.0, seed=1, duration=0.3, warmup=0.1)
    ai, pk_ai, _ = brunel_state(7.0, 2.0, seed=1, duration=0.5, warmup=0.1)
    assert sr["rate"] > 100.0 and sr["cv_isi"] < 0.1, sr
    assert sr["synchrony"] > 0.5, sr
    assert sr["synchrony"] > 0.8 * two_cluster_chi(sr["rate"], 5e-4), sr
    assert 400.0 <= pk_sr["freq"] <= 800.0, pk_sr  # ~1 / (D + rise to threshold)
    assert pk_sr["freq"] == pytest.approx(2 * sr["rate"], rel=0.1), (pk_sr, sr)
    assert isi_sr * pk_sr["freq"] == pytest.approx(2.0, rel=0.1), (isi_sr, pk_sr)
    assert pk_sr["depth"] > 1.0 and pk_sr["contrast"] > 50, pk_sr
    assert 5.0 <= ai["rate"] <= 40.0, ai
    assert ai["synchrony"] < 0.2 and ai["synchrony"] < sr["synchrony"] / 3, (ai, sr)
    assert ai["cv_isi"] > 0.75 * poisson_cv_estimate(ai["rate"], 0.4), ai
    assert pk_ai["depth"] < 0.5 * pk_sr["depth"], (pk_ai, pk_sr)


@pytest.mark.slow
def test_brunel_fig8_with_brunels_j_and_c_e():
    """Brunel's own J = 0.1 mV with C_E = 1000 (N_E = 4000, epsilon = 0.25; cython). Measured:
    SR (g = 3, eta = 2): 301 Hz, CV 0.013, chi 0.59 (two clusters: ~0.64), peak at 600 Hz of
    amplitude 1.9x the mean rate; g = 6, eta = 2: 23 Hz, CV 0.53, chi 0.11; g = 5, eta = 2
    (Fig. 8C's AI point) is more regular here: 38 Hz, CV 0.39, chi 0.12, a 140 Hz rhythm."""
    sr, pk_sr, isi_sr = brunel_state(3.0, 2.0, seed=2, duration=0.3, warmup=0.1,
                                     target="cython", n_e=4000)
    ai, pk_ai, _ = brunel_state(6.0, 2.0, seed=2, duration=0.8, warmup=0.2,
                                target="cython", n_e=4000)
    assert sr["rate"] > 100.0 and sr["cv_isi"] < 0.05, sr
    assert sr["synchrony"] > 0.85 * two_cluster_chi(sr["rate"], 5e-4), sr
    assert pk_sr["freq"] == pytest.approx(2 * sr["rate"], rel=0.1), (pk_sr, sr)
    assert isi_sr * pk_sr["freq"] == pytest.approx(2.0, rel=0.1), (isi_sr, pk_sr)
    assert pk_sr["depth"] > 1.0, pk_sr
    assert ai["synchrony"] < 0.2 and 0.4 < ai["cv_isi"] < 1.2, ai


def test_brunel_params_family():
    p = brunel_params(3.0, 2.0)
    assert p.c_e == 500 and p.n_i == 500 and p.n_external == 500
    assert float(p.j * p.c_e / mV) == pytest.approx(100.0)  # Brunel: 0.1 mV x 1000
    assert float(p.nu_thr / Hz) == pytest.approx(10.0)  # theta / (J C_E tau) = 20 / 2 Hz
    bn = build_balanced(brunel_params(3.0, 2.0, n_e=400), 0, record_spikes=0)
    post_e = np.asarray(bn.synapses["e"].j[:])
    post_i = np.asarray(bn.synapses["i"].j[:])
    n = 500
    np.testing.assert_array_equal(np.bincount(post_e, minlength=n), 100)  # C_E each
    np.testing.assert_array_equal(np.bincount(post_i, minlength=n), 25)   # C_I = C_E / 4
    pre_e = np.asarray(bn.synapses["e"].i[:])
    pre_i = np.asarray(bn.synapses["i"].i[:]) + 400
    pairs = pre_e.astype(np.int64) * n + post_e
    assert len(np.unique(pairs)) == len(pairs)
    assert not np.any(pre_e == post_e) and not np.any(pre_i == post_i)  # no autapses
    # sources drawn uniformly: an E neuron's out-degree is a sum of Bernoulli draws, by 399
    # E targets with p = 100/399 and 100 I targets with p = 100/400
    out = np.bincount(pre_e, minlength=400)
    p_e, p_i = 100 / 399, 100 / 400
    assert out.mean() == pytest.approx(400 * p_e + 100 * p_i - p_e)  # self excluded
    assert out.var() == pytest.approx(399 * p_e * (1 - p_e) + 100 * p_i * (1 - p_i), rel=0.2)
    with pytest.raises(ValueError, match="connectivity"):
        NetworkParams(connectivity="ring")


def test_dale_law_by_construction():
    bn = build_balanced(NetworkParams(n_e=80, n_i=20), 0)
    assert set(bn.synapses) == {"e", "i"}
    for name, syn in bn.synapses.items():
        jump = syn.namespace["jump"]
        assert (jump > 0) if name == "e" else (jump < 0), name
        assert ("I_e" if name == "e" else "I_i") in syn.pre.code
        sources = np.asarray(syn.i[:]) + (0 if name == "e" else 80)
        assert np.all((sources < 80) if name == "e" else (sources >= 80))
        assert not np.any(sources == np.asarray(syn.j[:]))  # no autapses


def test_same_seed_same_spikes_numpy():
    p = NetworkParams(n_e=400, n_i=100)
    _, i1, t1 = simulate(p, seed=5, duration=0.2)
    _, i2, t2 = simulate(p, seed=5, duration=0.2)
    _, i3, t3 = simulate(p, seed=6, duration=0.2)
    assert len(i1) > 100
    np.testing.assert_array_equal(i1, i2)
    np.testing.assert_array_equal(t1, t2)
    assert len(i1) != len(i3) or not np.array_equal(t1, t3)


@pytest.mark.slow
def test_same_seed_same_spikes_cython_and_numpy():
    p = NetworkParams(n_e=400, n_i=100)
    _, i1, t1 = simulate(p, seed=5, duration=0.3, target="cython")
    _, i2, t2 = simulate(p, seed=5, duration=0.3, target="cython")
    _, i3, t3 = simulate(p, seed=5, duration=0.3, target="numpy")
    np.testing.assert_array_equal(i1, i2)
    np.testing.assert_array_equal(t1, t2)
    np.testing.assert_array_equal(i1, i3)  # same random streams in both targets
    np.testing.assert_array_equal(t1, t3)


@pytest.mark.slow
def test_ai_statistics_hold_for_several_seeds_longer():
    p = NetworkParams()
    for seed in (11, 12):
        bn, i, t = simulate(p, seed=seed, duration=3.0, target="cython", currents=50)
        st = spike_statistics(i, t, p.n_e, WARMUP, 3.0)
        assert 1.0 <= st["rate"] <= 30.0 and 0.7 <= st["cv_isi"] <= 1.3, st
        assert 0.5 <= st["fano"] <= 1.5 and st["correlation"] < 0.05, st
