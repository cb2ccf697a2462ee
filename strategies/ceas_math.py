"""CEAS aggregation maths as pure functions (no Flower): fidelity weights, the cap, the claim rule,
pluggable outlier filters and the robust fidelity-weighted aggregate.

Model (docs/aggregation.md has the derivation). Node k sends an unbiased update x_k = g + e_k with
Cov(e_k) = Sigma_k. In the metric G (the QFI F_Q(theta_t) computed by the server), its fidelity
stamp is

    phi_k = 4 / tr(G Sigma_k)                      (CEAS Definition 1, as specified in issue 3)

so ``scale / phi_k`` with ``scale = 4`` is the node's *predicted* squared error
E||x_k - g||_G^2 = tr(G Sigma_k). Proposition 1: among linear aggregators sum_k w_k x_k with
sum_k w_k = 1, weights w_k proportional to phi_k (inverse variance) minimise E||x_agg - g||_G^2
when the covariances are isotropic in G (and minimise the trace bound in general).

The stamps this module receives are already computed (someone else derives them from the QFI
and the declared calibration); a node's own claim can only lower its stamp (:func:`claim_rule`).

Robust pipeline (:func:`robust_fidelity_aggregate`):

    outlier filter (kept indices, reasons ``outlier:<rule>``)
      -> optional pre-aggregation on the kept vectors (``nnm`` or stamp-aware ``clip``)
      -> capped fidelity weights (w_k <= cap x median weight, renormalised) -> weighted sum.

The default filter, :class:`StampConsistencyFilter` (``outlier:stamp``), judges each update's
distance to a robust centre against its *own* predicted spread sqrt(tr G Sigma_k) (two-sided),
and flags pairs of updates that are closer than independent noise allows. Claiming a small
variance (a large stamp) therefore shrinks the tolerance: a low-variance attack such as ALIE that
also inflates its stamp is rejected more easily, not less.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from scipy.stats import chi2, norm

from strategies.robust import as_vectors, nnm
from strategies.robust._checks import PreconditionError

__all__ = [
    "STAMP_SCALE",
    "predicted_variance",
    "stamps_from_variance",
    "claim_rule",
    "cap_weights",
    "fidelity_weights",
    "fidelity_aggregate",
    "metric_transform",
    "FilterResult",
    "OutlierFilter",
    "NoFilter",
    "MedianDistanceFilter",
    "StampConsistencyFilter",
    "OUTLIER_FILTERS",
    "get_outlier_filter",
    "RobustAggregate",
    "robust_fidelity_aggregate",
]

#: phi = STAMP_SCALE / tr(G Sigma): the 4 of the QFI convention (F_Q = 4 x Fubini-Study metric).
STAMP_SCALE = 4.0


# ----------------------------------------------------------------------------------------------
# stamps, claims, weights


def _as_stamps(stamps: object, n: int | None = None) -> np.ndarray:
    phi = np.asarray(stamps, dtype=np.float64)
    if phi.ndim != 1:
        raise PreconditionError(f"stamps must be a 1-D array; got shape {phi.shape}")
    if n is not None and phi.shape[0] != n:
        raise PreconditionError(f"stamps must have one entry per vector: {phi.shape[0]} != {n}")
    if phi.size == 0 or not np.all(np.isfinite(phi)) or np.any(phi <= 0):
        raise PreconditionError("stamps must be finite and > 0 (one per node)")
    return phi


def predicted_variance(stamps: np.ndarray, scale: float = STAMP_SCALE) -> np.ndarray:
    """tr(G Sigma_k) = scale / phi_k: each node's predicted squared error in the metric G."""
    return float(scale) / _as_stamps(stamps)


def stamps_from_variance(tr_g_sigma: np.ndarray, scale: float = STAMP_SCALE) -> np.ndarray:
    """phi_k = scale / tr(G Sigma_k) (CEAS Definition 1 with the QFI metric G = F_Q)."""
    t = np.asarray(tr_g_sigma, dtype=np.float64)
    if t.ndim != 1 or not np.all(np.isfinite(t)) or np.any(t <= 0):
        raise PreconditionError("tr(G Sigma) must be a 1-D array of finite positive numbers")
    return float(scale) / t


