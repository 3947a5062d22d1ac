"""Features made comparable across networks (`TrajectoryFeatures(reference="initial")`):
values against numpy on the store's own entries, invariance to the scale a network starts at,
and bad requests."""

from __future__ import annotations

import numpy as np
import pytest

from lrsim.analysis.features import (
    TrajectoryFeatures,
    is_positive,
    make_samples,
    synthetic_scan,
)
from lrsim.errors import ConfigError


@pytest.fixture(scope="module")
def ds():
    """A synthetic store whose positive statistics are positive (exp of noise) and which
    records two geometry observables."""
    d = synthetic_scan(n_runs_per_rule=3, n_time=6)
    rng = np.random.default_rng(0)
    for o in ("weights", "activations", "activity_change"):
        d[o] = np.exp(d[o] * 0.3).where(np.isfinite(d[o]))
    d["activity_change"][dict(time=0)] = np.nan  # no earlier measurement
    shape = (d.sizes["run"], d.sizes["time"], d.sizes["layer"], d.sizes["units"],
             d.sizes["noise"])
    exists = np.isfinite(d["weights"].isel(stat=0)).transpose("run", "time", "layer", "units",
                                                              "noise").values
    for o, lo in (("dimensionality", 0.05), ("rsa_initial", 0.5)):
        v = np.where(exists, rng.uniform(lo, 1.0, size=shape), np.nan)
        d[o] = (("run", "time", "layer", "units", "noise"), v)
    d["rsa_initial"][dict(time=0)] = np.nan
    return d


def test_is_positive():
    for ch in ("weights.abs_mean", "weights.sq_q75", "weights.raw_var", "activations.raw_norm",
               "dimensionality", "coupling", "loss", "rate.exc"):
        assert is_positive(ch), ch
    for ch in ("weights.raw_mean", "weights.raw_median", "weights.abs_skew",
               "activations.sq_kurtosis", "rsa_initial", "rsa_layer", "alignment",
               "test_accuracy", "correlation.exc"):
        assert not is_positive(ch), ch


def _entry(ds, name, run, layer, t, stat=None, units=10, noise=0.5):
    da = ds[name].sel(run=run, layer=layer, time=t)
    if stat is not None:
        da = da.sel(stat=stat)
    return float(da.sel(units=units, noise=noise))


def test_initial_reference_values(ds):
    f = TrajectoryFeatures(["weights", "activity_change", "dimensionality", "rsa_initial"],
                           stats=["abs_mean", "raw_mean", "sq_mean"], units=10, noise=0.5,
                           reference="initial")
    s = make_samples(ds, f)
    n_t = ds.sizes["time"]
    names = s.feature_names

    def col(channel, t):
        return names.index(f"{channel}[t{t}]")

    for row, (run, layer) in enumerate(zip(s.groups, s.layers)):
        for t in range(n_t):
            w0 = _entry(ds, "weights", run, layer, 0, "abs_mean")
            wt = _entry(ds, "weights", run, layer, t, "abs_mean")
            assert s.X[row, col("weights.abs_mean", t)] == pytest.approx(np.log(wt / w0))
            d = (_entry(ds, "weights", run, layer, t, "raw_mean")
                 - _entry(ds, "weights", run, layer, 0, "raw_mean")) / np.sqrt(
                _entry(ds, "weights", run, layer, 0, "sq_mean"))
            assert s.X[row, col("weights.raw_mean", t)] == pytest.approx(
                np.sign(d) * np.log1p(abs(d)))
            # the activity change relative to the size of the activity before learning
            a0 = _entry(ds, "activations", run, layer, 0, "sq_mean")
            expect = (0.0 if t == 0 else
                      np.log(_entry(ds, "activity_change", run, layer, t, "sq_mean") / a0))
            assert s.X[row, col("activity_change.sq_mean", t)] == pytest.approx(expect)
            g = _entry(ds, "dimensionality", run, layer, t) / _entry(ds, "dimensionality",
                                                                     run, layer, 0)
            assert s.X[row, col("dimensionality", t)] == pytest.approx(np.log(g))
            # already relative to the first measurement: kept as recorded (NaN reads 0)
            r = 0.0 if t == 0 else _entry(ds, "rsa_initial", run, layer, t)
            assert s.X[row, col("rsa_initial", t)] == pytest.approx(np.sign(r) * np.log1p(
                abs(r)))


