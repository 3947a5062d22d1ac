"""Spike-train statistics from Brian2's (index, time) spike arrays.

Every function takes the spike arrays `i` (neuron index, int) and `t` (spike time, seconds) of a
population of `n` neurons, or the binned counts those give. The loop-shaped kernels (binning,
inter-spike intervals) are numba-compiled; `*_reference` functions are plain numpy versions of
the same equations that the tests hold the kernels to.

    counts[n, b]      spikes of neuron n in bin b = [t0 + b w, t0 + (b+1) w)
    CV_ISI(n)         std(ISI) / mean(ISI) over neuron n's inter-spike intervals
                      (1 for a Poisson process, 0 for a regular train; Softky & Koch 1993)
    Fano(n)           var_b(counts[n]) / mean_b(counts[n]) over windows (1 for Poisson)
    r_sc              mean over pairs of the Pearson correlation of spike counts
                      (Cohen & Kohn 2011; near 0 in the asynchronous state, Renart et al. 2010)
    chi               Golomb & Rinzel (1993) synchrony, sqrt(Var_b(mean_n c_n) / mean_n Var_b(c_n)),
                      computed on binned spike counts as the population signal: 1 for identical
                      trains, about 1/sqrt(N) for independent ones (Golomb 2007, Scholarpedia)
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True)
def _bin_counts_kernel(i, t, n, t_start, width, n_bins):  # pragma: no cover - compiled
    out = np.zeros((n, n_bins), dtype=np.int64)
    for k in range(i.shape[0]):
        b = int(np.floor((t[k] - t_start) / width))
        if 0 <= b < n_bins and 0 <= i[k] < n:
            out[i[k], b] += 1
    return out


def _n_bins(t_start: float, t_stop: float, width: float) -> int:
    if width <= 0 or t_stop <= t_start:
        raise ValueError("need width > 0 and t_stop > t_start")
    return int(np.floor((t_stop - t_start) / width + 1e-9))


def bin_counts(i: np.ndarray, t: np.ndarray, n: int, t_start: float, t_stop: float,
               width: float) -> np.ndarray:
    """Spike counts (n, n_bins) in consecutive bins of `width` s from `t_start`; the last
    partial bin before `t_stop` is dropped."""
    nb = _n_bins(t_start, t_stop, width)
    return _bin_counts_kernel(np.asarray(i, np.int64), np.asarray(t, np.float64), int(n),
                              float(t_start), float(width), nb)


def bin_counts_reference(i, t, n, t_start, t_stop, width) -> np.ndarray:
    """numpy reference of `bin_counts` (a 2-d histogram)."""
    nb = _n_bins(t_start, t_stop, width)
    edges_t = t_start + width * np.arange(nb + 1)
    h, _, _ = np.histogram2d(np.asarray(i, float), np.asarray(t, float),
                             bins=(np.arange(n + 1) - 0.5, edges_t))
    return h.astype(np.int64)


@numba.njit(cache=True)
def _isi_cv_kernel(i_sorted, t_sorted, n, min_spikes):  # pragma: no cover - compiled
    out = np.full(n, np.nan)
    k = 0
    m = i_sorted.shape[0]
    while k < m:
        neuron = i_sorted[k]
        start = k
        while k < m and i_sorted[k] == neuron:
            k += 1
        count = k - start
        if count >= min_spikes and 0 <= neuron < n:
            s = 0.0
            s2 = 0.0
            for q in range(start + 1, k):
                d = t_sorted[q] - t_sorted[q - 1]
                s += d
                s2 += d * d
            nd = count - 1
            mean = s / nd
            var = s2 / nd - mean * mean
            if var < 0.0:
                var = 0.0
            out[neuron] = np.sqrt(var) / mean if mean > 0 else np.nan
    return out


def isi_cv(i: np.ndarray, t: np.ndarray, n: int, min_spikes: int = 3) -> np.ndarray:
    """CV of the inter-spike intervals per neuron (n,), NaN for neurons with fewer than
    `min_spikes` spikes. The population std is used (ddof = 0)."""
    i = np.asarray(i, np.int64)
    t = np.asarray(t, np.float64)
    order = np.lexsort((t, i))
    return _isi_cv_kernel(i[order], t[order], int(n), int(min_spikes))


def isi_cv_reference(i, t, n, min_spikes: int = 3) -> np.ndarray:
    """numpy reference of `isi_cv`."""
    i, t = np.asarray(i), np.asarray(t, float)
    out = np.full(n, np.nan)
    for neuron in range(n):
        s = np.sort(t[i == neuron])
        if len(s) >= min_spikes:
            d = np.diff(s)
            out[neuron] = d.std() / d.mean()
    return out


def fano_factor(counts: np.ndarray) -> np.ndarray:
    """Fano factor per neuron: var / mean of its counts over windows (n,); NaN if silent."""
    counts = np.asarray(counts, float)
    mean = counts.mean(axis=-1)
    var = counts.var(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(mean > 0, var / np.where(mean > 0, mean, 1), np.nan)


def count_correlation(counts: np.ndarray, max_neurons: int = 500,
                      rng: np.random.Generator | None = None) -> float:
    """Mean pairwise Pearson correlation of spike counts over all pairs of (at most
    `max_neurons` randomly chosen) neurons whose counts vary; NaN if fewer than two do."""
    counts = np.asarray(counts, float)
    active = np.flatnonzero(counts.std(axis=-1) > 0)
    if len(active) > max_neurons:
        rng = rng or np.random.default_rng(0)
        active = np.sort(rng.choice(active, max_neurons, replace=False))
    if len(active) < 2:
        return float("nan")
    c = np.corrcoef(counts[active])
    upper = np.triu_indices(len(active), k=1)
    return float(np.mean(c[upper]))


def synchrony_chi(counts: np.ndarray) -> float:
    """Golomb-Rinzel chi = sqrt(Var_b(population mean) / mean_n Var_b(neuron n)) over bins."""
    counts = np.asarray(counts, float)
    single = counts.var(axis=-1).mean()
    if single <= 0:
        return float("nan")
    return float(np.sqrt(counts.mean(axis=0).var() / single))


def spike_statistics(i: np.ndarray, t: np.ndarray, n: int, t_start: float, t_stop: float, *,
                     count_window: float = 0.1, sync_bin: float = 0.002,
                     min_spikes: int = 3) -> dict[str, float]:
    """The population summary of one recording window [t_start, t_stop):

    rate (Hz, mean over neurons), cv_isi (mean over neurons with >= min_spikes spikes), fano
    (mean over active neurons, counts in `count_window` s), correlation (mean pairwise r_sc in
    `count_window` s), synchrony (chi on `sync_bin` s bins).
    """
    i = np.asarray(i)
    t = np.asarray(t, float)
    keep = (t >= t_start) & (t < t_stop)
    i, t = i[keep], t[keep]
    duration = t_stop - t_start
    out = {"rate": float(len(i) / (n * duration)) if n else float("nan")}
    cv = isi_cv(i, t, n, min_spikes)
    out["cv_isi"] = float(np.nanmean(cv)) if np.isfinite(cv).any() else float("nan")
    if duration >= 2 * count_window:
        counts = bin_counts(i, t, n, t_start, t_stop, count_window)
        ff = fano_factor(counts)
        out["fano"] = float(np.nanmean(ff)) if np.isfinite(ff).any() else float("nan")
        out["correlation"] = count_correlation(counts)
    else:
        out["fano"] = out["correlation"] = float("nan")
    out["synchrony"] = synchrony_chi(bin_counts(i, t, n, t_start, t_stop, sync_bin))
    return out


def balance_index(exc: np.ndarray, inh: np.ndarray) -> dict[str, float]:
    """E/I balance from recorded input currents `exc` (E input, >= 0) and `inh` (I input,
    <= 0), arrays (neurons, time):

    ei_balance     |<E + I>| / <E>, the mean net input against the mean excitatory input
                   (0 = perfect cancellation; small in the balanced state, van Vreeswijk &
                   Sompolinsky 1996)
    ei_correlation Pearson correlation over time of the population-averaged E and -I inputs
                   (inhibition tracks excitation; Okun & Lampl 2008, Renart et al. 2010)
    """
    exc = np.asarray(exc, float)
    inh = np.asarray(inh, float)
    mean_e = exc.mean()
    out = {"ei_balance": float(abs((exc + inh).mean()) / mean_e) if mean_e > 0
           else float("nan")}
    pe, pi = exc.mean(axis=0), -inh.mean(axis=0)
    if len(pe) > 2 and pe.std() > 0 and pi.std() > 0:
        out["ei_correlation"] = float(np.corrcoef(pe, pi)[0, 1])
    else:
        out["ei_correlation"] = float("nan")
    return out
