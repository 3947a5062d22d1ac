"""Features for rule identification: one sample per (run, layer) from a scan's trajectories.

Following Nayebi et al. 2020 ("Identifying learning rules from neural network observables",
NeurIPS), a sample is the trajectory of aggregate statistics of one layer over learning: for
each chosen observable o (`weights`, `activations`, `activity_change`, ...) and statistic s
(`abs_median`, `raw_var`, ...) the channel x_{o,s}(t) at the selected time points, read from
one experimentalist's view (units recorded, measurement noise). Unlike Nayebi et al., samples
carry their run id as the group, so that evaluation never lets layers of one network fall in
both train and test.

Layout of one sample (channel-major, then time):

    X[i] = [x_{c_1}(t_1) .. x_{c_1}(t_T), x_{c_2}(t_1) .. x_{c_C}(t_T), depth]

so the tabular classifiers see a flat vector and the temporal net reshapes the first C*T entries
to (C, T) and keeps `depth` (the layer's relative depth 0..1) as a static input.

Time points: of the store's time axis (n points) the first ceil(fraction * n) are "seen"; of
those, `time_points` are chosen evenly (rounded `linspace` over the seen range, endpoints kept).

Spiking statistics. Spiking runs also record per-population statistics over learning (`rate`,
`cv_isi`, `fano`, `correlation`, `synchrony` from the spikes; `ei_balance`, `ei_correlation`
from the recorded currents), dims (`time`, `population`), populations `layerK_exc`,
`layerK_inh` (hidden layer K's E and I populations) and `readout`. Each becomes channels of the
sample of the layer the populations belong to, one value per time point:

    sample (run, layerK), K < L:   <stat>.exc = layerK_exc,   <stat>.inh = layerK_inh
    sample (run, layerL), L last:  <stat>.exc = readout,      <stat>.inh = NaN (no I population)

(L = the run's last existing layer, so stores of several depths map per run.) A role with no
finite value anywhere in the fitted store (`ei_balance.inh`: currents are recorded in E
populations only) is left out. They are measurable observables (spikes and currents are what an
electrophysiologist records), computed from the recorded neurons' spikes; spiking runs record
them without `units` / `noise` dims, so every (units, noise) view reads the same values (where a
store gives them those dims, the view selects them as for the other observables). NaN reads as
0, as for every channel.

Stores mixing rate and spiking runs: rate runs have no spiking statistics (NaN after
`lrsim.store.open_scan`). Reading those as 0 would hand the classifier the substrate instead of
the rule, so `default_observables` takes a spiking statistic only where every run records it
(`unrecorded_observables` names the ones left out and how many runs lack them); naming one
explicitly on such a store is a `ConfigError`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import xarray as xr
from sklearn.base import BaseEstimator, TransformerMixin

from lrsim.contract import (
    CONTROL_OBSERVABLES,
    GEOMETRY_OBSERVABLES,
    MODEL_INTERNAL,
    OBSERVABLES,
    POPULATION,
    RUN,
    SPIKING_OBSERVABLES,
    VIEW_DIMS,
)
from lrsim.errors import ConfigError

_VIEW_DIMS = {RUN, *VIEW_DIMS}
REFERENCES = ("none", "initial")
TIME_AXES = ("step", "progress")
# channels that are >= 0 by construction, besides the abs_ / sq_ statistics and var / norm
_POSITIVE = {"dimensionality", "coupling", "loss", "rate", "cv_isi", "fano", "synchrony"}
# channels already relative to an earlier measurement: no reference taken
_SELF_REFERENCED = {"rsa_initial", "rsa_previous", "change_alignment"}
ROLES = ("exc", "inh")
READOUT = "readout"
_POPULATION_DIMS = {"run", "time", POPULATION, "units", "noise"}


def observable_of(feature: str) -> str:
    """The observable a feature column of `TrajectoryFeatures` reads: 'weights' for
    'weights.abs_mean[t3]', 'rate' for 'rate.exc[t0]', 'depth' for the static depth."""
    return feature.split("[")[0].split(".")[0]


def time_index(n_time: int, fraction: float = 1.0, time_points: int | None = None) -> np.ndarray:
    """Indices into a time axis of `n_time` points: the first ceil(fraction * n_time) are seen,
    of which `time_points` are taken evenly (`round(linspace(0, seen - 1, time_points))`)."""
    if not 0 < fraction <= 1:
        raise ConfigError(f"fraction must be in (0, 1] (got {fraction!r})")
    if time_points is not None and time_points < 1:
        raise ConfigError(f"time_points must be >= 1 (got {time_points!r})")
    seen = max(1, math.ceil(fraction * n_time - 1e-9))
    if time_points is None or time_points >= seen:
        return np.arange(seen)
    return np.unique(np.round(np.linspace(0, seen - 1, time_points)).astype(int))


def is_population_variable(ds: xr.Dataset, name: str) -> bool:
    """Whether data variable `name` is a per-population statistic over time (dims `time`,
    `population`, `run` in a store, possibly `units` / `noise`): a spiking statistic."""
    dims = set(ds[name].dims)
    return {"time", POPULATION} <= dims and dims <= _POPULATION_DIMS


def population_variables(ds: xr.Dataset) -> list[str]:
    """The per-population statistics in `ds`: the known spiking statistics in their order,
    then any other, sorted."""
    found = [str(v) for v in ds.data_vars if is_population_variable(ds, str(v))]
    return ([o for o in SPIKING_OBSERVABLES if o in found]
            + sorted(o for o in found if o not in SPIKING_OBSERVABLES))


def runs_without(ds: xr.Dataset, name: str) -> list[str]:
    """Run ids (in store order) in which variable `name` holds no finite value: the runs that
    do not record it (in a mixed store: the rate runs, for a spiking statistic)."""
    da = ds[name]
    recorded = np.isfinite(da).any(dim=[d for d in da.dims if d != "run"])
    if "run" not in da.dims:
        return [] if bool(recorded) else [str(ds.attrs.get("run_id", "the run"))]
    return [str(r) for r, ok in zip(ds["run"].values, recorded.values) if not ok]


def unrecorded_observables(ds: xr.Dataset) -> dict[str, int]:
    """Spiking statistics some but not all runs of `ds` record, with the number of runs that
    lack each: left out of `default_observables` (see the module docstring)."""
    out = {}
    for o in population_variables(ds):
        n = len(runs_without(ds, o))
        if n:
            out[o] = n
    return out


def default_observables(ds: xr.Dataset) -> list[str]:
    """The experimentalist's observables present in `ds`: weights, activations, activity
    change, any other variable with `layer` and `stat` dims, the population geometry of the
    recorded activity (`GEOMETRY_OBSERVABLES`) where every run records it, then the spiking
    statistics (per-population variables) that every run records."""
    found = [o for o in OBSERVABLES if o in ds.data_vars]
    extra = [str(v) for v in ds.data_vars if str(v) not in found
             and {"layer", "stat", "time"} <= set(ds[v].dims) and set(ds[v].dims) <= _VIEW_DIMS]
    geometry = [o for o in GEOMETRY_OBSERVABLES if o in ds.data_vars and not runs_without(ds, o)]
    spiking = [o for o in population_variables(ds) if not runs_without(ds, o)]
    return found + sorted(extra) + geometry + spiking


def is_positive(channel: str) -> bool:
    """Whether a feature channel (`observable.stat`, `observable`, `observable.role`) is >= 0
    by construction: the abs_ and sq_ statistics (except skew and kurtosis), raw_var and
    raw_norm, and the non-negative quantities (dimensionality, coupling, loss, firing rate,
    CV, Fano factor, synchrony)."""
    obs, _, rest = channel.partition(".")
    if obs in _POSITIVE:
        return True
    transform, _, stat = rest.partition("_")
    if transform not in ("raw", "abs", "sq") or stat in ("", "skew", "kurtosis"):
        return False
    return transform in ("abs", "sq") or stat in ("var", "norm")


def _last_layer(ds: xr.Dataset) -> xr.DataArray:
    """(run, layer) mask of each run's last existing layer (`TrajectoryFeatures.layer_exists`)."""
    exists = TrajectoryFeatures().layer_exists(ds)
    return exists & (exists.cumsum("layer") == exists.sum("layer"))


