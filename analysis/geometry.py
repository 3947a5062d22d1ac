"""Population geometry of recorded activity: what a recording of a few noisy units over a set
of probe stimuli gives beyond per-entry statistics.

Every function takes recorded activity as an array x of shape (..., P, n): P probe stimuli
(rows) x n recorded units (columns), batched over any leading axes (replicas, noise levels),
and works on exactly what was recorded (noise already applied by the caller):

    participation_ratio   PR(x) = (tr C)^2 / tr(C^2),  C = Xc^T Xc / P,  Xc = x centred over
                          the stimuli; 1 <= PR <= min(P - 1, n) (Gao, Trautmann, Yu, Santhanam,
                          Ryu, Shenoy & Ganguli 2017, bioRxiv 214262; Recanatesi et al. 2019)
    dimensionality        PR(x) / n: the fraction of the recorded units' dimensions the
                          population uses (comparable across recordings of different sizes)
    rdm                   the representational dissimilarity matrix: Euclidean distances
                          d_ij = ||x_i - x_j|| between the population vectors of stimuli i < j,
                          condensed in `scipy.spatial.distance.pdist` order
    rdm_similarity        Pearson correlation between two condensed RDMs (representational
                          similarity analysis, Kriegeskorte, Mur & Bandettini 2008, Front. Syst.
                          Neurosci. 2:4)
    coupling              mean squared Pearson correlation r_ij^2 over the stimuli between every
                          recorded unit i of one layer and every recorded unit j of the layer it
                          projects to (a paired recording of two connected layers)
    change_alignment      cosine, over the pairs of recorded units (off the diagonal) and
                          cross-validated across two halves of the stimuli, between the
                          covariance of the activity change since the first measurement and the
                          covariance of the first measurement: whether the population changes
                          along the correlations it started with (0 under a fixed random
                          feedback, > 0 when the error follows the forward pathway)
    unit_similarity       condensed cosine similarity s_ij = <v_i, v_j> / (|v_i| |v_j|) between
                          the synaptic vectors v_i of recorded units i < j (rows of (..., u, n))
    synaptic_similarity   Pearson correlation of the units' similarity by the change of their
                          incoming synapses and by the change of their outgoing synapses
                          (`unit_similarity` of each, then `rdm_similarity`)

`unit_similarity` and `synaptic_similarity` take synapses, not activity: rows are recorded units,
columns their synapses (incoming: from every unit of the layer below; outgoing: onto the
recorded units of the layer above).

Degenerate input gives NaN, never an error: a recording with no variance over the stimuli has
no dimensionality, a constant RDM no correlation; in `coupling`, units constant over the stimuli
(silent ReLUs) are left out and a pair of layers with none left gives NaN.
"""

from __future__ import annotations

import numpy as np

_TINY = 1e-300


