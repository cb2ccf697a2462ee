"""Robust aggregation rules on update vectors, in ByzFL's style: (n, d) array in, (d,) array out.

Each rule is a pure function ``rule(vectors, *, f=..., ...) -> np.ndarray``. It checks its own
preconditions and raises :class:`~strategies.robust._checks.PreconditionError` naming them, and
never mutates its input. ``f`` is the number of Byzantine vectors the rule must tolerate.

References
----------
- Coordinate-wise median and trimmed mean: Yin, Chen, Ramchandran, Bartlett, "Byzantine-robust
  distributed learning: towards optimal statistical rates", ICML 2018.
- Krum, Multi-Krum: Blanchard, El Mhamdi, Guerraoui, Stainer, "Machine learning with
  adversaries: Byzantine tolerant gradient descent", NeurIPS 2017.
- Bulyan: El Mhamdi, Guerraoui, Rouault, "The hidden vulnerability of distributed learning in
  Byzantium", ICML 2018.
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
    "mean",
    "coordinate_median",
    "trimmed_mean",
    "krum_scores",
    "krum",
    "multi_krum",
    "bulyan",
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


def _order(scores: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Indices sorted by score, ties (to 12 significant digits) broken by the vectors themselves
    (lexicographically), so the choice does not depend on the input order."""
    rounded = np.array([float(f"{s:.12g}") for s in scores])
    keys = tuple(x[:, j] for j in range(x.shape[1] - 1, -1, -1)) + (rounded,)
    return np.lexsort(keys)


def mean(vectors: np.ndarray, *, f: int = 0) -> np.ndarray:
    """Plain average (not robust; ``f`` is accepted and ignored for a uniform signature)."""
    x = as_vectors(vectors)
    return x.mean(axis=0)


def coordinate_median(vectors: np.ndarray, *, f: int = 0) -> np.ndarray:
    """Coordinate-wise median (Yin et al. 2018). Precondition: n > 2f."""
    x = as_vectors(vectors)
    check_f(f, x.shape[0], "median", need="n > 2f")
    return np.median(x, axis=0)


def trimmed_mean(vectors: np.ndarray, *, f: int = 0) -> np.ndarray:
    """Coordinate-wise trimmed mean: per coordinate drop the f largest and f smallest values and
    average the remaining n - 2f (Yin et al. 2018). Precondition: n > 2f."""
    x = as_vectors(vectors)
    n = x.shape[0]
    f = check_f(f, n, "trimmed-mean", need="n > 2f")
    s = np.sort(x, axis=0)
    return s[f : n - f].mean(axis=0)


def krum_scores(vectors: np.ndarray, *, f: int = 0) -> np.ndarray:
    """Krum scores: s_i = sum of squared distances from x_i to its n - f - 2 nearest other vectors.

    Precondition: n >= 2f + 3 (Blanchard et al. 2017)."""
    x = as_vectors(vectors)
    n = x.shape[0]
    f = check_f(f, n, "krum", need="n >= 2f + 3")
    d2 = _sq_dists(x)
    k = n - f - 2
    # exclude self: sort each row, drop the (zero) self distance at column 0
    s = np.sort(d2 + np.diag(np.full(n, np.inf)), axis=1)[:, :k]
    return s.sum(axis=1)


def krum(vectors: np.ndarray, *, f: int = 0) -> np.ndarray:
    """Krum (Blanchard et al. 2017): the vector with the smallest Krum score.

    Precondition: n >= 2f + 3. Ties go to the lexicographically smallest vector (order-free)."""
    x = as_vectors(vectors)
    return x[int(_order(krum_scores(x, f=f), x)[0])].copy()


def multi_krum(vectors: np.ndarray, *, f: int = 0, m: int | None = None) -> np.ndarray:
    """Multi-Krum: average of the m vectors with the smallest Krum scores (default m = n - f).

    Precondition: n >= 2f + 3 and 1 <= m <= n."""
    x = as_vectors(vectors)
    n = x.shape[0]
    scores = krum_scores(x, f=f)
    m = n - int(f) if m is None else int(m)
    if not 1 <= m <= n:
        raise PreconditionError(f"multikrum needs 1 <= m <= n; got m={m}, n={n}")
    idx = _order(scores, x)[:m]
    return x[idx].mean(axis=0)


def bulyan(vectors: np.ndarray, *, f: int = 0) -> np.ndarray:
    """Bulyan (El Mhamdi et al. 2018) over Krum.

    1. Selection: repeat theta = n - 2f times: pick the Krum winner of the remaining set (Krum with
       the same f) and remove it.
    2. Per coordinate, of the theta selected values keep the beta = theta - 2f closest to the
       coordinate-wise median and average them.

    Precondition: n >= 4f + 3."""
    x = as_vectors(vectors)
    n = x.shape[0]
    f = check_f(f, n, "bulyan", need="n >= 4f + 3")
    theta = n - 2 * f
    beta = theta - 2 * f
    d2 = _sq_dists(x)
    remaining = list(range(n))
    selected: list[int] = []
    for _ in range(theta):
        r = len(remaining)
        k = max(r - f - 2, 1)
        sub = d2[np.ix_(remaining, remaining)] + np.diag(np.full(r, np.inf))
        scores = np.sort(sub, axis=1)[:, :k].sum(axis=1)
        pick = remaining[int(_order(scores, x[remaining])[0])]
        selected.append(pick)
        remaining.remove(pick)
    sel = x[np.array(selected)]
    med = np.median(sel, axis=0)
    order = np.argsort(np.abs(sel - med), axis=0, kind="stable")[:beta]
    return np.take_along_axis(sel, order, axis=0).mean(axis=0)


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
