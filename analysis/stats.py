"""Aggregate statistics of a set of measurements, the quantities Nayebi et al. (2020, "Identifying
Learning Rules From Neural Network Observables", NeurIPS) recorded per layer during learning.

For a sample x_1..x_n and each transform y = x ("raw"), |x| ("abs") or x^2 ("sq"):

    mean      = (1/n) sum y_i
    var       = (1/n) sum (y_i - mean)^2                      (biased, numpy's default ddof=0)
    median    = quantile(y, 0.5),  q75 = quantile(y, 0.75)   (numpy's "linear" interpolation:
                the value at position q (n - 1) of the sorted sample)
    norm      = sqrt(sum y_i^2)                               (the L2 / Frobenius norm)
    skew      = m3 / m2^(3/2)                                 (scipy.stats.skew, bias=True)
    kurtosis  = m4 / m2^2 - 3                                 (scipy.stats.kurtosis: Fisher's
                                                               excess kurtosis, bias=True)

with m_k = (1/n) sum (y_i - mean)^k. Names are `{transform}_{statistic}`, e.g. `abs_median`.

Finite-safe: moments are taken of (y - mean) / s with s = max|y - mean| and norms of y / max|y|,
then rescaled, so no intermediate power overflows or divides by zero; a constant sample has
skew = kurtosis = 0 (no shape to measure) instead of 0/0. Non-finite entries: with
`skipna=False` (default) a sample holding any makes every statistic NaN; with `skipna=True` they
are left out (a sample with no finite entry gives NaN).

Two entry points: `summary_stats` (torch or numpy, reduces the last axis, batched over any
leading axes, e.g. K replicas x noise levels, in one pass) and `describe` (an xarray DataArray
with a named sample dimension -> a DataArray with a `stat` dimension).
"""

from __future__ import annotations

from collections.abc import Sequence

import numba
import numpy as np
import torch
import xarray as xr
from torch import Tensor

from lrsim.contract import STAT_NAMES, STATISTICS, TRANSFORMS, check_stats

__all__ = ["STATISTICS", "STAT_NAMES", "TRANSFORMS", "check_stats", "describe", "summary_stats"]

_QUANTILES = {"median": 0.5, "q75": 0.75}


def _quantiles(sorted_y: np.ndarray, n: np.ndarray, wanted: dict[str, float],
               square: bool = False) -> dict[str, np.ndarray]:
    """numpy 'linear' quantiles of rows sorted ascending whose first n entries count: the value
    at position q (n - 1), interpolated between its two neighbours (in float64); with
    `square`, the quantiles of the squares (rows of |x|, so the order is the same)."""
    out = {}
    width = sorted_y.shape[-1]
    complete = bool(np.all(n == width))
    last = np.maximum(n - 1, 0)
    for name, q in wanted.items():
        if complete:  # every row complete: one position for all rows
            pos = q * (width - 1)
            lo = int(np.floor(pos))
            hi, frac = min(lo + 1, width - 1), pos - lo
            a = sorted_y[..., lo].astype(np.float64)
            b = sorted_y[..., hi].astype(np.float64)
        else:
            pos = q * last
            lo = np.floor(pos).astype(np.int64)
            hi = np.minimum(lo + 1, last)
            frac = pos - lo
            a = np.take_along_axis(sorted_y, lo[..., None], -1)[..., 0].astype(np.float64)
            b = np.take_along_axis(sorted_y, hi[..., None], -1)[..., 0].astype(np.float64)
        if square:
            a, b = a * a, b * b
        with np.errstate(invalid="ignore"):
            out[name] = np.where(np.asarray(frac) > 0, a + frac * (b - a), a)
    return out


