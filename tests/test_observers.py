"""The rate observer: its values against numpy / scipy on networks rebuilt in the test, the
experimentalist's views, divergence, and the trajectory format."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
import torch

from lrsim.analysis.observer import schedule_steps
from lrsim.analysis.stats import STAT_NAMES
from lrsim.config import ObserveSpec, Replica, parse
from lrsim.errors import ConfigError
from lrsim.experiment import run_experiment
from lrsim.models.rate import train
from lrsim.models.rate.observer import RateObserver

torch.set_num_threads(1)


def small(steps: int = 60, replicas: int = 2, **observe) -> dict:
    return {"name": "obs-test", "seed": 3, "device": "cpu",
            "task": {"name": "gaussian_mixture", "dim": 12, "classes": 3, "samples": 400},
            "model": {"hidden": [16, 8], "activation": "tanh"},
            "rule": {"name": "feedback_alignment"},
            "train": {"steps": steps, "replicas": replicas, "lr": 0.05, "batch_size": 16},
            "observe": {"points": 5, **observe}}


@pytest.fixture(scope="module")
def views_run():
    exp = parse(small(units=[0, 4], noise=[0.0, 2.0]))
    obs = RateObserver(exp.observe)
    result = train(exp, observers=[obs])
    return exp, result, obs.datasets(result)


def test_schedules():
    lin = schedule_steps(3000, ObserveSpec())
    assert len(lin) == 21 and lin[0] == 0 and lin[-1] == 3000 and lin[1] == 150
    log = schedule_steps(1000, ObserveSpec(schedule="log", points=5))
    assert log == [0, 1, 10, 100, 1000]
    assert schedule_steps(10, ObserveSpec(every=4)) == [0, 4, 8, 10]
    assert schedule_steps(3, ObserveSpec(points=21)) == [0, 1, 2, 3]


def test_format_and_attributes(views_run):
    exp, result, datasets = views_run
    assert len(datasets) == 2
    ds = datasets[0]
    for name in ("weights", "activations", "activity_change"):
        assert ds[name].dims == ("time", "layer", "stat", "units", "noise")
    assert ds["alignment"].dims == ("time", "layer")
    assert ds["loss"].dims == ds["test_accuracy"].dims == ("time",)
    assert list(ds["layer"].values) == ["layer1", "layer2", "layer3"]
    np.testing.assert_allclose(ds["depth"].values, [0.0, 0.5, 1.0])
    assert list(ds["stat"].values) == list(STAT_NAMES)
    assert list(ds["units"].values) == [0, 4] and list(ds["noise"].values) == [0.0, 2.0]
    assert list(ds["step"].values) == [0, 15, 30, 45, 60]
    a = ds.attrs
    for key in ("run_id", "rule", "rule_family", "optimizer", "lr", "weight_decay",
                "init_scale", "batch_size", "steps", "task", "activation", "architecture",
                "substrate", "seed", "replica", "lrsim_version", "status", "diverged_step",
                "config", "final_loss", "test_accuracy"):
        assert key in a, key
    assert all(type(v) in (str, int, float) for v in a.values())
    assert a["architecture"] == "16-8" and a["rule"] == "feedback_alignment"
    assert a["status"] == "ok" and a["diverged_step"] == -1
    assert a["seed"] == 3 and datasets[1].attrs["seed"] == 4
    assert a["run_id"] == result.replicas[0].run_id
    assert a["final_loss"] == pytest.approx(float(result.final_loss[0]))
    # no change before the first measurement; afterwards finite
    assert np.isnan(ds["activity_change"].isel(time=0)).all()
    assert np.isfinite(ds["activity_change"].isel(time=slice(1, None))).all()


def _initial_weights(seed: int, sizes: list[int], gain: float) -> list[np.ndarray]:
    """W_l ~ N(0, g^2 / n_in) from the replica's own generator, as documented in models.rate."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for l, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        g = gain if l < len(sizes) - 2 else 1.0
        w = torch.randn(n_out, n_in, generator=gen, dtype=torch.float64) * g / math.sqrt(n_in)
        out.append(w.to(torch.float32).double().numpy())
    return out


