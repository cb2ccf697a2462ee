"""CEAS fidelity stamps (Definition 1), Flower-free.

Model (docs/ceas.md has the derivation). Node k's local update D_k after K steps of learning
rate η on batches of B samples, measured with S_k shots on a QPU whose noise shrinks the signal
by c_k (:func:`fedqnn.noise.shrink_factor`), has

    E[D_k] ≈ c_k D            (noise is mostly a bias: it shrinks the gradient)
    Σ_k ≈ η² K / (B S_k c_k²) diag(v_kj),  v_kj ≤ 1/2   (after debiasing D̃_k = D_k / c_k)

so Σ_k = σ_k² Σ_0 with the node factor σ_k² = 1 / (S_k c_k²) and a shape Σ_0 shared by all
nodes. The stamp is

    φ_k = 4 / tr(G Σ_k) = 4 / (σ_k² κ),   κ = tr(G Σ_0)

with G the metric in which errors count: the QFI F_Q(θ_t) on the quantum weights (computed by
the server at the broadcast parameters on a public probe batch) and the identity on the
classical parameters (they carry no quantum state). 1/φ_k is the expected infidelity
δᵀ F_Q δ / 4 that node k's noise adds to the model state. Weights ∝ φ_k minimise the
aggregate's expected squared error in G (Proposition 1); since κ is common to all nodes, they
reduce to weights ∝ S_k c_k².

Re-derived for the estimator simulated since issue 15 (``fedqnn.quantum.qpu``, straight-through;
``docs/ceas.md`` "The model, re-derived" has the measurements). The forward value is the S-shot
estimate μ̂ = μ + ε of the noisy channel mean (every shot its own gate errors, readout confusion,
one multinomial per sample: Var ε_O = (1 - μ_O²)/S); the backward pass is the exact ∂μ/∂θ of that
channel. Gate noise and readout shrink μ and ∂μ by c_k only to first order: each observable and
light cone shrinks differently and the loss's outer derivative is taken at the shrunk μ, so

    E[g_k] = c_k g_0 + (1 - c_k) h + O((1 - c_k)²)      (h set by model and data, not by node k)

* plain SGD, K steps, debiased D̃_k = D_k / c_k (linearised around θ_t):
      E||D̃_k - D_ref||²_G = a / (S_k c_k²) + b ((1 - c_k)/c_k)²
  (shot noise: η² K tr(G Σ_0) / (B S_k c_k²); bias: η K (1 - c_k)/c_k h);
* Adam: the first steps are sign-like (m/√v ≈ g/|g| per coordinate, v the mean of g² over the
  K steps), so the uniform shrink cancels (no debiasing) and the error per coordinate is
  4η² Φ(-|g_j| / s_j), s_j ∝ 1/(c_k √S_k); summed over coordinates whose |g_j| spread across 0
  (density f(0)) it is ≈ 4η² P f(0) s √(2/π), the noise's *standard deviation*:
      E||D_k - D_ref||²_G = a / (c_k √S_k) + b (1 - c_k)²
  (the sign's own shot bias, E sign(g + ε) ≠ sign g, scales like the noise term).

σ_k² = 1/(S_k c_k²) ranks the noise term exactly in both cases (1/(c √S) is its square root),
so the stamp below is the b = 0 model; :func:`update_error_terms` gives both terms and
:func:`fit_bias_ratio` λ = b/a. Measured on the crossed design (p x S, 3 x 3): the noise term
has the predicted form (per seed, SGD var S c² varies by 1.4-2.3x over the 9 nodes, against
5-7x for var √S c; Adam var √S c by 1.6-2.8x, against 4-11x for var S c²), and the bias is
24-72% of the error; with Adam the stamp still outranks shots-only and noise-only predictors,
with SGD its gain over the noise-only one is not reliable and the λ model's is
(``experiments/ceas/stamp_validation.py``).

κ, the absolute scale, is estimated by the strategy (:func:`strategies.ceas_math.consensus_round`):
``ceas.scale="fit"`` (default) fits κ and the between-node variance τ² on the server's own
calibration record with a repeated median (:mod:`strategies.ceas_scale`, breakdown point 1/2);
``"median"`` takes κ̂ = median_k ||D̃_k - m||²_G / σ_k² (m the coordinate-wise median); ``"model"``
uses the bound κ = η² K tr(G) / (2B) (:func:`model_kappa`; exact for plain SGD's shot noise with
v = 1/2, broken by Adam's step normalisation).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from fedqnn.noise import Calibration, effective_shots, shrink_factor

__all__ = ["node_variance_factor", "model_kappa", "stamps_from_factors", "metric_matrix",
           "update_error_terms", "predicted_update_error", "fit_bias_ratio"]


def node_variance_factor(cal: Calibration, cfg: dict[str, Any], shrink: float | None = None) -> float:
    """σ_k² = 1 / (S_k c_k²). ``shrink`` is c_k (e.g. simulated from the calibration by
    :func:`fedqnn.noise.simulated_shrink`); by default the product formula with observable
    weight m = 1.5 (the mean over ⟨Z⟩ and ⟨ZZ⟩ readouts)."""
    m = cfg["model"]
    c = shrink if shrink is not None else shrink_factor(cal, m["layers"], m["qubits"], weight=1.5)
    s = effective_shots(cal, cfg["qpu"]["analytic_shots"])
    if c <= 0 or not math.isfinite(c):
        return math.inf
    return 1.0 / (s * c * c)


def update_error_terms(shots: np.ndarray, shrink: np.ndarray, optimizer: str) -> tuple[np.ndarray, np.ndarray]:
    """(noise term, bias term) of a node's expected update error, per node (module docstring,
    "Re-derived"): SGD (debiased by 1/c) 1/(S c²) and ((1 - c)/c)²; Adam 1/(c √S) and (1 - c)².

    Raises ValueError naming ``optimizer`` if it is neither ``sgd`` nor ``adam``."""
    s = np.asarray(shots, dtype=np.float64)
    c = np.asarray(shrink, dtype=np.float64)
    if optimizer == "sgd":
        return 1.0 / (s * c * c), ((1.0 - c) / c) ** 2
    if optimizer == "adam":
        return 1.0 / (c * np.sqrt(s)), (1.0 - c) ** 2
    raise ValueError(f"train.optimizer: expected 'sgd' or 'adam', got {optimizer!r}")


def predicted_update_error(shots: np.ndarray, shrink: np.ndarray, optimizer: str, bias_ratio: float) -> np.ndarray:
    """E||D_k - D_ref||²_G / a = noise_k + λ bias_k (λ = ``bias_ratio`` = b / a, see
    :func:`update_error_terms`); λ = 0 ranks nodes exactly as σ_k² = 1/(S_k c_k²) does."""
    noise, bias = update_error_terms(shots, shrink, optimizer)
    return noise + float(bias_ratio) * bias


def fit_bias_ratio(errors: np.ndarray, shots: np.ndarray, shrink: np.ndarray, optimizer: str) -> float:
    """λ = b / a of e_k ≈ a noise_k + b bias_k, a, b >= 0, by non-negative least squares on the
    relative error Σ_k ((a noise_k + b bias_k - e_k) / e_k)² (each node counts alike whatever
    its scale). Returns 0 when no bias is resolvable and inf when no noise term is."""
    from scipy.optimize import nnls

    e = np.asarray(errors, dtype=np.float64)
    noise, bias = update_error_terms(shots, shrink, optimizer)
    (a, b), _ = nnls(np.stack([noise / e, bias / e], axis=1), np.ones_like(e))
    if b <= 1e-12 * a or b <= 0:  # nnls leaves round-off in an absent term
        return 0.0
    return float(b / a) if a > 0 else float("inf")


def model_kappa(cfg: dict[str, Any], trace_g: float, steps: int, batch: int) -> float:
    """κ = η² K tr(G) v / B with v = 1/2 (the SGD shot-noise bound)."""
    lr = cfg["train"]["lr"]
    return lr * lr * steps * trace_g * 0.5 / max(batch, 1)


def metric_matrix(fq: np.ndarray, quantum_slice: slice, dim: int) -> np.ndarray:
    """G = F_Q on the quantum block, identity elsewhere (dim x dim)."""
    g = np.eye(dim)
    g[quantum_slice, quantum_slice] = fq
    return g


def stamps_from_factors(factors: np.ndarray, kappa: float) -> np.ndarray:
    """φ_k = 4 / (σ_k² κ)."""
    return 4.0 / (np.asarray(factors, dtype=np.float64) * max(kappa, 1e-300))


