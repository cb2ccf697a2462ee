"""Paired comparisons across instances (the instance is the unit of analysis).

* Wilcoxon signed-rank test on paired per-instance values (``scipy.stats.wilcoxon``,
  zero differences dropped: "wilcox" zero method; p = 1 when all differences are zero).
* Holm step-down correction: sort p_(1) <= ... <= p_(k); adjusted
  p~_(i) = max_{l <= i} min(1, (k - l + 1) p_(l)).
* Effect sizes: mean paired difference with a percentile bootstrap CI (resampling
  instances), and the matched-pairs rank-biserial correlation r = (W+ - W-) / (W+ + W-).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata, wilcoxon

__all__ = ["holm", "bootstrap_ci", "rank_biserial", "PairedResult", "paired_compare"]


def holm(pvalues: list[float] | np.ndarray) -> np.ndarray:
    """Holm-adjusted p-values, in the input order."""
    p = np.asarray(pvalues, dtype=float)
    if p.ndim != 1 or np.any((p < 0) | (p > 1)):
        raise ValueError("pvalues: expected a 1-D array of values in [0, 1]")
    k = len(p)
    order = np.argsort(p, kind="stable")
    adj = np.minimum(1.0, (k - np.arange(k)) * p[order])
    adj = np.maximum.accumulate(adj)
    out = np.empty(k)
    out[order] = adj
    return out


def bootstrap_ci(d: np.ndarray, rng: np.random.Generator, n_boot: int = 5000,
                 level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean of ``d`` (resampling its entries)."""
    d = np.asarray(d, dtype=float)
    if len(d) == 0:
        raise ValueError("d: needs at least one value")
    means = d[rng.integers(0, len(d), size=(n_boot, len(d)))].mean(axis=1)
    a = (1 - level) / 2
    return float(np.quantile(means, a)), float(np.quantile(means, 1 - a))


def rank_biserial(d: np.ndarray) -> float:
    """(W+ - W-) / (W+ + W-) over the non-zero differences (0 when all are zero)."""
    d = np.asarray(d, dtype=float)
    d = d[d != 0]
    if len(d) == 0:
        return 0.0
    r = rankdata(np.abs(d))
    wp, wm = r[d > 0].sum(), r[d < 0].sum()
    return float((wp - wm) / (wp + wm))


@dataclass
class PairedResult:
    name: str
    n: int
    mean_diff: float
    ci: tuple[float, float]
    rank_biserial: float
    p: float
    p_holm: float = float("nan")

    def verdict(self, alpha: float = 0.05, lower_is_better: bool = True) -> str:
        """'A better', 'B better' or 'no advantage' (Holm-adjusted p and the CI sign)."""
        if not (self.p_holm < alpha):
            return "no advantage"
        better = self.mean_diff < 0 if lower_is_better else self.mean_diff > 0
        return "A better" if better else "B better"


def paired_compare(a: np.ndarray, b: np.ndarray, name: str, rng: np.random.Generator,
                   n_boot: int = 5000) -> PairedResult:
    """Compare per-instance values a (method A) and b (method B): d = a - b."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError("a/b: expected two 1-D arrays of equal length (one value per instance)")
    d = a - b
    if np.all(d == 0):
        p = 1.0
    else:
        p = float(wilcoxon(a, b, zero_method="wilcox").pvalue)
    return PairedResult(name, len(d), float(d.mean()), bootstrap_ci(d, rng, n_boot),
                        rank_biserial(d), p)


def with_holm(results: list[PairedResult]) -> list[PairedResult]:
    """Fill ``p_holm`` across a family of comparisons."""
    adj = holm([r.p for r in results]) if results else []
    for r, q in zip(results, adj):
        r.p_holm = float(q)
    return results


__all__.append("with_holm")