def test_weights_at_time_zero_equal_the_initial_weights(views_run):
    exp, _, datasets = views_run
    for k, ds in enumerate(datasets):
        ws = _initial_weights(exp.seed + k, [12, 16, 8, 3], 1.0)  # tanh gain 1
        for l, w in enumerate(ws):
            got = ds["weights"].sel(units=0, noise=0.0).isel(time=0, layer=l)
            flat = w.ravel()
            assert float(got.sel(stat="raw_var")) == pytest.approx(np.var(flat), rel=1e-6)
            assert float(got.sel(stat="abs_median")) == pytest.approx(
                np.median(np.abs(flat)), rel=1e-6)
            assert float(got.sel(stat="raw_kurtosis")) == pytest.approx(
                scipy.stats.kurtosis(flat), rel=1e-5, abs=1e-6)
            assert float(got.sel(stat="sq_q75")) == pytest.approx(
                np.quantile(flat ** 2, 0.75), rel=1e-6)


def _numpy_forward(net, x: np.ndarray, k: int) -> list[np.ndarray]:
    h, out = x, []
    for l, (w, b) in enumerate(zip(net.weights, net.biases)):
        z = h @ w[k].double().numpy().T + b[k].double().numpy()
        h = z if l == net.n_layers - 1 else np.tanh(z)
        out.append(h)
    return out


def test_full_view_equals_full_statistics_at_the_end(views_run):
    exp, result, datasets = views_run
    ctx = result.context
    probe = ctx.task.x_test[:exp.observe.probe_size].double().numpy()
    for k, ds in enumerate(datasets):
        acts = _numpy_forward(ctx.net, probe, k)
        last = ds["activations"].isel(time=-1)
        for l, h in enumerate(acts):
            flat = h.ravel()
            full = last.sel(units=0, noise=0.0).isel(layer=l)
            assert float(full.sel(stat="raw_mean")) == pytest.approx(flat.mean(), rel=1e-4)
            assert float(full.sel(stat="sq_skew")) == pytest.approx(
                scipy.stats.skew(flat ** 2), rel=1e-3)
            assert float(full.sel(stat="abs_q75")) == pytest.approx(
                np.quantile(np.abs(flat), 0.75), rel=1e-4)
            few = last.sel(units=4, noise=0.0).isel(layer=l)
            if h.shape[1] > 4:  # 4 of 16 or 8 units: not the full statistics
                assert not np.allclose(few.values, full.values, rtol=1e-3)
            else:  # the 3-unit output layer is recorded whole
                np.testing.assert_allclose(few.values, full.values)
        # the loss over time ends at the loss of the first 128 training samples
        x = ctx.task.x_train[:128].double().numpy()
        y = ctx.task.y_train[:128].double().numpy()
        z = _numpy_forward(ctx.net, x, k)[-1]
        logp = z - z.max(1, keepdims=True)
        logp -= np.log(np.exp(logp).sum(1, keepdims=True))
        assert float(ds["loss"][-1]) == pytest.approx(-(y * logp).sum(1).mean(), rel=1e-4)


def test_noise_raises_the_variance_by_the_expected_amount(views_run):
    """x + 2 rms(x) eps over n entries: raw_var (ddof 0) grows by 4 rms^2 (n - 1) / n in
    expectation, rms^2 = sq_mean of the clean view (samples of >= 128 entries: weights of
    layers 1-2, activations of all layers on the 64-input probe)."""
    exp, _, datasets = views_run
    probe = exp.observe.probe_size
    sizes = {"weights": [16 * 12, 8 * 16, 3 * 8], "activations": [probe * 16, probe * 8,
                                                                 probe * 3]}
    ratios = []
    for ds in datasets:
        for name, ns in sizes.items():
            for l, n in enumerate(ns):
                if n < 128:
                    continue
                clean = ds[name].sel(units=0, noise=0.0).isel(layer=l)
                noisy = ds[name].sel(units=0, noise=2.0).isel(layer=l)
                expected = 4.0 * clean.sel(stat="sq_mean") * (n - 1) / n
                gain = noisy.sel(stat="raw_var") - clean.sel(stat="raw_var")
                ratios.append((gain / expected).values.ravel())
    ratios = np.concatenate(ratios)
    assert len(ratios) == 2 * 5 * 5
    assert np.mean(ratios) == pytest.approx(1.0, abs=0.06)
    assert np.all(ratios > 0.4) and np.all(ratios < 1.6)


