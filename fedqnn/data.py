"""Local, deterministic data: operator-learning tasks, a classification task, partitioners.

Nothing is downloaded: every sample is generated from the run's seed (or read from
scikit-learn's bundled ``digits``), so every client can rebuild the pool and take its share.

Operator tasks (the input is a function u on [0, 1], the output a function s on [0, 1]):

* ``antiderivative`` (DeepONet's benchmark, Lu et al. 2021): s(y) = ∫_0^y u(x) dx with u a
  zero-mean Gaussian random field (GRF) with kernel k(x, x') = exp(-(x - x')^2 / (2 l^2)).
* ``heat`` (1-D diffusion on the periodic domain): s(y) = u(y, t=T) solving u_t = ν u_xx,
  exactly in Fourier space: û_k(T) = û_k(0) exp(-ν (2πk)^2 T). Inputs are periodic GRFs.

Functions are held on a fine grid of ``FINE`` points; any sensor or query resolution is taken by
linear interpolation, so a model can be evaluated at resolutions it never saw in training.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from fedqnn.seeding import rng

__all__ = [
    "FINE",
    "OperatorPool",
    "ClassificationPool",
    "grf_samples",
    "antiderivative_pool",
    "heat_pool",
    "digits_pool",
    "iid_partition",
    "dirichlet_partition",
    "resample",
]

FINE = 1025  # points of the fine grid on [0, 1]


@dataclass(frozen=True)
class OperatorPool:
    """Input functions ``u`` and output functions ``s`` on the fine grid ``x``."""

    x: np.ndarray  # (FINE,)
    u: np.ndarray  # (N, FINE)
    s: np.ndarray  # (N, FINE)
    groups: np.ndarray  # (N,) int bins used by the non-IID partitioner

    def __len__(self) -> int:
        return self.u.shape[0]


@dataclass(frozen=True)
class ClassificationPool:
    features: np.ndarray  # (N, F) float
    labels: np.ndarray  # (N,) int
    num_classes: int

    @property
    def groups(self) -> np.ndarray:
        return self.labels

    def __len__(self) -> int:
        return self.labels.shape[0]


@lru_cache(maxsize=8)
def _grf_factor(n: int, length_scale: float, periodic: bool) -> np.ndarray:
    """L with L L^T ≈ K (eigen-factorisation, tiny eigenvalues dropped) on an n-point grid."""
    x = np.linspace(0.0, 1.0, n)
    d = x[:, None] - x[None, :]
    if periodic:  # the periodic (exp-sine-squared) kernel k = exp(-2 sin^2(π d) / l^2)
        k = np.exp(-2.0 * np.sin(np.pi * d) ** 2 / length_scale**2)
    else:
        k = np.exp(-(d**2) / (2.0 * length_scale**2))
    w, v = np.linalg.eigh(k)
    keep = w > 1e-10 * w.max()
    return v[:, keep] * np.sqrt(w[keep])


def grf_samples(
    num: int, length_scale: float, seed: int, stream: str, periodic: bool = False, grid: int = 257
) -> np.ndarray:
    """``num`` GRF samples on the fine grid: u = L ξ, ξ ~ N(0, I), interpolated from ``grid`` points."""
    factor = _grf_factor(grid, float(length_scale), periodic)
    xi = rng(seed, "grf", stream).standard_normal((factor.shape[1], num))
    coarse = (factor @ xi).T  # (num, grid)
    return resample(coarse, FINE)


def resample(values: np.ndarray, points: int) -> np.ndarray:
    """Linear interpolation of functions sampled uniformly on [0, 1] to ``points`` uniform points."""
    values = np.asarray(values)
    src = np.linspace(0.0, 1.0, values.shape[-1])
    dst = np.linspace(0.0, 1.0, points)
    if values.shape[-1] == points:
        return values.copy()
    flat = values.reshape(-1, values.shape[-1])
    out = np.stack([np.interp(dst, src, row) for row in flat])
    return out.reshape(values.shape[:-1] + (points,))


def _groups_by_quantile(values: np.ndarray, bins: int = 10) -> np.ndarray:
    edges = np.quantile(values, np.linspace(0, 1, bins + 1)[1:-1])
    return np.searchsorted(edges, values).astype(np.int64)


def antiderivative_pool(num: int, length_scale: float, seed: int, stream: str) -> OperatorPool:
    """s(y) = ∫_0^y u(x) dx by the cumulative trapezoid rule on the fine grid."""
    u = grf_samples(num, length_scale, seed, stream)
    x = np.linspace(0.0, 1.0, FINE)
    dx = x[1] - x[0]
    s = np.concatenate([np.zeros((num, 1)), np.cumsum(0.5 * (u[:, 1:] + u[:, :-1]) * dx, axis=1)], axis=1)
    # non-IID bins: by the net integral s(1) (what the operator maps u to at the end point)
    return OperatorPool(x=x, u=u, s=s, groups=_groups_by_quantile(s[:, -1]))


def heat_pool(
    num: int, length_scale: float, seed: int, stream: str, nu: float = 0.01, t_end: float = 1.0
) -> OperatorPool:
    """u_t = ν u_xx on the periodic unit interval, solved exactly: û_k(T) = û_k(0) e^{-ν (2πk)^2 T}."""
    u = grf_samples(num, length_scale, seed, stream, periodic=True)
    body = u[:, :-1]  # the last point repeats the first on the periodic grid
    k = np.fft.rfftfreq(body.shape[1], d=1.0 / body.shape[1])
    decay = np.exp(-nu * (2.0 * np.pi * k) ** 2 * t_end)
    s_body = np.fft.irfft(np.fft.rfft(body, axis=1) * decay, n=body.shape[1], axis=1)
    s = np.concatenate([s_body, s_body[:, :1]], axis=1)
    x = np.linspace(0.0, 1.0, FINE)
    return OperatorPool(x=x, u=u, s=s, groups=_groups_by_quantile(u.mean(axis=1)))


@lru_cache(maxsize=4)
def _digits(features: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits
    from sklearn.decomposition import PCA

    data = load_digits()
    x = data.data.astype(np.float64) / 16.0
    z = PCA(n_components=features, random_state=0).fit_transform(x)
    z = (z - z.mean(axis=0)) / z.std(axis=0)
    return z, data.target.astype(np.int64)


def digits_pool(features: int, seed: int) -> tuple[ClassificationPool, ClassificationPool]:
    """scikit-learn's bundled digits (1797 8x8 images), PCA to ``features``; 80/20 train/test split."""
    z, y = _digits(features)
    order = rng(seed, "digits-split").permutation(len(y))
    cut = int(0.8 * len(y))
    tr, te = order[:cut], order[cut:]
    return (
        ClassificationPool(z[tr], y[tr], 10),
        ClassificationPool(z[te], y[te], 10),
    )


