"""Spiking statistics in rule identification: real spiking runs (Brian2, numpy target, tiny
trials) and real rate runs written to run stores; the per-population statistics appear as
channels of the layer their populations belong to, with the values of each run's Dataset
(selected by population name, independently of the features code); a store mixing rate and
spiking runs opens, leaves the statistics only spiking runs record out of the default
observables and says so; `lrsim identify` runs on both stores; asking for a spiking statistic
that the runs do not record is one clear error."""

from __future__ import annotations

import json
import logging
import re

import numpy as np
import pytest
import xarray as xr

from lrsim.analysis.features import (
    SPIKING_OBSERVABLES,
    TrajectoryFeatures,
    default_observables,
    make_samples,
    unrecorded_observables,
)
from lrsim.analysis.protocol import protocol_sentence, search_protocols
from lrsim.analysis.results import Protocol
from lrsim.cli import main
from lrsim.config import parse
from lrsim.errors import ConfigError
from lrsim.experiment import run_experiment
from lrsim.store import open_scan, write_run

SPIKING = {"target": "numpy", "dt_ms": 0.2, "trial_ms": 40, "settle_ms": 10, "train_samples": 3,
           "eval_samples": 3, "w_init": 1.4, "eta": 1.5}
QUICK = ["--quick", "--classifiers", "forest", "--splits", "2", "--permutations", "2"]


def spiking_runs(rule: str, hidden: list[int], replicas: int, seed: int = 0) -> list:
    exp = parse({"name": f"feat-{rule}", "substrate": "spiking", "seed": seed,
                 "task": {"name": "digits"}, "model": {"hidden": hidden}, "rule": {"name": rule},
                 "train": {"lr": 0.25, "steps": 6, "replicas": replicas},
                 "observe": {"points": 4, "units": [0, 8]}, "spiking": SPIKING})
    return run_experiment(exp).datasets


