"""Figures of a store: statistics over training by rule, accuracy against the recording
protocol, confusion matrices. Matplotlib's object API (`matplotlib.figure.Figure`, no pyplot
state, renders headless); every axis is labelled with its quantity and units (from the store's
metadata, `lrsim.metadata`).

    import lrsim
    ds = lrsim.open_scan("runs/study")
    fig = lrsim.plot.trajectories(ds, "weights", stat="abs_mean", by="rule")
    fig.savefig("weights.png")

Training progress. Runs of different lengths and schedules share one axis: the fraction of
training done, f = step / steps (the `step` coordinate over the run's `steps`). A group's runs
are put on the union of their time points; a run is read at its own points and linearly
interpolated at the others inside its range (NaN outside it), so runs on one schedule are never
interpolated.

Mean and spread over a group's runs, at each training fraction, over the runs with a finite
value there (n, in the legend as the most runs seen):

    mean     (1/n) sum_r x_r                     center="median": the median
    sem      sd / sqrt(n), sd with ddof = 1      (the band mean +/- sem; none where n < 2)
    sd       the band mean +/- sd
    (lo, hi) the band between the lo and hi quantiles (numpy's linear interpolation),
             "iqr" = (0.25, 0.75)

`trajectory_summary` returns exactly what `trajectories` draws, as a Dataset.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from lrsim.errors import ConfigError
from lrsim.metadata import meta, units_of

Spread = str | tuple[float, float] | None

PROGRESS_LABEL = "fraction of training (step / steps)"
SWEEP_LABELS = {"units": "units recorded per layer", "noise": "relative measurement noise σ",
                "time_points": "time points", "fraction": "fraction of training seen"}
SWEEP_UNITS = {"units": None, "noise": "× rms", "time_points": None, "fraction": None}


# -- reading a store ---------------------------------------------------------------------------

def as_store(ds: xr.Dataset) -> xr.Dataset:
    """A store Dataset (with a `run` dimension) from a store or from one run (whose attributes
    become coordinates on a `run` dimension of length 1)."""
    if "run" in ds.dims:
        return ds
    rid = str(ds.attrs.get("run_id", "run"))
    labels = {k: ("run", [v]) for k, v in ds.attrs.items()
              if k != "run_id" and isinstance(v, str | int | float) and k not in ds.variables}
    return ds.expand_dims(run=[rid]).assign_coords(labels)


def progress(ds: xr.Dataset) -> xr.DataArray:
    """Fraction of training done at each time point, (run, time): step / steps (the run's
    `steps` coordinate); without `steps`, step / the run's last finite step; without `step`,
    time index / (T - 1)."""
    ds = as_store(ds)
    n_time = ds.sizes.get("time", 1)
    if "step" in ds.coords:
        step = ds["step"].astype(float)
    else:
        step = xr.DataArray(np.arange(n_time, dtype=float), dims="time")
    step = step.broadcast_like(ds["run"]).transpose("run", "time") if "time" in step.dims \
        else step
    if "steps" in ds.coords and ds["steps"].dims == ("run",):
        total = ds["steps"].astype(float)
    else:
        total = step.max("time")
    total = total.where(total > 0)
    return (step / total).transpose("run", "time").rename("progress")


def _choice(da: xr.DataArray, dim: str, value: Any, what: str) -> xr.DataArray:
    values = list(da[dim].values)
    if dim == "noise":
        close = np.isclose(np.asarray(values, float), float(value))
        if not close.any():
            raise ConfigError(f"{what}: noise={value!r} was not recorded; recorded: "
                              f"{[float(v) for v in values]}")
        return da.isel(noise=int(np.flatnonzero(close)[0]), drop=True)
    if value not in values:
        shown = [v.item() if hasattr(v, "item") else v for v in values]
        raise ConfigError(f"{what}: {dim}={value!r} is not in the store; available: {shown}")
    return da.sel({dim: value}, drop=True)


def _run_keys(ds: xr.Dataset, by: str | Sequence[str] | None) -> tuple[list[str], list[str]]:
    """Group label per run and the names of the keys."""
    n = ds.sizes["run"]
    if by is None:
        return ["all runs"] * n, []
    keys = [by] if isinstance(by, str) else list(by)
    cols = []
    for k in keys:
        if k not in ds.coords or ds[k].dims != ("run",):
            allowed = sorted(str(c) for c in ds.coords if ds[c].dims == ("run",) and c != "run")
            raise ConfigError(f"by={k!r} is not a per-run label of this store; allowed: "
                              f"{', '.join(allowed)}")
        cols.append([_fmt(v) for v in np.asarray(ds[k].values)])
    return [", ".join(parts) for parts in zip(*cols)], keys


def _fmt(v: Any) -> str:
    if isinstance(v, float | np.floating):
        return f"{float(v):g}"
    return str(v)


def _select(ds: xr.Dataset, variable: str, *, stat: str | None, layer: str | None,
            units: int, noise: float, population: str | None) -> tuple[xr.DataArray, str | None]:
    """The (run, time) values of one channel, and the statistic chosen (None if none)."""
    if variable not in ds.data_vars:
        raise ConfigError(f"'{variable}' is not a variable of this store; available: "
                          f"{', '.join(sorted(str(v) for v in ds.data_vars))}")
    da = ds[variable]
    if "time" not in da.dims:
        raise ConfigError(f"'{variable}' has no time dimension (dims {da.dims})")
    if "stat" in da.dims:
        stats = [str(s) for s in da["stat"].values]
        if stat is None:
            if len(stats) != 1:
                raise ConfigError(f"'{variable}' holds several statistics: choose one with "
                                  f"stat=..., e.g. {', '.join(stats[:6])}")
            stat = stats[0]
        da = _choice(da, "stat", stat, variable)
    elif stat is not None:
        raise ConfigError(f"'{variable}' has no stat dimension; leave stat=None")
    for dim, value in (("units", units), ("noise", noise), ("layer", layer),
                       ("population", population)):
        if dim in da.dims:
            if value is None:
                raise ConfigError(f"'{variable}' has a {dim} dimension: choose one with "
                                  f"{dim}=..., available: {list(map(str, da[dim].values))}")
            da = _choice(da, dim, value, variable)
    extra = [d for d in da.dims if d not in ("run", "time")]
    if extra:
        raise ConfigError(f"'{variable}': dimension(s) {extra} left after the selection")
    return da.transpose("run", "time"), stat


def _keep_status(ds: xr.Dataset, statuses: Iterable[str] | None) -> xr.Dataset:
    if statuses is None or "status" not in ds.coords:
        return ds
    keep = np.isin(np.asarray(ds["status"].values).astype(str), list(statuses))
    if not keep.any():
        raise ConfigError(f"no run has status in {list(statuses)}; statuses present: "
                          f"{sorted(set(np.asarray(ds['status'].values).astype(str)))}")
    return ds.isel(run=np.flatnonzero(keep))


def _on_grid(frac: np.ndarray, values: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """One run's values at its fractions `frac`, read on `grid`: exact at its own points,
    linear between its finite points, NaN outside them."""
    out = np.full(len(grid), np.nan)
    ok = np.isfinite(frac) & np.isfinite(values)
    if ok.any():
        order = np.argsort(frac[ok])
        f, v = frac[ok][order], values[ok][order]
        out = np.interp(grid, f, v, left=np.nan, right=np.nan)
    own = np.isfinite(frac)
    pos = np.searchsorted(grid, frac[own])
    out[pos] = values[own]  # a run's own points: its values, NaN included
    return out


def _summary(x: np.ndarray, spread: Spread, center: str) -> tuple[np.ndarray, ...]:
    """center, lower, upper, n over axis 0 (runs) of x (runs, points), NaN-aware."""
    n = np.isfinite(x).sum(0)
    with np.errstate(all="ignore"), _quiet():
        if center == "median":
            mid = np.nanmedian(x, 0)
        else:
            mid = np.nanmean(x, 0)
        if spread is None or spread == "none":
            lo = hi = np.full(x.shape[1], np.nan)
        elif spread in ("sem", "sd"):
            sd = np.nanstd(x, 0, ddof=1)
            sd = np.where(n >= 2, sd, np.nan)
            half = sd / np.sqrt(n) if spread == "sem" else sd
            lo, hi = mid - half, mid + half
        else:
            q = (0.25, 0.75) if spread == "iqr" else tuple(spread)
            lo, hi = np.nanquantile(x, q[0], 0), np.nanquantile(x, q[1], 0)
    return mid, lo, hi, n


class _quiet:
    def __enter__(self) -> None:
        import warnings

        self._w = warnings.catch_warnings()
        self._w.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc: Any) -> None:
        self._w.__exit__(*exc)


def _check_spread(spread: Spread, center: str) -> None:
    if center not in ("mean", "median"):
        raise ConfigError(f"center must be 'mean' or 'median' (got {center!r})")
    if spread is None or spread in ("sem", "sd", "iqr", "none"):
        return
    ok = (isinstance(spread, tuple | list) and len(spread) == 2
          and all(isinstance(q, int | float) and 0 <= q <= 1 for q in spread)
          and spread[0] < spread[1])
    if not ok:
        raise ConfigError(f"spread must be 'sem', 'sd', 'iqr', None or a quantile pair "
                          f"(lo, hi) with 0 <= lo < hi <= 1 (got {spread!r})")


def trajectory_summary(ds: xr.Dataset, variable: str = "weights", *, stat: str | None = None,
                       layer: str | None = None, units: int = 0, noise: float = 0.0,
                       population: str | None = None, by: str | Sequence[str] | None = "rule",
                       spread: Spread = "sem", center: str = "mean",
                       statuses: Iterable[str] | None = ("ok",)) -> xr.Dataset:
    """Mean (or median) and spread of one channel over each group's runs, on the training
    progress axis: a Dataset with dims (group, progress) and variables `center`, `lower`,
    `upper`, `n` (runs with a finite value at that point) and `members` (the group's run ids,
    comma-separated). See the module docstring.

    `variable` with `stat` / `layer` / `population` choose the channel (each required where the
    variable has that dimension and holds several); `units`, `noise` the recorded view; `by`
    one or several per-run labels (None = all runs together); `statuses` the runs kept
    (None = all; diverged runs are NaN after their divergence).
    """
    _check_spread(spread, center)
    ds = _keep_status(as_store(ds), statuses)
    da, _ = _select(ds, variable, stat=stat, layer=layer, units=units, noise=noise,
                    population=population)
    x = np.asarray(da.values, dtype=float)
    frac = np.asarray(progress(ds).values, dtype=float)
    labels, _ = _run_keys(ds, by)
    run_ids = [str(r) for r in ds["run"].values]
    groups = sorted(set(labels), key=_natural)
    grid = np.unique(np.round(frac[np.isfinite(frac)], 12))
    shape = (len(groups), len(grid))
    out = {k: np.full(shape, np.nan) for k in ("center", "lower", "upper")}
    count = np.zeros(shape, dtype=np.int64)
    members: list[list[str]] = []
    for g, name in enumerate(groups):
        rows = [i for i, lab in enumerate(labels) if lab == name]
        members.append([run_ids[i] for i in rows])
        vals = np.stack([_on_grid(np.round(frac[i], 12), x[i], grid) for i in rows])
        mid, lo, hi, n = _summary(vals, spread, center)
        out["center"][g], out["lower"][g], out["upper"][g], count[g] = mid, lo, hi, n
    res = xr.Dataset({k: (("group", "progress"), v) for k, v in out.items()}
                     | {"n": (("group", "progress"), count)},
                     coords={"group": groups, "progress": grid})
    res["progress"].attrs = {"long_name": "fraction of training", "units": "1"}
    res.attrs = {"variable": variable, "stat": stat or "", "spread": str(spread),
                 "center": center}
    res["members"] = ("group", np.array([",".join(m) for m in members], dtype=object))
    return res


def _natural(s: str) -> tuple:
    import re

    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", s))


def _label(ds: xr.Dataset, variable: str, stat: str | None) -> str:
    """"weights: abs_mean [dimensionless]", "feedback alignment angle [degree]"."""
    m = meta(variable)
    name = f"{variable}: {stat}" if stat is not None else (m.long_name if m else variable)
    units = units_of(ds, variable, stat)
    return f"{name} [{_units_text(units)}]" if units is not None else name


def _units_text(units: str) -> str:
    return "dimensionless" if units == "1" else units


def _colors(n: int) -> list:
    import matplotlib

    cmap = matplotlib.colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def _panels(ds: xr.Dataset, variable: str, layer: str | None,
            population: str | None) -> tuple[str | None, list[Any]]:
    """The dimension split into panels (layer or population) and its values."""
    if variable not in ds.data_vars:
        raise ConfigError(f"'{variable}' is not a variable of this store; available: "
                          f"{', '.join(sorted(str(v) for v in ds.data_vars))}")
    da = ds[variable]
    for dim, value in (("layer", layer), ("population", population)):
        if dim in da.dims:
            return (dim, [value]) if value is not None else (dim, list(da[dim].values))
    return None, [None]


def _spread_text(spread: Spread) -> str:
    if spread is None or spread == "none":
        return ""
    if isinstance(spread, str):
        return {"sem": "mean ± s.e.m.", "sd": "mean ± s.d.", "iqr": "mean, interquartile band"
                }[spread]
    return f"mean, {spread[0]:g}-{spread[1]:g} quantile band"


def trajectories(ds: xr.Dataset, variable: str = "weights", *, stat: str | None = None,
                 layer: str | None = None, units: int = 0, noise: float = 0.0,
                 population: str | None = None, by: str | Sequence[str] | None = "rule",
                 spread: Spread = "sem", center: str = "mean",
                 statuses: Iterable[str] | None = ("ok",), runs: bool = False,
                 ax: Axes | None = None, figsize: tuple[float, float] | None = None) -> Figure:
    """A statistic over training, one line per group (`by`, e.g. the rule): the mean over the
    group's runs with a band for the spread, on the training-progress axis. One panel per layer
    (or population) unless `layer` (`population`) picks one; `runs=True` also draws every run
    thin. Draws into `ax` when given (one panel only). Arguments as in `trajectory_summary`."""
    ds = as_store(ds)
    dim, values = _panels(ds, variable, layer, population)
    if ax is not None and len(values) > 1:
        raise ConfigError(f"ax=... draws one panel: choose one {dim} "
                          f"({', '.join(map(str, values))})")
    if ax is None:
        w = figsize or (min(4.2 * len(values), 16.0) + 1.6, 3.4)
        fig = Figure(figsize=w, layout="constrained")
        axes = list(np.atleast_1d(fig.subplots(1, len(values), sharey=True, squeeze=False)[0]))
    else:
        fig, axes = ax.figure, [ax]
    ds_kept = _keep_status(ds, statuses)
    labels, keys = _run_keys(ds_kept, by)
    colours = dict(zip(sorted(set(labels), key=_natural), _colors(len(set(labels)))))
    for a, value in zip(axes, values):
        sel = {"layer": layer, "population": population}
        if dim is not None:
            sel[dim] = value
        summ = trajectory_summary(ds, variable, stat=stat, units=units, noise=noise, by=by,
                                  spread=spread, center=center, statuses=statuses, **sel)
        if runs:
            da, _ = _select(ds_kept, variable, stat=stat, units=units, noise=noise, **sel)
            frac = progress(ds_kept).values
            x = np.asarray(da.values, float)
            for i, lab in enumerate(labels):
                a.plot(frac[i], x[i], color=colours[lab], lw=0.5, alpha=0.35,
                       gid=f"run:{ds_kept['run'].values[i]}")
        for g, name in enumerate(summ["group"].values):
            f = summ["progress"].values
            mid = summ["center"].values[g]
            n = len(str(summ["members"].values[g]).split(","))
            c = colours[str(name)]
            a.plot(f, mid, color=c, lw=1.8, label=f"{name} ({n} runs)", gid=f"center:{name}")
            lo, hi = summ["lower"].values[g], summ["upper"].values[g]
            if np.isfinite(lo).any():
                a.fill_between(f, lo, hi, color=c, alpha=0.2, lw=0, gid=f"band:{name}")
        title = []
        if dim is not None:
            title.append(str(value))
        if "units" in ds[variable].dims:
            title.append("all units" if int(units) == 0 else f"{units} units")
        if "noise" in ds[variable].dims:
            title.append(f"noise {float(noise):g}")
        a.set_title(", ".join(title), fontsize=9)
        a.set_xlabel(PROGRESS_LABEL)
        a.set_xlim(0, 1)
    axes[0].set_ylabel(_label(ds, variable, stat))
    how = _spread_text(spread)
    if center == "median":
        how = how.replace("mean", "median")
    legend_title = ", ".join(keys) if keys else None
    if how:
        legend_title = f"{legend_title} ({how})" if legend_title else how
    axes[-1].legend(fontsize=7, title=legend_title, title_fontsize=7,
                    loc="best" if ax is not None else "upper left",
                    bbox_to_anchor=None if ax is not None else (1.02, 1.0))
    return fig


# -- identification results --------------------------------------------------------------------

def _field(row: Any, *names: str) -> Any:
    for n in names:
        if isinstance(row, Mapping) and n in row:
            return row[n]
        if hasattr(row, n):
            return getattr(row, n)
    return None


def sweep_arrays(rows: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(values, accuracy, error) from a sweep: a sequence of rows (mappings or objects with
    `value` and `accuracy_mean` / `accuracy`, optionally `accuracy_sem` / `sem`), a mapping
    value -> accuracy (or value -> (accuracy, error)), or a 2- or 3-tuple of arrays."""
    if isinstance(rows, Mapping):
        vals, acc, err = [], [], []
        for k, v in rows.items():
            vals.append(k)
            if isinstance(v, Sequence) and not isinstance(v, str):
                acc.append(v[0])
                err.append(v[1] if len(v) > 1 else np.nan)
            else:
                acc.append(v)
                err.append(np.nan)
        return np.asarray(vals), np.asarray(acc, float), np.asarray(err, float)
    if isinstance(rows, tuple) and len(rows) in (2, 3) and all(
            isinstance(r, Sequence | np.ndarray) for r in rows):
        err = rows[2] if len(rows) == 3 else np.full(len(rows[0]), np.nan)
        return np.asarray(rows[0]), np.asarray(rows[1], float), np.asarray(err, float)
    rows = list(rows)
    vals = [_field(r, "value") for r in rows]
    acc = [_field(r, "accuracy_mean", "accuracy", "mean") for r in rows]
    err = [_field(r, "accuracy_sem", "accuracy_se", "sem", "se") for r in rows]
    if any(v is None for v in vals) or any(a is None for a in acc):
        raise ConfigError("sweep rows need a 'value' and an 'accuracy_mean' (or 'accuracy')")
    return (np.asarray(vals), np.asarray(acc, float),
            np.asarray([np.nan if e is None else e for e in err], float))


