"""The absolute scale of CEAS's noise model, estimated so that a Byzantine minority cannot move it.

Model (docs/aggregation.md, section 6). Honest node k's update, in the metric G, is
y_k = mu + delta_k + e_k with E||e_k||^2 = kappa sigma_k^2 (QPU noise: sigma_k^2 = 1/(S_k c_k^2)
from the *server's* calibration record, kappa common) and E||delta_k||^2 = tau2 (data
heterogeneity, a random effect). With m the coordinate-wise median,

    E d_k^2 = E||y_k - m||^2 ≈ kappa sigma_k^2 + tau2 (+ a constant from m's own error),

a line in sigma_k^2: slope kappa, intercept tau2 (DerSimonian & Laird 1986's random-effects
decomposition, fitted across nodes instead of by moments).

Why these inputs. The fit uses the server-side sigma_k^2 only, never a node's claim: a claim can
only *raise* sigma_k^2 and the claim rule lets it, so a fit on claims lets Byzantine nodes choose
their own abscissae (claim to be noisier than every honest node, sit far out) and set the slope
(the fit-capture attack). On server records, an attacker chooses only its ordinate d_k^2.

Why this estimator. Siegel's repeated median (1982),

    kappa = med_i med_{j: x_j != x_i} (y_j - y_i) / (x_j - x_i),   tau2 = med_i (y_i - kappa x_i),

has breakdown point 1/2: as long as fewer than half of the points are Byzantine, no placement of
theirs moves kappa or tau2 outside the range spanned by honest slopes and intercepts (Theil-Sen,
used before, breaks down at 29%). ``tests/robust/test_scale_fit.py`` measures it.

When sigma_k^2 do not vary (identical devices), slope and intercept are not identifiable: all
spread is attributed to QPU noise (kappa = med d_k^2 / sigma_k^2, tau2 = 0), again a median
(breakdown 1/2). The consensus tests that need the noise floor alone (``near`` and ``pair``,
:mod:`strategies.ceas_filters`) then normalise by their median ratio downward only, so an
over-estimated floor does not reject honest nodes.
"""

from __future__ import annotations

import numpy as np

from strategies.robust._checks import PreconditionError

__all__ = ["ScaleFit", "repeated_median_line", "fit_noise_scale", "squared_distances"]


class ScaleFit(tuple):
    """(kappa, tau2, identifiable, kappa_point): the fitted noise scale (its lower confidence
    bound, for the weights), the between-node variance, whether the sigma_k^2 varied enough to
    separate them, and the point estimate (for the noise-floor tests, which need the floor's
    level, not a bound below it)."""

    __slots__ = ()

    def __new__(cls, kappa: float, tau2: float, identifiable: bool, kappa_point: float | None = None) -> ScaleFit:
        point = float(kappa if kappa_point is None else kappa_point)
        return super().__new__(cls, (float(kappa), float(tau2), bool(identifiable), point))

    @property
    def kappa(self) -> float:
        return self[0]

    @property
    def tau2(self) -> float:
        return self[1]

    @property
    def identifiable(self) -> bool:
        return self[2]

    @property
    def kappa_point(self) -> float:
        return self[3]


def repeated_median_line(x: np.ndarray, y: np.ndarray, rel_tie: float = 1e-9) -> tuple[float, float] | None:
    """Siegel's repeated-median line (slope, intercept), or None if no two x differ.

    slope = med_i med_{j: |x_j - x_i| > rel_tie max|x|} (y_j - y_i)/(x_j - x_i) over the points i
    that have such a j; intercept = med_i (y_i - slope x_i). O(n^2) memory and time."""
    xs = np.asarray(x, dtype=np.float64)
    ys = np.asarray(y, dtype=np.float64)
    if xs.shape != ys.shape or xs.ndim != 1:
        raise PreconditionError("x and y must be 1-D arrays of one length")
    if xs.size < 2:
        return None
    dx = xs[None, :] - xs[:, None]
    dy = ys[None, :] - ys[:, None]
    tie = np.abs(dx) <= rel_tie * max(float(np.max(np.abs(xs))), 1e-300)
    slopes = np.where(tie, np.nan, dy / np.where(tie, 1.0, dx))
    ok = ~np.all(tie, axis=1)
    if not ok.any():
        return None
    per_point = np.nanmedian(slopes[ok], axis=1)
    slope = float(np.median(per_point))
    return slope, float(np.median(ys - slope * xs))


def squared_distances(y: np.ndarray) -> np.ndarray:
    """d_k^2 = ||y_k - m||^2, m the coordinate-wise median (rows already in the metric)."""
    diff = y - np.median(y, axis=0)
    return np.einsum("ij,ij->i", diff, diff)


def fit_noise_scale(y: np.ndarray, server_factors: np.ndarray, *, z: float = 2.0, boot: int = 64) -> ScaleFit:
    """kappa and tau2 from metric-transformed updates ``y`` (n, d) and the server's sigma_k^2.

    Repeated median of d_k^2 on sigma_k^2 (:func:`repeated_median_line`); kappa is then lowered to
    its lower confidence bound kappa_hat - z SE, SE = 1.4826 MAD of the slope over ``boot``
    bootstrap resamples of the nodes (robust: a resample that draws many Byzantine nodes gives a
    wild slope, which a standard deviation would let collapse the bound; a fixed-seed generator,
    so the fit is a function of its inputs), and tau2 = med_k (d_k^2 - kappa sigma_k^2). Where heterogeneity dwarfs the
    QPU noise the slope is not resolvable (its interval reaches 0) and the weights fall back to
    the data shares, the safe direction: an over-estimated kappa tilts weights away from FedAvg's
    target by the precision of nodes whose noise is in fact negligible. kappa <= 0 is set to 1e-9
    of the median ratio so stamps stay finite. Not identifiable (no two sigma_k^2 differ):
    kappa = med_k d_k^2 / sigma_k^2, tau2 = 0."""
    f = np.asarray(server_factors, dtype=np.float64)
    if f.ndim != 1 or f.shape[0] != y.shape[0] or not np.all(np.isfinite(f)) or np.any(f <= 0):
        raise PreconditionError("server_factors must be one finite sigma^2 > 0 per update")
    d2 = squared_distances(y)
    ratio = float(np.median(d2 / f))
    line = repeated_median_line(f, d2) if y.shape[0] >= 3 else None
    if line is None:
        return ScaleFit(max(ratio, 1e-300), 0.0, False)
    slope = point = line[0]
    if boot > 1 and z > 0:
        gen = np.random.default_rng(0)
        draws = []
        for _ in range(int(boot)):
            idx = gen.integers(0, f.size, f.size)
            bl = repeated_median_line(f[idx], d2[idx])
            if bl is not None:
                draws.append(bl[0])
        if len(draws) >= 2:
            b = np.asarray(draws)
            slope = slope - z * 1.4826 * float(np.median(np.abs(b - np.median(b))))
    kappa = slope if slope > 0 else 1e-9 * max(ratio, 1e-300)
    floor = 1e-9 * max(ratio, 1e-300)
    return ScaleFit(kappa, max(float(np.median(d2 - kappa * f)), 0.0), True, max(point, kappa, floor))