def test_alignment_is_the_angle_between_b_and_w_transpose(views_run):
    _, result, datasets = views_run
    ctx = result.context
    mats = ctx.rule.feedback_matrices(ctx.rule_state)
    for k, ds in enumerate(datasets):
        last = ds["alignment"].isel(time=-1).values
        for l, b in enumerate(mats):
            if b is None:
                assert np.isnan(last[l])
                continue
            w_t = ctx.net.weights[l][k].double().numpy().T.ravel()
            bb = b[k].double().numpy().ravel()
            cos = w_t @ bb / np.linalg.norm(w_t) / np.linalg.norm(bb)
            assert last[l] == pytest.approx(np.degrees(np.arccos(cos)), abs=1e-3)


def test_a_run_does_not_depend_on_its_batch_neighbours():
    exp = parse(small(steps=30, replicas=1, units=[4], noise=[0.3]))
    reps = [Replica(10, 0.05, 0.0, 1.0, "a"), Replica(11, 0.02, 0.0, 1.0, "b")]
    both = run_experiment(exp, reps).datasets
    alone = run_experiment(exp, reps[1:]).datasets
    for name in ("weights", "activations", "activity_change", "loss"):
        np.testing.assert_allclose(both[1][name].values, alone[0][name].values, rtol=1e-5,
                                   atol=1e-7)


def test_divergence_keeps_the_trajectory_up_to_that_step():
    spec = small(steps=200, replicas=1)
    spec["task"] = {"name": "teacher_student", "dim": 12, "samples": 400}  # mse: can blow up
    spec["model"] = {"hidden": [16, 8], "activation": "linear"}
    exp = parse(dict(spec, observe={"points": 11}))
    reps = [Replica(1, 0.01, 0.0, 1.0, "calm"), Replica(2, 0.15, 0.0, 1.0, "wild")]
    out = run_experiment(exp, reps)
    calm, wild = out.datasets
    assert calm.attrs["status"] == "ok" and wild.attrs["status"] == "diverged"
    d = wild.attrs["diverged_step"]
    assert 20 < d < 200
    before = wild.where(wild["step"] < d, drop=True)
    after = wild.where(wild["step"] >= d, drop=True)
    assert before.sizes["time"] >= 2 and after.sizes["time"] >= 1
    assert np.isfinite(before["weights"]).all() and np.isfinite(before["loss"]).all()
    assert np.isnan(after["weights"]).all() and np.isnan(after["loss"]).all()
    assert np.isfinite(calm["weights"]).all() and np.isfinite(calm["loss"]).all()


def test_units_larger_than_a_layer_is_refused_before_training():
    with pytest.raises(ConfigError, match="observe.units.*9.*hidden layer .layer2. of width 8"):
        parse(small(units=[9]))  # the 8-unit hidden layer: refused with the file


def test_observe_disabled_gives_final_values_only():
    exp = parse(dict(small(steps=20), observe={"enabled": False}))
    out = run_experiment(exp)
    assert len(out.datasets) == 2
    ds = out.datasets[0]
    assert list(ds["step"].values) == [20] and "weights" not in ds
    assert float(ds["loss"][0]) == pytest.approx(out.summaries[0]["final_loss"])
    assert run_experiment(exp, observe=False).datasets == []


def test_bad_observe_sections():
    for observe, match in (({"observables": ["spikes"]}, "unknown observable"),
                           ({"stats": ["raw_mode"]}, "unknown statistic"),
                           ({"units": [-1]}, "units"), ({"noise": [-0.1]}, "noise"),
                           ({"points": 1}, "points"), ({"schedule": "cubic"}, "schedule")):
        with pytest.raises(ConfigError, match=match):
            parse(dict(small(), observe=observe))