def accuracy_against(values: Any, accuracy: Any = None, error: Any = None, *,
                     over: str = "units", chance: float | None = None,
                     target: float | None = 0.9, label: str | None = None,
                     ylabel: str = "accuracy", ax: Axes | None = None) -> Figure:
    """Accuracy (with error bars) against one protocol quantity `over`: "units" (0 = all,
    drawn as a category), "noise", "time_points", "fraction", or any name (then the x label is
    that name). `values` with `accuracy` (and `error`) as arrays, or `values` alone as a sweep
    (see `sweep_arrays`). Dashed line: `chance`; dotted: `target`. Call again with the same
    `ax` and another `label` to overlay series (e.g. classifiers)."""
    if accuracy is None:
        x, y, e = sweep_arrays(values)
    else:
        x, y = np.asarray(values), np.asarray(accuracy, float)
        e = np.full(len(y), np.nan) if error is None else np.asarray(error, float)
    if not (len(x) == len(y) == len(e)):
        raise ConfigError(f"values, accuracy and error differ in length "
                          f"({len(x)}, {len(y)}, {len(e)})")
    if ax is None:
        fig = Figure(figsize=(4.2, 3.2), layout="constrained")
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    categorical = over == "units"
    pos = np.arange(len(x)) if categorical else np.asarray(x, float)
    ax.errorbar(pos, y, yerr=np.where(np.isfinite(e), e, 0), marker="o", capsize=3,
                label=label)
    if categorical:
        ax.set_xticks(pos, ["all" if int(v) == 0 else str(int(v)) for v in x])
    if chance is not None and not any(ln.get_gid() == "chance" for ln in ax.lines):
        ax.axhline(chance, color="k", ls="--", lw=1, label="chance", gid="chance")
    if target is not None and not any(ln.get_gid() == "target" for ln in ax.lines):
        ax.axhline(target, color="#cc0000", ls=":", lw=1, label=f"{target:.0%}", gid="target")
    xl = SWEEP_LABELS.get(over, over)
    if SWEEP_UNITS.get(over):
        xl = f"{xl} [{SWEEP_UNITS[over]}]"
    ax.set_xlabel(xl)
    ax.set_ylabel(f"{ylabel} [fraction correct]")
    ax.set_ylim(0, 1.05)
    if label is not None or chance is not None:
        ax.legend(fontsize=7)
    return fig


