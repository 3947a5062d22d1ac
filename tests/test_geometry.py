"""Population-geometry statistics against independent numpy / scipy computations on the same
samples."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import pdist
from scipy.stats import pearsonr

from lrsim.analysis import geometry


def _activity(rng: np.random.Generator, p: int, n: int, rank: int | None = None) -> np.ndarray:
    if rank is None:
        return rng.normal(size=(p, n)) * rng.uniform(0.2, 3.0, size=n)
    return rng.normal(size=(p, rank)) @ rng.normal(size=(rank, n))


@pytest.mark.parametrize("p,n", [(50, 8), (8, 50), (30, 30)])
def test_participation_ratio_matches_covariance_eigenvalues(p, n):
    rng = np.random.default_rng(p * 100 + n)
    x = _activity(rng, p, n)
    lam = np.linalg.eigvalsh(np.cov(x, rowvar=False))
    expected = lam.sum() ** 2 / (lam ** 2).sum()
    assert geometry.participation_ratio(x) == pytest.approx(expected, rel=1e-10)
    assert geometry.dimensionality(x) == pytest.approx(expected / n, rel=1e-10)


def test_participation_ratio_known_cases_and_batching():
    rng = np.random.default_rng(1)
    # rank-3 activity: PR <= 3; isotropic white activity of many stimuli: PR close to n
    low = _activity(rng, 200, 40, rank=3)
    assert geometry.participation_ratio(low) <= 3 + 1e-9
    white = rng.normal(size=(20000, 10))
    assert geometry.participation_ratio(white) == pytest.approx(10, rel=0.01)
    batch = np.stack([_activity(rng, 30, 12) for _ in range(6)]).reshape(2, 3, 30, 12)
    got = geometry.participation_ratio(batch)
    assert got.shape == (2, 3)
    for i in range(2):
        for j in range(3):
            lam = np.linalg.eigvalsh(np.cov(batch[i, j], rowvar=False))
            assert got[i, j] == pytest.approx(lam.sum() ** 2 / (lam ** 2).sum(), rel=1e-10)
    # no variance over the stimuli: no dimensionality
    assert np.isnan(geometry.participation_ratio(np.ones((10, 4))))


def test_rdm_matches_scipy_pdist():
    rng = np.random.default_rng(2)
    x = _activity(rng, 17, 9) + 5.0
    np.testing.assert_allclose(geometry.rdm(x), pdist(x, "euclidean"), rtol=1e-9, atol=1e-9)
    batch = rng.normal(size=(3, 11, 4))
    got = geometry.rdm(batch)
    for i in range(3):
        np.testing.assert_allclose(got[i], pdist(batch[i]), rtol=1e-9, atol=1e-9)


def test_rdm_similarity_matches_scipy_pearsonr():
    rng = np.random.default_rng(3)
    x = _activity(rng, 25, 10)
    y = np.tanh(x @ rng.normal(size=(10, 7))) + 0.3 * rng.normal(size=(25, 7))
    expected = pearsonr(pdist(x), pdist(y))[0]
    assert geometry.representational_similarity(x, y) == pytest.approx(expected, rel=1e-10)
    assert geometry.representational_similarity(x, 3.0 * x + 1.0) == pytest.approx(1.0)
    # a constant RDM (all stimuli equidistant) has no correlation
    assert np.isnan(geometry.rdm_similarity(np.ones(6), np.arange(6.0)))


def test_coupling_matches_corrcoef():
    rng = np.random.default_rng(4)
    pre = _activity(rng, 40, 6)
    post = np.maximum(pre @ rng.normal(size=(6, 5)), 0) + 0.1 * rng.normal(size=(40, 5))
    r = np.corrcoef(pre, post, rowvar=False)[:6, 6:]
    assert geometry.coupling(pre, post) == pytest.approx(np.mean(r ** 2), rel=1e-10)
    batch_pre = np.stack([pre, pre[::-1]])
    batch_post = np.stack([post, post])
    got = geometry.coupling(batch_pre, batch_post)
    r2 = np.corrcoef(pre[::-1], post, rowvar=False)[:6, 6:]
    np.testing.assert_allclose(got, [np.mean(r ** 2), np.mean(r2 ** 2)], rtol=1e-10)


def test_coupling_leaves_out_silent_units():
    rng = np.random.default_rng(5)
    pre = rng.normal(size=(30, 4))
    post = rng.normal(size=(30, 3))
    post[:, 1] = 0.0  # a silent ReLU
    r = np.corrcoef(pre, post[:, [0, 2]], rowvar=False)[:4, 4:]
    assert geometry.coupling(pre, post) == pytest.approx(np.mean(r ** 2), rel=1e-10)
    assert np.isnan(geometry.coupling(pre, np.zeros((30, 3))))
    with pytest.raises(ValueError, match="stimulus axis"):
        geometry.coupling(pre, post[:10])


# -- the rate observer's geometry observables against numpy / scipy on rebuilt networks ------

def _change_alignment_numpy(before: np.ndarray, after: np.ndarray) -> float:
    """The cross-validated cosine written out with np.cov, one half of the stimuli at a time."""
    def off(x: np.ndarray) -> np.ndarray:
        c = np.cov(x, rowvar=False, bias=True)
        return c[~np.eye(c.shape[0], dtype=bool)]

    change = after - before
    a1, a2 = off(before[0::2]), off(before[1::2])
    d1, d2 = off(change[0::2]), off(change[1::2])
    if a1 @ a2 <= 0 or d1 @ d2 <= 0:  # no covariance between units that both halves share
        return float("nan")
    return float((a1 @ d2 + a2 @ d1) / 2 / np.sqrt((a1 @ a2) * (d1 @ d2)))


@pytest.mark.parametrize("p,n", [(60, 6), (7, 40), (25, 25)])
def test_change_alignment_matches_numpy_cov(p, n):
    rng = np.random.default_rng(p * 100 + n)
    before = _activity(rng, p, n, rank=3)
    after = before + 0.5 * before * rng.uniform(0.5, 1.5, n) + 0.3 * _activity(rng, p, n)
    assert float(geometry.change_alignment(before, after)) == pytest.approx(
        _change_alignment_numpy(before, after), rel=1e-9)
    # batched over leading axes like every other statistic
    pairs = []
    for _ in range(6):
        x = _activity(rng, p, n, rank=3)
        pairs.append((x, x + 0.5 * x + _activity(rng, p, n, rank=3)))
    batch = geometry.change_alignment(np.stack([b for b, _ in pairs]).reshape(2, 3, p, n),
                                      np.stack([a for _, a in pairs]).reshape(2, 3, p, n))
    np.testing.assert_allclose(batch.ravel(), [_change_alignment_numpy(b, a) for b, a in pairs],
                               rtol=1e-9)


def test_change_alignment_known_cases_and_noise():
    rng = np.random.default_rng(11)
    p, n = 256, 30
    before = rng.normal(size=(p, 4)) @ rng.normal(size=(4, n))  # correlated units
    # growing along the population's own correlations: C_d = 0.25 C_a, cosine 1
    assert float(geometry.change_alignment(before, 1.5 * before)) == pytest.approx(1.0)
    mix = np.diag(rng.uniform(0.5, 1.5, n))
    small = 0.05 * before @ mix  # a change along the correlations, small against the noise
    unrelated = [0.05 * rng.normal(size=(p, 4)) @ rng.normal(size=(4, n)) for _ in range(40)]
    clean = float(geometry.change_alignment(before, before + small))
    # measurement noise drawn independently per unit, stimulus and recording, as the observer
    # draws it, twice the size of the change
    sd = 2 * np.sqrt((small ** 2).mean())
    aligned, aligned_whole, free = [], [], []
    for ch in unrelated:
        b = before + sd * rng.normal(size=(p, n))
        a = before + small + sd * rng.normal(size=(p, n))
        aligned.append(float(geometry.change_alignment(b, a)))
        ca, cd = np.cov(b, rowvar=False), np.cov(a - b, rowvar=False)
        off = ~np.eye(n, dtype=bool)
        aligned_whole.append(float(ca[off] @ cd[off] / np.linalg.norm(ca[off])
                                   / np.linalg.norm(cd[off])))
        a = before + ch + sd * rng.normal(size=(p, n))
        free.append(float(geometry.change_alignment(b, a)))
    # cross-validated, the noise leaves the value where it was without noise; the same cosine
    # on all the stimuli at once (no halves) falls towards 0 with it
    assert np.mean(aligned) == pytest.approx(clean, abs=0.1)
    assert np.mean(aligned_whole) < clean - 0.3
    # a change unrelated to the population stays at 0 on average
    assert abs(np.mean(free)) < 0.05
    # too few stimuli or units, or no covariance between units: NaN, not an error
    assert np.isnan(geometry.change_alignment(before[:3], before[:3] * 2))
    assert np.isnan(geometry.change_alignment(before[:, :1], before[:, :1] * 2))
    assert np.isnan(geometry.change_alignment(np.ones((6, 3)), np.ones((6, 3))))
    with pytest.raises(ValueError, match="same shape"):
        geometry.change_alignment(before, before[:, :5])

GEOMETRY = ["dimensionality", "rsa_initial", "rsa_previous", "rsa_layer", "rsa_target",
            "coupling", "change_alignment"]


def _experiment(steps: int, **observe):
    from lrsim.config import parse

    return parse({"name": "geom-test", "seed": 3, "device": "cpu",
                  "task": {"name": "gaussian_mixture", "dim": 12, "classes": 3, "samples": 400},
                  "model": {"hidden": [16, 8], "activation": "tanh"},
                  "rule": {"name": "feedback_alignment"},
                  "train": {"steps": steps, "replicas": 2, "lr": 0.05, "batch_size": 16},
                  "observe": {"points": 5, "probe_size": 80, **observe}})


def _trained(steps: int, **observe):
    from lrsim.models.rate.observer import RateObserver
    from lrsim.models.rate.train import train

    exp = _experiment(steps, **observe)
    obs = RateObserver(exp.observe)
    result = train(exp, observers=[obs])
    return exp, result, obs.datasets(result)


def _layers(net, x: np.ndarray, k: int) -> list[np.ndarray]:
    h, out = x, []
    for l, (w, b) in enumerate(zip(net.weights, net.biases)):
        z = h @ w[k].double().numpy().T + b[k].double().numpy()
        h = z if l == net.n_layers - 1 else np.tanh(z)
        out.append(h)
    return out


@pytest.fixture(scope="module")
def geometry_run():
    import torch

    torch.set_num_threads(1)
    exp, result, datasets = _trained(60, observables=["weights", *GEOMETRY], units=[0, 4],
                                     noise=[0.0, 1.0])
    # the same replicas trained to the previous time point (step 45) and not at all: same
    # seeds, same batches, so the same networks as at those time points
    _, before, _ = _trained(45, observables=["weights"])
    from lrsim.config import replicas
    from lrsim.models.rate.train import build

    _, init, _ = build(exp, replicas(exp), torch.device("cpu"), torch.float32)
    return exp, result, datasets, before, init


def test_observer_geometry_matches_numpy_on_rebuilt_networks(geometry_run):
    from lrsim.analysis.observer import RSA_PROBES

    exp, result, datasets, before, init = geometry_run
    probe = result.context.task.x_test[:exp.observe.probe_size].double().numpy()
    # what the task asks for on the probe inputs: one-hot classes (gaussian_mixture)
    targets = result.context.task.y_test[:exp.observe.probe_size].double().numpy()
    assert set(np.unique(targets)) == {0.0, 1.0}
    n = RSA_PROBES
    for k, ds in enumerate(datasets):
        assert ds["dimensionality"].dims == ("time", "layer", "units", "noise")
        end = _layers(result.context.net, probe, k)
        prev = _layers(before.context.net, probe, k)
        first = _layers(init, probe, k)
        last = ds.isel(time=-1).sel(units=0, noise=0.0)
        for l, h in enumerate(end):
            lam = np.linalg.eigvalsh(np.cov(h, rowvar=False))
            assert float(last["dimensionality"][l]) == pytest.approx(
                lam.sum() ** 2 / (lam ** 2).sum() / h.shape[1], rel=1e-4)
            below = probe if l == 0 else end[l - 1]
            r = np.corrcoef(below, h, rowvar=False)[:below.shape[1], below.shape[1]:]
            assert float(last["coupling"][l]) == pytest.approx(np.nanmean(r ** 2), rel=1e-4)
            assert float(last["rsa_layer"][l]) == pytest.approx(
                pearsonr(pdist(h[:n]), pdist(below[:n]))[0], rel=1e-4)
            assert float(last["rsa_previous"][l]) == pytest.approx(
                pearsonr(pdist(h[:n]), pdist(prev[l][:n]))[0], rel=1e-4)
            assert float(last["rsa_initial"][l]) == pytest.approx(
                pearsonr(pdist(h[:n]), pdist(first[l][:n]))[0], rel=1e-4)
            assert float(last["rsa_target"][l]) == pytest.approx(
                pearsonr(pdist(h[:n]), pdist(targets[:n]))[0], rel=1e-4)
            assert float(last["change_alignment"][l]) == pytest.approx(
                _change_alignment_numpy(first[l], h), rel=1e-3, abs=1e-6, nan_ok=True)
        # no earlier measurement to compare with at the first time point
        assert ds["rsa_initial"].isel(time=0).isnull().all()
        assert ds["rsa_previous"].isel(time=0).isnull().all()
        assert ds["change_alignment"].isel(time=0).isnull().all()
        assert ds["change_alignment"].isel(time=-1).sel(units=0, noise=0.0).notnull().all()


def test_observer_geometry_views(geometry_run):
    _, _, datasets, _, _ = geometry_run
    for ds in datasets:
        hidden = ds["dimensionality"].sel(layer=["layer1", "layer2"]).isel(time=-1)
        # 4 of 16 / 8 units is another recording than all of them
        assert not np.allclose(hidden.sel(units=4, noise=0.0), hidden.sel(units=0, noise=0.0))
        # isotropic measurement noise spreads the variance over more dimensions
        assert (hidden.sel(noise=1.0) > hidden.sel(noise=0.0)).all()
        # and makes two recordings of the same stimuli less alike
        rsa = ds["rsa_previous"].isel(time=slice(1, None))
        assert (rsa.sel(noise=1.0) < rsa.sel(noise=0.0)).all()


def test_geometry_views_core_against_scipy():
    """`GeometryViews.record` over three time points of made-up recordings: every value from
    scipy / numpy on the same arrays (layer below of layer 1: the stimuli)."""
    from lrsim.analysis.observer import RSA_PROBES, GeometryViews

    rng = np.random.default_rng(6)
    k, z, p, n_in = 2, 2, RSA_PROBES + 6, 5
    widths = {(0, 0): 7, (0, 1): 3, (1, 0): 4, (1, 1): 2}
    stim = rng.normal(size=(k, p, n_in))
    targets = rng.normal(size=(k, p, 3))
    gv = GeometryViews(GEOMETRY, k, 3, 2, 2, z)
    seen = []
    for t in range(3):
        acts = {key: rng.normal(size=(k, z, p, u)) for key, u in widths.items()}
        gv.record(t, acts, stim, targets)
        seen.append(acts)
    n = RSA_PROBES
    for t in range(3):
        for (l, v), a in seen[t].items():
            below = stim[:, None].repeat(z, 1) if l == 0 else seen[t][(l - 1, v)]
            for i in range(k):
                for j in range(z):
                    x = a[i, j]
                    lam = np.linalg.eigvalsh(np.cov(x, rowvar=False))
                    assert gv.data["dimensionality"][i, t, l, v, j] == pytest.approx(
                        lam.sum() ** 2 / (lam ** 2).sum() / x.shape[1], rel=1e-9)
                    r = np.corrcoef(below[i, j], x, rowvar=False)[:below.shape[-1],
                                                                  below.shape[-1]:]
                    assert gv.data["coupling"][i, t, l, v, j] == pytest.approx(
                        np.mean(r ** 2), rel=1e-9)
                    assert gv.data["rsa_layer"][i, t, l, v, j] == pytest.approx(
                        pearsonr(pdist(x[:n]), pdist(below[i, j][:n]))[0], rel=1e-9)
                    assert gv.data["rsa_target"][i, t, l, v, j] == pytest.approx(
                        pearsonr(pdist(x[:n]), pdist(targets[i][:n]))[0], rel=1e-9)
                    if t == 0:
                        assert np.isnan(gv.data["rsa_initial"][i, t, l, v, j])
                        assert np.isnan(gv.data["change_alignment"][i, t, l, v, j])
                        continue
                    first, prev = seen[0][(l, v)][i, j], seen[t - 1][(l, v)][i, j]
                    assert gv.data["rsa_initial"][i, t, l, v, j] == pytest.approx(
                        pearsonr(pdist(x[:n]), pdist(first[:n]))[0], rel=1e-9)
                    assert gv.data["rsa_previous"][i, t, l, v, j] == pytest.approx(
                        pearsonr(pdist(x[:n]), pdist(prev[:n]))[0], rel=1e-9)
                    if x.shape[1] > 1:  # one unit has no pair
                        assert gv.data["change_alignment"][i, t, l, v, j] == pytest.approx(
                            _change_alignment_numpy(first, x), rel=1e-9, nan_ok=True)
    assert np.isfinite(gv.data["change_alignment"]).sum() >= 8  # compared, not all NaN
    # other stimuli at every time point (spiking windows): no similarity across time
    other = GeometryViews(GEOMETRY, k, 3, 2, 2, z, same_stimuli=False)
    for t in range(3):
        other.record(t, seen[t], stim)
    assert np.isnan(other.data["rsa_initial"]).all() and np.isnan(other.data["rsa_previous"]).all()
    assert np.isnan(other.data["change_alignment"]).all()
    np.testing.assert_allclose(other.data["rsa_layer"], gv.data["rsa_layer"])
    # no targets given (spiking windows): no similarity with them
    assert np.isnan(other.data["rsa_target"]).all()


@pytest.mark.slow
def test_spiking_runs_record_geometry():
    """A tiny spiking run (Brian2, numpy target): the geometry of its trial-rate views."""
    from lrsim.config import parse
    from lrsim.experiment import run_experiment

    exp = parse({"name": "geom-spiking", "substrate": "spiking", "seed": 1,
                 "task": {"name": "digits"}, "model": {"hidden": [24]},
                 "rule": {"name": "feedback_alignment"},
                 "train": {"lr": 0.25, "steps": 6, "replicas": 1},
                 "observe": {"points": 4, "units": [0, 8], "noise": [0.0, 0.5],
                             "observables": ["weights", "activations", "activity_change",
                                             *GEOMETRY, "synaptic_similarity"]},
                 "spiking": {"target": "numpy", "dt_ms": 0.2, "trial_ms": 40, "settle_ms": 10,
                             "train_samples": 3, "eval_samples": 3, "w_init": 1.4, "eta": 1.5}})
    ds = run_experiment(exp).datasets[0]
    for o in GEOMETRY:
        assert ds[o].dims == ("time", "layer", "units", "noise")
    # windows hold other trials: no representational similarity across time
    assert ds["rsa_initial"].isnull().all() and ds["rsa_previous"].isnull().all()
    assert ds["change_alignment"].isnull().all()
    assert ds["rsa_target"].isnull().all()  # the windows have no per-trial targets
    assert ds["synaptic_similarity"].isnull().all()  # recorded in rate runs only
    dim = ds["dimensionality"].values
    assert np.isfinite(dim).any() and np.nanmax(dim) <= 1 + 1e-9 and np.nanmin(dim) > 0
    assert np.nanmax(np.abs(ds["rsa_layer"].values)) <= 1 + 1e-9
    assert np.nanmin(ds["coupling"].values) >= 0
    assert np.nanmax(ds["coupling"].values) <= 1 + 1e-9