def population_by_layer(ds: xr.Dataset, name: str) -> xr.DataArray:
    """Per-population variable `name` (run, time, population) mapped onto the samples' layers:
    dims (run, time, layer, role, then any `units` / `noise`); role `exc` = `layerK_exc` (the
    `readout` population for a run's last layer), role `inh` = `layerK_inh`; NaN where a layer
    has no such population."""
    da = ds[name]
    if "run" not in da.dims:
        raise ConfigError(f"'{name}': features need a store Dataset with a `run` dimension")
    pops = {str(p) for p in ds[POPULATION].values}
    nan = xr.full_like(da.isel({POPULATION: 0}, drop=True), np.nan, dtype=float)
    roles = []
    for role in ROLES:
        per_layer = [da.sel({POPULATION: f"{layer}_{role}"}, drop=True).astype(float)
                     if f"{layer}_{role}" in pops else nan
                     for layer in (str(x) for x in ds["layer"].values)]
        x = xr.concat(per_layer, dim=ds["layer"].variable).assign_coords(layer=ds["layer"])
        if role == "exc" and READOUT in pops:
            x = x.where(~_last_layer(ds), da.sel({POPULATION: READOUT}, drop=True))
        roles.append(x)
    out = xr.concat(roles, dim="role").assign_coords(role=list(ROLES))
    out = out.drop_vars([c for c in out.coords if c not in out.dims])
    return out.transpose("run", "time", "layer", "role", ...)


