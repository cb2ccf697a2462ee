"""QKD key-rate formulas for BBM92 on Bell-diagonal pairs (see :mod:`fedqnn.security.qkd`).

States are Bell-diagonal weights (Phi+, Phi-, Psi+, Psi-); in Z/X measurements

    e_Z = p(Psi+) + p(Psi-),        e_X = p(Phi-) + p(Psi-).

Finite-size phase-error margin (random sampling without replacement, Serfling)

    delta(n, k, eps) = sqrt( (n + k) (k + 1) ln(1/eps) / (2 n k^2) )      ("serfling")

(``"hoeffding"``: ``sqrt(ln(1/eps) / (2k))``), the QBER tolerance ``h(Q_tol) = 1/(1 + f_EC)``,
the error-correction leakage ``leak_EC = ceil(f_EC n h(e_key)) + ceil(log2(2/eps))`` and the
extractable length

    l = floor( n (1 - h(e_X_hat + delta)) - leak_EC - 2 log2(1/eps) ),

plus :func:`pairs_needed`, the pair count planned for a key of a given length.
"""

from __future__ import annotations

import math
from functools import lru_cache

__all__ = [
    "BellState",
    "werner",
    "dephased",
    "qber",
    "binary_entropy",
    "finite_size_margin",
    "qber_threshold",
    "key_length",
    "leak_ec",
    "pairs_needed",
]

BellState = tuple[float, float, float, float]
"""Bell-diagonal weights (Phi+, Phi-, Psi+, Psi-), summing to 1."""


def werner(fidelity: float) -> BellState:
    """Werner state: ``(F, (1-F)/3, (1-F)/3, (1-F)/3)``."""
    r = (1.0 - fidelity) / 3.0
    return (float(fidelity), r, r, r)


def dephased(fidelity: float) -> BellState:
    """Phase-damped Phi+: ``(F, 1-F, 0, 0)``."""
    return (float(fidelity), 1.0 - float(fidelity), 0.0, 0.0)


def qber(state: BellState) -> tuple[float, float]:
    """``(e_Z, e_X) = (p(Psi+) + p(Psi-), p(Phi-) + p(Psi-))``."""
    _, pm, sp, sm = state
    return sp + sm, pm + sm


def binary_entropy(p: float) -> float:
    """``h(p) = -p log2 p - (1-p) log2(1-p)`` (0 at 0 and 1)."""
    if p <= 0.0 or p >= 1.0:
        return 0.0
    return -p * math.log2(p) - (1 - p) * math.log2(1 - p)


def finite_size_margin(n: int, k: int, eps: float, kind: str = "serfling") -> float:
    """delta(n, k, eps): Serfling ``sqrt((n+k)(k+1) ln(1/eps) / (2 n k^2))`` or Hoeffding
    ``sqrt(ln(1/eps)/(2k))``; +inf when n or k is 0."""
    if k <= 0 or n <= 0:
        return math.inf
    if kind == "hoeffding":
        return math.sqrt(math.log(1 / eps) / (2 * k))
    if kind != "serfling":
        raise ValueError(f"unknown margin {kind!r}")
    return math.sqrt((n + k) * (k + 1) * math.log(1 / eps) / (2 * n * k * k))


@lru_cache(maxsize=64)
def qber_threshold(f_ec: float = 1.15) -> float:
    """Q_tol with ``1 - h(Q) - f_EC h(Q) = 0``, i.e. ``h(Q_tol) = 1/(1 + f_EC)``."""
    lo, hi, target = 0.0, 0.5, 1.0 / (1.0 + f_ec)
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if binary_entropy(mid) < target else (lo, mid)
    return lo


def key_length(n: int, e_phase_upper: float, leak_ec: float, eps: float) -> int:
    """``l = floor(n (1 - h(e_ph^U)) - leak_EC - 2 log2(1/eps))`` (may be negative)."""
    e = min(0.5, max(0.0, e_phase_upper))
    return math.floor(n * (1 - binary_entropy(e)) - leak_ec - 2 * math.log2(1 / eps))


def leak_ec(n: int, e_key: float, f_ec: float, eps: float) -> int:
    """``ceil(f_EC n h(e_key)) + ceil(log2(2/eps))``: syndrome plus verification hash."""
    return math.ceil(f_ec * n * binary_entropy(e_key)) + math.ceil(math.log2(2 / eps))


def _expected_length(
    N: float, state: BellState, key_bits: int, eps: float, f_ec: float, p_x: float, t: float, margin: str,
    sigmas: float,
) -> int:
    e_z, e_x = qber(state)
    n_z = N * (1 - p_x) ** 2
    k_x = int(N * p_x**2)
    n = int(n_z * (1 - t))
    if k_x > 0:  # planning headroom for the statistical fluctuation of the estimate
        e_x = e_x + sigmas * math.sqrt(e_x * (1 - e_x) / k_x)
    d = finite_size_margin(n, k_x, eps, margin)
    if n <= 0 or e_x + d > qber_threshold(f_ec) or e_z > qber_threshold(f_ec):
        return -1
    return key_length(n, e_x + d, leak_ec(n, e_z, f_ec, eps), eps)


def pairs_needed(
    state: BellState | float,
    key_bits: int = 256,
    *,
    eps: float = 1e-10,
    f_ec: float = 1.15,
    p_x: float = 0.5,
    test_fraction: float = 0.05,
    margin: str = "serfling",
    headroom_sigmas: float = 3.0,
    max_pairs: int = 10**8,
) -> int | None:
    """Smallest pair count that yields ``key_bits`` when the X-basis estimate comes out
    ``headroom_sigmas`` standard deviations above its mean ``e_X`` (so an exchange
    planned with it rarely falls short); float ``state`` = Werner fidelity. None if
    impossible (QBER at or above the threshold)."""
    if not isinstance(state, tuple):
        state = werner(float(state))
    args = (state, key_bits, eps, f_ec, p_x, test_fraction, margin, float(headroom_sigmas))
    if _expected_length(max_pairs, *args) < key_bits:
        return None
    lo, hi = 1, max_pairs
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _expected_length(mid, *args) >= key_bits:
            hi = mid
        else:
            lo = mid
    return hi
