"""Measurement on a QPU: readout confusion, S bitstrings per sample, every observable from them.

A Z-basis measurement of n qubits yields a bitstring x with probability P(x) = ⟨x|ρ|x⟩. Readout
errors act on the outcome: qubit i reports j when it was k with probability M_i[j, k] (a 2x2
column-stochastic confusion matrix; symmetric bit flip r: M = [[1-r, r], [r, 1-r]]); independent
per qubit, the reported distribution is (M_0 ⊗ ... ⊗ M_{n-1}) P.

S shots draw S bitstrings: the counts are K ~ Multinomial(S, P_read). Every readout observable
O = Z_i or Z_i Z_{i+1} is a ±1 function s_O(x) of the bitstring, estimated from the same counts:
μ̂_O = Σ_x K_x s_O(x) / S. So Var μ̂_O = (1 - μ_O²)/S and

    Cov(μ̂_A, μ̂_B) = (E[s_A s_B] - μ_A μ_B)/S,   e.g. Cov(Ẑ_0, Ẑ_0Z_1) = (⟨Z_1⟩ - ⟨Z_0⟩⟨Z_0Z_1⟩)/S

(the multinomial covariance), as on hardware. The forward value is μ̂, the gradient that of the
exact μ = Σ_x P_read(x) s_O(x) (straight-through).
"""

from __future__ import annotations

from functools import lru_cache

import torch

from fedqnn.quantum.statevector import zz_pairs

__all__ = ["symmetric_confusion", "as_confusion", "apply_confusion", "observable_signs", "measure",
           "sample_counts"]


def symmetric_confusion(r: float, n: int) -> torch.Tensor:
    """(n, 2, 2) confusion matrices of a symmetric bit flip r on every qubit: [[1-r, r], [r, 1-r]]."""
    m = torch.tensor([[1.0 - r, r], [r, 1.0 - r]], dtype=torch.float64)
    return m.repeat(n, 1, 1)


def as_confusion(r: float | torch.Tensor, n: int) -> torch.Tensor | None:
    """A readout spec -> (n, 2, 2) column-stochastic matrices M[j, k] = P(read j | true k), or
    None for perfect readout. ``r``: a flip probability, one (2, 2) matrix for all qubits, or (n, 2, 2)."""
    if not isinstance(r, torch.Tensor):
        return symmetric_confusion(float(r), n) if float(r) > 0 else None
    m = r.to(torch.float64)
    m = m.expand(n, 2, 2).clone() if m.dim() == 2 else m
    if m.shape != (n, 2, 2) or not torch.allclose(m.sum(1), torch.ones(n, 2, dtype=torch.float64)):
        raise ValueError(f"readout: expected column-stochastic (n={n}, 2, 2) matrices, got {tuple(m.shape)}")
    return m


def apply_confusion(probs: torch.Tensor, confusion: torch.Tensor) -> torch.Tensor:
    """(M_0 ⊗ ... ⊗ M_{n-1}) P for probabilities (B, 2^n) (wire 0 the most significant bit)."""
    b, n = probs.shape[0], confusion.shape[0]
    t = probs.reshape((b,) + (2,) * n)
    for i in range(n):
        t = torch.tensordot(confusion[i].to(t.dtype), t, dims=([1], [i + 1])).movedim(0, i + 1)
    return t.reshape(b, -1)


@lru_cache(maxsize=32)
def observable_signs(n: int) -> torch.Tensor:
    """(2^n, 2n - 1): s_O(x) = ±1 of ⟨Z_i⟩ (i = 0..n-1) then ⟨Z_i Z_{i+1}⟩ on bitstring x."""
    x = torch.arange(2**n)
    bits = torch.stack([(x >> (n - 1 - i)) & 1 for i in range(n)], 1)
    z = (1 - 2 * bits).to(torch.float64)
    zz = [z[:, i] * z[:, j] for i, j in zz_pairs(n)]
    return torch.cat([z, torch.stack(zz, 1)], 1) if zz else z


def sample_counts(probs: torch.Tensor, shots: int, generator: torch.Generator | None) -> torch.Tensor:
    """K ~ Multinomial(S, P) per row: (B, 2^n) float64 counts of S bitstrings drawn with
    ``torch.multinomial`` (with replacement) from ``generator``."""
    p = probs.detach().clamp_min(0.0)
    idx = torch.multinomial(p, shots, replacement=True, generator=generator)
    counts = torch.zeros_like(p)
    return counts.scatter_add_(1, idx, torch.ones_like(idx, dtype=counts.dtype))


def measure(probs: torch.Tensor, shots: int, generator: torch.Generator | None) -> torch.Tensor:
    """Readout expectations (B, 2n - 1) from reported-outcome probabilities (B, 2^n).

    ``shots`` = 0: the exact μ = P s_O. Otherwise the S-shot estimate μ̂ = K s_O / S from one
    multinomial draw per sample (all observables from the same bitstrings), straight-through.
    """
    n = (probs.shape[1] - 1).bit_length()
    signs = observable_signs(n)
    e = probs @ signs
    if not shots:
        return e
    mu_hat = sample_counts(probs, shots, generator) @ signs / shots
    return e + (mu_hat - e).detach()