def all_observables(ds: xr.Dataset) -> list[str]:
    """Every time-varying variable a store records for identification: the experimentalist's
    observables, then `alignment` (angle(B, W^T), a model-internal quantity no experiment
    measures directly) and the `loss` / `test_accuracy` curves."""
    extra = [v for v in (*MODEL_INTERNAL, *CONTROL_OBSERVABLES) if v in ds.data_vars]
    return default_observables(ds) + extra


def run_values(ds: xr.Dataset, key: str) -> np.ndarray:
    """The per-run value of coordinate / attribute `key` (a `run` coordinate in a store)."""
    if key not in ds.coords and key not in ds.data_vars:
        allowed = sorted(str(c) for c in ds.coords if ds[c].dims == ("run",) and c != "run")
        raise ConfigError(f"'{key}' is not a per-run key of this store; allowed: "
                          f"{', '.join(allowed)}")
    da = ds[key]
    if da.dims != ("run",):
        raise ConfigError(f"'{key}' is not a per-run key of this store (dims {da.dims})")
    return np.asarray(da.values)


class TrajectoryFeatures(TransformerMixin, BaseEstimator):
    """Turn a store Dataset (dims run, time, layer, stat, units, noise) into one row per
    existing (run, layer): chosen observables x stats x time points, plus relative depth.

    Parameters
    ----------
    observables : names of data variables; None = `default_observables(ds)`. Variables without
        a `stat` dim (`alignment`, `loss`, `test_accuracy`) give one channel each; those without
        a `layer` dim are the same for every layer of a run. Spiking statistics (dims `time`,
        `population`) give channels `<name>.exc`, `<name>.inh` (see the module docstring).
    stats : statistic names (the `stat` coordinate); None = all in the store.
    units, noise : the (units, noise) view; units 0 = all units recorded.
    time_points : number of time points, subsampled evenly; None = all seen.
    fraction : fraction of the trajectory seen (the first part, "early only").
    depth : append the layer's relative depth as the last feature.
    signed_log : read every value as sign(x) log(1 + |x|) (statistics such as `sq_kurtosis`
        span many orders of magnitude; the map is monotone, so trees are unaffected, and linear
        and neural classifiers see tamer inputs). With `reference = "initial"` it applies to
        the differences only (log-ratios are already tame).
    reference : "none" (the recorded values) or "initial": every channel relative to its value
        at the first time point t_0 (before learning), so that what the initialisation, the
        width, the input scale and the task set is divided out and what learning changed is
        left (see `relative_to_initial`).
    time_axis : "step" (the recorded time points) or "progress": every trajectory resampled at
        evenly spaced points of the network's own learning progress (`learning_progress`: the
        path its output layer's recorded activity has travelled, as a fraction of the whole),
        so that runs learning at different speeds are compared at the same stage.
    """

    def __init__(self, observables: Sequence[str] | None = None,
                 stats: Sequence[str] | None = None, units: int = 0, noise: float = 0.0,
                 time_points: int | None = None, fraction: float = 1.0, depth: bool = True,
                 signed_log: bool = True, reference: str = "none", time_axis: str = "step"):
        self.observables = observables
        self.stats = stats
        self.units = units
        self.noise = noise
        self.time_points = time_points
        self.fraction = fraction
        self.depth = depth
        self.signed_log = signed_log
        self.reference = reference
        self.time_axis = time_axis

    def fit(self, ds: xr.Dataset, y: Any = None) -> TrajectoryFeatures:
        """Check the request against the store; fix channels, time indices, feature names."""
        if self.reference not in REFERENCES:
            raise ConfigError(f"reference must be one of {', '.join(REFERENCES)} "
                              f"(got {self.reference!r})")
        if self.time_axis not in TIME_AXES:
            raise ConfigError(f"time_axis must be one of {', '.join(TIME_AXES)} "
                              f"(got {self.time_axis!r})")
        if self.time_axis == "progress" and "activity_change" not in ds.data_vars:
            raise ConfigError("time_axis 'progress' needs the store's activity_change (the "
                              "output layer's activity path); the store records "
                              f"{', '.join(sorted(str(v) for v in ds.data_vars))}")
        obs = list(self.observables) if self.observables is not None else default_observables(ds)
        if not obs:
            raise ConfigError("no observables: the store has none of "
                              f"{', '.join(OBSERVABLES)}; name them explicitly")
        missing = [o for o in obs if o not in ds.data_vars]
        if missing:
            spiking = [o for o in missing if o in SPIKING_OBSERVABLES]
            hint = (f" ({', '.join(spiking)}: spiking statistics, recorded only by runs with "
                    f"substrate = \"spiking\")" if spiking else "")
            raise ConfigError(f"observable(s) {', '.join(missing)} not in the store{hint}; "
                              f"available: {', '.join(sorted(str(v) for v in ds.data_vars))}")
        roles: dict[str, list[str]] = {}
        for o in obs:
            dims = set(ds[o].dims)
            if is_population_variable(ds, o):
                lacking = runs_without(ds, o)
                if lacking:
                    subs = ""
                    if "substrate" in ds.coords and ds["substrate"].dims == ("run",):
                        by_id = dict(zip(np.asarray(ds["run"].values).astype(str),
                                         np.asarray(ds["substrate"].values).astype(str)))
                        kinds = sorted({by_id.get(r, "?") for r in lacking})
                        subs = f" (substrate {', '.join(kinds)})"
                    raise ConfigError(
                        f"observable '{o}' is a spiking statistic that {len(lacking)} of "
                        f"{ds.sizes.get('run', 1)} runs do not record (e.g. run "
                        f"{lacking[0]}{subs}); features need every run to record it: leave it "
                        f"out, or identify on a store of spiking runs only")
                by_layer = population_by_layer(ds, o)
                finite = np.isfinite(by_layer).any(dim=[d for d in by_layer.dims
                                                         if d != "role"])
                roles[o] = [r for r in ROLES if bool(finite.sel(role=r))]
                continue
            if "time" not in dims or not dims <= _VIEW_DIMS:
                raise ConfigError(f"observable '{o}' has dims {tuple(ds[o].dims)}; features need "
                                  f"'time' and at most {sorted(_VIEW_DIMS)} (or 'time' and "
                                  f"'{POPULATION}' for a spiking statistic)")
        store_stats = [str(s) for s in ds["stat"].values] if "stat" in ds.coords else []
        stats = list(self.stats) if self.stats is not None else store_stats
        bad = [s for s in stats if s not in store_stats]
        if bad:
            raise ConfigError(f"stat(s) {', '.join(bad)} not in the store; available: "
                              f"{', '.join(store_stats)}")
        for dim, value in (("units", self.units), ("noise", self.noise)):
            if dim in ds.coords and not np.isclose(np.asarray(ds[dim].values, float),
                                                   float(value)).any():
                raise ConfigError(f"{dim}={value!r} was not recorded; the store has {dim} = "
                                  f"{[v.item() for v in ds[dim].values]}")
        self.observables_ = obs
        self.stats_ = stats
        self.roles_ = roles
        self.time_index_ = time_index(ds.sizes["time"], self.fraction, self.time_points)
        self.n_times_ = len(self.time_index_)
        self.channels_ = []
        for o in obs:
            if o in roles:
                self.channels_ += [f"{o}.{r}" for r in roles[o]]
            elif "stat" in ds[o].dims:
                self.channels_ += [f"{o}.{st}" for st in stats]
            else:
                self.channels_.append(o)
        self.n_static_ = int(bool(self.depth))
        self.feature_names_ = [f"{c}[t{int(t)}]" for c in self.channels_
                               for t in self.time_index_] + (["depth"] if self.depth else [])
        self.n_features_out_ = len(self.feature_names_)
        return self

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray(self.feature_names_, dtype=object)

    def _view(self, da: xr.DataArray) -> xr.DataArray:
        if "units" in da.dims:
            da = da.sel(units=self.units)
        if "noise" in da.dims:
            da = da.sel(noise=float(self.noise), method="nearest")
        return da.isel(time=self.time_index_)

    def cube(self, ds: xr.DataArray | xr.Dataset) -> xr.DataArray:
        """All channels as one DataArray (run, layer, channel, time), NaN where not recorded."""
        parts = []
        template = ds["layer"]
        for o in self.observables_:
            if o in self.roles_:
                da = self._view(population_by_layer(ds, o))
                da = da.sel(role=self.roles_[o]).rename(role="channel")
                da = da.assign_coords(channel=[f"{o}.{r}" for r in self.roles_[o]])
                parts.append(da.transpose("run", "layer", "channel", "time"))
                continue
            da = self._view(ds[o])
            if "stat" in da.dims:
                da = da.sel(stat=self.stats_).rename(stat="channel")
                da = da.assign_coords(channel=[f"{o}.{s}" for s in self.stats_])
            else:
                da = da.expand_dims(channel=[o])
            if "layer" not in da.dims:
                da = da.broadcast_like(template)
            da = da.drop_vars([c for c in da.coords if c not in da.dims])
            parts.append(da.transpose("run", "layer", "channel", "time"))
        return xr.concat(parts, dim="channel").astype(float)

    def learning_progress(self, ds: xr.Dataset) -> xr.DataArray:
        """Per run, the fraction of its learning done at each seen time point (run, time):
        p(t) = integral_0^t v / integral_0^T v (trapezoids over the seen points), with the
        speed v(t) = raw_norm of the output layer's recorded activity change at t, in this
        view (at t_0, where no change exists yet, the first recorded one). A run whose output
        never changes gets p = t / T."""
        da = self._view(ds["activity_change"])
        if "stat" in da.dims:
            da = da.sel(stat="raw_norm") if "raw_norm" in da["stat"].values else np.sqrt(
                da.sel(stat="sq_mean"))
        last = _last_layer(ds)
        v = da.where(last).max("layer").transpose("run", "time").values.astype(float)
        first = np.take_along_axis(v, np.argmax(np.isfinite(v), axis=1)[:, None], 1)
        v = np.where(np.isfinite(v), v, first)
        v = np.where(np.isfinite(v), np.abs(v), 0.0)
        t = np.arange(v.shape[1], dtype=float)
        if v.shape[1] < 2:
            return xr.DataArray(np.ones_like(v), dims=("run", "time"))
        steps = 0.5 * (v[:, 1:] + v[:, :-1])
        p = np.concatenate([np.zeros((len(v), 1)), np.cumsum(steps, axis=1)], axis=1)
        total = p[:, -1:]
        p = np.where(total > 0, p / np.where(total > 0, total, 1.0), t / t[-1])
        return xr.DataArray(p, dims=("run", "time"), coords={"run": ds["run"].values})

    def _initial(self, ds: xr.Dataset) -> dict[str, xr.DataArray]:
        """Per observable with statistics, its statistics at the first time point in this
        view (run, layer, stat); "activity_change" maps to the activations' (the size of the
        activity the change is measured against)."""
        out = {}
        for o in self.observables_:
            src = "activations" if o == "activity_change" else o
            if src not in ds.data_vars or "stat" not in ds[src].dims:
                continue
            da = ds[src]
            if "units" in da.dims:
                da = da.sel(units=self.units)
            if "noise" in da.dims:
                da = da.sel(noise=float(self.noise), method="nearest")
            da = da.isel(time=0, drop=True)
            out[o] = da.drop_vars([c for c in da.coords if c not in da.dims]).astype(float)
        return out

    def layer_exists(self, ds: xr.Dataset) -> xr.DataArray:
        """(run, layer) mask: a layer exists in a run where any of its layer-wise variables holds
        a finite value (stores of mixed architectures pad missing layers with NaN)."""
        layered = [v for v in ds.data_vars if {"run", "layer"} <= set(ds[v].dims)
                   and v != "depth"]
        if not layered:
            return xr.ones_like(ds["run"].astype(bool) & ds["layer"].astype(bool))
        mask = None
        for v in layered:
            fin = np.isfinite(ds[v]).any(dim=[d for d in ds[v].dims if d not in ("run", "layer")])
            mask = fin if mask is None else (mask | fin)
        return mask.transpose("run", "layer")

    def depth_of(self, ds: xr.Dataset) -> xr.DataArray:
        """Relative depth (run, layer): the store's `depth` where present and finite, else
        (i - 1) / (L - 1) for layer i of the run's L existing layers (0 for L = 1)."""
        exists = self.layer_exists(ds)
        n_layers = exists.sum("layer")
        position = exists.cumsum("layer") - 1
        computed = (position / np.maximum(n_layers - 1, 1)).where(exists)
        if "depth" in ds:
            given = ds["depth"].broadcast_like(exists).astype(float)
            return given.where(np.isfinite(given), computed).transpose("run", "layer")
        return computed.transpose("run", "layer")

    def transform(self, ds: xr.Dataset) -> np.ndarray:
        """Rows = existing (run, layer) pairs in `ds` order; NaN (not recorded, e.g. the first
        activity change or alignment of a rule without feedback weights) reads as 0."""
        return self.samples_frame(ds)[0]

    def samples_frame(self, ds: xr.Dataset) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(X, run ids, layer names) of the existing (run, layer) pairs."""
        if not hasattr(self, "channels_"):
            raise ConfigError("TrajectoryFeatures must be fitted before transform")
        exists = self.layer_exists(ds).stack(sample=("run", "layer"))
        cube = self.cube(ds)
        logged = np.zeros(len(self.channels_), bool)
        if self.reference == "initial":
            cube, logged = relative_to_initial(cube, self._initial(ds))
        if self.time_axis == "progress":
            cube = resample_on_progress(cube, self.learning_progress(ds))
        cube = cube.stack(sample=("run", "layer"))
        flat = cube.stack(feature=("channel", "time")).transpose("sample", "feature")
        x = np.nan_to_num(flat.values, nan=0.0, posinf=0.0, neginf=0.0)
        x = np.clip(x, -1e12, 1e12)
        if self.signed_log:
            tame = np.repeat(~logged, self.n_times_)
            x[:, tame] = np.sign(x[:, tame]) * np.log1p(np.abs(x[:, tame]))
        if self.depth:
            d = self.depth_of(ds).stack(sample=("run", "layer")).transpose("sample")
            x = np.concatenate([x, np.nan_to_num(d.values)[:, None]], axis=1)
        keep = exists.transpose("sample").values.astype(bool)
        runs = np.asarray(exists["run"].values)[keep].astype(str)
        layers = np.asarray(exists["layer"].values)[keep].astype(str)
        return x[keep], runs, layers


def relative_to_initial(cube: xr.DataArray, initial: dict[str, xr.DataArray] | None = None
                        ) -> tuple[xr.DataArray, np.ndarray]:
    """Every channel of a feature cube (run, layer, channel, time) relative to its value
    before learning, and which channels became log-ratios. With x0 = x(t_0), the first time
    point, and s0 = sqrt(sq_mean(t_0)) the observable's root mean square then:

        >= 0 by construction (`is_positive`):       log(x(t) / x0)
        raw_mean, raw_median, raw_q75 (power 1):    (x(t) - x0) / s0
        skew, kurtosis, other signed channels:      x(t) - x0
        rsa_initial, rsa_previous, change_alignment: x(t) (already relative to earlier times)

    `activity_change` (NaN at t_0: a change has no value before learning) is taken relative to
    the activity itself: log(x(t) / a0) for its positive statistics, a0 the same statistic of
    the activations at t_0, x(t) / s0 (s0 the activations' rms) for raw_mean / median / q75,
    x(t) for skew and kurtosis. `initial` maps an observable to its statistics at t_0 (run,
    layer, stat), with "activity_change" mapped to the activations'; where a reference is
    missing, the channel's first finite value stands in (for activity change, its first
    recorded change). A ratio with a zero or non-finite operand (a silent layer) is NaN, so
    every result is unchanged when a network's weights or activity are scaled by a constant."""
    initial = initial or {}
    values = cube.values.astype(float)
    out = np.full_like(values, np.nan)
    channels = [str(c) for c in cube["channel"].values]
    logged = np.zeros(len(channels), bool)

    def at_start(obs: str, stat: str) -> np.ndarray | None:
        ref = initial.get(obs)
        if ref is None or stat not in ref["stat"].values:
            return None
        ref = ref.sel(stat=stat).sel(run=cube["run"], layer=cube["layer"])
        return ref.transpose("run", "layer").values[..., None]

    def ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            r = a / b
        return np.where(np.isfinite(r), r, np.nan)

    for j, ch in enumerate(channels):
        x = values[:, :, j]
        obs, _, stat = ch.partition(".")
        if obs in _SELF_REFERENCED:
            out[:, :, j] = x
            continue
        change = obs == "activity_change"
        first = np.take_along_axis(x, np.argmax(np.isfinite(x), axis=-1)[..., None], -1)
        x0 = first if change else x[..., :1]
        power1 = stat in ("raw_mean", "raw_median", "raw_q75")
        if is_positive(ch):
            logged[j] = True
            ref = at_start(obs, stat)
            r = ratio(x, x0 if ref is None else ref)
            out[:, :, j] = np.where(r > 0, np.log(np.where(r > 0, r, 1.0)), np.nan)
        elif power1 and at_start(obs, "sq_mean") is not None:
            s0 = np.sqrt(at_start(obs, "sq_mean"))
            out[:, :, j] = ratio(x if change else x - x0, s0)
        elif change and stat.endswith(("_skew", "_kurtosis")):
            out[:, :, j] = x
        else:
            out[:, :, j] = x - x0
    return cube.copy(data=out), logged


