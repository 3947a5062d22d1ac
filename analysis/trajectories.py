"""Trajectory panels: one statistic of one observable over training, by class.

Each run's trajectory is averaged over its existing layers (and, for spiking statistics, over
its populations), read from one (units, noise) view; then, per class, the mean over runs and
mean -/+ one standard deviation. The x axis is training progress: the recording's `step` over
the run's last recorded step (0 = before training, 1 = end), else the time index over its last.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import xarray as xr

from lrsim.analysis.results import Band, TrajectoryPanel


def training_progress(data: xr.Dataset) -> np.ndarray:
    """Training progress in [0, 1] per time point (averaged over runs if steps vary by run)."""
    n = data.sizes["time"]
    if "step" in data.coords and "time" in data["step"].dims:
        step = data["step"].astype(float)
        last = step.max("time")
        prog = step / last.where(last > 0, 1.0)
        if "run" in prog.dims:
            prog = prog.mean("run")
        return np.asarray(prog.values, float)
    return np.linspace(0.0, 1.0, n) if n > 1 else np.zeros(1)


def per_run(data: xr.Dataset, observable: str, statistic: str | None, units: int,
            noise: float) -> xr.DataArray:
    """(run, time): the observable's statistic in one view, averaged over layers and
    populations."""
    da = data[observable]
    if "units" in da.dims:
        da = da.sel(units=units)
    if "noise" in da.dims:
        da = da.sel(noise=float(noise), method="nearest")
    if "stat" in da.dims:
        da = da.sel(stat=statistic)
    rest = [d for d in da.dims if d not in ("run", "time")]
    if rest:
        da = da.mean(rest, skipna=True)
    return da.transpose("run", "time").astype(float)


def class_panel(data: xr.Dataset, observable: str, label: str, kind: str,
                statistic: str | None = None, units: int = 0, noise: float = 0.0
                ) -> TrajectoryPanel:
    """The panel of `observable` (its `statistic` if it has a stat dim) by class of `label`."""
    values = per_run(data, observable, statistic, units, noise).values
    labels = np.asarray(data[label].values).astype(str)
    bands = []
    for c in sorted(set(labels)):
        v = values[labels == c]
        with warnings.catch_warnings():  # all-NaN time points (nothing recorded yet)
            warnings.simplefilter("ignore", RuntimeWarning)
            mean = np.nanmean(v, axis=0)
            sd = np.nanstd(v, axis=0)
        bands.append(Band(c, int(len(v)), mean.tolist(), (mean - sd).tolist(),
                          (mean + sd).tolist()))
    return TrajectoryPanel(observable, kind, statistic if "stat" in data[observable].dims
                           else None, training_progress(data).tolist(), bands)


def panel_statistic(data: xr.Dataset, observable: str, ranked_channels: Sequence[str]
                    ) -> str | None:
    """The statistic to show for `observable`: its highest-ranked `observable.stat` channel in
    `ranked_channels` (most informative first), else the store's first statistic."""
    if "stat" not in data[observable].dims:
        return None
    stats = [str(s) for s in data["stat"].values]
    for ch in ranked_channels:
        head, _, stat = ch.partition(".")
        if head == observable and stat in stats:
            return stat
    return stats[0]


def trajectory_panels(data: xr.Dataset, label: str, kinds: dict[str, str],
                      ranked_channels: Sequence[str], units: int = 0, noise: float = 0.0
                      ) -> list[TrajectoryPanel]:
    """One panel per observable in `kinds` (observable -> kind), in that order."""
    return [class_panel(data, o, label, kind, panel_statistic(data, o, ranked_channels),
                        units, noise) for o, kind in kinds.items()]
