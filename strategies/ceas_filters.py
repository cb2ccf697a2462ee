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

from strategies.ceas_tests import (
    chi2_bounds,
    direction_statistics,
    far_threshold,
    heterogeneity_expected,
    leave_one_out_medians,
    noise_floor_expected,
    pair_log_ratios,
    robust_z,
)
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
        sizes: np.ndarray | None = None,
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

    def __call__(self, vectors, stamps, *, metric=None, scale=STAMP_SCALE, f=None, sizes=None) -> FilterResult:  # noqa: D102
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

    def __call__(self, vectors, stamps, *, metric=None, scale=STAMP_SCALE, f=None, sizes=None) -> FilterResult:  # noqa: D102
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


def _median_start(y: np.ndarray, t: np.ndarray, w0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(c, E): the weighted coordinate-wise median and E_k = T_k + its asymptotic variance
    (pi/2) sum w^2 / (sum_k w_k / sqrt(T_k))^2."""
    t_c = (math.pi / 2.0) * float(np.sum(w0 * w0)) / float(np.sum(w0 / np.sqrt(t))) ** 2
    return _weighted_coordinate_median(y, w0), t + t_c


def _closest_half(lr: np.ndarray) -> tuple[np.ndarray, dict[int, str]]:
    """Nothing consistent: keep the half closest to the centre."""
    n = lr.shape[0]
    kept = np.zeros(n, dtype=bool)
    kept[np.argsort(lr, kind="stable")[: (n + 1) // 2]] = True
    return kept, {i: "far: no consistent majority" for i in range(n) if not kept[i]}


@dataclass(frozen=True)
class _Round:
    """What one filter call fixes before iterating: transformed vectors, stamps, noise floors
    v_k, heterogeneity tau2, data-size prior, pair ratios, the leave-one-out medians and the bounds."""

    y: np.ndarray
    phi: np.ndarray
    v: np.ndarray
    tau2: float
    prior: np.ndarray | None
    log_pair: np.ndarray
    median: np.ndarray
    deff: float
    lo: float
    hi: float
    lo_pair: float
    s0: float
    scale: float


@dataclass(frozen=True)
class StampConsistencyFilter:
    """Stamp-consistency filter (``outlier:stamp``): each update judged against its own predicted
    spread, with tests whose null distributions hold under data heterogeneity
    (:mod:`strategies.ceas_tests` has the statistics; docs/aggregation.md the derivations).

    With v_k = scale / phi_k (the node's predicted QPU-noise spread, from its possibly lying
    claim), tau2 the between-node variance of the data, a centre c = sum_j w_j y_j (capped
    random-effects weights over the kept nodes; ``sizes`` n_k set their target, FedAvg's), and
    F_k, H_k the noise and heterogeneity parts of E||y_k - c||^2:

    * ``near``: ||y_k - c||^2 / F_k below the chi-square lower bound (less noise than the node's
      own claim allows, whatever its data);
    * ``pair``: ||y_i - y_j||^2 / (v_i + v_j) below the lower bound at z_pair (two updates closer
      than independent QPU noises can be: colluders, mimicry); both of the pair are rejected;
    * ``far``: ||y_k - c||^2 / (F_k + H_k), divided by its median, above the wider of the
      chi-square bound and z x 1.4826 MAD of the log ratios (the honest nodes' own dispersion);
    * ``direction``: |robust z| > z_dir of the leave-one-out component along the consensus
      update or along the centre's shift from the coordinate-wise median (sign flip, label flip,
      a common push that distance tests cannot see);
    * near and pair ratios are divided by their median only when it is below 1 (an
      over-estimated floor), far ratios by their median clipped to [1/max_rescale, max_rescale];
    * start from two coordinate-wise medians (unweighted and weighted by the stamps capped at the
      median stamp; ``start="auto"`` keeps the end point whose ratios are most consistent),
      iterate (re-centre, re-test every node, so a wrongly rejected node can come back) until the
      kept set is stable.

    ``floor_ratio`` scales v_k in the near test: the scale fit's point estimate over the lower
    bound the weights and the pair test use (:class:`strategies.ceas_scale.ScaleFit`), so the
    weights lean to FedAvg's shares when kappa is uncertain while ``near`` keeps the floor's level
    (ALIE); ``pair`` keeps the lower bound, because honest nodes holding the same labels (Dirichlet
    alpha = 0.1) differ by little more than their QPU noise, and colluders sending one vector sit
    at distance 0, below any positive floor.

    ``null="median"`` is the rule before issue 16, kept as the negative control of the tests: near
    and pair ratios against the whole spread and normalised by their median both ways, so data
    heterogeneity shared by a cluster of honest nodes reads as collusion.

    d_eff is ``eff_dim`` or the metric's participation ratio (tr G)^2 / tr(G^2) (d without a
    metric). A node claiming a small variance shrinks its own tolerance: ALIE with an inflated
    stamp is ``far``, with an honest-looking one ``near``, several ALIE nodes sending one vector
    are a ``pair``.
    """

    z: float = 3.5
    z_pair: float = 4.0
    z_dir: float = 4.0
    eff_dim: float | None = None
    stamp_log_sd: float = 0.2
    cap_multiple: float | None = 3.0
    tau2: float = 0.0
    normalise: bool = True
    pairwise: bool = True
    directional: bool = True
    null: str = "floor"
    floor_ratio: float = 1.0
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
        """(lo, hi) for a normalised ratio at z standard deviations (:func:`chi2_bounds`)."""
        return chi2_bounds(z, float(deff if deff is not None else (self.eff_dim or d)), self.stamp_log_sd)

    def __call__(self, vectors, stamps, *, metric=None, scale=STAMP_SCALE, f=None, sizes=None) -> FilterResult:  # noqa: D102
        x = as_vectors(vectors)
        n = x.shape[0]
        rd = self._setup(x, _as_stamps(stamps, n), metric, scale, sizes)
        best = None
        for w0 in self._starts(rd.phi):
            out = self._run(rd, w0)
            if best is None or out[0] > best[0] + 1e-9:
                best = out
        _, kept, w, reject = best
        center = w @ x if w.any() else np.median(x, axis=0)
        return _result(self.name, n, reject, center)

    def _setup(self, x: np.ndarray, phi: np.ndarray, metric: np.ndarray | None, scale: float,
               sizes: np.ndarray | None) -> _Round:
        y = metric_transform(x, metric)
        v = float(scale) / phi
        deff = self._eff_dim(x.shape[1], metric)
        lo, hi = self.bounds(x.shape[1], self.z, deff)
        lo_pair, _ = self.bounds(x.shape[1], self.z_pair, deff)
        s0 = math.sqrt(2.0 / deff + float(self.stamp_log_sd) ** 2)
        if not (math.isfinite(self.floor_ratio) and self.floor_ratio > 0):
            raise PreconditionError(f"floor_ratio must be finite and > 0; got {self.floor_ratio}")
        prior = None if sizes is None else np.asarray(sizes, dtype=np.float64)
        if prior is not None and (prior.shape != (x.shape[0],) or not np.all(np.isfinite(prior)) or np.any(prior < 0)):
            raise PreconditionError("sizes must be one finite data size >= 0 per update")
        return _Round(y, phi, v, float(self.tau2), prior, pair_log_ratios(y, v), leave_one_out_medians(y), deff,
                      lo, hi, lo_pair, s0, float(scale))

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
        return fidelity_weights(rd.phi, cap_multiple=self.cap_multiple, mask=kept, tau2=rd.tau2, scale=rd.scale,
                                prior=rd.prior)

    def _run(self, rd: _Round, w0: np.ndarray) -> tuple[float, np.ndarray, np.ndarray, dict[int, str]]:
        """From the weighted-median start w0, iterate to a stable kept set; (score, kept, w, reject)."""
        n = rd.phi.shape[0]
        c, start_var = _median_start(rd.y, rd.v + rd.tau2, w0)
        kept = np.ones(n, dtype=bool)
        w = np.zeros(n)
        reject: dict[int, str] = {}
        for _ in range(max(int(self.max_iter), 1)):
            d2 = np.einsum("ij,ij->i", rd.y - c, rd.y - c)
            if w.any():
                floor, het = noise_floor_expected(rd.v, w), heterogeneity_expected(rd.tau2, w)
            else:
                floor, het = start_var - rd.tau2, np.full(n, rd.tau2)
            lr_far = np.log(np.maximum(d2 / (floor + het), _TINY))
            lr_near = np.log(np.maximum(d2 / (floor * self.floor_ratio), _TINY))
            reject = self._distance_rejections(rd, lr_near, lr_far, kept)
            self._pair_rejections(rd, reject)
            if w.any() and self.directional:
                self._direction_rejections(rd, w, reject)
            new_kept = np.array([i not in reject for i in range(n)])
            if not new_kept.any():
                new_kept, reject = _closest_half(lr_far)
            stable = np.array_equal(new_kept, kept) and w.any()
            kept = new_kept
            if stable:
                break
            w = self._weights(rd, kept)
            c = w @ rd.y
        if not w.any():
            w = self._weights(rd, kept)
        return self._score(rd, w), kept, w, reject

    def _shift(self, lr: np.ndarray, kept: np.ndarray, downward_only: bool) -> float:
        """The median log ratio over the kept nodes, clipped to +-log(max_rescale) (only <= 0 for
        the floor tests: a floor over-estimated for every node; heterogeneity raises every ratio
        and must not be absorbed there)."""
        if not self.normalise:
            return 0.0
        ref = lr[kept] if kept.sum() >= 2 else lr
        bound = math.log(self.max_rescale)
        return float(np.clip(np.median(ref), -bound, 0.0 if downward_only else bound))

    def _distance_rejections(self, rd: _Round, lr_near: np.ndarray, lr_far: np.ndarray,
                             kept: np.ndarray) -> dict[int, str]:
        """``far`` (spread above the robust bound) and ``near`` (below the noise floor's bound)."""
        if self.null == "median":
            lr_near = lr_far
        elif self.null != "floor":
            raise PreconditionError(f"null must be 'floor' or 'median'; got {self.null!r}")
        near = lr_near - self._shift(lr_near, kept, self.null == "floor")
        far = lr_far - self._shift(lr_far, kept, False)
        limit = far_threshold(far, math.log(rd.hi), self.z)
        reject: dict[int, str] = {}
        for i in range(far.shape[0]):
            if far[i] > limit:
                reject[i] = f"far: log(distance^2/expected) {far[i]:.3g} > {limit:.3g}"
            elif near[i] < math.log(rd.lo):
                reject[i] = (f"near: distance^2/noise floor {math.exp(near[i]):.3g} < {rd.lo:.3g} (less noise "
                             "than its stamp predicts)")
        return reject

    def _pair_rejections(self, rd: _Round, reject: dict[int, str]) -> None:
        """Add ``pair`` to both nodes of each pair closer than the noise floor allows (in place),
        among the nodes not yet rejected; and (floor null) ``copy`` to a node whose update equals
        an already rejected one's to 1e-6 of the floor (two ALIE nodes sending one vector, one of
        them ``far``). Only copies: the pair null assumes both updates carry independent honest
        noise, so a rejected attacker placed at the centre must not make an honest precise node
        near it look too close."""
        n = rd.phi.shape[0]
        if not self.pairwise or n < 3:
            return
        done = sorted(reject)
        cand = np.array([i for i in range(n) if i not in reject])
        if cand.size >= 3:
            sub = rd.log_pair[np.ix_(cand, cand)]
            iu = np.triu_indices(cand.size, 1)
            pm = float(np.median(sub[iu])) if self.normalise else 0.0
            if self.null == "floor":
                pm = float(np.clip(pm, -math.log(self.max_rescale), 0.0))
            close = (sub - pm < math.log(rd.lo_pair)) & ~np.eye(cand.size, dtype=bool)
            for a, b in zip(*np.nonzero(np.triu(close, 1))):
                for i, j in ((cand[a], cand[b]), (cand[b], cand[a])):
                    reject.setdefault(int(i), f"pair: too close to node index {int(j)} for independent noise")
        if self.null == "floor" and done:
            for i in cand:
                j = next((j for j in done if rd.log_pair[i, j] < math.log(1e-6)), None)
                if j is not None:
                    reject.setdefault(int(i), f"pair: a copy of rejected node index {int(j)}")

    def _direction_rejections(self, rd: _Round, w: np.ndarray, reject: dict[int, str]) -> None:
        """Add ``direction`` where a leave-one-out component's robust z exceeds z_dir (in place)."""
        comps = direction_statistics(rd.y, w, rd.median, rd.v + rd.tau2, rd.deff)
        for label, p, sign in zip(("consensus", "shift"), comps, (-1.0, 1.0)):
            z = robust_z(p, floor=1.0)
            for i in np.flatnonzero(sign * z > self.z_dir):
                reject.setdefault(int(i), f"direction: component along the {label} direction at robust z "
                                          f"{z[i]:.3g} (beyond {sign * self.z_dir:g})")

    def _score(self, rd: _Round, w: np.ndarray) -> float:
        """Consistency of the end point: a capped log-normal likelihood of the far ratios."""
        d2 = np.einsum("ij,ij->i", rd.y - w @ rd.y, rd.y - w @ rd.y)
        lr = np.log(np.maximum(d2 / (noise_floor_expected(rd.v, w) + heterogeneity_expected(rd.tau2, w)), _TINY))
        return float(np.sum(np.maximum(-(lr**2) / (2 * rd.s0 * rd.s0), -0.5 * self.z**2)))


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