def rate_runs(rule: str, replicas: int) -> list:
    exp = parse({"name": f"feat-rate-{rule}", "seed": 0, "task": {"name": "digits"},
                 "model": {"hidden": [40]}, "rule": {"name": rule},
                 "train": {"lr": 0.05, "steps": 12, "replicas": replicas},
                 "observe": {"points": 4, "units": [0, 8]}})
    return run_experiment(exp).datasets


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Spiking: backprop x2 and hebb x2 with one hidden layer, hebb x1 with two; rate: backprop
    x2, hebb x2. Stores: spiking only, rate only, mixed."""
    logging.getLogger("py.warnings").setLevel(logging.ERROR)
    spk = (spiking_runs("backprop", [40], 2) + spiking_runs("hebb", [40], 2)
           + spiking_runs("hebb", [40, 40], 1, seed=5))
    rate = rate_runs("backprop", 2) + rate_runs("hebb", 2)
    root = tmp_path_factory.mktemp("stores")
    for name, group in (("spiking", spk), ("rate", rate), ("mixed", spk + rate)):
        for ds in group:
            write_run(ds, root / name)
    by_id = {ds.attrs["run_id"]: ds for ds in spk + rate}
    assert len(by_id) == len(spk) + len(rate)
    return {"root": root, "by_id": by_id, "spiking": [d.attrs["run_id"] for d in spk],
            "rate": [d.attrs["run_id"] for d in rate]}


def expected_population(ds, var: str, layer: str, role: str) -> np.ndarray:
    """The population a sample's channel reads, chosen by name from the run's own Dataset:
    hidden layer K -> layerK_exc / layerK_inh, the last layer -> readout (no inhibitory
    population: NaN)."""
    layers = [str(x) for x in ds["layer"].values]
    if layer == layers[-1]:
        if role == "inh":
            return np.full(ds.sizes["time"], np.nan)
        return ds[var].sel(population="readout").values
    return ds[var].sel(population=f"{layer}_{role}").values


def test_spiking_channels_hold_the_populations_values(runs):
    store = open_scan(runs["root"] / "spiking")
    obs = default_observables(store)
    assert obs[:3] == ["weights", "activations", "activity_change"]
    assert [o for o in obs if o in SPIKING_OBSERVABLES] == list(SPIKING_OBSERVABLES)
    f = TrajectoryFeatures(signed_log=False)
    s = make_samples(store, f)
    # currents are recorded in E populations only: no ei_balance.inh channel
    assert "rate.exc" in s.channels and "rate.inh" in s.channels
    assert "ei_balance.exc" in s.channels and "ei_balance.inh" not in s.channels
    # 4 runs x 2 layers + 1 run x 3 layers
    assert len(s.y) == 11 and sorted(set(s.groups)) == sorted(runs["spiking"])
    n_time = 4
    checked = 0
    for row, (rid, layer) in enumerate(zip(s.groups, s.layers)):
        ds = runs["by_id"][rid]
        for var in ("rate", "cv_isi", "fano", "synchrony", "ei_balance"):
            for role in ("exc", "inh"):
                name = f"{var}.{role}"
                if name not in s.channels:
                    continue
                cols = [s.feature_names.index(f"{name}[t{t}]") for t in range(n_time)]
                want = np.nan_to_num(expected_population(ds, var, layer, role), nan=0.0)
                np.testing.assert_allclose(s.X[row, cols], want, err_msg=f"{rid} {layer} {name}")
                checked += 1
        # the rate-run observables of spiking runs are read as before
        cols = [s.feature_names.index(f"weights.abs_mean[t{t}]") for t in range(n_time)]
        np.testing.assert_allclose(
            s.X[row, cols],
            ds["weights"].sel(layer=layer, stat="abs_mean", units=0, noise=0.0).values)
        assert s.y[row] == ds.attrs["rule"]
    assert checked == 11 * 9
    # the mapping is per run: the deeper network's layer2 is a hidden layer, the others' the
    # readout (their rates differ: seeds and architectures differ)
    deep = [r for r in runs["spiking"] if runs["by_id"][r].sizes["layer"] == 3]
    assert len(deep) == 1
    row = list(zip(s.groups, s.layers)).index((deep[0], "layer3"))
    col = s.feature_names.index("rate.exc[t0]")
    assert s.X[row, col] == pytest.approx(
        float(runs["by_id"][deep[0]]["rate"].sel(population="readout").isel(time=0)))
    # before learning, every hidden E population fires at a plausible rate (Hebbian learning
    # may silence it later)
    hidden = store["rate"].sel(population="layer1_exc").isel(time=0)
    assert float(hidden.min()) > 0.5 and float(hidden.max()) < 200


def test_spiking_channels_follow_a_noise_view_where_recorded(runs):
    """Spiking runs record the statistics without a noise dim; a store that has one (here: the
    rates at noise 0 and, shifted by 1000, at 0.5) is read at the requested view."""
    store = open_scan(runs["root"] / "spiking")[["weights", "rate"]].reindex(noise=[0.0, 0.5])
    rate = store["rate"]
    store["rate"] = xr.concat([rate, rate + 1000.0], dim=store["noise"])
    for noise, shift in ((0.0, 0.0), (0.5, 1000.0)):
        s = make_samples(store, TrajectoryFeatures(["rate"], noise=noise, signed_log=False,
                                                   depth=False))
        assert s.channels == ["rate.exc", "rate.inh"]
        for row, (rid, layer) in enumerate(zip(s.groups, s.layers)):
            want = expected_population(runs["by_id"][rid], "rate", layer, "exc") + shift
            np.testing.assert_allclose(s.X[row, :4], want)


def test_mixed_store_opens_and_leaves_unshared_statistics_out(runs):
    mixed = open_scan(runs["root"] / "mixed")
    assert mixed.sizes["run"] == 9
    assert "population" in mixed.dims
    substrate = dict(zip(mixed["run"].values, mixed["substrate"].values))
    assert {substrate[r] for r in runs["rate"]} == {"rate"}
    assert {substrate[r] for r in runs["spiking"]} == {"spiking"}
    for rid in runs["rate"]:
        one = mixed.sel(run=rid)
        assert np.isnan(one["rate"]).all()
        ds = runs["by_id"][rid]
        np.testing.assert_array_equal(one["weights"].sel(layer=ds["layer"].values).values,
                                      ds["weights"].values)
        assert np.isnan(one["weights"].sel(layer="layer3")).all()  # padded: deepest is 3
    for rid in runs["spiking"]:
        one, ds = mixed.sel(run=rid), runs["by_id"][rid]
        np.testing.assert_array_equal(one["rate"].sel(population=ds["population"].values).values,
                                      ds["rate"].values)
    # default: only what every run records; the spiking statistics are named as left out
    assert default_observables(mixed) == ["weights", "activations", "activity_change"]
    assert unrecorded_observables(mixed) == {o: 4 for o in SPIKING_OBSERVABLES}
    s = make_samples(mixed, TrajectoryFeatures())
    assert not any(c.split(".")[0] in SPIKING_OBSERVABLES for c in s.channels)
    assert sorted(set(s.groups)) == sorted(runs["spiking"] + runs["rate"])
    # asking for one explicitly is an error naming it and the runs that lack it
    with pytest.raises(ConfigError, match=r"'rate' is a spiking statistic that 4 of 9 runs do "
                                          r"not record .*substrate rate"):
        TrajectoryFeatures(["weights", "rate"]).fit(mixed)


def test_spiking_statistic_on_a_rate_store_is_a_config_error(runs):
    rate = open_scan(runs["root"] / "rate")
    assert unrecorded_observables(rate) == {}
    with pytest.raises(ConfigError, match=r"observable\(s\) cv_isi not in the store \(cv_isi: "
                                          r"spiking statistics, recorded only by runs with "
                                          r"substrate = \"spiking\"\)"):
        TrajectoryFeatures(["weights", "cv_isi"]).fit(rate)


def test_protocol_search_names_spiking_statistics_only_with_all_units(runs):
    """Spiking statistics have no `units` dim (every recorded neuron counts): the search for
    the cheapest protocol must not claim them from 8 units. With a score that always passes,
    every view it tries is listed."""
    store = open_scan(runs["root"] / "spiking")
    seen = []

    def always(observables, units, noise, time_points):
        seen.append((tuple(observables), units))
        return {"accuracy_mean": 1.0, "accuracy_sem": 0.0}

    out = search_protocols(store, ["weights", "rate", "fano"], [2, 4], always)
    tried = {(r.observable, r.units) for r in out.tried}
    assert {("weights", 0), ("weights", 8), ("rate", 0), ("fano", 0)} <= tried
    assert ("rate", 8) not in tried and ("fano", 8) not in tried
    assert out.cheapest.observable in ("weights", "all measurable")
    assert out.cheapest.units == 8
    row = Protocol("cv_isi", 0, 0.0, 3, 0.95, 0.01)
    assert "is the CV of the interspike intervals from all units" in protocol_sentence(
        row, "rule", 0.9)


def test_identify_cli_on_a_spiking_store(runs, tmp_path, capsys):
    """Spiking statistics chosen by name (a few, to keep the test fast)."""
    out = tmp_path / "report"
    assert main(["identify", str(runs["root"] / "spiking"), "--out", str(out),
                 "--observables", "weights", "rate", "synchrony", *QUICK]) == 0
    printed = capsys.readouterr().out
    assert "5 runs, 11 samples" in printed and "left out" not in printed
    results = json.loads((out / "results.json").read_text())
    assert results["observables"] == ["weights", "rate", "synchrony"]
    assert results["measurable_observables"] == ["weights", "rate", "synchrony"]
    assert {"rate", "synchrony", "weights+rate+synchrony"} <= {
        o["name"] for o in results["per_observable"]}
    channels = {row["channel"] for row in results["importance"]}
    assert {"rate.exc", "rate.inh", "synchrony.exc", "synchrony.inh"} <= channels
    assert channels - {"depth"} == {"rate.exc", "rate.inh", "synchrony.exc", "synchrony.inh",
                                    *(f"weights.{st}" for st in results["stats"])}
    assert "synchrony" in (out / "report.html").read_text()
    # spiking statistics come from every recorded neuron: the protocol search names them only
    # with all units (the weights are tried with 8 of them too)
    tried = results["protocol"]["tried"]
    spiking_rows = [r for r in tried if r["observable"] in ("rate", "synchrony")]
    assert spiking_rows and all(r["units"] == 0 for r in spiking_rows)
    assert results["view"] == {"units": 0, "noise": 0.0}
    assert [r["value"] for r in results["headline"]["breakdown"]["units"]] == [0, 8]


@pytest.mark.slow
def test_identify_cli_on_a_spiking_store_by_default(runs, tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["identify", str(runs["root"] / "spiking"), "--out", str(out), *QUICK]) == 0
    results = json.loads((out / "results.json").read_text())
    assert set(SPIKING_OBSERVABLES) <= set(results["measurable_observables"])
    assert set(SPIKING_OBSERVABLES) <= {o["name"] for o in results["per_observable"]}
    assert results["observables_left_out"] == {}
    channels = {row["channel"] for row in results["importance"]}
    assert {"rate.exc", "cv_isi.inh", "ei_balance.exc", "ei_correlation.exc"} <= channels
    assert "ei_balance.inh" not in channels
    assert "Left out" not in (out / "report.html").read_text()


def test_identify_cli_on_a_mixed_store(runs, tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["identify", str(runs["root"] / "mixed"), "--out", str(out), *QUICK]) == 0
    printed = capsys.readouterr().out
    # 5 spiking runs (11 layers) and 4 rate runs (8 layers)
    assert "9 runs, 19 samples" in printed
    assert "left out: rate (4 lack it), cv_isi (4 lack it)" in printed
    results = json.loads((out / "results.json").read_text())
    assert results["observables_left_out"] == {o: 4 for o in SPIKING_OBSERVABLES}
    assert results["measurable_observables"] == ["weights", "activations", "activity_change"]
    assert results["n_runs"] == 9
    assert "Left out" in (out / "report.html").read_text()


def test_identify_cli_bad_observables(runs, tmp_path, capsys):
    """One line on stderr, exit 2, nothing written."""
    cases = [("rate", ["rate"], r"rate: spiking statistics, recorded only by runs with "
                                r"substrate = \"spiking\""),
             ("mixed", ["weights", "fano"], r"'fano' is a spiking statistic that 4 of 9 runs "
                                            r"do not record"),
             ("spiking", ["alignment"], r"at least one measurable observable"),
             ("spiking", ["spikes"], r"observable\(s\) spikes not in the store; available: ")]
    for store, names, message in cases:
        bad = tmp_path / f"bad-{store}"
        assert main(["identify", str(runs["root"] / store), "--out", str(bad),
                     "--observables", *names, *QUICK]) == 2
        err = capsys.readouterr().err
        assert err.startswith("lrsim: error: ") and err.count("\n") == 1, err
        assert re.search(message, err), err
        assert not bad.exists()