def sweeps(results: Mapping[str, Any], *, chance: float | None = None,
           target: float | None = 0.9) -> Figure:
    """One `accuracy_against` panel per sweep in `results` (e.g. {"units": rows, "noise":
    rows, "time_points": rows, "fraction": rows}), sharing the accuracy axis."""
    keys = [k for k in results if results[k] is not None and len(results[k])]
    if not keys:
        raise ConfigError("sweeps: no sweep to draw")
    fig = Figure(figsize=(2.6 * len(keys) + 0.8, 2.8), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(keys), sharey=True, squeeze=False)[0])
    for a, k in zip(axes, keys):
        accuracy_against(results[k], over=k, chance=chance, target=target, ax=a)
        if a is not axes[0]:
            a.set_ylabel("")
        if a.get_legend() is not None and a is not axes[-1]:
            a.get_legend().remove()
    return fig


def confusion(matrix: Any, classes: Sequence[str] | None = None, *, normalize: bool = True,
              title: str | None = None, ax: Axes | None = None, cmap: str = "Blues") -> Figure:
    """A confusion matrix (rows: true class, columns: predicted), annotated; `normalize` shows
    each row as fractions of the true class (counts otherwise). `matrix` may be an array, a
    nested list or a DataArray (its coordinates give `classes`)."""
    if isinstance(matrix, xr.DataArray) and classes is None:
        classes = [str(c) for c in matrix[matrix.dims[0]].values]
    m = np.asarray(matrix, float)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ConfigError(f"confusion: a square matrix is needed (got shape {m.shape})")
    n = m.shape[0]
    classes = [str(c) for c in (classes if classes is not None else range(n))]
    if len(classes) != n:
        raise ConfigError(f"confusion: {len(classes)} class names for a {n} x {n} matrix")
    shown = m / np.maximum(m.sum(1, keepdims=True), 1e-300) if normalize else m
    if ax is None:
        fig = Figure(figsize=(1.6 + 0.55 * n, 1.2 + 0.5 * n), layout="constrained")
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    im = ax.imshow(shown, vmin=0, vmax=1 if normalize else max(float(m.max()), 1), cmap=cmap)
    ax.set_xticks(range(n), classes, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(n), classes, fontsize=7)
    ax.set_xlabel("predicted rule")
    ax.set_ylabel("true rule")
    if title:
        ax.set_title(title, fontsize=8)
    top = 1.0 if normalize else max(float(m.max()), 1)
    for i in range(n):
        for j in range(n):
            text = f"{shown[i, j]:.2f}" if normalize else f"{int(m[i, j])}"
            ax.text(j, i, text, ha="center", va="center", fontsize=6,
                    color="white" if shown[i, j] > 0.5 * top else "black")
    bar = fig.colorbar(im, ax=ax, fraction=0.046)
    bar.set_label("fraction of true class" if normalize else "samples", fontsize=7)
    return fig