def iid_partition(num_items: int, num_parts: int, seed: int) -> list[np.ndarray]:
    """A seeded permutation cut into ``num_parts`` near-equal disjoint shares."""
    if num_parts < 1:
        raise ValueError(f"num_parts: expected >= 1, got {num_parts}")
    order = rng(seed, "iid-partition").permutation(num_items)
    return [np.sort(p) for p in np.array_split(order, num_parts)]


def dirichlet_partition(
    groups: np.ndarray, num_parts: int, alpha: float, seed: int, min_size: int = 1
) -> list[np.ndarray]:
    """Non-IID shares: for each group g, proportions p_g ~ Dirichlet(α 1_K) over the K parts.

    Small α concentrates each group on few clients (α → ∞ recovers IID). Redrawn (seeded) until
    every part holds at least ``min_size`` items, as in Hsu et al. (2019).
    """
    if alpha <= 0:
        raise ValueError(f"data.alpha: expected > 0, got {alpha}")
    gen = rng(seed, "dirichlet-partition")
    groups = np.asarray(groups)
    labels = np.unique(groups)
    for _ in range(1000):
        parts: list[list[int]] = [[] for _ in range(num_parts)]
        for g in labels:
            idx = np.flatnonzero(groups == g)
            idx = idx[gen.permutation(len(idx))]
            p = gen.dirichlet(alpha * np.ones(num_parts))
            cuts = (np.cumsum(p) * len(idx)).astype(int)[:-1]
            for part, chunk in zip(parts, np.split(idx, cuts)):
                part.extend(chunk.tolist())
        if min(len(p) for p in parts) >= min_size:
            return [np.sort(np.asarray(p, dtype=np.int64)) for p in parts]
    raise ValueError(
        f"data.alpha={alpha}: could not give every one of {num_parts} clients >= {min_size} samples; "
        "raise data.alpha or data.samples_per_client"
    )
