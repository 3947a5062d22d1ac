"""What every variable and coordinate of a run file means: CF-style `units`, `long_name` and a
`description`, and the file's `Conventions`.

One table (`VARIABLES`, the run-file contract's `lrsim.contract.VARIABLES`; `COORDINATES`;
`LABELS`) says, per name, its long name, its units (CF / UDUNITS spelling: "1" for dimensionless
numbers, "degree", "Hz", "s"; none for text) and one sentence on what it is. `describe(ds)`
writes the table into a Dataset's attributes (a run in memory, a run file, or a whole store);
the plots read their axis labels from it.

Statistics. `weights`, `activations` and `activity_change` hold a statistic (the `stat`
coordinate) of a recorded quantity x. Their `units` attribute is the unit of x; a statistic s
of x has the unit x^p with p = `stat_power(s)` (stored as the `stat_power` coordinate on `stat`):
1 for mean, median, q75, norm of x or |x|; 2 for their variance and for the mean, median, q75,
norm of x^2; 4 for the variance of x^2; 0 for skewness and kurtosis. CF has no way to vary a
variable's units along a coordinate; this is lrsim's convention, stated in each variable's
`description`.

Substrates. Rate networks' activity is a number in the network's own units ("1"); spiking
networks' activity is a firing rate ("Hz"). `describe` picks by the run's `substrate`; a store
mixing both gives `units_by_substrate` instead of one `units`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr

from lrsim import contract

CONVENTIONS = "CF-1.11"


@dataclass(frozen=True)
class Meta:
    """One name's metadata: `units` None for text; `spiking_units` where spiking runs differ."""

    long_name: str
    description: str
    units: str | None = "1"
    spiking_units: str | None = None

    def units_for(self, substrate: str) -> str | None:
        return self.spiking_units if substrate == "spiking" and self.spiking_units else self.units


# the variables' table is the run-file contract's (`lrsim.contract.VARIABLES`: a `Variable` has
# the same long_name / description / units / units_for as a `Meta`)
VARIABLES = contract.VARIABLES

COORDINATES: dict[str, Meta] = {
    "run": Meta("run id", "Hash of the run's resolved configuration (its file name).", None),
    "time": Meta("time point index", "Index of the measurement, 0 .. T-1."),
    "step": Meta("training step",
                 "Optimizer updates done before the measurement (0 = before learning; the run's "
                 "`steps` = the end)."),
    "layer": Meta("layer", "layer1 .. layerL, the output layer last.", None),
    "depth": Meta("relative depth", "Position of the layer, 0 (first) .. 1 (output)."),
    "stat": Meta("statistic", "Name of the aggregate statistic: {raw,abs,sq}_{mean,var,median,"
                 "q75,norm,skew,kurtosis} of x, |x|, x^2.", None),
    "stat_power": Meta("power of the recorded quantity's units",
                       "Statistic s of x has unit (units of x)^stat_power."),
    "units": Meta("units recorded per layer",
                  "Number of randomly chosen units recorded (the same for the whole run); "
                  "0 = all units."),
    "noise": Meta("relative measurement noise",
                  "sigma of x + sigma * rms(x) * N(0, 1), fresh at every measurement."),
    "population": Meta("neuron population",
                       "layerK_exc / layerK_inh: hidden layer K's excitatory / inhibitory "
                       "neurons; readout: the output population.", None),
    "sim_time": Meta("simulated time", "Biological time simulated at the measurement.", "s"),
}

LABELS: dict[str, Meta] = {
    "rule": Meta("learning rule", "Registered name of the learning rule.", None),
    "rule_family": Meta("learning rule family", "The rule's family.", None),
    "optimizer": Meta("optimizer", "sgd | momentum | adam.", None),
    "lr": Meta("learning rate", "The run's learning rate."),
    "weight_decay": Meta("weight decay", "Decoupled weight decay wd: W <- W - lr (step + wd W)."),
    "init_scale": Meta("initial weight scale", "Factor on the initial weights."),
    "batch_size": Meta("batch size", "Training samples per update."),
    "steps": Meta("training steps", "Optimizer updates in the whole run."),
    "task": Meta("task", "Name of the task learned.", None),
    "activation": Meta("activation function", "relu | tanh | sigmoid | linear | elu | softplus | "
                       "leaky_relu | silu (lif: spiking).",
                       None),
    "architecture": Meta("architecture", "Layer widths: conv channels as c<n>, then hidden "
                         "widths, e.g. 64-64 or c16-c32-64.", None),
    "substrate": Meta("substrate", "rate (torch) or spiking (Brian2).", None),
    "seed": Meta("seed", "The run's random seed."),
    "replica": Meta("replica", "Index of the run among the replicas trained together."),
    "lrsim_version": Meta("lrsim version", "Version of lrsim that wrote the run.", None),
    "status": Meta("run status", "ok | diverged | failed.", None),
    "diverged_step": Meta("divergence step",
                          "Step at which the loss became non-finite (-1 if never)."),
    "config": Meta("run configuration", "The run's resolved experiment, JSON.", None),
    "final_loss": Meta("final loss", "Loss at the end of training on the full training set."),
    "final_test_accuracy": Meta("final test accuracy",
                                "Accuracy at the end of training on the full test set."),
    "initial_loss": Meta("initial loss",
                         "Readout error on the training stimuli before learning (spiking)."),
    "brian2_target": Meta("Brian2 code generation target", "cython | numpy.", None),
    "trial_ms": Meta("trial duration", "Duration of one stimulus presentation.", "ms"),
    "wall_s": Meta("wall-clock time", "Seconds the simulation took.", "s"),
}

