"""The run store: atomic per-run files, finished runs, open_scan round trips and reports."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
import xarray as xr

import lrsim
from lrsim.cli import main
from lrsim.config import parse
from lrsim.errors import LrsimError
from lrsim.experiment import run_experiment
from lrsim.store import finished_runs, open_scan, read_run, write_run

torch.set_num_threads(1)


def spec(hidden: list[int], rule: str = "feedback_alignment", replicas: int = 2,
         seed: int = 0) -> dict:
    return {"name": "store-test", "seed": seed, "device": "cpu",
            "task": {"name": "gaussian_mixture", "dim": 10, "classes": 3, "samples": 300},
            "model": {"hidden": hidden}, "rule": {"name": rule},
            "train": {"steps": 20, "replicas": replicas, "batch_size": 16},
            "observe": {"points": 3, "units": [0, 2], "noise": [0.0, 0.1]}}


@pytest.fixture(scope="module")
def runs():
    """Real runs of two architectures and two rules."""
    a = run_experiment(parse(spec([8, 6]))).datasets
    b = run_experiment(parse(spec([5], rule="sign_symmetry", seed=7))).datasets
    return a + b


def test_round_trip(tmp_path, runs):
    paths = [write_run(ds, tmp_path) for ds in runs]
    assert sorted(p.name for p in paths) == sorted(f"{d.attrs['run_id']}.nc" for d in runs)
    assert sorted(os.listdir(tmp_path)) == sorted(p.name for p in paths)  # no temporaries
    assert finished_runs(tmp_path) == {d.attrs["run_id"] for d in runs}
    scan = lrsim.open_scan(tmp_path)
    assert scan.sizes["run"] == 4
    assert list(scan["layer"].values) == ["layer1", "layer2", "layer3"]
    for ds in runs:
        one = scan.sel(run=ds.attrs["run_id"])
        for name in ("weights", "activations", "activity_change", "alignment", "loss",
                     "test_accuracy"):
            got = one[name].sel(layer=ds["layer"]) if "layer" in ds[name].dims else one[name]
            np.testing.assert_array_equal(got.values, ds[name].values)
        n_layers = ds.sizes["layer"]
        if n_layers < 3:  # the smaller architecture is padded with NaN
            assert np.isnan(one["weights"].sel(layer="layer3")).all()
        for key, value in ds.attrs.items():
            if key in ("run_id", "Conventions"):
                continue
            stored = one["final_test_accuracy" if key == "test_accuracy" else key].item()
            if isinstance(value, float) and np.isnan(value):
                assert np.isnan(stored)
            else:
                assert stored == value, key
    assert scan["depth"].dims == ("run", "layer")
    oja_like = scan.where(scan.rule == "sign_symmetry", drop=True)
    assert oja_like.sizes["run"] == 2
    assert set(oja_like["architecture"].values) == {"5"}
    assert (scan["rule_scaled"].sel(run=oja_like["run"]) == 1).all()  # bool hyperparameter
    assert json.loads(str(scan["config"].values[0]))["train"]["replicas"] == 1


def test_several_stores_open_as_one(tmp_path, runs):
    """open_scan([a, b]): every run of both, with the values each was written with (read back
    from the run's own dataset); a run in both folders is refused, naming both."""
    a, b = tmp_path / "a", tmp_path / "b"
    for ds in runs[:2]:
        write_run(ds, a)
    for ds in runs[2:]:
        write_run(ds, b)
    scan = lrsim.open_scan([a, b])
    assert sorted(scan["run"].values) == sorted(d.attrs["run_id"] for d in runs)
    assert scan.attrs["store"] == f"{a}, {b}"
    for ds in runs:
        one = scan.sel(run=ds.attrs["run_id"])
        got = one["weights"].sel(layer=ds["layer"])
        np.testing.assert_array_equal(got.values, ds["weights"].values)
    assert set(scan["architecture"].values) == {"8-6", "5"}
    write_run(runs[0], b)
    with pytest.raises(LrsimError, match=rf"run {runs[0].attrs['run_id']} is in both '{a}' "
                                         rf"and '{b}' \(a copy\?\)"):
        open_scan([a, b])


def test_truncated_file_is_reported(tmp_path, runs):
    for ds in runs[:2]:
        write_run(ds, tmp_path)
    victim = tmp_path / f"{runs[0].attrs['run_id']}.nc"
    victim.write_bytes(victim.read_bytes()[:2000])
    with pytest.raises(LrsimError, match=f"unreadable run file.*{victim.name}"):
        open_scan(tmp_path)
    assert finished_runs(tmp_path) == {runs[1].attrs["run_id"]}
    with pytest.warns(UserWarning, match=victim.name):
        partial = open_scan(tmp_path, errors="report")
    assert list(partial["run"].values) == [runs[1].attrs["run_id"]]
    assert victim.name in partial.attrs["unreadable"]


def test_leftover_temporary_is_reported(tmp_path, runs):
    write_run(runs[0], tmp_path)
    (tmp_path / f".{runs[1].attrs['run_id']}.nc.tmp-123-abc").write_bytes(b"\x89HDF half")
    with pytest.warns(UserWarning, match="incomplete"):
        scan = open_scan(tmp_path)
    assert scan.sizes["run"] == 1 and "tmp-123" in scan.attrs["incomplete"]
    assert finished_runs(tmp_path) == {runs[0].attrs["run_id"]}


def test_write_run_makes_attributes_netcdf_safe(tmp_path):
    ds = xr.Dataset({"loss": ("time", [1.0, 0.5])})
    ds.attrs = {"run_id": "abc", "flag": True, "missing": None, "widths": [64, 32]}
    write_run(ds, tmp_path)
    with xr.open_dataset(tmp_path / "abc.nc", engine="h5netcdf") as back:  # labels: coords
        assert back["flag"].values.tolist() == [1] and back["missing"].values.tolist() == [""]
        assert json.loads(str(back["widths"].values[0])) == [64, 32]
    back = read_run(tmp_path / "abc.nc")
    assert back.attrs["flag"] == 1 and back.attrs["missing"] == ""
    assert json.loads(back.attrs["widths"]) == [64, 32]
    with pytest.raises(LrsimError, match="run_id"):
        write_run(xr.Dataset(), tmp_path)
    with pytest.raises(LrsimError, match="run_id"):
        write_run(xr.Dataset(attrs={"run_id": "../escape"}), tmp_path)


def test_empty_or_missing_store(tmp_path):
    with pytest.raises(LrsimError, match="no run files"):
        open_scan(tmp_path)
    with pytest.raises(LrsimError, match="not a directory"):
        open_scan(tmp_path / "nope")
    assert finished_runs(tmp_path / "nope") == set()


def test_cli_run_out_writes_one_file_per_replica(tmp_path, capsys):
    exp_file = tmp_path / "exp.toml"
    exp_file.write_text(
        'name = "cli"\ndevice = "cpu"\n[task]\nname = "gaussian_mixture"\nsamples = 200\n'
        '[model]\nhidden = [6]\n[train]\nsteps = 10\nreplicas = 3\n[observe]\npoints = 2\n')
    out = tmp_path / "deep" / "out"
    assert main(["run", str(exp_file), "--out", str(out), "--quiet"]) == 0
    files = sorted(p.name for p in out.iterdir())
    assert len(files) == 5 and "experiment.toml" in files and ".lrsim" in files  # + the mark
    assert (out / "experiment.toml").read_text() == exp_file.read_text()
    scan = open_scan(out)
    assert scan.sizes["run"] == 3 and set(scan["seed"].values) == {0, 1, 2}
    assert set(scan["status"].values) == {"ok"}
    assert "wrote 3 run file(s)" in capsys.readouterr().out


@pytest.mark.parametrize("engine", ["h5netcdf", "netcdf4"])
def test_both_read_engines_agree(tmp_path, runs, monkeypatch, engine):
    from lrsim import store

    if engine == "netcdf4":
        pytest.importorskip("netCDF4")
    write_run(runs[0], tmp_path)
    monkeypatch.setattr(store, "READ_ENGINE", engine)
    scan = open_scan(tmp_path)
    np.testing.assert_array_equal(scan["activations"].isel(run=0).values,
                                  runs[0]["activations"].values)
    assert scan["rule"].values[0] == runs[0].attrs["rule"]
    assert list(scan["stat"].values) == list(runs[0]["stat"].values)