def test_initial_reference_removes_the_starting_scale(ds):
    """Scaling a network's weights by c (each statistic by c^power) and its activity by a
    changes nothing relative to the initial values, while the raw features change."""
    # synthetic raw_mean has no relation to sq_mean; the invariance holds for any values
    obs = ["weights", "activations", "activity_change"]
    stats = ["abs_mean", "sq_mean", "raw_var", "abs_q75", "sq_var", "abs_median", "raw_mean",
             "raw_median"]
    power = {"abs_mean": 1, "sq_mean": 2, "raw_var": 2, "abs_q75": 1, "sq_var": 4,
             "abs_median": 1, "raw_mean": 1, "raw_median": 1}
    scaled = ds.copy(deep=True)
    c, a = 7.0, 0.2
    for name, k in (("weights", c), ("activations", a), ("activity_change", a)):
        factor = np.array([k ** power.get(s, 0) if s in power else 1.0
                           for s in ds["stat"].values])
        scaled[name] = ds[name] * ds["stat"].copy(data=factor)
    rel = TrajectoryFeatures(obs, stats=stats, reference="initial")
    np.testing.assert_allclose(make_samples(ds, rel).X, make_samples(scaled, rel).X,
                               atol=1e-9)
    raw = TrajectoryFeatures(obs, stats=stats)
    assert not np.allclose(make_samples(ds, raw).X, make_samples(scaled, raw).X)


def test_bad_reference(ds):
    with pytest.raises(ConfigError, match="reference must be one of none, initial"):
        TrajectoryFeatures(["weights"], reference="first").fit(ds)


def test_learning_progress_and_resampling(ds):
    """Progress = the output layer's recorded activity path as a fraction of its whole
    (trapezoids of the activity change's raw_norm); a trajectory linear in progress comes out
    evenly spaced on the progress axis."""
    d = ds.copy(deep=True)
    d = d.assign_coords(stat=[*d["stat"].values[:-1], "raw_norm"])  # a raw_norm channel
    f = TrajectoryFeatures(["weights", "activity_change"], stats=["raw_norm"], units=0,
                           noise=0.0, time_axis="progress").fit(d)
    p = f.learning_progress(d)
    n_t = d.sizes["time"]
    exists = f.layer_exists(d).values
    for i, run in enumerate(d["run"].values):
        last = d["layer"].values[np.flatnonzero(exists[i])[-1]]
        v = d["activity_change"].sel(run=run, layer=last, stat="raw_norm", units=0,
                                     noise=0.0).values.copy()
        v[0] = v[1]  # no change before the first measurement: the first recorded one
        cum = np.concatenate([[0.0], np.cumsum(0.5 * (v[1:] + v[:-1]))])
        np.testing.assert_allclose(p.sel(run=run).values, cum / cum[-1])
    # a channel that is exactly the progress itself, resampled, is the even grid
    from lrsim.analysis.features import resample_on_progress

    cube = f.cube(d)
    planted = cube.copy(data=np.broadcast_to(p.values[:, None, None, :], cube.shape).copy())
    out = resample_on_progress(planted, p)
    np.testing.assert_allclose(out.values, np.broadcast_to(np.linspace(0, 1, n_t), out.shape),
                               atol=1e-12)


def test_bad_time_axis(ds):
    with pytest.raises(ConfigError, match="time_axis must be one of step, progress"):
        TrajectoryFeatures(["weights"], time_axis="loss").fit(ds)
    with pytest.raises(ConfigError, match="needs the store's activity_change"):
        TrajectoryFeatures(["weights"], time_axis="progress").fit(ds.drop_vars(
            "activity_change"))