def claim_rule(server: np.ndarray, claim: np.ndarray | None) -> np.ndarray:
    """phi_k = min(server value, node's own claim): a claim can only lower a node's stamp.

    ``claim`` entries that are NaN (or ``claim=None``) mean "no claim": the server value stands.
    Non-positive claims are an error (the validator rejects them before this point)."""
    s = _as_stamps(server)
    if claim is None:
        return s.copy()
    c = np.asarray(claim, dtype=np.float64)
    if c.shape != s.shape:
        raise PreconditionError(f"claim must have the shape of the server stamps {s.shape}; got {c.shape}")
    c = np.where(np.isnan(c), np.inf, c)
    if np.any(c <= 0):
        raise PreconditionError("claimed stamps must be > 0")
    return np.minimum(s, c)


def cap_weights(raw: np.ndarray, cap_multiple: float | None = 3.0, *, max_iter: int = 10_000) -> np.ndarray:
    """Normalise non-negative ``raw`` weights to sum 1 with every weight <= cap_multiple x median.

    The median is over the positive entries (the kept nodes). Capping can lower the median itself
    (an even count with cap_multiple < 2), so the cap level c is iterated to the fixed point
    c = cap_multiple x median(min(raw, c)) (a non-increasing sequence); the weights are then
    min(raw, c) / sum. ``None`` or ``inf`` means no cap. Needs cap_multiple >= 1."""
    r = np.asarray(raw, dtype=np.float64)
    if r.ndim != 1 or r.size == 0 or not np.all(np.isfinite(r)) or np.any(r < 0):
        raise PreconditionError("raw weights must be a non-empty 1-D array of finite numbers >= 0")
    pos = r > 0
    if not np.any(pos):
        raise PreconditionError("at least one raw weight must be positive")
    if cap_multiple is None or math.isinf(cap_multiple):
        return r / r.sum()
    m = float(cap_multiple)
    if not m >= 1.0:
        raise PreconditionError(f"cap_multiple must be >= 1 (a multiple of the median weight); got {cap_multiple}")
    rp = r[pos]
    c = m * float(np.median(rp))
    for _ in range(max_iter):
        c_new = m * float(np.median(np.minimum(rp, c)))
        if c_new >= c * (1.0 - 1e-15):
            break
        c = c_new
    w = np.where(pos, np.minimum(r, c), 0.0)
    return w / w.sum()


def fidelity_weights(
    stamps: np.ndarray,
    *,
    cap_multiple: float | None = 3.0,
    mask: np.ndarray | None = None,
    tau2: float = 0.0,
    scale: float = STAMP_SCALE,
) -> np.ndarray:
    """Capped fidelity weights, one per node, summing to 1 (zero where ``mask`` is False).

    Raw weight 1 / (scale/phi_k + tau2): with ``tau2 = 0`` (a shared honest mean) this is
    proportional to phi_k, Proposition 1's inverse-variance weighting. ``tau2 > 0`` is the
    between-node variance of non-IID means (random-effects weighting; docs/aggregation.md).
    Then :func:`cap_weights`."""
    phi = _as_stamps(stamps)
    if not (np.isfinite(tau2) and tau2 >= 0):
        raise PreconditionError(f"tau2 must be finite and >= 0; got {tau2}")
    raw = phi / (1.0 + tau2 * phi / float(scale))  # = scale / (scale/phi + tau2), up to the factor scale
    if mask is not None:
        mk = np.asarray(mask, dtype=bool)
        if mk.shape != phi.shape:
            raise PreconditionError("mask must have one entry per node")
        if not mk.any():
            raise PreconditionError("fidelity weights: no node kept")
        raw = np.where(mk, raw, 0.0)
    return cap_weights(raw, cap_multiple)


