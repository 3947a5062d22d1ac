"""Trajectory panels: one statistic of one observable over training, by class.

Each run's trajectory is averaged over its existing layers (and, for spiking statistics, over
its populations), read from one (units, noise) view; then, per class, `lrsim.plot`'s
`trajectory_summary` gives the mean over runs and the band mean -/+ one standard deviation on
the training-progress axis (the fraction of training done, step / steps; runs on other
schedules are interpolated onto the union of their points).
"""

from __future__ import annotations

from collections.abc import Sequence

import xarray as xr

from lrsim.analysis.plot import PROGRESS_LABEL, trajectory_summary
from lrsim.analysis.results import Band, TrajectoryPanel
from lrsim.metadata import units_of

SPREAD = "sd"


def layer_mean(data: xr.Dataset, observable: str, statistic: str | None, units: int,
               noise: float) -> xr.DataArray:
    """(run, time[, stat of length 1]): the observable's statistic in one view, averaged over
    layers and populations."""
    da = data[observable]
    if "units" in da.dims:
        da = da.sel(units=units)
    if "noise" in da.dims:
        da = da.sel(noise=float(noise), method="nearest")
    if "stat" in da.dims:
        da = da.sel(stat=[statistic])
    rest = [d for d in da.dims if d not in ("run", "time", "stat")]
    if rest:
        da = da.mean(rest, skipna=True)
    return da.drop_vars([c for c in da.coords if c not in da.dims]).astype(float)


def class_panel(data: xr.Dataset, observable: str, label: str, kind: str,
                statistic: str | None = None, units: int = 0, noise: float = 0.0
                ) -> TrajectoryPanel:
    """The panel of `observable` (its `statistic` if it has a stat dim) by class of `label`."""
    keep = [c for c in (label, "step", "steps", "status") if c in data.coords]
    small = xr.Dataset({observable: layer_mean(data, observable, statistic, units, noise)},
                       coords={c: data[c] for c in keep})
    small = small.assign_coords(run=data["run"].values)
    s = trajectory_summary(small, observable, stat=statistic, by=label, spread=SPREAD,
                           statuses=None)
    bands = [Band(str(g), len(str(s["members"].values[i]).split(",")),
                  s["center"].values[i].tolist(), s["lower"].values[i].tolist(),
                  s["upper"].values[i].tolist()) for i, g in enumerate(s["group"].values)]
    over = [str(d) for d in data[observable].dims
            if d not in ("run", "time", "stat", "units", "noise")]
    return TrajectoryPanel(observable, kind, statistic, s["progress"].values.tolist(), bands,
                           units_of(data, observable, statistic), PROGRESS_LABEL, over)


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

