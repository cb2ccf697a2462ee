"""CEAS outlier filters (pure functions, no Flower): ``none``, the classic ``median`` distance
rule and the default stamp-consistency filter, which judges each update against its *own*
predicted spread. Part of :mod:`strategies.ceas_math`, which re-exports every public name.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from scipy.stats import chi2, norm

from strategies.ceas_weights import (
    STAMP_SCALE,
    _as_stamps,
    cap_weights,
    fidelity_weights,
    metric_transform,
)
from strategies.robust._checks import PreconditionError, as_vectors

__all__ = [
    "FilterResult",
    "OutlierFilter",
    "NoFilter",
    "MedianDistanceFilter",
    "StampConsistencyFilter",
    "OUTLIER_FILTERS",
    "get_outlier_filter",
]


@dataclass(frozen=True)
class FilterResult:
    """What an outlier filter decided.

    kept: sorted indices of the vectors kept. reasons: rejected index -> ``"outlier:<rule>"``
    (the contract's rejection reason). details: rejected index -> a short explanation.
    center: the filter's robust centre in the original coordinates (None if it has none)."""

    kept: np.ndarray
    reasons: dict[int, str]
    details: dict[int, str] = field(default_factory=dict)
    center: np.ndarray | None = None


class OutlierFilter(Protocol):
    """A pluggable outlier rule: ``name`` and a call returning a :class:`FilterResult`."""

    name: str

    def __call__(
        self,
        vectors: np.ndarray,
        stamps: np.ndarray,
        *,
        metric: np.ndarray | None = None,
        scale: float = STAMP_SCALE,
        f: int | None = None,
    ) -> FilterResult: ...


def _result(name: str, n: int, reject: dict[int, str], center: np.ndarray | None) -> FilterResult:
    kept = np.array([i for i in range(n) if i not in reject], dtype=np.int64)
    return FilterResult(
        kept=kept,
        reasons={i: f"outlier:{name}" for i in sorted(reject)},
        details={i: reject[i] for i in sorted(reject)},
        center=center,
    )


@dataclass(frozen=True)
class NoFilter:
    """Keeps everything (``none``)."""

    name: str = "none"

    def __call__(self, vectors, stamps, *, metric=None, scale=STAMP_SCALE, f=None) -> FilterResult:  # noqa: D102
        x = as_vectors(vectors)
        return FilterResult(kept=np.arange(x.shape[0]), reasons={}, details={}, center=None)


@dataclass(frozen=True)
class MedianDistanceFilter:
    """Classic rule (``outlier:median``): distance to the coordinate-wise median, robust z-score.

    r_k = ||x_k - med||_G; reject r_k > median(r) + z x 1.4826 x MAD(r). Stamp-blind, so it
    cannot tell a low-variance attack (ALIE sits *closer* to the median than honest nodes) from a
    good node: kept for comparison; :class:`StampConsistencyFilter` is the default."""

    z: float = 3.0
    name: str = "median"

    def __call__(self, vectors, stamps, *, metric=None, scale=STAMP_SCALE, f=None) -> FilterResult:  # noqa: D102
        x = as_vectors(vectors)
        n = x.shape[0]
        y = metric_transform(x, metric)
        med = np.median(y, axis=0)
        r = np.linalg.norm(y - med, axis=1)
        mr = float(np.median(r))
        mad = 1.4826 * float(np.median(np.abs(r - mr)))
        limit = mr + self.z * max(mad, 1e-12 * max(mr, 1e-300))
        reject = {i: f"distance {r[i]:.3g} > {limit:.3g}" for i in range(n) if r[i] > limit}
        if len(reject) == n:  # pragma: no cover - degenerate; keep the closest half
            keep = np.argsort(r, kind="stable")[: (n + 1) // 2]
            reject = {i: v for i, v in reject.items() if i not in set(keep.tolist())}
        return _result(self.name, n, reject, np.median(x, axis=0))


def _weighted_coordinate_median(y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Per coordinate, the weighted median (the mean of the lower and upper weighted medians)."""
    order = np.argsort(y, axis=0, kind="stable")
    ys = np.take_along_axis(y, order, axis=0)
    cw = np.cumsum(w[order], axis=0)
    total = float(w.sum())
    lo = np.argmax(cw >= 0.5 * total * (1 - 1e-12), axis=0)
    hi = np.argmax(cw > 0.5 * total * (1 + 1e-12), axis=0)
    cols = np.arange(y.shape[1])
    return 0.5 * (ys[lo, cols] + ys[hi, cols])


_TINY = 1e-300


def _log_ratios(y: np.ndarray, c: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """log(||y_k - c||^2 / E_k), floored at a tiny positive ratio."""
    return np.log(np.maximum(np.einsum("ij,ij->i", y - c, y - c) / expected, _TINY))


def _pair_log_ratios(y: np.ndarray, t: np.ndarray) -> np.ndarray:
    """log D_ij, D_ij = ||y_i - y_j||^2 / (T_i + T_j) (zero diagonal floored at a tiny ratio)."""
    sq = np.einsum("ij,ij->i", y, y)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * (y @ y.T), 0.0)
    np.fill_diagonal(d2, 0.0)
    return np.log(np.maximum(d2 / (t[:, None] + t[None, :]), _TINY))


def _median_start(y: np.ndarray, t: np.ndarray, w0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(c, E): the weighted coordinate-wise median and E_k = T_k + its asymptotic variance
    (pi/2) sum w^2 / (sum_k w_k / sqrt(T_k))^2."""
    t_c = (math.pi / 2.0) * float(np.sum(w0 * w0)) / float(np.sum(w0 / np.sqrt(t))) ** 2
    return _weighted_coordinate_median(y, w0), t + t_c


def _centred_expected(t: np.ndarray, w: np.ndarray) -> np.ndarray:
    """E_k = T_k (1 - 2 w_k) + sum_j w_j^2 T_j: the centre sum_j w_j y_j contains y_k."""
    return np.maximum(t * (1.0 - 2.0 * w) + float(np.sum(w * w * t)), _TINY)


def _ratio_rejections(lr: np.ndarray, lo: float, hi: float) -> dict[int, str]:
    """``far`` for ratio > hi, ``near`` for ratio < lo."""
    reject: dict[int, str] = {}
    for i in range(lr.shape[0]):
        ri = math.exp(lr[i])
        if ri > hi:
            reject[i] = f"far: distance^2/expected {ri:.3g} > {hi:.3g}"
        elif ri < lo:
            reject[i] = f"near: distance^2/expected {ri:.3g} < {lo:.3g} (less noise than its stamp predicts)"
    return reject


def _closest_half(lr: np.ndarray) -> tuple[np.ndarray, dict[int, str]]:
    """Nothing consistent: keep the half closest to the centre."""
    n = lr.shape[0]
    kept = np.zeros(n, dtype=bool)
    kept[np.argsort(lr, kind="stable")[: (n + 1) // 2]] = True
    return kept, {i: "far: no consistent majority" for i in range(n) if not kept[i]}


@dataclass(frozen=True)
class _Round:
    """What one filter call fixes before iterating: transformed vectors, stamps, predicted spreads
    T_k, pair ratios and the (constant) bounds."""

    y: np.ndarray
    phi: np.ndarray
    t: np.ndarray
    log_pair: np.ndarray
    lo: float
    hi: float
    lo_pair: float
    s0: float
    scale: float


@dataclass(frozen=True)
class StampConsistencyFilter:
    """Stamp-consistency filter (``outlier:stamp``): each update judged against its own predicted
    spread, two-sided, plus a collusion (too-close pair) test.

    With T_k = scale / phi_k = tr(G Sigma_k) (the node's own, possibly lying, claim), a robust
    centre c and r_k = ||y_k - c||^2 / E_k, where E_k is the expected value for an honest node:

    * initial centre: a coordinate-wise median, unweighted and weighted by the stamps capped at
      the median stamp (``start="auto"`` runs both and keeps the end point whose ratios r_k are
      most consistent, by a capped log-normal likelihood), E_k = T_k + the start's asymptotic
      variance (pi/2) sum w^2 / (sum_k w_k T_k^-1/2)^2;
    * then c = sum_j w_j y_j with the capped fidelity weights w over the kept nodes and
      E_k = T_k (1 - 2 w_k) + sum_j w_j^2 T_j (the centre contains y_k with weight w_k);
    * r is divided by its median over kept nodes, clipped to [1/max_rescale, max_rescale]
      (absorbs a common miscalibration of stamps, but not a centre dragged away by attackers,
      which also raises every ratio);
    * in log space: reject ``far`` if r_k > hi and ``near`` if r_k < lo, (lo, hi) = the wider of
      the chi-square quantiles chi2_q(d_eff)/d_eff at z standard deviations and exp(-+z s0),
      s0 = sqrt(2/d_eff + stamp_log_sd^2) (chi-square concentration in d_eff effective
      dimensions (``eff_dim``; default d, or the metric's participation ratio
      (tr G)^2 / tr(G^2)), plus the honest stamps' own calibration error);
    * reject both of a pair (i, j) whose D_ij = ||y_i - y_j||^2 / (T_i + T_j), divided by its
      median, is below the lower bound at z_pair: independent honest noises cannot be that
      close (identical colluding vectors, mimicry);
    * iterate (re-centre, re-test every node, so a wrongly rejected node can come back) until the
      kept set is stable.

    A node that lies about a small Sigma_k (large stamp) gets a small T_k, hence a tight
    tolerance: ALIE (about 0.2x an honest node's spread) with an inflated stamp is ``far``; with
    an honest-looking stamp it is ``near``; several ALIE nodes sending one vector are a ``pair``.
    Under non-IID data pass ``tau2`` > 0 (between-node variance; see docs/aggregation.md).
    """

    z: float = 3.5
    z_pair: float = 4.0
    eff_dim: float | None = None
    stamp_log_sd: float = 0.2
    cap_multiple: float | None = 3.0
    tau2: float = 0.0
    normalise: bool = True
    pairwise: bool = True
    max_iter: int = 10
    start: str = "auto"
    max_rescale: float = 1.5
    name: str = "stamp"

    def _eff_dim(self, d: int, metric: np.ndarray | None) -> float:
        """d_eff: ``eff_dim`` if given; else d, or with a metric G its participation ratio
        (tr G)^2 / tr(G^2) (a low-rank QFI concentrates the noise in few directions)."""
        if self.eff_dim:
            return float(self.eff_dim)
        if metric is None:
            return float(d)
        g = np.asarray(metric, dtype=np.float64)
        ev = g if g.ndim == 1 else np.linalg.eigvalsh(0.5 * (g + g.T))
        ev = np.clip(ev, 0.0, None)
        tot = float(ev.sum())
        return float(min(d, max(1.0, tot * tot / max(float(np.sum(ev * ev)), 1e-300)))) if tot > 0 else float(d)

    def bounds(self, d: int, z: float, deff: float | None = None) -> tuple[float, float]:
        """(lo, hi) for a normalised ratio at z standard deviations: the wider of the chi-square
        model's quantiles chi2_q(d_eff) / d_eff (tail 1 - Phi(z) each side) and
        exp(-+z s0), s0 = sqrt(2 / d_eff + stamp_log_sd^2)."""
        deff = float(deff if deff is not None else (self.eff_dim or d))
        tail = float(norm.sf(z))
        s = math.sqrt(2.0 / deff + float(self.stamp_log_sd) ** 2)
        lo = min(float(chi2.ppf(tail, deff) / deff), math.exp(-z * s))
        hi = max(float(chi2.isf(tail, deff) / deff), math.exp(z * s))
        return lo, hi

    def __call__(self, vectors, stamps, *, metric=None, scale=STAMP_SCALE, f=None) -> FilterResult:  # noqa: D102
        x = as_vectors(vectors)
        n = x.shape[0]
        rd = self._setup(x, _as_stamps(stamps, n), metric, scale)
        best = None
        for w0 in self._starts(rd.phi):
            out = self._run(rd, w0)
            if best is None or out[0] > best[0] + 1e-9:
                best = out
        _, kept, w, reject = best
        center = w @ x if w.any() else np.median(x, axis=0)
        return _result(self.name, n, reject, center)

    def _setup(self, x: np.ndarray, phi: np.ndarray, metric: np.ndarray | None, scale: float) -> _Round:
        y = metric_transform(x, metric)
        t = float(scale) / phi + float(self.tau2)
        deff = self._eff_dim(x.shape[1], metric)
        lo, hi = self.bounds(x.shape[1], self.z, deff)
        lo_pair, _ = self.bounds(x.shape[1], self.z_pair, deff)
        s0 = math.sqrt(2.0 / deff + float(self.stamp_log_sd) ** 2)
        return _Round(y, phi, t, _pair_log_ratios(y, t), lo, hi, lo_pair, s0, float(scale))

    def _starts(self, phi: np.ndarray) -> list[np.ndarray]:
        """Start weights: "median" (unweighted), "weighted-median" (stamps capped at the median
        stamp: a liar weighs no more than a median node; the precise honest nodes pull toward
        g), or "auto": both, keeping the end point most consistent with the stamps."""
        n = phi.shape[0]
        starts = {"median": [np.full(n, 1.0 / n)], "weighted-median": [cap_weights(phi, 1.0)]}
        starts["auto"] = starts["median"] + starts["weighted-median"]
        if self.start not in starts:
            raise PreconditionError(f"start must be 'auto', 'median' or 'weighted-median'; got {self.start!r}")
        return starts[self.start]

    def _weights(self, rd: _Round, kept: np.ndarray) -> np.ndarray:
        return fidelity_weights(rd.phi, cap_multiple=self.cap_multiple, mask=kept, tau2=self.tau2, scale=rd.scale)

    def _run(self, rd: _Round, w0: np.ndarray) -> tuple[float, np.ndarray, np.ndarray, dict[int, str]]:
        """From the weighted-median start w0, iterate to a stable kept set; (score, kept, w, reject)."""
        n = rd.phi.shape[0]
        c, expected = _median_start(rd.y, rd.t, w0)
        kept = np.ones(n, dtype=bool)
        w = np.zeros(n)
        reject: dict[int, str] = {}
        for _ in range(max(int(self.max_iter), 1)):
            lr = self._normalised(_log_ratios(rd.y, c, expected), kept)
            reject = _ratio_rejections(lr, rd.lo, rd.hi)
            self._pair_rejections(rd, reject)
            new_kept = np.array([i not in reject for i in range(n)])
            if not new_kept.any():
                new_kept, reject = _closest_half(lr)
            stable = np.array_equal(new_kept, kept) and w.any()
            kept = new_kept
            if stable:
                break
            w = self._weights(rd, kept)
            c = w @ rd.y
            expected = _centred_expected(rd.t, w)
        if not w.any():
            w = self._weights(rd, kept)
        return self._score(rd, w), kept, w, reject

    def _normalised(self, lr: np.ndarray, kept: np.ndarray) -> np.ndarray:
        """Log ratios shifted by their median over the kept nodes, the shift bounded by
        log(max_rescale): a common miscalibration of the stamps; a shift of the centre by
        attackers also raises every ratio, and must not be absorbed here."""
        if not self.normalise:
            return lr
        ref = lr[kept] if kept.sum() >= 2 else lr
        return lr - float(np.clip(np.median(ref), -math.log(self.max_rescale), math.log(self.max_rescale)))

    def _pair_rejections(self, rd: _Round, reject: dict[int, str]) -> None:
        """Add ``pair`` to both nodes of each too-close pair among the not yet rejected (in place)."""
        n = rd.phi.shape[0]
        if not self.pairwise or n < 3:
            return
        cand = np.array([i for i in range(n) if i not in reject])
        if cand.size < 3:
            return
        sub = rd.log_pair[np.ix_(cand, cand)]
        pm = float(np.median(sub[np.triu_indices(cand.size, 1)])) if self.normalise else 0.0
        close = (sub - pm < math.log(rd.lo_pair)) & ~np.eye(cand.size, dtype=bool)
        for a, b in zip(*np.nonzero(np.triu(close, 1))):
            for i, j in ((cand[a], cand[b]), (cand[b], cand[a])):
                reject.setdefault(int(i), f"pair: too close to node index {int(j)} for independent noise")

    def _score(self, rd: _Round, w: np.ndarray) -> float:
        """Consistency of the end point: a capped log-normal likelihood of the ratios r_k."""
        lr_raw = _log_ratios(rd.y, w @ rd.y, _centred_expected(rd.t, w))
        return float(np.sum(np.maximum(-(lr_raw**2) / (2 * rd.s0 * rd.s0), -0.5 * self.z**2)))


OUTLIER_FILTERS: dict[str, Callable[..., OutlierFilter]] = {
    "none": NoFilter,
    "median": MedianDistanceFilter,
    "stamp": StampConsistencyFilter,
}


def get_outlier_filter(name: str | OutlierFilter, **params: Any) -> OutlierFilter:
    """A filter by registry name (``stamp`` default, ``median``, ``none``) or an object passed through."""
    if not isinstance(name, str):
        return name
    if name not in OUTLIER_FILTERS:
        raise KeyError(f"unknown outlier filter {name!r}; known: {', '.join(OUTLIER_FILTERS)}")
    return OUTLIER_FILTERS[name](**params)
