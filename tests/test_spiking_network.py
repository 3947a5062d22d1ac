"""The balanced E/I network against reference statistics of the asynchronous irregular state
(Brunel 2000; Renart et al. 2010), Brunel's regimes, Dale's law and determinism.

Targets: the fast tests use Brian2's numpy target (no compilation); the cython ones are marked
slow (first use compiles for ~1-5 min, cached in ~/.cython/brian_extensions)."""

from __future__ import annotations

import numpy as np
import pytest
from brian2 import ms, second

from lrsim.analysis.spike_stats import balance_index, spike_statistics
from lrsim.models.spiking.network import NetworkParams, build_balanced, configure

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


def test_brunel_strong_excitation_is_synchronous_regular():
    """g = 3 (excitation dominates) fires regularly at high rate, more synchronously than the
    AI state (Brunel 2000, Fig. 8A); g >= 5 with drive above threshold (the default g = 7,
    eta = 1.25) is asynchronous irregular. Fast synapses (0.5 ms) approximate Brunel's delta
    synapses. In this 1,000-neuron network the SR state is regular but only weakly synchronous
    (chi ~ 0.1 against ~ 0.05)."""
    sr = NetworkParams(g=3.0, eta=2.0, tau_e=0.5 * ms, tau_i=0.5 * ms)
    _, i, t = simulate(sr, seed=1, duration=0.4)
    st_sr = spike_statistics(i, t, sr.n_e, WARMUP, 0.4, count_window=0.05, sync_bin=0.001)
    ai = NetworkParams()
    _, i, t = simulate(ai, seed=1, duration=0.8)  # long enough for ISIs at ~25 Hz
    st_ai = spike_statistics(i, t, ai.n_e, WARMUP, 0.8, count_window=0.05, sync_bin=0.001)
    assert st_sr["rate"] > 100.0 and st_sr["rate"] > 3 * st_ai["rate"], (st_sr, st_ai)
    assert st_sr["cv_isi"] < 0.3 and st_ai["cv_isi"] > 0.7, (st_sr, st_ai)
    assert st_sr["synchrony"] > 1.3 * st_ai["synchrony"], (st_sr, st_ai)


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
