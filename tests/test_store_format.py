"""Self-describing, scalable stores: CF attributes on every variable and coordinate of rate and
spiking run files, per-run labels that plain `xr.open_mfdataset` keeps, a lazy `open_scan`
(dask arrays, data read when computed), export to zarr, and stores written before the file
layout still open."""

from __future__ import annotations

import json
import warnings

import dask.array
import numpy as np
import pytest
import torch
import xarray as xr

import lrsim
from lrsim.config import parse
from lrsim.experiment import run_experiment
from lrsim.metadata import CONVENTIONS
from lrsim.store import open_scan, read_run, write_run

torch.set_num_threads(1)

LABELS = ("rule", "rule_family", "optimizer", "lr", "weight_decay", "task", "architecture",
          "activation", "substrate", "seed", "status", "steps", "final_loss",
          "final_test_accuracy")
# the power of x's units in each statistic, written out independently of lrsim.metadata
POWER = {"raw_mean": 1, "raw_var": 2, "raw_median": 1, "raw_q75": 1, "raw_norm": 1,
         "raw_skew": 0, "raw_kurtosis": 0, "abs_mean": 1, "abs_var": 2, "abs_median": 1,
         "abs_q75": 1, "abs_norm": 1, "abs_skew": 0, "abs_kurtosis": 0, "sq_mean": 2,
         "sq_var": 4, "sq_median": 2, "sq_q75": 2, "sq_norm": 2, "sq_skew": 0,
         "sq_kurtosis": 0}


def rate_runs(rule: str, hidden: list[int], replicas: int = 2, seed: int = 0,
              lr: float = 0.05) -> list[xr.Dataset]:
    exp = parse({"name": f"fmt-{rule}", "device": "cpu", "seed": seed,
                 "task": {"name": "gaussian_mixture", "dim": 8, "classes": 3, "samples": 200},
                 "model": {"hidden": hidden}, "rule": {"name": rule},
                 "train": {"steps": 16, "replicas": replicas, "batch_size": 16, "lr": lr},
                 "observe": {"points": 4, "units": [0, 3], "noise": [0.0, 0.1]}})
    return run_experiment(exp).datasets


@pytest.fixture(scope="module")
def rate(tmp_path_factory):
    """Six rate runs: two rules, two architectures (so layers and depth differ), two lrs."""
    runs = (rate_runs("backprop", [6, 5]) + rate_runs("feedback_alignment", [6, 5], seed=4,
                                                       lr=0.1)
            + rate_runs("sign_symmetry", [7], seed=9))
    folder = tmp_path_factory.mktemp("rate")
    files = sorted(write_run(ds, folder) for ds in runs)
    return {"runs": {d.attrs["run_id"]: d for d in runs}, "folder": folder, "files": files}


@pytest.fixture(scope="module")
def spiking(tmp_path_factory):
    """One small spiking run (numpy target, 40-neuron hidden layer, 4 updates)."""
    exp = parse({"name": "fmt-spiking", "substrate": "spiking", "seed": 0,
                 "task": {"name": "digits"}, "model": {"hidden": [40]},
                 "rule": {"name": "backprop"},
                 "train": {"lr": 0.25, "steps": 4, "replicas": 1},
                 "observe": {"points": 3, "stats": ["abs_mean", "raw_var"]},
                 "spiking": {"target": "numpy", "dt_ms": 0.2, "trial_ms": 40, "settle_ms": 10,
                             "train_samples": 3, "eval_samples": 3, "w_init": 1.4,
                             "eta": 1.5}})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ds = run_experiment(exp).datasets[0]
    folder = tmp_path_factory.mktemp("spiking")
    return {"ds": ds, "file": write_run(ds, folder), "folder": folder}


def check_described(ds: xr.Dataset) -> None:
    """Every variable and coordinate has long_name and description; every numeric one units
    (text has none in CF); the Dataset says its Conventions."""
    assert ds.attrs["Conventions"] == CONVENTIONS
    for name, var in ds.variables.items():
        assert var.attrs.get("long_name"), name
        assert var.attrs.get("description"), name
        if var.dtype.kind not in "OUS":
            assert "units" in var.attrs or "units_by_substrate" in var.attrs, name


def test_rate_run_file_describes_itself(rate):
    with xr.open_dataset(rate["files"][0]) as ds:
        check_described(ds)
        assert ds["alignment"].attrs["units"] == "degree"
        assert ds["activations"].attrs["units"] == "1"  # a rate network's own units
        assert ds["step"].attrs["units"] == "1" and ds["lr"].attrs["long_name"] == "learning rate"
        assert {str(s): int(p) for s, p in zip(ds["stat"].values, ds["stat_power"].values)} \
            == {s: POWER[s] for s in ds["stat"].values}
        assert "rule" in ds.attrs["title"] or ds["rule"].values[0] in ds.attrs["title"]


