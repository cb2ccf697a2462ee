"""The statistics of CEAS's consensus tests and their null bounds (pure functions, no Flower).

Model (docs/aggregation.md, section 3): in the metric G, honest y_k = mu + delta_k + e_k with QPU
noise E||e_k||^2 = v_k (the node's predicted spread, v_k = scale / phi_k) and data heterogeneity
E||delta_k||^2 = tau2; the centre is c = sum_j w_j y_j over the kept nodes.

* ``near`` and ``pair`` test for *too little* noise, against the QPU-noise floor only. Whatever the
  data, y_i - y_j = (delta_i - delta_j) + (e_i - e_j) with e independent of delta, so
  ||y_i - y_j||^2 / (v_i + v_j) is a non-central chi-square over d_eff, stochastically larger than
  the central chi2(d_eff) / d_eff of IID data: a lower bound at the central quantile has a false
  rejection rate <= its nominal tail under any heterogeneity. (The old pair test normalised by
  the median pair, which includes heterogeneity, so honest nodes with similar label mixtures
  looked like colluders.)
* ``far`` tests for too much spread against v_k + tau2 with a bound that adds the nodes' robust
  log-dispersion (1.4826 MAD of log ratios; breakdown 1/2) to the chi-square one: no distribution
  of ||delta_k||^2 is assumed, so honest nodes with unusual data are not rejected for it.
* ``direction`` tests each update's component along two leave-one-out directions: the consensus
  update c_-k (sign flip, label flip) and the shift c_-k - m of the weighted centre from the
  coordinate-wise median m (a common push, as in boundary attacks). Leave-one-out, the direction
  is independent of y_k's own noise, so under the null the standardised component
  p_k = <y_k - c_-k, u> / sqrt((v_k + tau2) / d_eff) is a sum of independent noise; a robust
  z-score (median, 1.4826 MAD across nodes, breakdown 1/2) absorbs anisotropy and heterogeneity
  along u, and |z| > z_dir rejects. Under normality the two-sided rate is 2 (1 - Phi(z_dir)) per
  direction (6.3e-5 at z_dir = 4).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import chi2, norm

__all__ = [
    "chi2_bounds",
    "noise_floor_expected",
    "heterogeneity_expected",
    "pair_log_ratios",
    "robust_z",
    "far_threshold",
    "direction_statistics",
    "leave_one_out_medians",
]

_TINY = 1e-300


def chi2_bounds(z: float, deff: float, stamp_log_sd: float) -> tuple[float, float]:
    """(lo, hi) of a normalised squared distance at z standard deviations: the wider of the
    chi-square quantiles chi2_q(d_eff) / d_eff (tail 1 - Phi(z) each side) and exp(-+z s0),
    s0 = sqrt(2 / d_eff + stamp_log_sd^2) (chi-square concentration plus the honest stamps'
    calibration error)."""
    tail = float(norm.sf(z))
    s = math.sqrt(2.0 / deff + float(stamp_log_sd) ** 2)
    lo = min(float(chi2.ppf(tail, deff) / deff), math.exp(-z * s))
    hi = max(float(chi2.isf(tail, deff) / deff), math.exp(z * s))
    return lo, hi


def noise_floor_expected(v: np.ndarray, w: np.ndarray) -> np.ndarray:
    """F_k = E||e_k - sum_j w_j e_j||^2 = v_k (1 - 2 w_k) + sum_j w_j^2 v_j (the centre contains
    y_k with weight w_k)."""
    return np.maximum(v * (1.0 - 2.0 * w) + float(np.sum(w * w * v)), _TINY)


def heterogeneity_expected(tau2: float, w: np.ndarray) -> np.ndarray:
    """H_k = E||delta_k - sum_j w_j delta_j||^2 = tau2 (1 - 2 w_k + sum_j w_j^2)."""
    return np.maximum(float(tau2) * (1.0 - 2.0 * w + float(np.sum(w * w))), 0.0)


def pair_log_ratios(y: np.ndarray, v: np.ndarray) -> np.ndarray:
    """log D_ij, D_ij = ||y_i - y_j||^2 / (v_i + v_j) against the noise floor (diagonal floored)."""
    sq = np.einsum("ij,ij->i", y, y)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * (y @ y.T), 0.0)
    np.fill_diagonal(d2, 0.0)
    return np.log(np.maximum(d2 / (v[:, None] + v[None, :]), _TINY))


def robust_z(values: np.ndarray, floor: float = 0.0) -> np.ndarray:
    """(x - median) / max(1.4826 MAD, floor): ``floor`` is the scale the model predicts (1 for
    standardised components), so a MAD that is small by chance in a small federation does not
    tighten the test below the model's own spread."""
    med = float(np.median(values))
    mad = 1.4826 * float(np.median(np.abs(values - med)))
    scale = max(mad, float(floor), 1e-12 * max(float(np.max(np.abs(values))), 1e-300))
    return (values - med) / scale


def far_threshold(log_ratios: np.ndarray, log_hi: float, z: float) -> float:
    """The upper bound on a far-test log ratio above its median: the wider of the chi-square
    bound log(hi) and z x 1.4826 MAD(log ratios) (the nodes' own dispersion, breakdown 1/2)."""
    med = float(np.median(log_ratios))
    mad = 1.4826 * float(np.median(np.abs(log_ratios - med)))
    return max(float(log_hi), z * mad)


def leave_one_out_medians(y: np.ndarray) -> np.ndarray:
    """Row k: the coordinate-wise median of the rows other than k, in O(n d log n).

    Per coordinate the values are sorted once; removing the value of rank r leaves the order
    statistics s_0..s_{r-1}, s_{r+1}..s_{n-1}, whose median picks s_a or s_{a+1} by comparing a
    with r."""
    n = y.shape[0]
    if n < 2:
        return y.copy()
    order = np.argsort(y, axis=0, kind="stable")
    s = np.take_along_axis(y, order, axis=0)
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(n)[:, None].repeat(y.shape[1], axis=1), axis=0)
    m = n - 1

    def stat(a: int) -> np.ndarray:  # a-th order statistic of the remaining n - 1 values, per row
        idx = np.where(a < rank, a, a + 1)
        return np.take_along_axis(s, idx, axis=0)

    if m % 2:
        return stat(m // 2)
    return 0.5 * (stat(m // 2 - 1) + stat(m // 2))


def direction_statistics(
    y: np.ndarray, w: np.ndarray, m_loo: np.ndarray, spread: np.ndarray, deff: float
) -> list[np.ndarray]:
    """Standardised leave-one-out components p_k (one array per direction) along the consensus
    update c_-k and the centre's shift c_-k - m_-k (c_-k = (c - w_k y_k) / (1 - w_k), m_-k the
    coordinate-wise median without row k, :func:`leave_one_out_medians`), divided by
    sqrt(spread_k / d_eff) (spread_k = v_k + tau2). A direction of zero length gives p_k = 0."""
    m = m_loo
    c = w @ y
    loo = (c[None, :] - w[:, None] * y) / np.maximum(1.0 - w, 1e-12)[:, None]
    resid = y - loo
    sd = np.sqrt(np.maximum(spread, _TINY) / deff)
    out = []
    for u in (loo, loo - m):
        norms = np.linalg.norm(u, axis=1)
        comp = np.einsum("ij,ij->i", resid, u) / np.maximum(norms, _TINY)
        out.append(np.where(norms > 0, comp / sd, 0.0))
    return out