# -- interactive (optional: plotly) ------------------------------------------------------------

def interactive_trajectories(ds: xr.Dataset, variable: str = "weights", *,
                             stat: str | None = None, layer: str | None = None,
                             units: int = 0, noise: float = 0.0,
                             population: str | None = None,
                             by: str | Sequence[str] | None = "rule",
                             hover: Sequence[str] = ("rule", "optimizer", "lr", "seed",
                                                     "architecture", "status"),
                             statuses: Iterable[str] | None = None) -> Any:
    """Every run as a line you can hover ("which run is this?": run id and `hover` labels),
    coloured by group, with the group means bold: a `plotly.graph_objects.Figure` (needs the
    optional package plotly: `pip install plotly`). One channel, as in `trajectory_summary`."""
    try:
        import plotly.graph_objects as go
    except ImportError as err:
        raise ImportError("interactive_trajectories needs plotly: pip install plotly "
                          "(or pip install 'lrsim[interactive]')") from err
    ds = _keep_status(as_store(ds), statuses)
    da, stat = _select(ds, variable, stat=stat, layer=layer, units=units, noise=noise,
                       population=population)
    x = np.asarray(da.values, float)
    frac = np.asarray(progress(ds).values, float)
    labels, _ = _run_keys(ds, by)
    groups = sorted(set(labels), key=_natural)
    colours = {g: "rgb({:.0f},{:.0f},{:.0f})".format(*(255 * np.asarray(c[:3])))
               for g, c in zip(groups, _colors(len(groups)))}
    keys = [k for k in hover if k in ds.coords and ds[k].dims == ("run",)]
    fig = go.Figure()
    for i, rid in enumerate(str(r) for r in ds["run"].values):
        text = "<br>".join([f"run {rid}"] + [f"{k}: {_fmt(ds[k].values[i])}" for k in keys])
        fig.add_trace(go.Scatter(x=frac[i], y=x[i], mode="lines", name=rid,
                                 legendgroup=labels[i], showlegend=False,
                                 line={"color": colours[labels[i]], "width": 1},
                                 opacity=0.45, hovertext=text, hoverinfo="text+x+y"))
    summ = trajectory_summary(ds, variable, stat=stat, layer=layer, units=units, noise=noise,
                              population=population, by=by, statuses=None)
    for g, name in enumerate(summ["group"].values):
        fig.add_trace(go.Scatter(x=summ["progress"].values, y=summ["center"].values[g],
                                 mode="lines", name=f"{name} (mean)", legendgroup=str(name),
                                 line={"color": colours[str(name)], "width": 3}))
    fig.update_layout(xaxis_title=PROGRESS_LABEL, yaxis_title=_label(ds, variable, stat),
                      hovermode="closest", template="plotly_white")
    return fig