def test_spiking_run_file_describes_itself(spiking):
    with xr.open_dataset(spiking["file"]) as ds:
        check_described(ds)
        assert ds["activations"].attrs["units"] == "Hz"
        assert ds["rate"].attrs["units"] == "Hz"
        assert ds["sim_time"].attrs["units"] == "s" and ds["sim_time"].dtype.kind == "f"
        assert ds["substrate"].values.tolist() == ["spiking"]
    check_described(spiking["ds"])  # the run in memory too
    back = read_run(spiking["file"])
    for v in spiking["ds"].data_vars:
        np.testing.assert_array_equal(back[v].values, spiking["ds"][v].values)


def test_mixed_store_units_by_substrate(rate, spiking, tmp_path):
    for ds in [*list(rate["runs"].values())[:1], spiking["ds"]]:
        write_run(ds, tmp_path)
    store = open_scan(tmp_path)
    check_described(store)
    assert "units" not in store["activations"].attrs
    assert store["activations"].attrs["units_by_substrate"] == "rate: 1; spiking: Hz"
    assert store["rate"].attrs["units"] == "Hz"


@pytest.mark.parametrize("new_defaults", [False, True])
def test_plain_open_mfdataset_keeps_per_run_labels(rate, new_defaults):
    """Exactly the call a user would make, under today's xarray defaults and the announced
    ones (data_vars / coords / compat change; join becomes "exact", so one architecture)."""
    files = [f for f in rate["files"] if rate["runs"][f.stem].attrs["architecture"] == "6-5"]
    assert len(files) == 4
    with xr.set_options(use_new_combine_kwarg_defaults=new_defaults), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        ds = xr.open_mfdataset(files, combine="nested", concat_dim="run")
        ds = ds.load()
    assert list(ds["run"].values) == [f.stem for f in files]
    for i, rid in enumerate(ds["run"].values):
        run = rate["runs"][rid]
        for key in LABELS:
            attr = "test_accuracy" if key == "final_test_accuracy" else key
            assert ds[key].dims == ("run",), key
            got, want = ds[key].values[i], run.attrs[attr]
            assert (got == want) or (np.isnan(got) and np.isnan(want)), key
        for v in ("weights", "activations", "alignment", "loss"):
            np.testing.assert_array_equal(ds[v].isel(run=i).values, run[v].values)
        np.testing.assert_array_equal(ds["step"].isel(run=i).values, run["step"].values)
    assert set(ds["rule"].values) == {"backprop", "feedback_alignment"}
    assert set(ds["lr"].values) == {0.05, 0.1}


def test_open_scan_is_lazy(rate, tmp_path):
    for ds in rate["runs"].values():
        write_run(ds, tmp_path)
    store = open_scan(tmp_path, chunk_runs=4)
    for v in ("weights", "activations", "activity_change", "alignment", "loss"):
        assert isinstance(store[v].data, dask.array.Array), v
    assert store["weights"].chunks[0] == (4, 2)
    # the data are read when computed, not when opened: rewrite one run's file after opening
    rid = sorted(rate["runs"])[0]
    changed = rate["runs"][rid].copy(deep=True)
    changed["weights"].values[...] = 7.0
    write_run(changed, tmp_path)
    assert (store["weights"].sel(run=rid).values == 7.0).all()
    # and equal, run by run, to what was written (padded with NaN where a run lacks a layer)
    for rid, run in rate["runs"].items():
        if rid == sorted(rate["runs"])[0]:
            continue
        got = store["activations"].sel(run=rid, layer=run["layer"]).values
        np.testing.assert_array_equal(got, run["activations"].values)
        if run.sizes["layer"] == 2:
            assert np.isnan(store["activations"].sel(run=rid, layer="layer3").values).all()
    assert store["depth"].dims == ("run", "layer")
    assert set(store["architecture"].values) == {"6-5", "7"}


def test_store_exports_to_zarr(rate, tmp_path):
    pytest.importorskip("zarr")
    store = lrsim.open_scan(rate["folder"])
    target = tmp_path / "study.zarr"
    with warnings.catch_warnings():  # zarr 3: consolidated metadata is not in its spec yet
        warnings.simplefilter("ignore", UserWarning)
        store.to_zarr(target)
    back = xr.open_zarr(target)
    assert back.sizes == store.sizes
    for v in store.data_vars:
        np.testing.assert_array_equal(back[v].values, store[v].values)
    for key in LABELS:
        assert list(back[key].values) == list(store[key].values), key
    assert back["alignment"].attrs["units"] == "degree"
    assert back.attrs["Conventions"] == CONVENTIONS
    assert json.loads(str(back["config"].values[0]))["train"]["replicas"] == 1


def test_stores_written_before_the_file_layout_still_open(rate, tmp_path):
    """A file as lrsim wrote it before (labels as attributes, no run dimension) next to new
    ones: the same Dataset as if all were new."""
    runs = list(rate["runs"].values())
    old = runs[0].copy()
    old.attrs = {k: v for k, v in old.attrs.items() if k != "Conventions"}
    old.to_netcdf(tmp_path / f"{old.attrs['run_id']}.nc", engine="h5netcdf")
    for ds in runs[1:]:
        write_run(ds, tmp_path)
    mixed = open_scan(tmp_path).load()
    new = open_scan(rate["folder"]).load()
    xr.testing.assert_identical(mixed.drop_attrs(), new.drop_attrs())