def _moments(y: np.ndarray, valid: np.ndarray | None, nf: np.ndarray, wanted: list[str]
             ) -> dict[str, np.ndarray]:
    """mean, var, norm, skew, kurtosis of each row of y, where |y| <= 1 (so no power
    overflows) and `valid` (None = all) marks the entries that count (the others are 0)."""
    out: dict[str, np.ndarray] = {}
    mean = y.sum(-1) / nf
    if "mean" in wanted:
        out["mean"] = mean
    if "norm" in wanted:
        out["norm"] = np.sqrt(np.einsum("...i,...i->...", y, y))
    if {"var", "skew", "kurtosis"} & set(wanted):
        d = y - mean[..., None]
        if valid is not None:
            d = np.where(valid, d, 0.0)
        d2 = d * d
        m2 = d2.sum(-1) / nf
        # a constant sample (spread at rounding level) has no shape to measure
        flat = m2 <= 1e-26 * mean * mean
        if "var" in wanted:
            out["var"] = np.where(flat, 0.0, m2)
        m2s = np.where(flat, 1.0, m2)
        if "skew" in wanted:
            m3 = np.einsum("...i,...i->...", d2, d) / nf
            out["skew"] = np.where(flat, 0.0, m3 / m2s ** 1.5)
        if "kurtosis" in wanted:
            m4 = np.einsum("...i,...i->...", d2, d2) / nf
            out["kurtosis"] = np.where(flat, 0.0, m4 / (m2s * m2s) - 3.0)
    return out


