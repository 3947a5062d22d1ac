"""Features per (run, layer): values equal to the store's entries, read independently with numpy
indexing; time subsampling, fraction seen, views, missing layers, and bad requests."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lrsim.analysis.features import (
    TrajectoryFeatures,
    make_samples,
    synthetic_scan,
    time_index,
    usable_runs,
)
from lrsim.errors import ConfigError


@pytest.fixture(scope="module")
def ds():
    return synthetic_scan(n_runs_per_rule=4, n_time=11)


def test_time_index_even_and_early():
    assert time_index(11).tolist() == list(range(11))
    assert time_index(11, time_points=3).tolist() == [0, 5, 10]
    assert time_index(11, time_points=6).tolist() == [0, 2, 4, 6, 8, 10]
    # the first ceil(0.5 * 11) = 6 points are seen, 3 of them evenly: 0, 2 (2.5 rounds to 2), 5
    assert time_index(11, fraction=0.5).tolist() == list(range(6))
    assert time_index(11, fraction=0.5, time_points=3).tolist() == [0, 2, 5]
    assert time_index(11, fraction=0.01).tolist() == [0]
    with pytest.raises(ConfigError, match="fraction"):
        time_index(11, fraction=0.0)
    with pytest.raises(ConfigError, match="time_points"):
        time_index(11, time_points=0)


def test_values_match_store_entries(ds):
    f = TrajectoryFeatures(["weights", "loss"], stats=["abs_q75", "raw_var"], units=10,
                           noise=0.5, time_points=3, depth=True, signed_log=False)
    s = make_samples(ds, f)
    times = [0, 5, 10]
    assert s.feature_names[:4] == ["weights.abs_q75[t0]", "weights.abs_q75[t5]",
                                   "weights.abs_q75[t10]", "weights.raw_var[t0]"]
    assert s.feature_names[-1] == "depth" and len(s.feature_names) == 3 * 3 + 1
    w = ds["weights"].transpose("run", "time", "layer", "stat", "units", "noise").values
    loss = ds["loss"].transpose("run", "time").values
    runs = list(ds["run"].values)
    stats = list(ds["stat"].values)
    for row, (run, layer) in enumerate(zip(s.groups, s.layers)):
        r, li = runs.index(run), int(layer.removeprefix("layer")) - 1
        expect = [w[r, t, li, stats.index("abs_q75"), 1, 1] for t in times]
        expect += [w[r, t, li, stats.index("raw_var"), 1, 1] for t in times]
        expect += [loss[r, t] for t in times]
        np.testing.assert_allclose(s.X[row, :-1], expect)
        assert s.y[row] == ds["rule"].values[r]


def test_one_row_per_existing_layer_with_depth(ds):
    s = make_samples(ds, TrajectoryFeatures(["weights"]))
    arch = dict(zip(ds["run"].values, ds["architecture"].values))
    for run in np.unique(s.groups):
        n_layers = len(arch[run].split("-")) + 1  # hidden layers + output layer
        rows = s.groups == run
        assert rows.sum() == n_layers
        np.testing.assert_allclose(s.X[rows, -1], np.linspace(0, 1, n_layers))
    assert np.isfinite(s.X).all()


def test_signed_log_is_the_default_transform(ds):
    raw = make_samples(ds, TrajectoryFeatures(["activations"], signed_log=False)).X
    logged = make_samples(ds, TrajectoryFeatures(["activations"])).X
    np.testing.assert_allclose(logged[:, :-1], np.sign(raw[:, :-1]) * np.log1p(
        np.abs(raw[:, :-1])))


def test_fraction_and_time_points_shape(ds):
    f = TrajectoryFeatures(["weights", "activations"], stats=["raw_mean"], fraction=0.3,
                           time_points=2)
    s = make_samples(ds, f)
    seen = math.ceil(0.3 * 11)
    assert f.time_index_.tolist() == [0, seen - 1]
    assert s.X.shape[1] == 2 * 2 + 1 and s.n_times == 2 and s.channels == [
        "weights.raw_mean", "activations.raw_mean"]


def test_failed_runs_left_out(ds):
    status = np.array(["ok"] * ds.sizes["run"], dtype=object)
    status[:3] = "diverged"
    kept = usable_runs(ds.assign_coords(status=("run", status)))
    assert kept.sizes["run"] == ds.sizes["run"] - 3


@pytest.mark.parametrize("kwargs, match", [
    ({"observables": ["voltage"]}, "voltage"),
    ({"stats": ["raw_entropy"]}, "raw_entropy"),
    ({"units": 7}, "units=7"),
    ({"noise": 0.3}, "noise=0.3"),
    ({"fraction": 1.5}, "fraction"),
])
def test_bad_requests_name_the_problem(ds, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        TrajectoryFeatures(**kwargs).fit(ds)


def test_unknown_label_is_refused(ds):
    with pytest.raises(ConfigError, match="per-run key"):
        make_samples(ds, TrajectoryFeatures(), label="colour")
