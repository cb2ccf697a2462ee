"""Adaptive Schmidt rank (QNet-NO 3.2.2 / A.2), as a pure, documented rule.

The budget is r = 2^k: at most k enabled CNOTs across each QPU cut (so the measured Schmidt rank
is <= 2^k, :mod:`fedqnn.partitions.schmidt`); the other cut gates are masked, parameter shapes do
not change. Four inputs, each turned into a number of cut gates:

* **Task complexity** m99: the number of cosine (DCT-II) modes holding 99 % of the spectral energy
  of the target functions G(u) on their grid, averaged over samples
  (:func:`spectral_complexity`). A state of Schmidt rank r couples the two registers through r
  terms, so resolving m99 independent output modes across the cut asks for r >= m99:
  k_c = ceil(log2 m99). (A modelling choice, not a theorem: it sets where the rule starts.)
* **Recent performance** δ in {−1, 0, +1} from the slope s of log(validation error) over the last
  ``window`` rounds (:func:`performance_delta`): improving (s < −tol): 0; worsening (s > +tol):
  −1 (extra cut noise hurts); stalled and above ``target``: +1.
* **Entanglement quality**: a gate-teleported CNOT through a Werner pair of fidelity F shrinks
  the observables it touches by w = (4F − 1)/3 (``channels.cut_gate_shrink``); k cut gates in a
  light cone shrink the signal by down to w^k. Allowing at most a shrink c_min (0.5):
  k_F = floor(ln c_min / ln w) (∞ for F = 1, 0 for w <= c_min). Equivalently the break-even
  fidelity of k gates is F*(k) = (3 c_min^{1/k} + 1)/4 (:func:`break_even_fidelity`).
* **Memory**: rank 2^k needs k qubits on each side, a register of >= 2k qubits, whose simulation
  costs 16 B 2^{2k} bytes (statevector, batch B; 16 B 4^{2k} for density matrices): memory grows
  as r², not linearly in r as the draft's table. k_M = the largest k within the budget. And a cut
  with |A|, |B| qubits cannot exceed rank 2^min(|A|,|B|): k_D = min(|A|, |B|).

Rule: k = min( max(k_min, min(k_c + δ, k_F)), k_max, k_M, k_D ) (and >= 0).
Fidelity is a soft cap (k_min wins over it: some entanglement is the point of partitioning);
memory, dimension and k_max are hard caps. Monotone by construction: more complexity never
lowers k, worse fidelity never raises it, and k <= k_M always.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy.fft import dct

from fedqnn.partitions.channels import werner_parameter
from fedqnn.partitions.circuit import PartitionSpec, cut_gates, state_bytes

__all__ = [
    "spectral_complexity", "complexity_rank", "fidelity_rank", "break_even_fidelity",
    "memory_rank", "performance_delta", "RankDecision", "choose_rank", "mask_for_rank",
]


def spectral_complexity(targets: np.ndarray | Sequence[Sequence[float]], energy: float = 0.99) -> int:
    """m99: the fewest cosine modes (orthonormal DCT-II along the grid) holding ``energy`` of the
    mean spectral energy of the target functions (S, m)."""
    y = np.atleast_2d(np.asarray(targets, dtype=float))
    if y.shape[-1] < 1 or not np.all(np.isfinite(y)):
        raise ValueError("targets: need finite values on a non-empty grid")
    if not 0 < energy <= 1:
        raise ValueError(f"energy: expected a fraction in (0, 1], got {energy!r}")
    c = dct(y, type=2, norm="ortho", axis=-1)
    e = (c**2).mean(axis=0)
    total = e.sum()
    if total <= 0:
        return 1
    order = np.sort(e)[::-1]
    return int(np.searchsorted(np.cumsum(order) / total, energy - 1e-12) + 1)


def complexity_rank(modes: int) -> int:
    """k_c = ceil(log2 m99)."""
    if isinstance(modes, bool) or int(modes) != modes or modes < 1:
        raise ValueError(f"modes: expected an integer >= 1, got {modes!r}")
    return int(math.ceil(math.log2(int(modes))))


def fidelity_rank(pair_fidelity: float, min_shrink: float = 0.5, cap: int = 64) -> int:
    """k_F = floor(ln c_min / ln w), w = (4F − 1)/3; ``cap`` for perfect pairs."""
    if not 0 < min_shrink < 1:
        raise ValueError(f"min_shrink: expected (0, 1), got {min_shrink!r}")
    w = werner_parameter(pair_fidelity)
    if w >= 1.0:
        return cap
    if w <= min_shrink:
        return 0
    return min(cap, int(math.floor(math.log(min_shrink) / math.log(w) + 1e-12)))


def break_even_fidelity(k: int, min_shrink: float = 0.5) -> float:
    """F*(k) = (3 c_min^{1/k} + 1)/4: below it, k cut gates shrink the signal below c_min."""
    if k < 1:
        raise ValueError(f"k: expected >= 1, got {k!r}")
    return (3.0 * min_shrink ** (1.0 / k) + 1.0) / 4.0


def memory_rank(budget_bytes: float, batch: int = 1, method: str = "trajectory", cap: int = 64) -> int:
    """k_M: the largest k whose 2k-qubit register fits ``budget_bytes`` (``state_bytes``)."""
    if not budget_bytes > 0:
        raise ValueError(f"memory_bytes: expected > 0, got {budget_bytes!r}")
    if batch < 1:
        raise ValueError(f"batch: expected >= 1, got {batch!r}")
    k = 0
    while k < cap and state_bytes(2 * (k + 1), batch, method) <= budget_bytes:
        k += 1
    return k


def performance_delta(errors: Sequence[float], window: int = 5, tol: float = 0.01,
                      target: float | None = None) -> int:
    """δ from the slope of log(error) over the last ``window`` rounds (needs >= 3 values)."""
    e = np.asarray(list(errors)[-window:], dtype=float)
    if e.size < 3:
        return 0
    if np.any(~np.isfinite(e)) or np.any(e <= 0):
        raise ValueError("errors: expected finite positive validation errors")
    slope = float(np.polyfit(np.arange(e.size), np.log(e), 1)[0])
    if slope < -tol:
        return 0
    if slope > tol:
        return -1
    return 1 if target is None or e[-1] > target else 0


@dataclass(frozen=True)
class RankDecision:
    k: int
    rank: int
    k_complexity: int
    delta: int
    k_fidelity: int
    k_memory: int
    k_dimension: int
    bound: str  # which term decided: complexity, fidelity, k_min, k_max, memory, dimension

    def as_dict(self) -> dict[str, int | str]:
        return asdict(self)


def choose_rank(
    modes: int, pair_fidelity: float, errors: Sequence[float] = (), memory_bytes: float = 2**30,
    *, cut_qubits: tuple[int, int] = (64, 64), batch: int = 32, method: str = "trajectory",
    k_min: int = 1, k_max: int = 6, min_shrink: float = 0.5, target: float | None = None,
) -> RankDecision:
    """The module docstring's rule. ``cut_qubits``: (|A|, |B|) of the cut."""
    if k_min < 0 or k_max < k_min:
        raise ValueError(f"k_min/k_max: need 0 <= k_min <= k_max, got {k_min}, {k_max}")
    kc = complexity_rank(modes)
    d = performance_delta(errors, target=target)
    kf = fidelity_rank(pair_fidelity, min_shrink)
    km = memory_rank(memory_bytes, batch, method)
    kd = min(cut_qubits)
    want = max(0, kc + d)
    k, why = (want, "complexity") if want <= kf else (kf, "fidelity")
    if k < k_min:
        k, why = k_min, "k_min"
    for cap, name in ((k_max, "k_max"), (km, "memory"), (kd, "dimension")):
        if k > cap:
            k, why = cap, name
    k = max(0, k)
    return RankDecision(k, 2**k, kc, d, kf, km, kd, why)


def mask_for_rank(spec: PartitionSpec, k: int) -> list[bool]:
    """Cut-gate mask with at most k enabled gates across every cut: gates are enabled in circuit
    order while every boundary they cross has fewer than k."""
    if k < 0:
        raise ValueError(f"k: expected >= 0, got {k!r}")
    counts = [0] * max(0, spec.qpus - 1)
    mask = []
    for g in cut_gates(spec):
        crossed = range(min(g.blocks), max(g.blocks))
        on = all(counts[j] < k for j in crossed)
        if on:
            for j in crossed:
                counts[j] += 1
        mask.append(on)
    return mask
