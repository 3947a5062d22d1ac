"""synaptic_similarity: the recorded units' similarity by the change of their incoming synapses
vs by the change of their outgoing synapses, checked against scipy (`pdist(..., "cosine")`,
`pearsonr`) on made-up synapses and on the weights of trained networks (dense and conv)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.distance import pdist
from scipy.stats import pearsonr

from lrsim.analysis import geometry
from lrsim.analysis.observer import unit_order


def _expected(incoming: np.ndarray, outgoing: np.ndarray) -> float:
    return pearsonr(1 - pdist(incoming, "cosine"), 1 - pdist(outgoing, "cosine"))[0]


def test_unit_similarity_and_synaptic_similarity_match_scipy():
    rng = np.random.default_rng(0)
    incoming = rng.normal(size=(2, 3, 9, 14))  # (K, Z, units, synapses)
    outgoing = rng.normal(size=(2, 3, 9, 5)) + incoming[..., :5]  # related, not equal
    sim = geometry.unit_similarity(incoming)
    assert sim.shape == (2, 3, 36)
    got = geometry.synaptic_similarity(incoming, outgoing)
    assert got.shape == (2, 3)
    for i in range(2):
        for j in range(3):
            np.testing.assert_allclose(sim[i, j], 1 - pdist(incoming[i, j], "cosine"),
                                       rtol=1e-12, atol=1e-12)
            assert got[i, j] == pytest.approx(_expected(incoming[i, j], outgoing[i, j]),
                                              rel=1e-10)
    # scale-free: synapses measured in other units give the same value
    np.testing.assert_allclose(geometry.synaptic_similarity(3.0 * incoming, outgoing / 7.0),
                               got, rtol=1e-10)


def test_synaptic_similarity_degenerate_input():
    rng = np.random.default_rng(1)
    # fewer than 3 units: one pair, no correlation
    assert np.isnan(geometry.synaptic_similarity(rng.normal(size=(2, 4)),
                                                 rng.normal(size=(2, 3))))
    # nothing changed: every similarity 0, a constant, no correlation
    assert np.isnan(geometry.synaptic_similarity(np.zeros((5, 4)), rng.normal(size=(5, 3))))
    with pytest.raises(ValueError, match="unit axis"):
        geometry.synaptic_similarity(rng.normal(size=(5, 4)), rng.normal(size=(6, 4)))


def _exp(model: dict, observables: list[str], *, units: list[int], noise: list[float],
         steps: int = 40, rule: str = "backprop"):
    from lrsim.config import parse

    return parse({"name": "synapses", "seed": 5, "device": "cpu", "dtype": "float64",
                  "task": {"name": "digits"}, "model": model, "rule": {"name": rule},
                  "train": {"steps": steps, "replicas": 2, "lr": 0.05, "batch_size": 16},
                  "observe": {"points": 3, "probe_size": 40, "units": units, "noise": noise,
                              "observables": observables}})


def _trained(exp):
    from lrsim.config import replicas
    from lrsim.models.rate.observer import RateObserver
    from lrsim.models.rate.train import build, train

    obs = RateObserver(exp.observe)
    result = train(exp, observers=[obs])
    _, init, _ = build(exp, replicas(exp), torch.device("cpu"), torch.float64)
    return result, init, obs.datasets(result)


def _recorded(seed: int, layer: int, n: int, u: int) -> np.ndarray:
    """The recorded units of a view: the first u of the run's order (all where u = 0 or u >= n)."""
    return np.arange(n) if u == 0 or u >= n else unit_order(seed, layer, n)[:u]


@pytest.mark.parametrize("rule", ["backprop", "feedback_alignment"])
def test_observer_matches_scipy_on_trained_dense_networks(rule):
    torch.set_num_threads(1)
    exp = _exp({"hidden": [12, 10], "activation": "tanh"}, ["synaptic_similarity"],
               units=[0, 5], noise=[0.0], rule=rule)
    result, init, datasets = _trained(exp)
    net = result.context.net
    for k, ds in enumerate(datasets):
        seed = result.replicas[k].seed
        da = ds["synaptic_similarity"]
        assert da.dims == ("time", "layer", "units", "noise")
        assert da.isel(time=0).isnull().all()  # no change yet at the first time point
        assert da.sel(layer="layer3").isnull().all()  # the readout has no layer above
        change = [(w[k] - w0[k]).double().numpy() for w, w0 in zip(net.weights, init.weights)]
        for l in range(2):
            for u in (0, 5):
                own = _recorded(seed, l, change[l].shape[0], u)
                above = _recorded(seed, l + 1, change[l + 1].shape[0], u)
                incoming = change[l][own]  # rows: every input of the recorded units
                outgoing = change[l + 1][np.ix_(above, own)].T  # onto recorded units above
                got = float(da.isel(time=-1).sel(layer=f"layer{l + 1}", units=u, noise=0.0))
                assert got == pytest.approx(_expected(incoming, outgoing), rel=1e-8, abs=1e-10)


def test_observer_on_conv_layers_uses_channels_and_their_kernels():
    torch.set_num_threads(1)
    exp = _exp({"conv": [4, 6], "pool": 2, "hidden": [8]}, ["synaptic_similarity"],
               units=[0], noise=[0.0])
    result, init, datasets = _trained(exp)
    net = result.context.net
    ds = datasets[0]
    c1 = (net.weights[0][0] - init.weights[0][0]).double().numpy().reshape(4, -1)
    c2 = (net.weights[1][0] - init.weights[1][0]).double().numpy().reshape(6, 4, 9)
    # channel i of layer 1: its kernel taps in, the taps of every layer-2 kernel reading it out
    outgoing = c2.transpose(1, 0, 2).reshape(4, -1)
    got = float(ds["synaptic_similarity"].isel(time=-1).sel(layer="layer1", units=0, noise=0.0))
    assert got == pytest.approx(_expected(c1, outgoing), rel=1e-8)
    # layer 2 feeds a dense layer through channels x positions: not a unit's synapses
    assert ds["synaptic_similarity"].sel(layer="layer2").isnull().all()


def test_recording_synapses_leaves_the_other_observables_unchanged():
    """The synapses' noise has its own generators: the weights and activity views of a run
    are the same whether synaptic_similarity is recorded or not."""
    torch.set_num_threads(1)
    base = ["weights", "activations", "activity_change", "dimensionality"]
    without = _trained(_exp({"hidden": [12, 10]}, base, units=[0, 5], noise=[0.0, 0.3]))[2]
    with_it = _trained(_exp({"hidden": [12, 10]}, [*base, "synaptic_similarity"],
                            units=[0, 5], noise=[0.0, 0.3]))[2]
    for a, b in zip(without, with_it):
        for o in base:
            np.testing.assert_array_equal(a[o].values, b[o].values)
        # measured with noise, the similarity still lies in [-1, 1] and is finite in hidden
        # layers after the first time point
        s = b["synaptic_similarity"].sel(layer=["layer1", "layer2"]).isel(time=slice(1, None))
        assert np.isfinite(s).all() and (np.abs(s) <= 1 + 1e-12).all()
