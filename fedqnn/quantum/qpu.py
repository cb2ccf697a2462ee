"""One noisy QPU execution of the fedqnn circuit: gate noise, readout, shots (issue 15).

:func:`qpu_expectations` is what ``QuantumLayer`` (``model.device=torch``) runs in training with a
calibration (p, r, S):

* gate noise D_p on every qubit after every layer, simulated exactly as a density matrix
  (:mod:`fedqnn.quantum.density`) up to ``EXACT_MAX_QUBITS``; without gate noise the state is
  pure and the statevector's |ψ|² is already exact;
* readout confusion on the outcome distribution and S bitstrings per sample, every observable
  from the same counts (:mod:`fedqnn.quantum.readout`); so each shot has its own errors and an
  S-shot estimate of a ±1 observable with channel mean μ has variance (1 - μ²)/S, the
  observables' covariances are the multinomial ones, as on hardware;
* the gradient is that of the exact noisy expectation (straight-through).

Above ``EXACT_MAX_QUBITS``: :func:`_trajectory_fallback` (documented there).
"""

from __future__ import annotations

import torch

from fedqnn.quantum.density import EXACT_MAX_QUBITS, density_probs, depolarizing_superop
from fedqnn.quantum.device_sim import DeviceNoise, device_probs
from fedqnn.quantum.readout import apply_confusion, measure, observable_signs
from fedqnn.quantum.statevector import circuit_state, expectations, observable_weights

__all__ = ["qpu_expectations", "FALLBACK_TRAJECTORIES"]

#: Pauli trajectories per sample in the wide-register fallback (see :func:`_trajectory_fallback`).
FALLBACK_TRAJECTORIES = 1


def qpu_expectations(
    angles: torch.Tensor, weights: torch.Tensor, *, p: float = 0.0, confusion: torch.Tensor | None = None,
    shots: int = 0, generator: torch.Generator | None = None, channel: torch.Tensor | None = None,
    trajectories: int = FALLBACK_TRAJECTORIES, exact_max_qubits: int | None = None,
) -> torch.Tensor:
    """(B, 2n - 1) readout expectations of one noisy execution per sample.

    ``p``: depolarising probability per qubit per layer; ``channel``: an extra single-qubit
    superoperator (4, 4) or (n, 4, 4) after D_p at the same places (e.g.
    :func:`fedqnn.quantum.density.relaxation_superop`), or a
    :class:`fedqnn.quantum.device_sim.DeviceNoise` (a real device's gate program, with p = 0);
    ``confusion`` (n, 2, 2) readout matrices
    (None = perfect); ``shots`` S (0 = the exact noisy expectation); ``generator`` draws the shots.
    Registers wider than ``exact_max_qubits`` (default :data:`EXACT_MAX_QUBITS`) use the
    trajectory fallback with ``trajectories`` per sample.
    """
    n = angles.shape[-1]
    if isinstance(channel, DeviceNoise):  # a real device's routed program (fedqnn.quantum.device_sim)
        if p > 0:
            raise ValueError("qpu: a device calibration carries its own gate errors (p must be 0)")
        probs = device_probs(angles, weights, channel)
    elif p <= 0 and channel is None:
        psi = circuit_state(angles, weights).reshape(angles.shape[0], -1)
        probs = (psi.real**2 + psi.imag**2).to(torch.float64)
    elif n <= (EXACT_MAX_QUBITS if exact_max_qubits is None else exact_max_qubits):
        sop = depolarizing_superop(p)
        if channel is not None:
            sop = channel.to(sop.dtype) @ sop
        probs = density_probs(angles, weights, sop)
    else:
        if channel is not None:
            raise ValueError("qpu: a general channel needs the exact simulator (raise exact_max_qubits)")
        return _trajectory_fallback(angles, weights, p, confusion, shots, generator, trajectories)
    if confusion is not None:
        probs = apply_confusion(probs, confusion)
    return measure(probs, shots, generator)


def _trajectory_fallback(
    angles: torch.Tensor, weights: torch.Tensor, p: float, confusion: torch.Tensor | None, shots: int,
    generator: torch.Generator | None, trajectories: int,
) -> torch.Tensor:
    """Wide registers: K = ``trajectories`` Pauli trajectories τ per sample (D_p unravelled: after
    every layer each qubit gets X, Y or Z w.p. p/3 each), shot j drawn from trajectory j mod K.

    Readout and the shared-bitstring estimate are exact; the gate noise is not per shot. With μ_τ
    the trajectory's expectation (E_τ μ_τ = μ, the channel mean) and K dividing S, the estimate's
    variance is (law of total variance)

        Var μ̂ = (1 - μ²)/S + (1/K - 1/S) Var_τ(μ_τ)

    i.e. the error of the model is the excess (1/K - 1/S) Var_τ(μ_τ) >= 0, zero only for K = S.
    K = 1 is the pre-issue-15 approximation (one error pattern shared by all shots). Analytic mode
    (S = 0) returns the mean of the K trajectories' expectations (unbiased, variance Var_τ/K).
    The gradient is that of the same K-trajectory mean.
    """
    b = angles.shape[0]
    k = max(1, min(int(trajectories), shots) if shots else int(trajectories))
    rep = angles.repeat(k, 1, 1)  # trajectory t of sample i is row t * b + i
    psi = circuit_state(rep, weights, depolarizing=p, generator=generator).reshape(k * b, -1)
    probs = (psi.real**2 + psi.imag**2).to(torch.float64)
    if confusion is not None:
        probs = apply_confusion(probs, confusion)
    signs = observable_signs(angles.shape[-1])
    e = (probs @ signs).view(k, b, -1).mean(0)
    if not shots:
        return e
    per = -(-shots // k)
    idx = torch.multinomial(probs.detach().clamp_min(0.0), per, replacement=True, generator=generator)
    idx = idx.view(k, b, per).permute(1, 2, 0).reshape(b, per * k)[:, :shots]  # shot j <- trajectory j mod K
    mu_hat = signs[idx].mean(1)
    return e + (mu_hat - e).detach()


def _legacy_shared_trajectory(
    angles: torch.Tensor, weights: torch.Tensor, p: float, r: float, shots: int,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """The pre-issue-15 estimator, kept as the negative control of ``tests/quantum`` and the
    "before" column of ``fedqnn bench ceas``: ONE Pauli trajectory per sample, the exact readout
    shrink (1 - 2r)^m, then every observable sampled as an independent binomial
    2 Binomial(S, (1 + μ_τ)/2)/S - 1 from that trajectory's μ_τ. Its variance is
    (1 - μ²)/S + (1 - 1/S) Var_τ(μ_τ) and its ⟨Z_0⟩, ⟨Z_0Z_1⟩ estimates are uncorrelated given τ:
    not a QPU."""
    from fedqnn.quantum.shots import sample_expectations

    e = expectations(circuit_state(angles, weights, depolarizing=p, generator=generator))
    if r > 0:
        e = e * (1.0 - 2.0 * r) ** observable_weights(angles.shape[-1])
    return sample_expectations(e, shots, generator) if shots else e