def resample_on_progress(cube: xr.DataArray, progress: xr.DataArray) -> xr.DataArray:
    """Each run's trajectories (cube: run, layer, channel, time) linearly interpolated at
    evenly spaced learning progress q_j = j / (T - 1), from its progress p (run, time: seen time
    points, increasing from 0 to 1; `TrajectoryFeatures.learning_progress`). A value missing
    (NaN) at a time point is interpolated from the neighbours that have one."""
    values = cube.transpose("run", "layer", "channel", "time").values.astype(float)
    p = progress.sel(run=cube["run"]).transpose("run", "time").values
    n_t = values.shape[-1]
    q = np.linspace(0.0, 1.0, n_t)
    out = np.full_like(values, np.nan)
    for r in range(values.shape[0]):
        x = values[r].reshape(-1, n_t)
        pr = np.maximum.accumulate(p[r])
        res = np.full_like(x, np.nan)
        for i, row in enumerate(x):
            ok = np.isfinite(row)
            if ok.sum() >= 2:
                res[i] = np.interp(q, pr[ok], row[ok])
            elif ok.sum() == 1:
                res[i] = row[ok][0]
        out[r] = res.reshape(values.shape[1:])
    return cube.transpose("run", "layer", "channel", "time").copy(data=out)


@dataclass
class Samples:
    """Samples per (run, layer) with their label, group (run id) and per-run metadata."""

    X: np.ndarray
    y: np.ndarray
    groups: np.ndarray
    layers: np.ndarray
    feature_names: list[str]
    channels: list[str]
    n_times: int
    n_static: int
    meta: dict[str, np.ndarray] = field(default_factory=dict)

    def subset(self, mask: np.ndarray) -> Samples:
        return Samples(self.X[mask], self.y[mask], self.groups[mask], self.layers[mask],
                       self.feature_names, self.channels, self.n_times, self.n_static,
                       {k: v[mask] for k, v in self.meta.items()})

    @property
    def n_runs(self) -> int:
        return len(np.unique(self.groups))


