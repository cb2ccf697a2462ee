"""Physics of stored Bell pairs: memory decay, cut-offs, swapping, purification, generation.

All functions are pure and NumPy-broadcasting. States are Bell-diagonal; we carry them either
as a fidelity ``F`` (Werner states), as the Bell-diagonal weights ``lam = (lam_00, lam_01,
lam_10, lam_11)`` indexed by the Pauli error ``(x, z)`` relative to ``|Phi+>``
(``00 = Phi+``, ``01 = Phi-``, ``10 = Psi+``, ``11 = Psi-``), or as the three non-trivial
characters (Walsh-Hadamard transform) ``c_s = sum_k (-1)^(s.k) lam_k`` for
``s in (10, 01, 11)``. In the character picture every Pauli channel multiplies the
characters and an ideal swap multiplies the characters of the two input pairs, which is what
makes the broker's fidelity bookkeeping exact and vectorisable:

    F = lam_00 = (1 + c_10 + c_01 + c_11) / 4.

Conventions for the two memory models (both halves of a pair idle in memory):

* depolarising: every character decays as exp(-t/T), 1/T = 1/T_A + 1/T_B;
* dephasing (Z errors): the characters with s_z = 1 (``c_01``, ``c_11``) decay as
  exp(-t/T_phi), 1/T_phi = 1/T_phi,A + 1/T_phi,B; ``c_10`` is conserved.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "NOISE_MODELS",
    "combined_T",
    "werner_parameter",
    "fidelity_from_werner",
    "depolarising_fidelity",
    "depolarising_cutoff",
    "dephasing_fidelity",
    "dephasing_cutoff",
    "bell_weights",
    "characters",
    "weights_from_characters",
    "fidelity_from_characters",
    "decay_rates",
    "swap_werner",
    "swap_success_fidelity",
    "swap_characters",
    "bbpssw",
    "dejmps",
    "purify_characters",
    "path_fidelity",
    "path_cutoff_budget",
    "generation_rate",
    "sample_generation_times",
]

NOISE_MODELS = ("depolarising", "dephasing")
Noise = Literal["depolarising", "dephasing"]


# --------------------------------------------------------------------------- memories
def combined_T(T_a: ArrayLike, T_b: ArrayLike) -> NDArray[np.float64]:
    """Time constant of a pair whose two halves idle in memories A and B.

    Formula: 1/T = 1/T_A + 1/T_B (independent Pauli channels on each qubit multiply the
    characters, so their rates add).
    """
    T_a = np.asarray(T_a, dtype=float)
    T_b = np.asarray(T_b, dtype=float)
    return 1.0 / (1.0 / T_a + 1.0 / T_b)


def werner_parameter(F: ArrayLike) -> NDArray[np.float64]:
    """Werner parameter of a Werner state of fidelity F: w = (4F - 1) / 3."""
    return (4.0 * np.asarray(F, dtype=float) - 1.0) / 3.0


def fidelity_from_werner(w: ArrayLike) -> NDArray[np.float64]:
    """Inverse of :func:`werner_parameter`: F = (1 + 3 w) / 4."""
    return (1.0 + 3.0 * np.asarray(w, dtype=float)) / 4.0


def depolarising_fidelity(F0: ArrayLike, t: ArrayLike, T: ArrayLike) -> NDArray[np.float64]:
    """Fidelity of a Werner pair after storage time t in depolarising memories.

    Formula: F(t) = 1/4 + (F0 - 1/4) exp(-t/T), with T the pair's time constant
    (1/T = 1/T_A + 1/T_B when both halves idle, see :func:`combined_T`).
    """
    F0 = np.asarray(F0, dtype=float)
    return 0.25 + (F0 - 0.25) * np.exp(-np.asarray(t, dtype=float) / np.asarray(T, dtype=float))


def depolarising_cutoff(F0: ArrayLike, F_min: ArrayLike, T: ArrayLike) -> NDArray[np.float64]:
    """Largest storage time with F(t) >= F_min in depolarising memories.

    Formula: t_max = T ln((F0 - 1/4) / (F_min - 1/4)); 0 when F0 <= F_min (the pair is
    useless from the start). Requires F_min > 1/4.
    """
    F0 = np.asarray(F0, dtype=float)
    F_min = np.asarray(F_min, dtype=float)
    if np.any(F_min <= 0.25):
        raise ValueError("F_min must exceed 1/4 for a finite cut-off")
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.asarray(T, dtype=float) * np.log((F0 - 0.25) / (F_min - 0.25))
    return np.where(F0 > F_min, t, 0.0)


def dephasing_fidelity(
    F0: ArrayLike, B0: ArrayLike, t: ArrayLike, T_phi: ArrayLike
) -> NDArray[np.float64]:
    """Fidelity of a Bell-diagonal pair after storage time t in dephasing memories.

    Formula: F(t) = (F0 + B0)/2 + (F0 - B0)/2 exp(-t/T_phi), with B0 the initial weight of
    |Phi->; dephasing moves weight between |Phi+> and |Phi-> only, so F + B is conserved.
    """
    F0 = np.asarray(F0, dtype=float)
    B0 = np.asarray(B0, dtype=float)
    decay = np.exp(-np.asarray(t, dtype=float) / np.asarray(T_phi, dtype=float))
    return (F0 + B0) / 2.0 + (F0 - B0) / 2.0 * decay


def dephasing_cutoff(
    F0: ArrayLike, B0: ArrayLike, F_min: ArrayLike, T_phi: ArrayLike
) -> NDArray[np.float64]:
    """Largest storage time with F(t) >= F_min in dephasing memories.

    Formula: t_max = T_phi ln((F0 - B0) / (2 F_min - F0 - B0)); infinite when the asymptote
    (F0 + B0)/2 already meets F_min, 0 when F0 <= F_min.
    """
    F0 = np.asarray(F0, dtype=float)
    B0 = np.asarray(B0, dtype=float)
    F_min = np.asarray(F_min, dtype=float)
    denom = 2.0 * F_min - F0 - B0
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.asarray(T_phi, dtype=float) * np.log((F0 - B0) / denom)
    t = np.where(denom <= 0.0, np.inf, t)
    return np.where(F0 > F_min, t, 0.0)


# --------------------------------------------------------------------------- Bell-diagonal algebra
def bell_weights(F0: ArrayLike, B0: ArrayLike | None = None) -> NDArray[np.float64]:
    """Bell-diagonal weights (Phi+, Phi-, Psi+, Psi-) of a fresh pair, shape (..., 4).

    ``B0`` is the weight of |Phi->; ``None`` gives the Werner state B0 = (1 - F0)/3. The rest,
    1 - F0 - B0, is split evenly between |Psi+> and |Psi->.
    """
    F0 = np.asarray(F0, dtype=float)
    B0 = (1.0 - F0) / 3.0 if B0 is None else np.broadcast_to(np.asarray(B0, dtype=float), F0.shape)
    rest = (1.0 - F0 - B0) / 2.0
    return np.stack([F0, B0, rest, rest], axis=-1)


_SIGNS = np.array(
    [  # rows: s = 10, 01, 11 ; columns: k = 00, 01, 10, 11 ; entry (-1)^(s_x k_x + s_z k_z)
        [1, 1, -1, -1],
        [1, -1, 1, -1],
        [1, -1, -1, 1],
    ],
    dtype=float,
)


def characters(lam: ArrayLike) -> NDArray[np.float64]:
    """Non-trivial characters (c_10, c_01, c_11) of Bell-diagonal weights, shape (..., 3).

    Formula: c_s = sum_k (-1)^(s_x k_x + s_z k_z) lam_k (Walsh-Hadamard transform on Z2 x Z2).
    """
    return np.asarray(lam, dtype=float) @ _SIGNS.T


def weights_from_characters(c: ArrayLike) -> NDArray[np.float64]:
    """Inverse transform: lam_k = (1 + sum_s (-1)^(s.k) c_s) / 4, shape (..., 4)."""
    c = np.asarray(c, dtype=float)
    return (1.0 + c @ _SIGNS) / 4.0


def fidelity_from_characters(c: ArrayLike) -> NDArray[np.float64]:
    """F = lam_00 = (1 + c_10 + c_01 + c_11) / 4."""
    c = np.asarray(c, dtype=float)
    return (1.0 + c.sum(axis=-1)) / 4.0


def decay_rates(noise: Noise, T: ArrayLike) -> NDArray[np.float64]:
    """Per-character decay rates (per second) of a pair with time constant T, shape (..., 3).

    depolarising: c_s(t) = c_s(0) exp(-t/T) for all three s;
    dephasing:    c_10 constant, c_01 and c_11 decay as exp(-t/T_phi).
    """
    g = 1.0 / np.asarray(T, dtype=float)
    if noise == "depolarising":
        return np.stack([g, g, g], axis=-1)
    if noise == "dephasing":
        return np.stack([np.zeros_like(g), g, g], axis=-1)
    raise ValueError(f"unknown noise model {noise!r}; expected one of {NOISE_MODELS}")


# --------------------------------------------------------------------------- swapping
def swap_werner(F1: ArrayLike, F2: ArrayLike) -> NDArray[np.float64]:
    """Fidelity after an ideal entanglement swap of two Werner pairs.

    Formula: w = w1 w2 with w = (4F - 1)/3, i.e. F = (1 + 3 w1 w2)/4.
    """
    return fidelity_from_werner(werner_parameter(F1) * werner_parameter(F2))


def swap_success_fidelity(
    F: ArrayLike, p_swap: float, hops: int
) -> tuple[NDArray[np.float64], float]:
    """End-to-end fidelity and success probability of a chain of ``hops`` Werner links.

    Formula: w_e2e = prod_i w_i, success = p_swap^(hops - 1) (each of the hops - 1 Bell-state
    measurements succeeds independently; a failure destroys the chain).
    """
    w = np.prod(werner_parameter(np.broadcast_to(np.asarray(F, dtype=float), (hops,))))
    return fidelity_from_werner(w), float(p_swap) ** (hops - 1)


def swap_characters(c1: ArrayLike, c2: ArrayLike) -> NDArray[np.float64]:
    """Characters after an ideal swap of two Bell-diagonal pairs: c_s = c1_s c2_s.

    The Pauli errors of the inputs compose (XOR on Z2 x Z2), so the weights convolve and the
    characters multiply; for Werner inputs this is w = w1 w2.
    """
    return np.asarray(c1, dtype=float) * np.asarray(c2, dtype=float)


# --------------------------------------------------------------------------- purification
def bbpssw(F1: ArrayLike, F2: ArrayLike | None = None) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """BBPSSW recurrence purification of two Werner pairs (Bennett et al., PRL 76, 722, 1996).

    With x = (1 - F)/3:
        p_succ = F1 F2 + F1 x2 + x1 F2 + 5 x1 x2,
        F'     = (F1 F2 + x1 x2) / p_succ,
    the output is twirled back to a Werner state. Identical inputs give the textbook
    F' = (F^2 + (1-F)^2/9) / (F^2 + 2F(1-F)/3 + 5(1-F)^2/9). Returns (F', p_succ).
    """
    F1 = np.asarray(F1, dtype=float)
    F2 = F1 if F2 is None else np.asarray(F2, dtype=float)
    x1, x2 = (1.0 - F1) / 3.0, (1.0 - F2) / 3.0
    p = F1 * F2 + F1 * x2 + x1 * F2 + 5.0 * x1 * x2
    return (F1 * F2 + x1 * x2) / p, p


def dejmps(
    lam1: ArrayLike, lam2: ArrayLike | None = None
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """DEJMPS purification of two Bell-diagonal pairs (Deutsch et al., PRL 77, 2818, 1996).

    In the paper's labels A = Phi+, B = Psi-, C = Psi+, D = Phi- (here lam_00, lam_11, lam_10,
    lam_01):
        N  = (A1 + B1)(A2 + B2) + (C1 + D1)(C2 + D2)        (success probability)
        A' = (A1 A2 + B1 B2) / N,   B' = (C1 D2 + D1 C2) / N,
        C' = (C1 C2 + D1 D2) / N,   D' = (A1 B2 + B1 A2) / N.
    Identical inputs give A' = (A^2 + B^2)/N, N = (A + B)^2 + (C + D)^2. Returns (lam', N).
    """
    l1 = np.asarray(lam1, dtype=float)
    l2 = l1 if lam2 is None else np.asarray(lam2, dtype=float)
    A1, D1, C1, B1 = (l1[..., i] for i in range(4))
    A2, D2, C2, B2 = (l2[..., i] for i in range(4))
    N = (A1 + B1) * (A2 + B2) + (C1 + D1) * (C2 + D2)
    A = (A1 * A2 + B1 * B2) / N
    B = (C1 * D2 + D1 * C2) / N
    C = (C1 * C2 + D1 * D2) / N
    D = (A1 * B2 + B1 * A2) / N
    return np.stack([A, D, C, B], axis=-1), N


def purify_characters(
    c1: ArrayLike, c2: ArrayLike, protocol: Literal["bbpssw", "dejmps"]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Purify two pairs given by characters; returns (output characters, success probability).

    ``bbpssw`` twirls both inputs to Werner states first (fidelity F = lam_00), see
    :func:`bbpssw`; ``dejmps`` acts on the full Bell-diagonal weights, see :func:`dejmps`.
    """
    if protocol == "bbpssw":
        F, p = bbpssw(fidelity_from_characters(c1), fidelity_from_characters(c2))
        w = werner_parameter(F)
        return np.stack([w, w, w], axis=-1), p
    if protocol == "dejmps":
        lam, p = dejmps(weights_from_characters(c1), weights_from_characters(c2))
        return characters(lam), p
    raise ValueError(f"unknown purification protocol {protocol!r}; expected bbpssw or dejmps")


