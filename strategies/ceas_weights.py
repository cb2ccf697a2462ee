"""CEAS stamps, claims and capped fidelity weights (pure functions, no Flower).

phi_k = 4 / tr(G Sigma_k) (CEAS Definition 1) makes ``scale / phi_k`` node k's predicted squared
error in the metric G; weights proportional to phi_k are Proposition 1's inverse-variance
weighting, capped at a multiple of the median weight (docs/aggregation.md). Part of
:mod:`strategies.ceas_math`, which re-exports every public name.
"""

from __future__ import annotations

import math

import numpy as np

from strategies.robust._checks import PreconditionError, as_vectors

__all__ = [
    "STAMP_SCALE",
    "predicted_variance",
    "stamps_from_variance",
    "claim_rule",
    "cap_weights",
    "fidelity_weights",
    "random_effects_weights",
    "fidelity_aggregate",
    "metric_transform",
]

#: phi = STAMP_SCALE / tr(G Sigma): the 4 of the QFI convention (F_Q = 4 x Fubini-Study metric).
STAMP_SCALE = 4.0


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


def cap_weights(raw: np.ndarray, cap_multiple: float | None = 3.0, *, max_iter: int = 10_000,
                base: np.ndarray | None = None) -> np.ndarray:
    """Normalise non-negative ``raw`` weights to sum 1 with every weight <= cap_multiple x median.

    The median is over the positive entries (the kept nodes). Capping can lower the median itself
    (an even count with cap_multiple < 2), so the cap level c is iterated to the fixed point
    c = cap_multiple x median(min(raw, c)) (a non-increasing sequence); the weights are then
    min(raw, c) / sum. ``None`` or ``inf`` means no cap. Needs cap_multiple >= 1.

    ``base`` (e.g. data shares pi_k): the cap applies to the ratios raw_k / base_k instead, so a
    node's weight is bounded by a multiple of the median ratio times its own share, and nodes
    that hold more data are not cut back to the median node's weight."""
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
    b = np.ones_like(r) if base is None else np.asarray(base, dtype=np.float64)
    if b.shape != r.shape or not np.all(np.isfinite(b)) or np.any(b[pos] <= 0):
        raise PreconditionError("base must be one finite number per weight, > 0 where the weight is")
    ratio = np.where(pos, r / np.where(pos, b, 1.0), 0.0)
    rp = ratio[pos]
    c = m * float(np.median(rp))
    for _ in range(max_iter):
        c_new = m * float(np.median(np.minimum(rp, c)))
        if c_new >= c * (1.0 - 1e-15):
            break
        c = c_new
    w = np.where(pos, np.minimum(ratio, c) * b, 0.0)
    return w / w.sum()


def random_effects_weights(v: np.ndarray, tau2: float, prior: np.ndarray | None = None) -> np.ndarray:
    """Weights minimising the expected squared error to the prior-weighted mean of node means.

    Node k sends x_k = mu + delta_k + e_k with E||e_k||^2 = v_k (QPU noise) and random effects
    E||delta_k||^2 = tau2 (data heterogeneity). The target is sum_k pi_k (mu + delta_k), pi_k =
    n_k / N (FedAvg's), so with sum_k w_k = 1

        E||sum_k w_k x_k - target||^2 = sum_k w_k^2 v_k + tau2 sum_k (w_k - pi_k)^2.

    Lagrange: 2 w_k v_k + 2 tau2 (w_k - pi_k) = lambda, hence

        w_k = (a + tau2 pi_k) / (v_k + tau2),   a = (1 - sum_k tau2 pi_k / (v_k + tau2)) / sum_k 1 / (v_k + tau2)

    (a > 0, so every w_k > 0). tau2 = 0: inverse variance w_k ∝ 1/v_k (Proposition 1);
    tau2 -> inf: w -> pi (FedAvg). ``prior`` None means equal pi_k = 1/n."""
    vv = np.asarray(v, dtype=np.float64)
    if vv.ndim != 1 or vv.size == 0 or not np.all(np.isfinite(vv)) or np.any(vv <= 0):
        raise PreconditionError("v (predicted noise variances) must be a non-empty 1-D array of finite numbers > 0")
    if not (np.isfinite(tau2) and tau2 >= 0):
        raise PreconditionError(f"tau2 must be finite and >= 0; got {tau2}")
    n = vv.size
    if prior is None:
        pi = np.full(n, 1.0 / n)
    else:
        pi = np.asarray(prior, dtype=np.float64)
        if pi.shape != vv.shape or not np.all(np.isfinite(pi)) or np.any(pi < 0) or pi.sum() <= 0:
            raise PreconditionError("prior (data sizes n_k) must be one finite number >= 0 per node, not all 0")
        pi = pi / pi.sum()
    inv = 1.0 / (vv + tau2)
    a = (1.0 - float(np.sum(tau2 * pi * inv))) / float(np.sum(inv))
    w = (a + tau2 * pi) * inv
    return w / w.sum()


def fidelity_weights(
    stamps: np.ndarray,
    *,
    cap_multiple: float | None = 3.0,
    mask: np.ndarray | None = None,
    tau2: float = 0.0,
    scale: float = STAMP_SCALE,
    prior: np.ndarray | None = None,
) -> np.ndarray:
    """Capped fidelity weights, one per node, summing to 1 (zero where ``mask`` is False).

    Without ``prior``: raw weight 1 / (scale/phi_k + tau2): with ``tau2 = 0`` (a shared honest
    mean) this is proportional to phi_k, Proposition 1's inverse-variance weighting; ``tau2 > 0``
    is the between-node variance of non-IID means (random-effects weighting toward equal weights).
    With ``prior`` (data sizes n_k): :func:`random_effects_weights` over the kept nodes, whose
    target is the n_k-weighted mean (FedAvg's) when heterogeneity dominates. Then
    :func:`cap_weights` (the cap bounds any one node's share, a liar's included)."""
    phi = _as_stamps(stamps)
    if not (np.isfinite(tau2) and tau2 >= 0):
        raise PreconditionError(f"tau2 must be finite and >= 0; got {tau2}")
    mk = np.ones(phi.shape, dtype=bool)
    if mask is not None:
        mk = np.asarray(mask, dtype=bool)
        if mk.shape != phi.shape:
            raise PreconditionError("mask must have one entry per node")
        if not mk.any():
            raise PreconditionError("fidelity weights: no node kept")
    if prior is None:
        raw = phi / (1.0 + tau2 * phi / float(scale))  # = scale / (scale/phi + tau2), up to the factor scale
        raw = np.where(mk, raw, 0.0)
    else:
        pr = np.asarray(prior, dtype=np.float64)
        if pr.shape != phi.shape:
            raise PreconditionError("prior must have one entry per node")
        if not np.all(np.isfinite(pr)) or np.any(pr < 0):
            raise PreconditionError("prior (data sizes n_k) must be finite numbers >= 0")
        share = np.where(mk, pr, 0.0)
        share = share / share.sum() if share.sum() > 0 else mk / mk.sum()
        raw = np.zeros(phi.shape)
        raw[mk] = random_effects_weights(float(scale) / phi[mk], tau2, share[mk])
        raw = np.where(share > 0, raw, 0.0)
        if not (raw > 0).any():
            raise PreconditionError("fidelity weights: every kept node has data size 0")
        return cap_weights(raw, cap_multiple, base=np.where(share > 0, share, 1.0))
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