def usable_runs(ds: xr.Dataset, statuses: Sequence[str] = ("ok",)) -> xr.Dataset:
    """The runs whose `status` is in `statuses` (diverged or failed runs have truncated
    trajectories and are left out by default; the caller reports how many)."""
    if "status" not in ds.coords:
        return ds
    keep = np.isin(np.asarray(ds["status"].values).astype(str), list(statuses))
    return ds.isel(run=np.flatnonzero(keep))


def make_samples(ds: xr.Dataset, features: TrajectoryFeatures, label: str = "rule",
                 meta_keys: Sequence[str] = ()) -> Samples:
    """Fit `features` on `ds` if needed and return the labelled, grouped samples."""
    if not hasattr(features, "channels_"):
        features.fit(ds)
    labels = run_values(ds, label).astype(str)
    x, runs, layers = features.samples_frame(ds)
    by_run = dict(zip(np.asarray(ds["run"].values).astype(str), range(ds.sizes["run"])))
    idx = np.array([by_run[r] for r in runs], dtype=int)
    meta = {}
    for k in meta_keys:
        if k in ds.coords and ds[k].dims == ("run",):
            meta[k] = np.asarray(ds[k].values)[idx]
    return Samples(x, labels[idx], runs, layers, list(features.feature_names_),
                   list(features.channels_), features.n_times_, features.n_static_, meta)