# --------------------------------------------------------------------------- paths
def path_fidelity(
    c0: NDArray[np.float64],
    rates: NDArray[np.float64],
    ages: ArrayLike,
    purify: str | None = None,
) -> NDArray[np.float64]:
    """End-to-end fidelity of one pair per hop (two per hop, purified first, if ``purify``).

    ``c0`` (hops, 3) fresh characters, ``rates`` (hops, 3) decay rates, ``ages`` (..., hops)
    storage times. Formula: c_hop = c0 exp(-rates t); the swaps multiply the characters,
    c_e2e = prod_hops c_hop, and F = (1 + sum_s c_e2e,s)/4. With ``purify`` both inputs of a
    hop have the same age (the worst case used for budgeting).
    """
    t = np.asarray(ages, dtype=float)[..., None]
    c = c0 * np.exp(-rates * t)
    if purify:
        c, _ = purify_characters(c, c, purify)  # type: ignore[arg-type]
    return fidelity_from_characters(np.prod(c, axis=-2))


def path_cutoff_budget(
    c0: NDArray[np.float64],
    rates: NDArray[np.float64],
    T: NDArray[np.float64],
    F_min: float,
    purify: str | None = None,
    iters: int = 60,
) -> float:
    """Per-path cut-off budget x: link i of the path may hold pairs up to t_i = x T_i.

    A per-link cut-off alone does not bound the end-to-end fidelity after swaps. We give each
    link a share of the path's decoherence budget proportional to its time constant, so the
    worst case (every hop at its cut-off) still meets F_min. For Werner pairs in depolarising
    memories this has the closed form

        sum_i t_i / T_i <= ln(prod_i w0_i / w_min)  =>  x = ln(prod_i w0_i / w_min) / hops,

    with w_min = (4 F_min - 1)/3; in general (dephasing, purification) x is found by bisection
    on :func:`path_fidelity`, which is monotone in x. Returns 0 when even fresh pairs fail.
    """
    T = np.asarray(T, dtype=float)
    f = lambda x: float(path_fidelity(c0, rates, x * T, purify))  # noqa: E731
    if f(0.0) < F_min:
        return 0.0
    hi = 1.0
    while f(hi) >= F_min:
        hi *= 2.0
        if hi > 1e6:
            return math.inf
    lo = 0.0
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        if f(mid) >= F_min:
            lo = mid
        else:
            hi = mid
    return lo


# --------------------------------------------------------------------------- generation
def generation_rate(p: ArrayLike, tau: ArrayLike) -> NDArray[np.float64]:
    """Mean heralded generation rate of a link: r = p / tau (pairs per second)."""
    return np.asarray(p, dtype=float) / np.asarray(tau, dtype=float)


def sample_generation_times(
    rng: np.random.Generator, p: float, tau: float, horizon: float
) -> NDArray[np.float64]:
    """Herald times in [0, horizon) of a link attempting every tau with success probability p.

    The number of attempts between successes is geometric, P(k) = (1 - p)^(k-1) p, k >= 1, so
    the waiting time is k tau with mean tau / p = 1 / r.
    """
    times: list[float] = []
    t = 0.0
    while True:
        t += rng.geometric(p) * tau
        if t >= horizon:
            return np.asarray(times, dtype=float)
        times.append(t)