def _centred(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim < 2:
        raise ValueError(f"activity must be (..., stimuli, units); got shape {x.shape}")
    return x - x.mean(axis=-2, keepdims=True)


def participation_ratio(x: np.ndarray) -> np.ndarray:
    """PR = (tr C)^2 / tr(C^2) of the covariance C of x (..., P, n) over its P stimuli; (...).

    Computed from whichever of Xc^T Xc (n x n) and Xc Xc^T (P x P) is smaller: both have the
    same non-zero eigenvalues, so tr C and tr C^2 (the squared Frobenius norm) agree."""
    xc = _centred(x)
    p, n = xc.shape[-2:]
    g = np.swapaxes(xc, -1, -2) @ xc if n <= p else xc @ np.swapaxes(xc, -1, -2)
    tr = np.trace(g, axis1=-2, axis2=-1)
    tr2 = np.einsum("...ij,...ij->...", g, g)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(tr2 > _TINY, tr * tr / np.maximum(tr2, _TINY), np.nan)


def dimensionality(x: np.ndarray) -> np.ndarray:
    """participation_ratio(x) / n for x (..., P, n): in (0, 1], NaN without variance."""
    return participation_ratio(x) / np.asarray(x).shape[-1]


def rdm(x: np.ndarray) -> np.ndarray:
    """Condensed Euclidean RDM of x (..., P, n): (..., P (P - 1) / 2), pairs (i, j), i < j, in
    row-major order (`scipy.spatial.distance.pdist`), from the Gram matrix
    d_ij^2 = g_ii + g_jj - 2 g_ij (clipped at 0 against rounding)."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim < 2:
        raise ValueError(f"activity must be (..., stimuli, units); got shape {x.shape}")
    # centring leaves distances unchanged and keeps the Gram entries small
    x = x - x.mean(axis=-2, keepdims=True)
    g = x @ np.swapaxes(x, -1, -2)
    sq = np.diagonal(g, axis1=-2, axis2=-1)
    i, j = np.triu_indices(x.shape[-2], k=1)
    d2 = sq[..., i] + sq[..., j] - 2.0 * g[..., i, j]
    return np.sqrt(np.maximum(d2, 0.0))


def rdm_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation of condensed RDMs a, b (..., M) along the last axis; NaN where
    either is constant."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    a = a - a.mean(-1, keepdims=True)
    b = b - b.mean(-1, keepdims=True)
    num = np.einsum("...i,...i->...", a, b)
    den = np.sqrt(np.einsum("...i,...i->...", a, a) * np.einsum("...i,...i->...", b, b))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > _TINY, num / np.maximum(den, _TINY), np.nan)


def representational_similarity(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """rdm_similarity(rdm(x), rdm(y)) for two recordings x (..., P, n), y (..., P, m) of the
    same P stimuli (the unit counts may differ)."""
    return rdm_similarity(rdm(x), rdm(y))


def coupling(pre: np.ndarray, post: np.ndarray) -> np.ndarray:
    """Mean of r_ij^2 over the recorded pairs, r_ij the Pearson correlation over the P stimuli
    between unit i of `pre` (..., P, n1) and unit j of `post` (..., P, n2); units with no
    variance over the stimuli are left out. Shape (...)."""
    a, b = _centred(pre), _centred(post)
    if a.shape[-2] != b.shape[-2]:
        raise ValueError(f"pre and post must share the stimulus axis; got {a.shape[-2]} and "
                         f"{b.shape[-2]} stimuli")
    sa = np.sqrt(np.einsum("...pi,...pi->...i", a, a))
    sb = np.sqrt(np.einsum("...pj,...pj->...j", b, b))
    # a unit counts when its spread is above rounding level relative to the largest one
    ok_a = sa > 1e-12 * np.max(sa, axis=-1, keepdims=True, initial=0.0) + _TINY
    ok_b = sb > 1e-12 * np.max(sb, axis=-1, keepdims=True, initial=0.0) + _TINY
    za = np.where(ok_a[..., None, :], a / np.where(ok_a, sa, 1.0)[..., None, :], 0.0)
    zb = np.where(ok_b[..., None, :], b / np.where(ok_b, sb, 1.0)[..., None, :], 0.0)
    r = np.swapaxes(za, -1, -2) @ zb  # (..., n1, n2), 0 for left-out units
    n_pairs = ok_a.sum(-1) * ok_b.sum(-1)
    total = np.einsum("...ij,...ij->...", r, r)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_pairs > 0, total / np.maximum(n_pairs, 1), np.nan)


def _off_diagonal_covariance(x: np.ndarray) -> np.ndarray:
    """The covariance over the stimuli of x (..., P, n), (..., n, n), with its diagonal set to 0."""
    xc = _centred(x)
    c = np.swapaxes(xc, -1, -2) @ xc / xc.shape[-2]
    return c * ~np.eye(c.shape[-1], dtype=bool)


def change_alignment(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """How far a population changed along the correlations it had, for two recordings before,
    after (..., P, n) of the same units and stimuli: the cosine between the covariance C_a of
    `before` and the covariance C_d of the change D = after - before, over the pairs of units
    (off the diagonal), cross-validated across the two halves of the stimuli (even and odd
    rows, 1 and 2):

        (<C_a1, C_d2> + <C_a2, C_d1>) / 2 / sqrt(<C_a1, C_a2> <C_d1, C_d2>),
        <X, Y> = sum_{i != j} X_ij Y_ij

    Shape (...); NaN with fewer than 4 stimuli or 2 units, or where either product under the
    root is not positive (no covariance between units that both halves share).

    Why cross-validated and off the diagonal: measurement noise drawn independently per unit,
    stimulus and recording adds to the variances (the diagonal) only, and the two halves'
    noise is independent, so every inner product above is unbiased by it (as in cross-validated
    RSA, Walther et al. 2016, NeuroImage 137:188). Computed within one set of stimuli, the
    norms would grow with the noise and pull the value towards 0 by an amount that depends on
    how much the population changed relative to the noise: a rule that learns slowly would
    read as one whose change is unrelated to the population.

    What it asks of the rules (measured in the README: near 0 for feedback alignment on every
    task tried, above it for backprop and IA by amounts that depend on the task): a unit's
    activity changes along its error delta_l. Under feedback alignment (Lillicrap et al. 2016,
    Nat. Commun. 7:13276) delta_l = B_{l+1} delta_{l+1} with B fixed at random, so the change is
    unrelated to the correlations the population started with (value near 0); under backprop
    (delta_l = W_{l+1}^T delta_{l+1}) and information alignment (Kunin et al. 2020, ICML:
    B_{l+1} learns the ridge decoder of layer l's activity from layer l+1's, whose columns lie
    in the span of layer l's activity covariance) the change follows the forward pathway and the
    population's own correlations."""
    x, y = np.asarray(before, dtype=np.float64), np.asarray(after, dtype=np.float64)
    if x.shape != y.shape or x.ndim < 2:
        raise ValueError(f"before and after must have the same shape (..., stimuli, units); "
                         f"got {x.shape} and {y.shape}")
    p, n = x.shape[-2:]
    if p < 4 or n < 2:
        return np.full(x.shape[:-2], np.nan)
    d = y - x
    ca1, ca2 = _off_diagonal_covariance(x[..., 0::2, :]), _off_diagonal_covariance(x[..., 1::2, :])
    cd1, cd2 = _off_diagonal_covariance(d[..., 0::2, :]), _off_diagonal_covariance(d[..., 1::2, :])

    def inner(u: np.ndarray, v: np.ndarray) -> np.ndarray:
        return np.einsum("...ij,...ij->...", u, v)

    num = 0.5 * (inner(ca1, cd2) + inner(ca2, cd1))
    norm_a, norm_d = inner(ca1, ca2), inner(cd1, cd2)
    ok = (norm_a > _TINY) & (norm_d > _TINY)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ok, num / np.sqrt(np.where(ok, norm_a * norm_d, 1.0)), np.nan)


def unit_similarity(v: np.ndarray) -> np.ndarray:
    """Condensed cosine similarity of the rows of v (..., u, n): (..., u (u - 1) / 2), pairs
    (i, j), i < j, in `scipy.spatial.distance.pdist` order; 1 - pdist(v, "cosine"). A row of
    zeros has similarity 0 with every other row."""
    v = np.asarray(v, dtype=np.float64)
    if v.ndim < 2:
        raise ValueError(f"synapses must be (..., units, synapses); got shape {v.shape}")
    norm = np.sqrt(np.einsum("...in,...in->...i", v, v))
    z = v / np.where(norm > _TINY, norm, np.inf)[..., None]
    g = z @ np.swapaxes(z, -1, -2)
    i, j = np.triu_indices(v.shape[-2], k=1)
    return g[..., i, j]


def synaptic_similarity(incoming: np.ndarray, outgoing: np.ndarray) -> np.ndarray:
    """rdm_similarity(unit_similarity(incoming), unit_similarity(outgoing)) for the same u
    recorded units: `incoming` (..., u, n_in) the change of their incoming synapses, `outgoing`
    (..., u, n_out) the change of their outgoing synapses (onto recorded units of the layer
    above). Shape (...); NaN with fewer than 3 units or a constant similarity.

    Why it tells credit-assignment rules apart: a rule that sends layer l the error through the
    forward weights (backprop, Rumelhart, Hinton & Williams 1986) gives unit i the error
    delta_i = f'_i sum_j W_{l+1, ji} delta_j, so units whose outgoing synapses are alike get
    alike errors and alike changes of their incoming synapses (dW_{l, i.} = delta_i x^T); with
    a fixed random feedback matrix B (feedback alignment, Lillicrap et al. 2016, Nat. Commun.
    7:13276) delta_i follows row i of B instead, and the two similarities agree only as far as
    W_{l+1}^T has come to align with B."""
    a, b = np.asarray(incoming), np.asarray(outgoing)
    if a.shape[-2] != b.shape[-2]:
        raise ValueError(f"incoming and outgoing must share the unit axis; got {a.shape[-2]} "
                         f"and {b.shape[-2]} units")
    if a.shape[-2] < 3:
        return np.full(np.broadcast_shapes(a.shape[:-2], b.shape[:-2]), np.nan)
    return rdm_similarity(unit_similarity(a), unit_similarity(b))
