"""lrsim.plot: what a figure draws equals an independent numpy computation of the same means and
spreads; axes carry units; figures render without a display or pyplot."""

from __future__ import annotations

import io
import subprocess
import sys
from dataclasses import dataclass

import numpy as np
import pytest
import torch
import xarray as xr

import lrsim
from lrsim.analysis.features import synthetic_scan
from lrsim.config import parse
from lrsim.errors import ConfigError
from lrsim.experiment import run_experiment

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def synth() -> xr.Dataset:
    """3 rules x 6 runs, 2- and 3-layer architectures (layer3 NaN in half the runs), 11 time
    points on steps 0..100, `steps` = 100; two runs diverged."""
    ds = synthetic_scan(6, rules=("backprop", "feedback_alignment", "oja"), seed=3)
    status = np.array(["ok"] * ds.sizes["run"], dtype=object)
    status[[1, 8]] = "diverged"
    return ds.assign_coords(steps=("run", np.full(ds.sizes["run"], 100)),
                            status=("run", status))


def _lines(ax) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return {ln.get_gid()[len("center:"):]: (np.asarray(ln.get_xdata(), float),
                                            np.asarray(ln.get_ydata(), float))
            for ln in ax.lines if str(ln.get_gid()).startswith("center:")}


def _band(ax, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x, lower, upper) of the band named `name`, from the polygon matplotlib drew."""
    coll = [c for c in ax.collections if c.get_gid() == f"band:{name}"][0]
    verts = np.concatenate([p.vertices for p in coll.get_paths()])
    xs = np.unique(np.round(verts[:, 0], 12))
    lo = np.array([verts[np.isclose(verts[:, 0], x), 1].min() for x in xs])
    hi = np.array([verts[np.isclose(verts[:, 0], x), 1].max() for x in xs])
    return xs, lo, hi


def test_trajectories_equal_numpy_mean_and_sem(synth):
    fig = lrsim.plot.trajectories(synth, "weights", stat="abs_q75", units=10, noise=0.5)
    axes = fig.axes[:3]
    assert [a.get_title().split(",")[0] for a in axes] == ["layer1", "layer2", "layer3"]
    raw = synth["weights"].sel(stat="abs_q75", units=10, noise=0.5).values  # run,time,layer
    rules = synth["rule"].values
    ok = synth["status"].values == "ok"
    frac = synth["step"].values / 100.0
    for li, ax in enumerate(axes):
        lines = _lines(ax)
        assert set(lines) == {"backprop", "feedback_alignment", "oja"}
        for rule, (x, y) in lines.items():
            sel = raw[(rules == rule) & ok, :, li]           # (runs, time)
            sel = sel[np.isfinite(sel).any(1)]               # runs that have this layer
            np.testing.assert_allclose(x, frac)
            np.testing.assert_allclose(y, sel.mean(0), rtol=1e-12)
            sem = sel.std(0, ddof=1) / np.sqrt(len(sel))
            bx, lo, hi = _band(ax, rule)
            np.testing.assert_allclose(bx, frac)
            np.testing.assert_allclose(lo, sel.mean(0) - sem, rtol=1e-10, atol=1e-12)
            np.testing.assert_allclose(hi, sel.mean(0) + sem, rtol=1e-10, atol=1e-12)
    label = axes[0].get_ylabel()
    assert "abs_q75" in label and "dimensionless" in label
    assert axes[0].get_xlabel() == lrsim.plot.PROGRESS_LABEL


def test_quantile_band_median_and_all_statuses(synth):
    fig = lrsim.plot.trajectories(synth, "loss", spread=(0.1, 0.9), center="median",
                                  statuses=None, by="rule_family")
    ax = fig.axes[0]
    fam = synth["rule_family"].values
    loss = synth["loss"].values
    for name, (_, y) in _lines(ax).items():
        sel = loss[fam == name]
        np.testing.assert_allclose(y, np.median(sel, 0))
        _, lo, hi = _band(ax, name)
        np.testing.assert_allclose(lo, np.quantile(sel, 0.1, axis=0))
        np.testing.assert_allclose(hi, np.quantile(sel, 0.9, axis=0))
    assert "training loss" in ax.get_ylabel()


def test_runs_on_different_schedules_share_the_progress_axis():
    """Two runs of 100 and 200 steps on different schedules: the mean at a fraction one run
    did not record uses that run's linear interpolation; outside a run's range, the other."""
    a = xr.Dataset({"loss": ("time", [4.0, 2.0, 1.0])},
                   coords={"time": [0, 1, 2], "step": ("time", [0, 50, 100])},
                   attrs={"run_id": "a", "rule": "r", "steps": 100})
    b = xr.Dataset({"loss": ("time", [3.0, 1.0])},
                   coords={"time": [0, 1], "step": ("time", [0, 100])},
                   attrs={"run_id": "b", "rule": "r", "steps": 200})
    store = xr.concat([lrsim.plot.as_store(a), lrsim.plot.as_store(b)], "run", join="outer",
                      compat="equals", coords="different")
    s = lrsim.plot.trajectory_summary(store, "loss", spread="sd")
    np.testing.assert_allclose(s["progress"].values, [0.0, 0.5, 1.0])
    # at 0: (4 + 3) / 2; at 0.5: a = 2.0, b recorded 1.0 at 0.5; at 1.0 only a (b ended at 0.5)
    np.testing.assert_allclose(s["center"].values[0], [3.5, 1.5, 1.0])
    np.testing.assert_array_equal(s["n"].values[0], [2, 2, 1])
    np.testing.assert_allclose(s["upper"].values[0, :2] - s["center"].values[0, :2],
                               [np.std([4, 3], ddof=1), np.std([2, 1], ddof=1)])
    assert np.isnan(s["upper"].values[0, 2])  # one run: no spread


def test_real_runs_units_and_single_run(tmp_path):
    exp = parse({"name": "plot", "device": "cpu", "seed": 0,
                 "task": {"name": "gaussian_mixture", "dim": 8, "classes": 3, "samples": 200},
                 "model": {"hidden": [6]}, "rule": {"name": "feedback_alignment"},
                 "train": {"steps": 20, "replicas": 3, "batch_size": 16},
                 "observe": {"points": 5, "stats": ["abs_mean", "raw_var"]}})
    runs = run_experiment(exp).datasets
    one = lrsim.plot.trajectories(runs[0], "alignment", layer="layer2")
    assert one.axes[0].get_ylabel() == "feedback alignment angle [degree]"
    y = _lines(one.axes[0])["feedback_alignment"][1]
    np.testing.assert_allclose(y, runs[0]["alignment"].sel(layer="layer2").values)
    store = xr.concat([lrsim.plot.as_store(d) for d in runs], "run", coords="different",
                      compat="equals", join="outer")
    fig = lrsim.plot.trajectories(store, "activations", stat="raw_var", layer="layer1",
                                  by="seed", spread=None)
    ax = fig.axes[0]
    for k, d in enumerate(runs):
        x, y = _lines(ax)[str(k)]
        np.testing.assert_allclose(x, d["step"].values / 20)
        np.testing.assert_allclose(y, d["activations"].sel(stat="raw_var", layer="layer1")
                                   .squeeze().values)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    assert buf.getvalue()[:8] == b"\x89PNG\r\n\x1a\n"


def test_spiking_units_are_hz_powers():
    from lrsim.analysis.plot import _label

    ds = xr.Dataset({"activations": (("run", "time", "stat"), np.zeros((1, 2, 2))),
                     "rate": (("run", "time", "population"), np.zeros((1, 2, 1)))},
                    coords={"stat": ["raw_var", "abs_skew"], "substrate": ("run", ["spiking"])})
    assert _label(ds, "activations", "raw_var") == "activations: raw_var [Hz²]"
    assert _label(ds, "activations", "abs_skew") == "activations: abs_skew [dimensionless]"
    assert _label(ds, "rate", None) == "population firing rate [Hz]"


def test_bad_requests_name_what_is_allowed(synth):
    with pytest.raises(ConfigError, match="several statistics.*stat="):
        lrsim.plot.trajectories(synth, "weights")
    with pytest.raises(ConfigError, match="not a variable.*weights"):
        lrsim.plot.trajectories(synth, "wieghts", stat="abs_mean")
    with pytest.raises(ConfigError, match="noise=0.3 was not recorded"):
        lrsim.plot.trajectories(synth, "weights", stat="abs_mean", noise=0.3)
    with pytest.raises(ConfigError, match="per-run label.*allowed: .*rule"):
        lrsim.plot.trajectories(synth, "loss", by="colour")
    with pytest.raises(ConfigError, match="spread must be"):
        lrsim.plot.trajectories(synth, "loss", spread="wide")


@dataclass
class Row:  # the shape of an identification result row, as another module may define it
    value: float
    accuracy: float
    sem: float


def test_accuracy_against_and_sweeps_plot_the_given_numbers():
    fig = lrsim.plot.accuracy_against([0, 10, 50], [0.9, 0.5, 0.7], [0.01, 0.02, 0.03],
                                      over="units", chance=0.25)
    ax = fig.axes[0]
    line = [ln for ln in ax.lines if ln.get_gid() not in ("chance", "target")][0]
    np.testing.assert_allclose(line.get_ydata(), [0.9, 0.5, 0.7])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["all", "10", "50"]
    assert "fraction correct" in ax.get_ylabel()
    rows = [Row(0.0, 0.8, 0.01), Row(0.5, 0.6, 0.02)]
    fig = lrsim.plot.sweeps({"noise": rows, "fraction": {0.5: (0.4, 0.1), 1.0: 0.7}},
                            chance=0.25)
    a0, a1 = fig.axes[:2]
    data = [ln for ln in a0.lines if ln.get_gid() not in ("chance", "target")][0]
    np.testing.assert_allclose(data.get_xdata(), [0.0, 0.5])
    np.testing.assert_allclose(data.get_ydata(), [0.8, 0.6])
    assert "noise" in a0.get_xlabel() and "fraction" in a1.get_xlabel()


def test_confusion_normalises_rows():
    m = np.array([[8, 2, 0], [1, 1, 2], [0, 0, 5]])
    fig = lrsim.plot.confusion(m, ["a", "b", "c"])
    ax = fig.axes[0]
    shown = np.asarray(ax.images[0].get_array())
    np.testing.assert_allclose(shown, m / m.sum(1, keepdims=True))
    texts = [t.get_text() for t in ax.texts]
    assert texts[:3] == ["0.80", "0.20", "0.00"] and ax.get_ylabel() == "true rule"
    da = xr.DataArray(m, dims=("true", "predicted"),
                      coords={"true": ["a", "b", "c"], "predicted": ["a", "b", "c"]})
    counts = lrsim.plot.confusion(da, normalize=False)
    assert [t.get_text() for t in counts.axes[0].get_yticklabels()] == ["a", "b", "c"]
    with pytest.raises(ConfigError, match="square"):
        lrsim.plot.confusion(np.zeros((2, 3)))


def test_figures_render_headless_without_pyplot(tmp_path):
    code = (
        "import sys, numpy as np, lrsim\n"
        "from lrsim.analysis.features import synthetic_scan\n"
        "ds = synthetic_scan(3)\n"
        "figs = [lrsim.plot.trajectories(ds, 'weights', stat='abs_mean', runs=True),\n"
        "        lrsim.plot.confusion(np.eye(3), list('abc')),\n"
        "        lrsim.plot.accuracy_against([1, 2], [0.5, 0.6], over='time_points')]\n"
        f"for i, f in enumerate(figs): f.savefig(r'{tmp_path}' + f'/{{i}}.png')\n"
        "assert 'matplotlib.pyplot' not in sys.modules\n")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "MPLCONFIGDIR": str(tmp_path)}
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert all((tmp_path / f"{i}.png").stat().st_size > 5000 for i in range(3))


def test_interactive_figure_names_each_run(synth):
    pytest.importorskip("plotly")
    fig = lrsim.plot.interactive_trajectories(synth, "weights", stat="abs_mean", layer="layer1")
    runs = [t for t in fig.data if t.hovertext]
    assert len(runs) == synth.sizes["run"]
    rid = str(synth["run"].values[4])
    hit = [t for t in runs if t.name == rid][0]
    assert f"run {rid}" in hit.hovertext and "rule: backprop" in hit.hovertext
    mean = [t for t in fig.data if t.name == "oja (mean)"][0]
    sel = synth["weights"].sel(stat="abs_mean", layer="layer1", units=0, noise=0.0)
    expected = sel.values[synth["rule"].values == "oja"].mean(0)
    np.testing.assert_allclose(np.asarray(mean.y, float), expected)
