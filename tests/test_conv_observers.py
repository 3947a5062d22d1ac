"""Observers on conv layers: per-channel activity, kernels and angle(B, W) in the trajectory
format, checked against an independent computation on the trained network; MLP and conv runs
share one format (same variables and dims)."""

from __future__ import annotations

import numpy as np
import torch

from lrsim.config import parse
from lrsim.experiment import run_experiment
from lrsim.models.rate.observer import RateObserver
from lrsim.models.rate.train import train
from lrsim.models.tasks import tasks


def exp_dict(model: dict) -> dict:
    return {"dtype": "float64", "device": "cpu", "task": {"name": "digits"}, "model": model,
            "rule": {"name": "feedback_alignment"},
            "train": {"steps": 30, "replicas": 2, "batch_size": 16},
            "observe": {"points": 3, "probe_size": 20, "units": [0, 3],
                        "stats": ["raw_mean", "sq_mean"]}}


def test_conv_layers_are_observed_per_channel():
    exp = parse(exp_dict({"conv": [4, 6], "pool": 2, "hidden": [8]}))
    obs = RateObserver(exp.observe)
    result = train(exp, observers=[obs])
    ds = obs.datasets(result)[0]
    assert list(ds["layer"].values) == ["layer1", "layer2", "layer3", "layer4"]
    # independent: replica 0's final activity on the 20 probe images, per channel
    net = result.context.net
    x = tasks.create("digits").x_test[:20].double()
    h = x.reshape(20, 1, 8, 8)
    w, b = [t[0] for t in net.weights], [t[0] for t in net.biases]
    a1 = torch.relu(torch.nn.functional.max_pool2d(
        torch.nn.functional.conv2d(h, w[0].view(4, 1, 3, 3), b[0], 1, 1), 2))
    per_channel = a1.mean(dim=(2, 3))  # (20 images, 4 channels)
    got = ds["activations"].sel(layer="layer1", units=0, noise=0.0).isel(time=-1)
    np.testing.assert_allclose(got.sel(stat="raw_mean"), per_channel.mean().item(), rtol=1e-9)
    np.testing.assert_allclose(got.sel(stat="sq_mean"), (per_channel**2).mean().item(),
                               rtol=1e-9)
    # kernels: the rows of W_1 (one 3x3 kernel per channel), all channels
    kern = ds["weights"].sel(layer="layer1", units=0, noise=0.0, stat="sq_mean").isel(time=-1)
    np.testing.assert_allclose(kern, (w[0] ** 2).mean().item(), rtol=1e-9)
    # angle(B, W) of the conv kernels of layer 2: the run's own figure
    ang = ds["alignment"].sel(layer="layer2").isel(time=-1).item()
    assert np.isclose(ang, result.alignment_deg[0, 1]) and 0 < ang < 180
    # 3 recorded channels of 4 (layer 1) or 6 (layer 2): finite statistics
    assert np.isfinite(ds["activations"].sel(units=3, noise=0.0).isel(time=-1)).all()


def test_mlp_and_conv_runs_share_the_trajectory_format():
    mlp = run_experiment(parse(exp_dict({"hidden": [8, 8]}))).datasets[0]
    conv = run_experiment(parse(exp_dict({"conv": [4], "pool": 2, "hidden": [8]}))).datasets[0]
    assert set(mlp.data_vars) == set(conv.data_vars)
    for name in mlp.data_vars:
        assert mlp[name].dims == conv[name].dims, name
    assert (mlp.attrs["architecture"], conv.attrs["architecture"]) == ("8-8", "c4-8")


def test_identify_runs_on_a_store_mixing_mlp_and_conv_runs(tmp_path):
    """One store of MLP and conv networks (two rules each): the identification reads both,
    and holding out the conv architecture trains on the MLPs and tests on the conv nets."""
    from lrsim.analysis.identify import identify
    from lrsim.store import open_scan, write_run

    for rule in ("backprop", "feedback_alignment"):
        for model in ({"hidden": [8, 8]}, {"conv": [4], "pool": 2, "hidden": [8]}):
            d = exp_dict(model)
            d["rule"] = {"name": rule}
            d["train"]["replicas"] = 3
            d["seed"] = 11
            for ds in run_experiment(parse(d)).datasets:
                write_run(ds, tmp_path)
    store = open_scan(tmp_path).load()
    assert sorted(set(store["architecture"].values)) == ["8-8", "c4-8"]
    r = identify(store, holdout="architecture=c4-8", classifiers=["forest"], quick=True,
                 n_splits=3, n_permutations=2)
    held = [h for h in r.headline.held_out if h.name == "architecture=c4-8"]
    assert held and (held[0].n_train_runs, held[0].n_test_runs) == (6, 6)
    assert 0.0 <= held[0].scores["forest"].accuracy <= 1.0