def split_runs(ds: xr.Dataset) -> list[xr.Dataset]:
    """A Dataset with a `run` dim as one Dataset per run in the run-file layout: per-run
    coordinates become attributes (and the run id `run_id`), as `lrsim.store.write_run` wants."""
    per_run = [str(c) for c in ds.coords if ds[c].dims == ("run",) and c != "run"]
    out = []
    for i, rid in enumerate(str(r) for r in ds["run"].values):
        one = ds.isel(run=i)
        attrs = {k: one[k].item() for k in per_run}
        one = one.drop_vars([*per_run, "run"])
        one = one.assign_coords({c: one[c].astype(object) for c in one.coords
                                 if one[c].dtype.kind == "U"})
        one.attrs = {**{k: (v if isinstance(v, int | float | str) else str(v))
                        for k, v in attrs.items()}, "run_id": rid}
        out.append(one)
    return out


def synthetic_scan(n_runs_per_rule: int = 12, rules: Sequence[str] = ("a", "b", "c"),
                   planted: str | None = "weights.abs_q75", n_time: int = 11,
                   layers_per_arch: Sequence[int] = (2, 3), seed: int = 0,
                   effect: float = 3.0, run_prefix: str = "r") -> xr.Dataset:
    """A store-format Dataset (dims run, time, layer, stat, units, noise) of pure noise, with
    the label planted in one channel `observable.stat` (None = no signal anywhere): there the
    trajectory is noise + effect * k * t / T for the k-th rule. Layers missing in the smaller
    architecture are NaN, as in a real mixed store. For checking the identification pipeline
    against a known answer."""
    rng = np.random.default_rng(seed)
    stats = [f"{v}_{s}" for v in ("raw", "abs", "sq") for s in ("mean", "var", "median", "q75")]
    units, noise = [0, 10], [0.0, 0.5]
    n_layers = max(layers_per_arch)
    layers = [f"layer{i + 1}" for i in range(n_layers)]
    run_ids, rule_of, arch_of, seed_of = [], [], [], []
    for k, rule in enumerate(rules):
        for j in range(n_runs_per_rule):
            run_ids.append(f"{run_prefix}{k:02d}{j:03d}")
            rule_of.append(rule)
            arch_of.append(layers_per_arch[j % len(layers_per_arch)])
            seed_of.append(j)
    n_run = len(run_ids)
    shape = (n_run, n_time, n_layers, len(stats), len(units), len(noise))
    t = np.linspace(0, 1, n_time)
    data = {}
    for obs in OBSERVABLES:
        arr = rng.normal(size=shape)
        if planted is not None and planted.split(".")[0] == obs:
            s = stats.index(planted.split(".")[1])
            code = np.array([list(rules).index(r) for r in rule_of], float)
            arr[:, :, :, s] += effect * code[:, None, None, None, None] * t[None, :, None, None,
                                                                             None]
        for i, n_l in enumerate(arch_of):
            arr[i, :, n_l:] = np.nan
        data[obs] = (("run", "time", "layer", "stat", "units", "noise"), arr)
    align = rng.normal(size=(n_run, n_time, n_layers))
    loss = rng.normal(size=(n_run, n_time))
    depth = np.full((n_run, n_layers), np.nan)
    for i, n_l in enumerate(arch_of):
        align[i, :, n_l:] = np.nan
        depth[i, :n_l] = np.linspace(0, 1, n_l) if n_l > 1 else 0.0
    data["alignment"] = (("run", "time", "layer"), align)
    data["loss"] = (("run", "time"), loss)
    data["test_accuracy"] = (("run", "time"), rng.normal(size=(n_run, n_time)))
    families = {r: f"family_{i % 2}" for i, r in enumerate(rules)}
    coords = {
        "run": run_ids, "time": np.arange(n_time), "step": ("time", np.arange(n_time) * 10),
        "layer": layers, "stat": stats, "units": units, "noise": noise,
        "rule": ("run", rule_of), "rule_family": ("run", [families[r] for r in rule_of]),
        "optimizer": ("run", ["sgd"] * n_run),
        "architecture": ("run", ["-".join(["32"] * (n - 1)) for n in arch_of]),
        "seed": ("run", seed_of), "lr": ("run", [0.01 * (1 + s % 3) for s in seed_of]),
        "status": ("run", ["ok"] * n_run), "task": ("run", ["synthetic"] * n_run),
        "depth": (("run", "layer"), depth),
    }
    return xr.Dataset(data, coords=coords)