_PREFIXES = {"rule_": "rule hyperparameter", "optimizer_": "optimizer hyperparameter",
             "task_": "task parameter"}

_STAT_POWER = {"mean": 1, "var": 2, "median": 1, "q75": 1, "norm": 1, "skew": 0, "kurtosis": 0}


def stat_power(stat: str) -> int:
    """p such that statistic `stat` of x has unit (unit of x)^p (see the module docstring)."""
    transform, _, name = stat.partition("_")
    if name not in _STAT_POWER or transform not in ("raw", "abs", "sq"):
        raise KeyError(f"unknown statistic {stat!r}")
    p = _STAT_POWER[name]
    return 2 * p if transform == "sq" else p


_SUPER = str.maketrans("0123456789-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻")


def power_units(units: str | None, power: int) -> str | None:
    """`units` raised to `power` as a label: "Hz", 2 -> "Hz²"; dimensionless stays "1"."""
    if units is None:
        return None
    if power == 0 or units == "1":
        return "1"
    if power == 1:
        return units
    return f"{units}{str(power).translate(_SUPER)}"


def meta(name: str) -> Meta | None:
    """The table's entry for a variable, coordinate or per-run label (None if unknown)."""
    for table in (VARIABLES, COORDINATES, LABELS):
        if name in table:
            return table[name]
    for prefix, what in _PREFIXES.items():
        if name.startswith(prefix):
            key = name[len(prefix):]
            return Meta(f"{what} {key}", f"The run's {what} '{key}' as in the experiment file.")
    return None


def _substrates(ds: xr.Dataset) -> set[str]:
    if "substrate" in ds.coords or "substrate" in ds.data_vars:
        return {str(s) for s in np.atleast_1d(ds["substrate"].values)}
    return {str(ds.attrs.get("substrate", "rate"))}


def attributes(name: str, substrates: set[str], is_text: bool) -> dict[str, Any]:
    """The CF attributes of `name` in a Dataset of runs on `substrates` (empty if unknown)."""
    m = meta(name)
    if m is None:
        return {}
    out: dict[str, Any] = {"long_name": m.long_name, "description": m.description}
    if is_text or m.units is None:
        return out
    per = {s: m.units_for(s) for s in sorted(substrates)}
    if len(set(per.values())) == 1:
        out["units"] = next(iter(per.values()))
    else:
        out["units_by_substrate"] = "; ".join(f"{s}: {u}" for s, u in per.items())
    return out


def with_stat_power(ds: xr.Dataset) -> xr.Dataset:
    """`ds` with the `stat_power` coordinate on `stat` (files and stores carry it)."""
    if "stat" not in ds.coords or "stat_power" in ds.coords:
        return ds
    return ds.assign_coords(stat_power=("stat", np.asarray(
        [stat_power(str(s)) for s in ds["stat"].values], dtype=np.int64)))


def describe(ds: xr.Dataset) -> xr.Dataset:
    """`ds` with the table's attributes on every known variable and coordinate and
    `Conventions` on the Dataset (a shallow copy; data untouched)."""
    ds = ds.copy()
    subs = _substrates(ds)
    for name, var in ds.variables.items():
        attrs = attributes(str(name), subs, var.dtype.kind in "OUS")
        if attrs:
            var.attrs = {**{k: v for k, v in var.attrs.items()
                            if k not in ("units", "units_by_substrate")}, **attrs}
    ds.attrs["Conventions"] = CONVENTIONS
    return ds


def units_of(ds: xr.Dataset, name: str, stat: str | None = None) -> str | None:
    """The unit of variable `name` (of statistic `stat` where it has one), from its attributes
    or else the table; None if unknown or mixed."""
    var = ds[name]
    units = var.attrs.get("units")
    if units is None and "units_by_substrate" not in var.attrs:
        m = meta(name)
        subs = _substrates(ds)
        if m is not None:
            found = {m.units_for(s) for s in subs}
            units = found.pop() if len(found) == 1 else None
    if units is None or stat is None:
        return units
    return power_units(str(units), stat_power(stat))
