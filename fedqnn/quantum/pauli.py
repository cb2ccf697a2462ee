"""Pauli trajectories: the sampled gates of one depolarising location (shared by the simulators
and :mod:`fedqnn.noise`, which re-exports :func:`pauli_trajectory_gates`)."""

from __future__ import annotations

import torch

__all__ = ["pauli_trajectory_gates"]

_PAULI = torch.tensor(
    [[[1, 0], [0, 1]], [[0, 1], [1, 0]], [[0, -1j], [1j, 0]], [[1, 0], [0, -1]]], dtype=torch.complex128
)


def pauli_trajectory_gates(batch: int, p: float, generator: torch.Generator | None) -> torch.Tensor | None:
    """(B, 2, 2) Pauli gates of one noisy location: I w.p. 1 - p, else X, Y, Z w.p. p/3 each.

    Returns None when no sample had an error (nothing to apply).
    """
    if p <= 0:
        return None
    u = torch.rand(batch, generator=generator, dtype=torch.float64)
    idx = torch.where(u < p, 1 + torch.floor(u / p * 3).clamp(max=2).long(), torch.zeros_like(u, dtype=torch.long))
    if not bool((idx > 0).any()):
        return None
    return _PAULI[idx]
