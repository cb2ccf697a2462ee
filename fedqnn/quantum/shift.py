"""Parameter-shift gradients measured with shots, beside the straight-through estimator.

``QuantumLayer`` with ``diff_method="parameter-shift"`` on ``model.device=torch``, in noisy
training with S > 0 shots, returns the same forward value as the straight-through path (an
S-shot estimate of the exact noisy channel) but differentiates it the way hardware must: every
gate parameter θ (the Rot angles φ, θ, ω and the encoding angles a, each a rotation
exp(-iθσ/2)) is shifted by ±π/2 and the two shifted circuits are measured with S fresh shots each:

    ∂μ/∂θ = [μ(θ + π/2) - μ(θ - π/2)] / 2            (Mitarai et al. 2018; Schuld et al. 2019)

exact for the noisy expectation too, since the channels do not depend on θ (μ is a + b cos θ +
c sin θ in each θ). With shots, each partial derivative of a ±1 observable has variance

    [(1 - μ₊²) + (1 - μ₋²)] / (4S)

whereas the straight-through gradient is the exact ∂μ (no shot noise: optimistic for a QPU).
Cost: 2 (3Ln + Ln) shifted batches per backward pass (weights and per-sample encoding angles),
run as a few large batched density-matrix evaluations. ``docs/spine.md`` has measured cost and
variance of both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from fedqnn.quantum.density import density_probs, depolarizing_superop
from fedqnn.quantum.device_sim import DeviceNoise, device_probs
from fedqnn.quantum.readout import apply_confusion, measure

__all__ = ["parameter_shift_expectations", "SHIFT"]

SHIFT = math.pi / 2
_CHUNK_ELEMENTS = 1 << 24  # rows x 4^n per density evaluation (128 MiB of float64)


@dataclass(frozen=True)
class _Measure:
    p: float
    confusion: torch.Tensor | None
    shots: int
    generator: torch.Generator | None
    channel: torch.Tensor | None


def _estimate(angles: torch.Tensor, weights: torch.Tensor, m: _Measure) -> torch.Tensor:
    """S-shot estimates (R, 2n - 1) for rows of angles (R, L, n); weights (L, n, 3) or (R, L, n, 3)."""
    n = angles.shape[-1]
    device = m.channel if isinstance(m.channel, DeviceNoise) else None
    sop = depolarizing_superop(m.p)
    if m.channel is not None and device is None:
        sop = m.channel.to(sop.dtype) @ sop
    rows = max(1, _CHUNK_ELEMENTS // 4**n)
    out = []
    with torch.no_grad():
        for s in range(0, angles.shape[0], rows):
            w = weights if weights.dim() == 3 else weights[s : s + rows]
            probs = (device_probs(angles[s : s + rows], w, device) if device is not None
                     else density_probs(angles[s : s + rows], w, sop))
            if m.confusion is not None:
                probs = apply_confusion(probs, m.confusion)
            out.append(measure(probs, m.shots, m.generator))
    return torch.cat(out)


def _weight_derivatives(angles: torch.Tensor, weights: torch.Tensor, m: _Measure) -> torch.Tensor:
    """Shot estimates of ∂μ/∂w for every weight: (L, n, 3, B, 2n - 1)."""
    b = angles.shape[0]
    k = weights.numel()
    shifted = weights.expand(2, k, b, *weights.shape).clone()  # (±, parameter, sample, L, n, 3)
    flat = shifted.view(2, k, b, k)
    idx = torch.arange(k)
    flat[0, idx, :, idx] += SHIFT
    flat[1, idx, :, idx] -= SHIFT
    e = _estimate(angles.repeat(2 * k, 1, 1), shifted.reshape(2 * k * b, *weights.shape), m)
    e = e.view(2, k, b, -1)
    return ((e[0] - e[1]) / 2).view(*weights.shape, b, -1)


def _angle_derivatives(angles: torch.Tensor, weights: torch.Tensor, m: _Measure) -> torch.Tensor:
    """Shot estimates of ∂μ_b/∂a_{b,l,i} (each sample's own angles): (L, n, B, 2n - 1)."""
    b, layers, n = angles.shape
    k = layers * n
    shifted = angles.expand(2, k, b, layers, n).clone()
    flat = shifted.view(2, k, b, k)
    idx = torch.arange(k)
    flat[0, idx, :, idx] += SHIFT
    flat[1, idx, :, idx] -= SHIFT
    e = _estimate(shifted.reshape(2 * k * b, layers, n), weights, m).view(2, k, b, -1)
    return ((e[0] - e[1]) / 2).view(layers, n, b, -1)


class _ParameterShift(torch.autograd.Function):
    @staticmethod
    def forward(ctx, angles, weights, m):  # type: ignore[override]
        ctx.m = m
        ctx.save_for_backward(angles, weights)
        return _estimate(angles.detach().to(torch.float64), weights.detach().to(torch.float64), m)

    @staticmethod
    def backward(ctx, g):  # type: ignore[override]
        angles, weights = (t.detach().to(torch.float64) for t in ctx.saved_tensors)
        ga = gw = None
        if ctx.needs_input_grad[1]:
            gw = torch.einsum("lnkbo,bo->lnk", _weight_derivatives(angles, weights, ctx.m), g)
        if ctx.needs_input_grad[0]:
            ga = torch.einsum("lnbo,bo->bln", _angle_derivatives(angles, weights, ctx.m), g)
        return ga, gw, None


def parameter_shift_expectations(
    angles: torch.Tensor, weights: torch.Tensor, *, p: float = 0.0, confusion: torch.Tensor | None = None,
    shots: int = 0, generator: torch.Generator | None = None, channel: torch.Tensor | None = None,
) -> torch.Tensor:
    """(B, 2n - 1) S-shot estimates of the noisy circuit (as ``qpu_expectations``) whose backward
    pass is the shot-measured parameter-shift rule of the module docstring."""
    m = _Measure(float(p), confusion, int(shots), generator, channel)
    return _ParameterShift.apply(angles, weights, m)
