"""Independent binomial shot sampling of ±1-valued observables (the pre-issue-15 model).

QuantumLayer and PartitionedQuantumLayer now measure with :func:`fedqnn.quantum.readout.measure`
(all observables from the same multinomial bitstrings); this independent-binomial estimator is
kept for its users outside the layers and as part of the negative control
``fedqnn.quantum.qpu._legacy_shared_trajectory``."""

from __future__ import annotations

import torch

__all__ = ["sample_expectations"]


def sample_expectations(e: torch.Tensor, shots: int, generator: torch.Generator | None) -> torch.Tensor:
    """Finite-shot estimates of ±1-valued observables, straight-through for the gradient.

    An observable O with eigenvalues ±1 and mean μ gives +1 with probability (1 + μ)/2, so the
    S-shot estimate is μ̂ = 2 K / S - 1 with K ~ Binomial(S, (1 + μ)/2) (variance (1 - μ²)/S).
    The forward value is μ̂; the gradient is that of μ.
    """
    p = ((1.0 + e.detach()) / 2).clamp(0.0, 1.0)
    k = torch.binomial(torch.full_like(p, float(shots)), p, generator=generator)
    mu_hat = 2.0 * k / shots - 1.0
    return e + (mu_hat - e).detach()