@numba.njit(cache=True, nogil=True)
def _moment_sums(x: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
    """Per row of x (R, n), all finite: for y = x, |x|, x^2 (index 0, 1, 2) the mean, the
    central moment sums m2, m3, m4 (divided by n) and sum y^2; two passes over the data."""
    rows, n = x.shape
    out = np.zeros((rows, 3, 5))
    for r in range(rows):
        s_raw = 0.0
        s_abs = 0.0
        s_sq = 0.0
        s_qu = 0.0
        for i in range(n):
            v = np.float64(x[r, i])
            v2 = v * v
            s_raw += v
            s_abs += abs(v)
            s_sq += v2
            s_qu += v2 * v2
        means = (s_raw / n, s_abs / n, s_sq / n)
        acc = np.zeros((3, 3))
        for i in range(n):
            v = np.float64(x[r, i])
            ys = (v, abs(v), v * v)
            for k in range(3):
                d = ys[k] - means[k]
                d2 = d * d
                acc[k, 0] += d2
                acc[k, 1] += d2 * d
                acc[k, 2] += d2 * d2
        for k in range(3):
            out[r, k, 0] = means[k]
            out[r, k, 1] = acc[k, 0] / n
            out[r, k, 2] = acc[k, 1] / n
            out[r, k, 3] = acc[k, 2] / n
        out[r, 0, 4] = s_sq
        out[r, 1, 4] = s_sq
        out[r, 2, 4] = s_qu
    return out


def _moments_from_sums(sums: np.ndarray, wanted: list[str]) -> dict[str, np.ndarray]:
    """The moment statistics of one transform from `_moment_sums` (..., 5)."""
    mean, m2, m3, m4, sumsq = (sums[..., i] for i in range(5))
    out = {}
    if "mean" in wanted:
        out["mean"] = mean
    if "norm" in wanted:
        out["norm"] = np.sqrt(sumsq)
    flat = m2 <= 1e-26 * mean * mean
    m2s = np.where(flat, 1.0, m2)
    if "var" in wanted:
        out["var"] = np.where(flat, 0.0, m2)
    if "skew" in wanted:
        out["skew"] = np.where(flat, 0.0, m3 / m2s ** 1.5)
    if "kurtosis" in wanted:
        out["kurtosis"] = np.where(flat, 0.0, m4 / (m2s * m2s) - 3.0)
    return out


_FORCE_NUMPY = False  # tests: check the compiled kernel against the numpy path
_SCALE_POWER = {"mean": 1, "var": 2, "median": 1, "q75": 1, "norm": 1, "skew": 0, "kurtosis": 0}


def summary_stats(x: Tensor | np.ndarray, stats: Sequence[str] | None = None, *,
                  skipna: bool = False) -> Tensor | np.ndarray:
    """The statistics `stats` (default all, see module docstring) of x over its last axis.

    x: (..., n) -> (..., S) float64, S = len(stats) in the order given; the same type as x
    (a torch tensor comes back on its device, computed on the CPU). Leading axes are
    independent samples measured in one pass (replicas, noise levels, layers padded with NaN
    under `skipna=True`).
    """
    names = check_stats(stats)
    if isinstance(x, Tensor):
        out = summary_stats(x.detach().to("cpu", torch.float64).numpy(), names, skipna=skipna)
        return torch.from_numpy(out).to(x.device)
    t = np.asarray(x)
    if t.dtype not in (np.float32, np.float64):
        t = t.astype(np.float64)
    if t.ndim == 0:
        raise ValueError("summary_stats needs at least one axis (the sample axis)")
    size = t.shape[-1]
    if size == 0:
        return np.full((*t.shape[:-1], len(names)), np.nan)
    finite = np.isfinite(t)
    valid: np.ndarray | None = None if finite.all() else finite
    if valid is None:
        n = np.full(t.shape[:-1], size)
        c = np.abs(t).max(-1)
    else:
        t = np.where(valid, t.astype(np.float64), 0.0)
        n = valid.sum(-1)
        c = np.abs(t).max(-1)
    c = c.astype(np.float64)
    # where max|x| is extreme, work on x / c with c = max|x| over the finite entries, so no
    # power below (up to x^8) overflows or underflows; each statistic is rescaled by c^p at the
    # end (p: its power, doubled for squares)
    rescale = not bool(np.all((c >= 1e-30) & (c <= 1e30)))
    if rescale:
        c = np.where(c > 0, c, 1.0)
        t = t.astype(np.float64) / c[..., None]
    nf = np.maximum(n, 1).astype(np.float64)
    by_transform: dict[str, list[str]] = {}
    for name in names:
        tr, st = name.split("_", 1)
        by_transform.setdefault(tr, []).append(st)
    results: dict[str, np.ndarray] = {}
    sums = None
    if valid is None and t.size >= 64 and not _FORCE_NUMPY:  # compiled kernel, complete rows
        flat_rows = np.ascontiguousarray(t.reshape(-1, size))
        sums = _moment_sums(flat_rows).reshape(*t.shape[:-1], 3, 5)
    abs_sorted: np.ndarray | None = None
    for tr in TRANSFORMS:
        wanted = by_transform.get(tr)
        if not wanted:
            continue
        if sums is not None:
            got = _moments_from_sums(sums[..., TRANSFORMS.index(tr), :], wanted)
        else:  # numpy path (small or incomplete samples), in float64
            t64 = t.astype(np.float64, copy=False)
            y = t64 if tr == "raw" else np.abs(t64) if tr == "abs" else t64 * t64
            got = _moments(y, valid, nf, wanted)
        qs = {st: _QUANTILES[st] for st in wanted if st in _QUANTILES}
        if qs:
            if tr == "raw":
                ys = np.sort(t if valid is None else np.where(valid, t, np.inf), -1)
            else:  # |x| sorted ascending; its square is x^2 sorted ascending
                if abs_sorted is None:
                    absolute = np.abs(t)
                    abs_sorted = np.sort(absolute if valid is None
                                         else np.where(valid, absolute, np.inf), -1)
                ys = abs_sorted
            got.update(_quantiles(ys, n, qs, square=tr == "sq"))
        for st, v in got.items():
            p = _SCALE_POWER[st] * (2 if tr == "sq" else 1)
            if rescale and p:
                with np.errstate(over="ignore", invalid="ignore"):
                    v = np.where(v == 0, 0.0, v * c ** p)
            results[f"{tr}_{st}"] = v
    out = np.stack([results[s] for s in names], -1)
    bad = (n == 0) if skipna else n < size
    out[bad] = np.nan
    return out


def describe(values: xr.DataArray, dim: str = "sample", stats: Sequence[str] | None = None, *,
             skipna: bool = False) -> xr.DataArray:
    """The statistics of `values` over its dimension `dim`, which is replaced by `stat`.

    Example: `describe(rates, dim="neuron")` on a (time, layer, neuron) DataArray gives
    (time, layer, stat), with `stat` coordinate names such as "raw_mean" and "sq_kurtosis".
    Coordinates on the remaining dimensions are kept.
    """
    if dim not in values.dims:
        raise ValueError(f"describe: dimension '{dim}' not in {values.dims}")
    names = check_stats(stats)
    moved = values.transpose(..., dim)
    result = summary_stats(np.asarray(moved.values), names, skipna=skipna)
    kept = [d for d in moved.dims if d != dim]
    coords = {k: c for k, c in moved.coords.items() if dim not in c.dims}
    coords["stat"] = names
    return xr.DataArray(result, dims=[*kept, "stat"], coords=coords, name=values.name)
