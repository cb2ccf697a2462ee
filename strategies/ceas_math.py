"""CEAS aggregation maths as pure functions (no Flower): fidelity weights, the cap, the claim rule,
pluggable outlier filters and the robust fidelity-weighted aggregate.

Stamps and weights live in :mod:`strategies.ceas_weights`, the outlier filters in
:mod:`strategies.ceas_filters`; this module holds the aggregate and re-exports all of them.

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
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from strategies.ceas_filters import (
    OUTLIER_FILTERS,
    FilterResult,
    MedianDistanceFilter,
    NoFilter,
    OutlierFilter,
    StampConsistencyFilter,
    get_outlier_filter,
)
from strategies.ceas_weights import (
    STAMP_SCALE,
    _as_stamps,
    cap_weights,
    claim_rule,
    fidelity_aggregate,
    fidelity_weights,
    metric_transform,
    predicted_variance,
    random_effects_weights,
    stamps_from_variance,
)
from strategies.robust import as_vectors, nnm
from strategies.robust._checks import PreconditionError

__all__ = [
    "STAMP_SCALE",
    "PreconditionError",
    "predicted_variance",
    "stamps_from_variance",
    "claim_rule",
    "cap_weights",
    "fidelity_weights",
    "random_effects_weights",
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
    "ConsensusRound",
    "consensus_round",
]


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
    sizes: np.ndarray | None = None,
) -> RobustAggregate:
    """Filter -> optional pre-aggregation -> capped fidelity weights.

    ``premix``: None; ``"nnm"`` (nearest-neighbour mixing of the kept vectors with
    f' = min(f, kept - 1), Allouah et al. 2023; mixes noise levels, so it costs efficiency under
    heterogeneous noise); ``"clip"`` (stamp-aware clipping: x_k - c is clipped to radius
    sqrt((1 + clip_z sqrt(2/d)) T_k) in the metric, c the filter's centre, so a kept node's
    influence is bounded by its own claimed spread). Weights are zero for rejected nodes and sum
    to 1. ``f`` is only used by ``nnm``. ``sizes`` (data sizes n_k) make the weights target the
    n_k-weighted mean (random-effects weights, :func:`strategies.ceas_weights.random_effects_weights`);
    without them, equal shares."""
    x = as_vectors(vectors)
    n, d = x.shape
    phi = _as_stamps(stamps, n)
    params = dict(outlier_params or {})
    if isinstance(outlier, str) and outlier == "stamp":
        params.setdefault("cap_multiple", cap_multiple)
        params.setdefault("tau2", tau2)
    filt = get_outlier_filter(outlier, **params)
    res = filt(x, phi, metric=metric, scale=scale, f=f, sizes=sizes)
    kept = np.asarray(res.kept, dtype=np.int64)
    if kept.size == 0:
        raise PreconditionError("robust aggregate: the outlier filter kept no node")
    mask = np.zeros(n, dtype=bool)
    mask[kept] = True
    w = fidelity_weights(phi, cap_multiple=cap_multiple, mask=mask, tau2=tau2, scale=scale, prior=sizes)
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


@dataclass(frozen=True)
class ConsensusRound:
    """One CEAS round's decision: the robust aggregate, the scale kappa, the between-node
    variance tau2 and the stamps phi_k = 4 / (kappa sigma_k^2) it used."""

    result: RobustAggregate
    kappa: float
    tau2: float
    stamps: np.ndarray


def consensus_round(
    x: np.ndarray,
    factors: np.ndarray,
    server_factors: np.ndarray,
    *,
    sizes: np.ndarray | None = None,
    metric: np.ndarray | None = None,
    scale: str | float = "fit",
    outlier: str | OutlierFilter = "stamp",
    outlier_params: Mapping[str, Any] | None = None,
    premix: str | None = None,
    f: int | None = None,
    cap_multiple: float | None = 3.0,
) -> ConsensusRound:
    """The path a CEAS round takes from updates to the aggregate (the strategy and ``fedqnn bench
    robust`` both call it).

    ``factors``: sigma_k^2 = max(server record, the node's claim) (a claim can only lower a
    stamp); ``server_factors``: the server's record alone, the only input of the scale fit.
    ``scale``: ``"fit"`` (kappa, tau2 by :func:`strategies.ceas_scale.fit_noise_scale`),
    ``"median"`` (kappa = med_k ||x_k - m||^2_G / sigma_k^2, tau2 = 0) or a number (kappa given,
    tau2 = 0). Then phi_k = 4 / (kappa sigma_k^2) and :func:`robust_fidelity_aggregate` with the
    metric (the filter's; ``outlier="none"`` uses none)."""
    from strategies.ceas_scale import fit_noise_scale

    xs = as_vectors(x)
    fac = np.asarray(factors, dtype=np.float64)
    if fac.shape != (xs.shape[0],) or not np.all(np.isfinite(fac)) or np.any(fac <= 0):
        raise PreconditionError("factors must be one finite sigma^2 > 0 per update")
    y = metric_transform(xs, metric)
    floor_ratio = 1.0
    if scale == "fit":
        fit = fit_noise_scale(y, server_factors)
        kappa, tau2 = fit.kappa, fit.tau2
        floor_ratio = fit.kappa_point / fit.kappa
    elif scale == "median":
        d2 = np.einsum("ij,ij->i", y - np.median(y, axis=0), y - np.median(y, axis=0)) / np.asarray(server_factors)
        d2 = d2[np.isfinite(d2) & (d2 > 0)]
        kappa, tau2 = (float(np.median(d2)) if d2.size else 1.0), 0.0
    elif isinstance(scale, int | float) and math.isfinite(scale) and scale > 0:
        kappa, tau2 = float(scale), 0.0
    else:
        raise PreconditionError(f"scale must be 'fit', 'median' or a positive number; got {scale!r}")
    stamps = STAMP_SCALE / (fac * max(kappa, 1e-300))
    params = dict(outlier_params or {})
    if outlier == "stamp":
        params.setdefault("floor_ratio", floor_ratio)
    res = robust_fidelity_aggregate(
        xs, stamps, outlier=outlier, outlier_params=params, premix=premix, f=f, cap_multiple=cap_multiple,
        metric=metric if outlier != "none" else None, tau2=tau2, sizes=sizes)
    return ConsensusRound(res, kappa, tau2, stamps)