def fidelity_aggregate(
    vectors: np.ndarray, stamps: np.ndarray, *, cap_multiple: float | None = 3.0, tau2: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """(sum_k w_k x_k, w) with w = :func:`fidelity_weights` (no outlier filter)."""
    x = as_vectors(vectors)
    w = fidelity_weights(_as_stamps(stamps, x.shape[0]), cap_multiple=cap_multiple, tau2=tau2)
    return w @ x, w


def metric_transform(vectors: np.ndarray, metric: np.ndarray | None) -> np.ndarray:
    """Rows y_k with ||y_k - y_j||^2 = (x_k - x_j)^T G (x_k - x_j).

    ``metric``: None (identity), a 1-D diagonal of G, or a 2-D symmetric PSD matrix (negative
    eigenvalues from round-off are clipped to 0)."""
    x = as_vectors(vectors)
    if metric is None:
        return x
    g = np.asarray(metric, dtype=np.float64)
    d = x.shape[1]
    if g.ndim == 1:
        if g.shape != (d,) or not np.all(np.isfinite(g)) or np.any(g < 0):
            raise PreconditionError(f"a diagonal metric must be {d} finite non-negative numbers")
        return x * np.sqrt(g)
    if g.shape != (d, d) or not np.all(np.isfinite(g)):
        raise PreconditionError(f"metric must be a finite ({d}, {d}) matrix")
    vals, vecs = np.linalg.eigh(0.5 * (g + g.T))
    root = vecs * np.sqrt(np.clip(vals, 0.0, None))  # G = root @ root.T
    return x @ root


# ----------------------------------------------------------------------------------------------
# outlier filters


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
      the chi-square quantiles chi2_q(d_eff)/d_eff at z standard deviations and exp(-+z s),
      s = max(s0, min(1.4826 MAD(log r), max_spread s0)), s0 = sqrt(2/d_eff + stamp_log_sd^2)
      (chi-square concentration in
      d_eff effective dimensions (``eff_dim``; default d, or the metric's participation ratio
      (tr G)^2 / tr(G^2)), plus the honest stamps' own calibration
      error, or the measured spread if larger);
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
    max_spread: float = 1.0
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

    def bounds(self, d: int, spread: float, z: float, deff: float | None = None) -> tuple[float, float]:
        """(lo, hi) for a normalised ratio at z standard deviations: the wider of the chi-square
        model's quantiles chi2_q(d_eff) / d_eff (tail 1 - Phi(z) each side) and
        exp(-+z s), s = max(sqrt(2 / d_eff + stamp_log_sd^2), measured log-spread)."""
        deff = float(deff if deff is not None else (self.eff_dim or d))
        tail = float(norm.sf(z))
        s = max(math.sqrt(2.0 / deff + float(self.stamp_log_sd) ** 2), spread)
        lo = min(float(chi2.ppf(tail, deff) / deff), math.exp(-z * s))
        hi = max(float(chi2.isf(tail, deff) / deff), math.exp(z * s))
        return lo, hi

    def __call__(self, vectors, stamps, *, metric=None, scale=STAMP_SCALE, f=None) -> FilterResult:  # noqa: D102
        x = as_vectors(vectors)
        n, d = x.shape
        phi = _as_stamps(stamps, n)
        y = metric_transform(x, metric)
        t = float(scale) / phi + float(self.tau2)
        sq = np.einsum("ij,ij->i", y, y)
        d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * (y @ y.T), 0.0)
        np.fill_diagonal(d2, 0.0)
        tiny = 1e-300
        log_pair = np.log(np.maximum(d2 / (t[:, None] + t[None, :]), tiny))

        def mad(v: np.ndarray) -> float:
            return 1.4826 * float(np.median(np.abs(v - np.median(v)))) if v.size else 0.0

        deff = self._eff_dim(d, metric)
        s0 = math.sqrt(2.0 / deff + float(self.stamp_log_sd) ** 2)

        def run(w0: np.ndarray) -> tuple[float, np.ndarray, np.ndarray, dict[int, str]]:
            # stage 0: a weighted coordinate-wise median start, then iterate
            c = _weighted_coordinate_median(y, w0)
            # asymptotic variance of a weighted median: (pi/2) sum w^2 / (sum_k w_k / sqrt(T_k))^2
            t_c = (math.pi / 2.0) * float(np.sum(w0 * w0)) / float(np.sum(w0 / np.sqrt(t))) ** 2
            expected = t + t_c
            kept = np.ones(n, dtype=bool)
            w = np.zeros(n)
            reject: dict[int, str] = {}
            for _ in range(max(int(self.max_iter), 1)):
                lr = np.log(np.maximum(np.einsum("ij,ij->i", y - c, y - c) / expected, tiny))
                ref = lr[kept] if kept.sum() >= 2 else lr
                if self.normalise:
                    # a common miscalibration of the stamps, bounded: a shift of the centre by
                    # attackers also raises every ratio, and must not be absorbed here
                    shift = float(np.clip(np.median(ref), -math.log(self.max_rescale), math.log(self.max_rescale)))
                    lr = lr - shift
                    ref = ref - shift
                lo, hi = self.bounds(d, min(mad(ref), self.max_spread * s0), self.z, deff)
                reject = {}
                for i in range(n):
                    ri = math.exp(lr[i])
                    if ri > hi:
                        reject[i] = f"far: distance^2/expected {ri:.3g} > {hi:.3g}"
                    elif ri < lo:
                        reject[i] = f"near: distance^2/expected {ri:.3g} < {lo:.3g} (less noise than its stamp predicts)"
                if self.pairwise and n >= 3:
                    cand = np.array([i for i in range(n) if i not in reject])
                    if cand.size >= 3:
                        sub = log_pair[np.ix_(cand, cand)]
                        iu = np.triu_indices(cand.size, 1)
                        pm = float(np.median(sub[iu])) if self.normalise else 0.0
                        lo_pair, _ = self.bounds(d, min(mad(sub[iu] - pm), self.max_spread * s0), self.z_pair, deff)
                        close = (sub - pm < math.log(lo_pair)) & ~np.eye(cand.size, dtype=bool)
                        for a, b in zip(*np.nonzero(np.triu(close, 1))):
                            for i, j in ((cand[a], cand[b]), (cand[b], cand[a])):
                                reject.setdefault(
                                    int(i), f"pair: too close to node index {int(j)} for independent noise"
                                )
                new_kept = np.array([i not in reject for i in range(n)])
                if not new_kept.any():
                    # nothing consistent: fall back to the half closest to the centre
                    order = np.argsort(lr, kind="stable")[: (n + 1) // 2]
                    new_kept = np.zeros(n, dtype=bool)
                    new_kept[order] = True
                    reject = {i: "far: no consistent majority" for i in range(n) if not new_kept[i]}
                stable = np.array_equal(new_kept, kept) and w.any()
                kept = new_kept
                if stable:
                    break
                w = fidelity_weights(phi, cap_multiple=self.cap_multiple, mask=kept, tau2=self.tau2, scale=scale)
                c = w @ y
                expected = np.maximum(t * (1.0 - 2.0 * w) + float(np.sum(w * w * t)), tiny)
            if not w.any():
                w = fidelity_weights(phi, cap_multiple=self.cap_multiple, mask=kept, tau2=self.tau2, scale=scale)
            c = w @ y
            expected = np.maximum(t * (1.0 - 2.0 * w) + float(np.sum(w * w * t)), tiny)
            lr_raw = np.log(np.maximum(np.einsum("ij,ij->i", y - c, y - c) / expected, tiny))
            # consistency score of the end point: a capped log-normal likelihood of the ratios
            score = float(np.sum(np.maximum(-(lr_raw**2) / (2 * s0 * s0), -0.5 * self.z**2)))
            return score, kept, w, reject

        # starts: "median" (unweighted), "weighted-median" (stamps capped at the median stamp:
        # a liar weighs no more than a median node; the precise honest nodes pull toward g), or
        # "auto": both, keeping the end point most consistent with the stamps (highest score)
        starts = {"median": [np.full(n, 1.0 / n)], "weighted-median": [cap_weights(phi, 1.0)]}
        starts["auto"] = starts["median"] + starts["weighted-median"]
        if self.start not in starts:
            raise PreconditionError(f"start must be 'auto', 'median' or 'weighted-median'; got {self.start!r}")
        best = None
        for w0 in starts[self.start]:
            out = run(w0)
            if best is None or out[0] > best[0] + 1e-9:
                best = out
        _, kept, w, reject = best
        center = w @ x if w.any() else np.median(x, axis=0)
        return _result(self.name, n, reject, center)


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


# ----------------------------------------------------------------------------------------------
# the robust fidelity-weighted aggregate


@dataclass(frozen=True)
class RobustAggregate:
    """aggregate: the (d,) result. weights: (n,) summing to 1, zero for rejected nodes.
    kept: kept indices. rejected: index -> ``outlier:<rule>``. details: index -> explanation."""

    aggregate: np.ndarray
    weights: np.ndarray
    kept: np.ndarray
    rejected: dict[int, str]
    details: dict[int, str]


def robust_fidelity_aggregate(
    vectors: np.ndarray,
    stamps: np.ndarray,
    *,
    outlier: str | OutlierFilter = "stamp",
    outlier_params: Mapping[str, Any] | None = None,
    premix: str | None = None,
    f: int | None = None,
    cap_multiple: float | None = 3.0,
    tau2: float = 0.0,
    metric: np.ndarray | None = None,
    scale: float = STAMP_SCALE,
    clip_z: float = 3.0,
) -> RobustAggregate:
    """Filter -> optional pre-aggregation -> capped fidelity weights.

    ``premix``: None; ``"nnm"`` (nearest-neighbour mixing of the kept vectors with
    f' = min(f, kept - 1), Allouah et al. 2023; mixes noise levels, so it costs efficiency under
    heterogeneous noise); ``"clip"`` (stamp-aware clipping: x_k - c is clipped to radius
    sqrt((1 + clip_z sqrt(2/d)) T_k) in the metric, c the filter's centre, so a kept node's
    influence is bounded by its own claimed spread). Weights are zero for rejected nodes and sum
    to 1. ``f`` is only used by ``nnm``."""
    x = as_vectors(vectors)
    n, d = x.shape
    phi = _as_stamps(stamps, n)
    params = dict(outlier_params or {})
    if isinstance(outlier, str) and outlier == "stamp":
        params.setdefault("cap_multiple", cap_multiple)
        params.setdefault("tau2", tau2)
    filt = get_outlier_filter(outlier, **params)
    res = filt(x, phi, metric=metric, scale=scale, f=f)
    kept = np.asarray(res.kept, dtype=np.int64)
    if kept.size == 0:
        raise PreconditionError("robust aggregate: the outlier filter kept no node")
    mask = np.zeros(n, dtype=bool)
    mask[kept] = True
    w = fidelity_weights(phi, cap_multiple=cap_multiple, mask=mask, tau2=tau2, scale=scale)
    xs = x[kept]
    if premix is None:
        pass
    elif premix == "nnm":
        ff = 0 if f is None else min(int(f), kept.size - 1)
        xs = nnm(xs, f=ff)
    elif premix == "clip":
        center = res.center if res.center is not None else np.median(x, axis=0)
        y = metric_transform(xs - center, metric)
        dist = np.sqrt(np.einsum("ij,ij->i", y, y))
        radius = np.sqrt((1.0 + clip_z * math.sqrt(2.0 / d)) * (scale / phi[kept] + tau2))
        factor = np.where(dist > radius, radius / np.maximum(dist, 1e-300), 1.0)
        xs = center + (xs - center) * factor[:, None]
    else:
        raise KeyError(f"unknown premix {premix!r}; known: None, 'nnm', 'clip'")
    agg = w[kept] @ xs
    return RobustAggregate(
        aggregate=agg, weights=w, kept=kept, rejected=dict(res.reasons), details=dict(res.details)
    )
