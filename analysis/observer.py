"""The observer core: what both substrates' observers share, from sampled activity to a run file.

A substrate's observer adapter (`lrsim.models.rate.observer`, `lrsim.models.spiking.observer`)
knows its network: when to measure and what the weights and activity of a layer are. This core
turns those samples into the trajectory format (`lrsim.contract`), the same for every substrate,
as in Nayebi et al. 2020 ("Identifying Learning Rules From Neural Network Observables",
NeurIPS), with the experimentalist's constraints applied before the statistics:

    schedule         `schedule_steps`: the update steps at which to measure
    undersampling    units = n: record n units of a layer, drawn once per run from the
                     replica's seed (the same units for the whole run; nested: the n recorded
                     units are the first n of one random order, `unit_order`); 0 = all units.
                     n may not exceed a hidden layer's width (`check_units`, ConfigError); a
                     layer with at most n units (the readout, often a few) is recorded whole
    noise            `measure`: x_obs = x + sigma * rms(x) * eps, eps ~ N(0, 1) i.i.d. per entry
                     and per measurement, rms(x) = sqrt(mean x^2) over the recorded entries
                     (computed as s sqrt(mean (x/s)^2), s = max|x|, so no square overflows);
                     the variance statistic rises by sigma^2 rms(x)^2 in expectation
    statistics       `ViewStatistics`: `lrsim.analysis.stats.summary_stats` of every (units,
                     noise) view of every observable, batched per sample size
    geometry         `GeometryViews`: the population geometry of every view's recorded (noisy)
                     activity over the stimuli (`lrsim.analysis.geometry`): dimensionality,
                     representational similarity with the first and the previous measurement
                     and with the layer below, coupling of two connected layers; and of the
                     recorded synapses: synaptic_similarity (`record_synapses`)
    spike trains     `population_statistics`: rate, CV of ISI, Fano factor, correlation,
                     synchrony and E/I balance per population and window
                     (`lrsim.analysis.spike_stats`)
    run file         `trajectory_dataset`, `final_dataset`: coordinates, variables with their
                     CF metadata (`describe_variables`) and the run's attributes

Every (units, noise) pair is one view, a coordinate of the result. Random draws come from the
adapter (one generator per replica), so a run's record does not depend on which replicas share
its batch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import xarray as xr
from torch import Tensor

from lrsim.analysis import geometry, spike_stats
from lrsim.analysis.stats import summary_stats
from lrsim.config import check_units  # noqa: F401 - re-exported for the observers
from lrsim.contract import (
    BALANCE_STATISTICS,
    GEOMETRY_DIMS,
    GEOMETRY_OBSERVABLES,
    SPIKING_STATISTICS,
    SYNAPTIC_OBSERVABLES,
    VIEW_DIMS,
    layer_depths,
    layer_names,
    run_attributes,
    variable_attrs,
)
from lrsim.metadata import describe

if TYPE_CHECKING:
    from lrsim.config import Experiment, ObserveSpec, Replica


def schedule_steps(total_steps: int, spec: ObserveSpec) -> list[int]:
    """The training steps at which to measure (0 = before the first update, total = the end).

    every = e:         0, e, 2e, ... and the last step
    schedule "linear": `points` steps evenly spaced on [0, total], rounded
    schedule "log":    0 and `points - 1` steps log-spaced on [1, total], rounded
    Duplicates after rounding are merged (short runs can have fewer points).
    """
    if spec.every is not None:
        steps = set(range(0, total_steps + 1, spec.every)) | {total_steps}
    elif spec.schedule == "log":
        steps = {0} | {int(round(s)) for s in np.geomspace(1, max(total_steps, 1),
                                                           spec.points - 1)}
    else:
        steps = {int(round(s)) for s in np.linspace(0, total_steps, spec.points)}
    return sorted(s for s in steps if 0 <= s <= total_steps)


# -- which units ------------------------------------------------------------------------------
def unit_order(seed: int, layer: int, n: int) -> np.ndarray:
    """The run's random order of layer `layer`'s n units (recorded units: its first u)."""
    return np.random.default_rng([int(seed), 2, layer]).permutation(n)


def recorded(order: np.ndarray, u: int) -> np.ndarray | None:
    """The recorded units of a view (the first u of `order`), None where the view records the
    whole layer (u = 0 or u >= the layer's width)."""
    return None if u == 0 or u >= len(order) else order[:u]


# -- measurement noise ------------------------------------------------------------------------
def measure(x: Tensor, noise: Sequence[float], draw: Callable[[], Tensor]) -> Tensor:
    """x (K, n) as seen at every noise level: (K, Z, n), x + sigma rms(x) eps.

    `draw()` gives eps (K, n) ~ N(0, 1), called once per non-zero noise level in order (the
    adapter's per-replica generators)."""
    views = []
    rms = None
    for sigma in noise:
        if sigma == 0.0:
            views.append(x)
            continue
        if rms is None:
            xd = x.double()
            if x.shape[-1] == 0:
                rms = torch.zeros_like(x[..., :1])
            else:
                scale = xd.abs().amax(-1, keepdim=True).clamp_min(1e-300)
                rms = (scale * (xd / scale).pow(2).mean(-1, keepdim=True).sqrt()).to(x.dtype)
        views.append(x + sigma * rms * draw())
    return torch.stack(views, 1)


# -- statistics of the views ------------------------------------------------------------------
class ViewStatistics:
    """Statistics of every observable's views over a run: arrays (K, T, L, S, U, Z) per
    observable (NaN where nothing was measured). Add the views of one time point with `add`,
    then `summarise` them in one `summary_stats` call per sample size."""

    def __init__(self, observables: Sequence[str], k: int, n_time: int, n_layers: int,
                 stat_names: Sequence[str], n_units: int, n_noise: int):
        self.stat_names = list(stat_names)
        self.n_noise = n_noise
        shape = (k, n_time, n_layers, len(self.stat_names), n_units, n_noise)
        self.data = {o: np.full(shape, np.nan) for o in observables}
        self._pending: list[tuple[str, int, int, Tensor]] = []

    def add(self, observable: str, layer: int, view: int, seen: Tensor) -> None:
        """One view's measurement `seen` (K, Z, n) of `observable` in `layer`."""
        self._pending.append((observable, layer, view, seen))

    def summarise(self, t: int) -> None:
        """Statistics of every pending view into time point t."""
        pending, self._pending = self._pending, []
        by_size: dict[int, list[int]] = {}
        for i, (_, _, _, x) in enumerate(pending):
            by_size.setdefault(x.shape[-1], []).append(i)
        z = self.n_noise
        for members in by_size.values():
            block = torch.cat([pending[i][3] for i in members], 1)  # (K, sum Z, n)
            stats = summary_stats(block.detach().cpu().numpy(), self.stat_names)
            for j, i in enumerate(members):
                obs, l, v, _ = pending[i]
                # (K, Z, S) -> the (K, S, Z) slot of time t, layer l, view v
                self.data[obs][:, t, l, :, v, :] = stats[:, j * z:(j + 1) * z].transpose(0, 2, 1)


# -- population geometry ----------------------------------------------------------------------
RSA_PROBES = 64  # stimuli behind the RDMs of the rsa_* observables (the first of the probe set)


class GeometryViews:
    """The population-geometry observables (`GEOMETRY_OBSERVABLES` among `observables`) of
    every layer and (units, noise) view over a run: arrays (K, T, L, U, Z) (NaN where nothing
    was measured). `record(t, activity, stimuli)` measures one time point from the recorded
    activity of every (layer, view), (K, Z, P, u): P stimuli x u recorded units, noise already
    applied, exactly what the recording gives; `stimuli` (K, P, n_in) are the inputs (the
    "layer below" layer 1). With `same_stimuli = False` (the stimuli differ between time
    points, as the trials of a spiking run's windows) the similarities across time are left
    NaN: no RDM of the same stimuli exists to compare with."""

    def __init__(self, observables: Sequence[str], k: int, n_time: int, n_layers: int,
                 n_units: int, n_noise: int, *, same_stimuli: bool = True):
        shape = (k, n_time, n_layers, n_units, n_noise)
        self.data = {o: np.full(shape, np.nan) for o in observables
                     if o in GEOMETRY_OBSERVABLES}
        self.same_stimuli = same_stimuli
        self._first: dict[tuple[int, int], np.ndarray] = {}
        self._previous: dict[tuple[int, int], np.ndarray] = {}
        self._first_activity: dict[tuple[int, int], np.ndarray] = {}

    def __bool__(self) -> bool:
        return bool(self.data)

    @property
    def of_activity(self) -> bool:
        """Whether any requested observable is of the recorded activity (`record`)."""
        return any(o not in SYNAPTIC_OBSERVABLES for o in self.data)

    def record(self, t: int, activity: Mapping[tuple[int, int], np.ndarray],
               stimuli: np.ndarray, targets: np.ndarray | None = None) -> None:
        """The geometry of every (layer, view) in `activity` at time index t; `targets`
        (K, P, c): what the task asks for on each stimulus (rsa_target; None: not known)."""
        want = self.data
        n_layers, n_views = want[next(iter(want))].shape[2:4]
        first = activity[(0, 0)]
        k, z, p = first.shape[:3]
        n_rsa = min(RSA_PROBES, p)
        x0 = np.broadcast_to(np.asarray(stimuli, float)[:, None], (k, z, *stimuli.shape[1:]))
        across_time = self.same_stimuli and bool({"rsa_initial", "rsa_previous"} & set(want))
        rdms: dict[tuple[int, int], np.ndarray] = {}
        if "rsa_layer" in want:
            below = geometry.rdm(x0[:, :, :n_rsa])
            rdms.update({(-1, v): below for v in range(n_views)})
        target = None
        if "rsa_target" in want and targets is not None:
            target = geometry.rdm(np.asarray(targets, float)[:, None, :n_rsa])  # (K, 1, M)
        for l in range(n_layers):
            for v in range(n_views):
                a = activity[(l, v)]
                pre = x0 if l == 0 else activity[(l - 1, v)]
                if "dimensionality" in want:
                    want["dimensionality"][:, t, l, v] = geometry.dimensionality(a)
                if "coupling" in want:
                    want["coupling"][:, t, l, v] = geometry.coupling(pre, a)
                if "change_alignment" in want and self.same_stimuli:
                    start = self._first_activity.setdefault((l, v), a)
                    if start is not a:
                        want["change_alignment"][:, t, l, v] = geometry.change_alignment(
                            start, a)
                if not across_time and "rsa_layer" not in want and target is None:
                    continue
                d = rdms[(l, v)] = geometry.rdm(a[:, :, :n_rsa])
                if "rsa_layer" in want:
                    want["rsa_layer"][:, t, l, v] = geometry.rdm_similarity(d, rdms[(l - 1, v)])
                if target is not None:
                    want["rsa_target"][:, t, l, v] = geometry.rdm_similarity(d, target)
                if not across_time:
                    continue
                start = self._first.setdefault((l, v), d)
                if "rsa_initial" in want and start is not d:
                    want["rsa_initial"][:, t, l, v] = geometry.rdm_similarity(d, start)
                before = self._previous.get((l, v))
                if "rsa_previous" in want and before is not None:
                    want["rsa_previous"][:, t, l, v] = geometry.rdm_similarity(d, before)
                self._previous[(l, v)] = d

    def record_synapses(self, t: int, layer: int, view: int, incoming: np.ndarray,
                        outgoing: np.ndarray) -> None:
        """synaptic_similarity of one (layer, view) at time index t from the recorded units'
        synaptic changes since the first measurement: `incoming` (K, Z, u, n_in), `outgoing`
        (K, Z, u, m) (onto the recorded units of the layer above; noise already applied)."""
        if "synaptic_similarity" in self.data:
            self.data["synaptic_similarity"][:, t, layer, view] = geometry.synaptic_similarity(
                incoming, outgoing)

    def variables(self, k: int) -> dict[str, tuple[tuple[str, ...], np.ndarray]]:
        """Replica k's geometry as Dataset variables (dims `GEOMETRY_DIMS`)."""
        return {o: (GEOMETRY_DIMS, a[k].copy()) for o, a in self.data.items()}


# -- spike trains -----------------------------------------------------------------------------
def population_statistics(spikes: Mapping[str, tuple[np.ndarray, np.ndarray]],
                          sizes: Mapping[str, int],
                          currents: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
                          windows: Sequence[tuple[float, float]]) -> dict[str, np.ndarray]:
    """Per window [t0, t1) (s) and population: the spike-train statistics of its recorded
    neurons (spikes: pop -> (neuron index, time s); sizes: recorded neurons) and, where its
    currents (I_e, I_i in mV, (neurons, samples); sample times s) were recorded, the E/I
    balance. Returns var -> (T, P), NaN where a window is empty."""
    pops = list(spikes)
    out = {v: np.full((len(windows), len(pops)), np.nan)
           for v in (*SPIKING_STATISTICS, *BALANCE_STATISTICS)}
    for ti, (t0, t1) in enumerate(windows):
        if t1 - t0 <= 0:
            continue
        for p_i, pop in enumerate(pops):
            i_arr, t_arr = spikes[pop]
            st = spike_stats.spike_statistics(i_arr, t_arr, sizes[pop], t0, t1)
            for v in SPIKING_STATISTICS:
                out[v][ti, p_i] = st[v]
            if pop in currents:
                ie, ii, tt = currents[pop]
                sel = (tt >= t0) & (tt < t1)
                if sel.sum() > 2:
                    bal = spike_stats.balance_index(ie[:, sel], ii[:, sel])
                    for v in BALANCE_STATISTICS:
                        out[v][ti, p_i] = bal[v]
    return out


# -- the run file -----------------------------------------------------------------------------
def describe_variables(ds: xr.Dataset, substrate: str) -> xr.Dataset:
    """Attach each known variable's role (`lrsim.contract.variable_attrs`) and every variable's
    and coordinate's CF metadata, `Conventions` (`lrsim.metadata.describe`)."""
    for name in ds.data_vars:
        ds[name].attrs.update(variable_attrs(str(name), substrate))
    return describe(ds)


def trajectory_dataset(steps: Sequence[int], stat_names: Sequence[str], units: Sequence[int],
                       noise: Sequence[float], views: Mapping[str, np.ndarray],
                       alignment: np.ndarray, loss: np.ndarray, test_accuracy: np.ndarray,
                       extra: Mapping[str, Any] | None = None,
                       extra_coords: Mapping[str, Any] | None = None) -> xr.Dataset:
    """One run's trajectory: `views[o]` (T, L, S, U, Z) per observable, alignment (T, L),
    loss and test_accuracy (T,), then `extra` variables; coordinates time, step, layer, depth,
    stat, units, noise (+ `extra_coords`)."""
    n_layers = alignment.shape[1]
    coords = {
        "time": np.arange(len(steps)), "step": ("time", np.asarray(steps)),
        "layer": layer_names(n_layers), "depth": ("layer", layer_depths(n_layers)),
        "stat": list(stat_names), "units": np.asarray(units, dtype=np.int64),
        "noise": np.asarray(noise, dtype=np.float64), **(extra_coords or {}),
    }
    data: dict[str, Any] = {o: (VIEW_DIMS, a) for o, a in views.items()}
    data["alignment"] = (("time", "layer"), alignment)
    data["loss"] = ("time", loss)
    data["test_accuracy"] = ("time", test_accuracy)
    data.update(extra or {})
    return xr.Dataset(data, coords=coords)


def final_dataset(exp: Experiment, rep: Replica, replica: int, *, rule_family: str,
                  status: str, diverged_step: int | None, final_loss: float | None,
                  test_accuracy: float | None) -> xr.Dataset:
    """The run file when nothing was observed during training: `loss` and `test_accuracy` at
    the last step only, with the contract's attributes."""
    num = [np.nan if v is None else float(v) for v in (final_loss, test_accuracy)]
    ds = xr.Dataset({"loss": ("time", [num[0]]), "test_accuracy": ("time", [num[1]])},
                    coords={"time": [0], "step": ("time", [exp.train.steps])})
    ds.attrs.update(run_attributes(exp, rep, replica, rule_family=rule_family, status=status,
                                   diverged_step=diverged_step, final_loss=final_loss,
                                   test_accuracy=test_accuracy))
    return describe_variables(ds, exp.substrate)
