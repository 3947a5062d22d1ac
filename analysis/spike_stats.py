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
                      trains, about 1/sqrt(N) for independent ones, sqrt((1/m - p) / (1 - p))
                      for m equal synchronous clusters firing in turn (p = spikes per bin per
                      neuron) (Golomb 2007, Scholarpedia)
    A(t), S(f)        population rate and its power spectrum (Welch); `spectral_peak` finds a
                      global oscillation (Brunel 2000's synchronous states)

The bin of chi is its time resolution (Golomb's chi is defined on continuous signals; binning is
a box filter): it must be short against the period of any population rhythm, or the rhythm is
averaged out. In Brunel's synchronous regular state (a ~600 Hz two-cluster rhythm, see
models/spiking/network.py) chi is ~0.59 on 0.5 ms bins, 0.50 on 1 ms bins and 0.37 on the
default 2 ms bins (measured, N_E = 2000); the 2 ms default suits the asynchronous states of the
learning runs.
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
    """Golomb-Rinzel chi = sqrt(Var_b(population mean) / mean_n Var_b(neuron n)) over the bins of
    `counts` (n, n_bins) (Golomb & Rinzel 1993; Golomb 2007); NaN if no neuron's count varies."""
    counts = np.asarray(counts, float)
    single = counts.var(axis=-1).mean()
    if single <= 0:
        return float("nan")
    return float(np.sqrt(counts.mean(axis=0).var() / single))


def population_rate(t: np.ndarray, n: int, t_start: float, t_stop: float,
                    dt: float = 1e-4) -> np.ndarray:
    """Population rate A(t_b) = (spikes of all n neurons in bin b) / (n dt), in Hz, on bins of
    `dt` s from `t_start` (Brunel 2000's global activity nu(t); the last partial bin dropped)."""
    nb = _n_bins(t_start, t_stop, dt)
    b = np.floor((np.asarray(t, float) - t_start) / dt).astype(np.int64)
    b = b[(b >= 0) & (b < nb)]
    return np.bincount(b, minlength=nb).astype(float) / (n * dt)


def rate_spectrum(t: np.ndarray, n: int, t_start: float, t_stop: float, dt: float = 1e-4,
                  segment: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """One-sided power spectral density of the population rate (Hz^2/Hz), Welch's method:

        S(f) = 2 dt / (L sum_k w_k^2) * mean_segments |sum_k w_k (A_k - <A>) e^{-2 pi i f k dt}|^2

    over non-overlapping segments of L = segment / dt bins with a Hann window w (Welch 1967).
    Independent Poisson neurons of rate r give the white level S = 2 r / n; a sinusoidal
    modulation A = r (1 + a sin 2 pi f0 t) adds a line of integrated power (r a)^2 / 2 at f0.
    Brunel's (2000) synchronous states show up as a sharp peak at the global oscillation
    frequency. Returns (frequencies, S)."""
    a = population_rate(t, n, t_start, t_stop, dt)
    seg = int(round(segment / dt))
    if seg < 4 or seg > len(a):
        raise ValueError(f"need 4 <= segment / dt <= {len(a)} bins, got {seg}")
    n_seg = len(a) // seg
    x = a[: n_seg * seg].reshape(n_seg, seg)
    x = x - x.mean(axis=1, keepdims=True)
    w = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(seg) / seg)  # periodic Hann
    power = np.abs(np.fft.rfft(x * w, axis=1)) ** 2
    psd = power.mean(axis=0) * dt / (w ** 2).sum()
    psd[1:-1 if seg % 2 == 0 else None] *= 2  # one-sided: fold negative frequencies
    return np.fft.rfftfreq(seg, dt), psd


def spectral_peak(freqs: np.ndarray, psd: np.ndarray, f_min: float = 5.0,
                  rel_band: float = 0.1, f_max: float | None = None) -> dict[str, float]:
    """The largest peak of a spectrum in [f_min, f_max] Hz (f_max None: up to the end; keep it
    well below 1 / (2 dt), where the simulation's time grid leaves peaks of its own):

    freq      f* = argmax_{f_min <= f <= f_max} S(f)
    power     P = integral of S over f* (1 +- rel_band) (Hz^2 for a rate spectrum); a sinusoid
              of amplitude r a gives P = (r a)^2 / 2, so sqrt(2 P) is the oscillation amplitude
    fraction  P over all power in [f_min, f_max] (1 for a pure sinusoid, ~ 2 rel_band f* / f_max
              for a white spectrum)
    contrast  S(f*) / median over [f_min, f_max] of S (~ a few for a white spectrum)
    """
    freqs, psd = np.asarray(freqs, float), np.asarray(psd, float)
    keep = (freqs >= f_min) & (freqs <= (np.inf if f_max is None else f_max))
    f, p = freqs[keep], psd[keep]
    k = int(np.argmax(p))
    band = (f >= f[k] * (1 - rel_band)) & (f <= f[k] * (1 + rel_band))
    total = p.sum()
    med = float(np.median(p))
    df = float(freqs[1] - freqs[0]) if len(freqs) > 1 else float("nan")
    return {"freq": float(f[k]), "power": float(p[band].sum() * df),
            "fraction": float(p[band].sum() / total) if total > 0 else float("nan"),
            "contrast": float(p[k] / med) if med > 0 else float("inf")}


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
