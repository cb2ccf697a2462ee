"""The robust rules Flower lacks, on update vectors in ByzFL's style: (n, d) array in, (d,) out.

Median, trimmed mean, Krum, Multi-Krum and Bulyan are Flower's, used as runs use them
(:mod:`strategies.robust.flower`); this module holds the rest. Each rule is a pure function ``rule(vectors, *, f=..., ...) -> np.ndarray``. It checks its own
preconditions and raises :class:`~strategies.robust._checks.PreconditionError` naming them, and
never mutates its input. ``f`` is the number of Byzantine vectors the rule must tolerate.

References
----------
- Geometric median (smoothed Weiszfeld): Pillutla, Kakade, Harchaoui, "Robust aggregation for
  federated learning", IEEE TSP 2022.
- Centred clipping: Karimireddy, He, Jaggi, "Learning from history for Byzantine robust
  optimization", ICML 2021.
- Nearest-neighbour mixing (NNM): Allouah, Farhadkhani, Guerraoui, Gupta, Pinot, Stephan,
  "Fixing by mixing: a recipe for optimal Byzantine ML under heterogeneity", AISTATS 2023.
"""

from __future__ import annotations

import numpy as np

from strategies.robust._checks import PreconditionError, as_vectors, check_f

__all__ = [
    "geometric_median",
    "centered_clipping",
    "nnm",
]


def _sq_dists(x: np.ndarray) -> np.ndarray:
    """Pairwise squared Euclidean distances, (n, n), exact zeros on the diagonal."""
    sq = np.einsum("ij,ij->i", x, x)
    d2 = sq[:, None] + sq[None, :] - 2.0 * (x @ x.T)
    np.maximum(d2, 0.0, out=d2)
    np.fill_diagonal(d2, 0.0)
    return d2


def geometric_median(
    vectors: np.ndarray,
    *,
    f: int = 0,
    weights: np.ndarray | None = None,
    nu: float = 1e-8,
    max_iter: int = 200,
    tol: float = 1e-10,
) -> np.ndarray:
    """Geometric median argmin_z sum_i a_i ||z - x_i|| by smoothed Weiszfeld iterations.

    z <- sum_i beta_i x_i / sum_i beta_i with beta_i = a_i / max(nu, ||z - x_i||) (Pillutla et al.
    2022). Starts from the (weighted) mean; stops when a step moves less than ``tol`` times the
    data scale. Breakdown point 1/2: precondition n > 2f (``f`` is only checked)."""
    x = as_vectors(vectors)
    n = x.shape[0]
    check_f(f, n, "geometric-median", need="n > 2f")
    a = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
    if a.shape != (n,) or not np.all(np.isfinite(a)) or np.any(a < 0) or a.sum() <= 0:
        raise PreconditionError("geometric-median: weights must be n finite non-negative numbers with a positive sum")
    a = a / a.sum()
    z = a @ x
    scale = max(float(np.max(np.abs(x))), 1e-300)
    for _ in range(int(max_iter)):
        dist = np.linalg.norm(x - z, axis=1)
        beta = a / np.maximum(dist, nu)
        z_new = beta @ x / beta.sum()
        if np.linalg.norm(z_new - z) <= tol * scale:
            z = z_new
            break
        z = z_new
    return z


def centered_clipping(
    vectors: np.ndarray,
    *,
    f: int = 0,
    tau: float | None = None,
    center: np.ndarray | None = None,
    iters: int = 3,
) -> np.ndarray:
    """Centred clipping (Karimireddy et al. 2021):

    v <- v + (1/n) sum_i (x_i - v) min(1, tau / ||x_i - v||), repeated ``iters`` times.

    ``center`` is the starting point (the previous aggregate or momentum in the paper; default the
    coordinate-wise median, which makes the rule usable statelessly). ``tau`` defaults to the
    median distance of the vectors to that starting point. ``f`` is only checked (n > 2f)."""
    x = as_vectors(vectors)
    n, d = x.shape
    check_f(f, n, "centered-clipping", need="n > 2f")
    v = np.median(x, axis=0) if center is None else np.array(center, dtype=np.float64).reshape(-1)
    if v.shape != (d,) or not np.all(np.isfinite(v)):
        raise PreconditionError(f"centered-clipping: center must be a finite vector of length {d}")
    if tau is None:
        tau = float(np.median(np.linalg.norm(x - v, axis=1)))
    if not np.isfinite(tau) or tau < 0:
        raise PreconditionError(f"centered-clipping: tau must be finite and >= 0; got {tau}")
    for _ in range(int(iters)):
        diff = x - v
        norms = np.linalg.norm(diff, axis=1)
        scale = np.where(norms > tau, tau / np.maximum(norms, 1e-300), 1.0)
        v = v + (diff * scale[:, None]).mean(axis=0)
    return v


def nnm(vectors: np.ndarray, *, f: int = 0) -> np.ndarray:
    """Nearest-neighbour mixing (Allouah et al. 2023), a pre-aggregation: (n, d) -> (n, d).

    Each x_i is replaced by the average of its n - f nearest vectors (itself included, Euclidean
    distance; ties broken by index). Precondition: n > f (the paper's guarantees need n > 2f)."""
    x = as_vectors(vectors)
    n = x.shape[0]
    f = check_f(f, n, "nnm", need="n > f")
    d2 = _sq_dists(x)
    k = n - f
    idx = np.argsort(d2, axis=1, kind="stable")[:, :k]
    return x[idx].mean(axis=1)
