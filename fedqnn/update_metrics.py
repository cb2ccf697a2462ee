"""The metrics G in which CEAS counts an update's error (``ceas.metric``), server side, Flower-free.

* ``qfi`` (default): G = F_Q(θ_t) ⊕ I, the quantum Fisher information of the circuit's weights
  (:func:`fedqnn.qfi.quantum_fisher`) on the quantum block and the identity on the classical
  parameters;
* ``identity``: G = I (Euclidean);
* ``gauss-newton``: the model's output-Jacobian metric on the public probe batch,

      G_GN = J^T J / N + ε I,   J = ∂f(θ_t; x_b)/∂θ stacked over the N outputs of the probe batch

  (all parameters, classical and quantum; f the model's noiseless outputs: an operator's values at
  the query grid, a classifier's logits). To second order ||f(θ + δ) - f(θ)||² / N = δᵀ G_GN δ,
  so it is the metric of the error in model-output space (the Gauss-Newton approximation of the
  loss Hessian, Martens 2020 "New insights and perspectives on the natural gradient method").
  Its quantum block is J_qᵀ W J_q with J_q = ∂⟨O⟩/∂θ_q the expectations' Jacobian: the expectations
  are a measurement of the state, so their (classical) Fisher information is bounded by the QFI
  (Braunstein & Caves 1994), which is what the QFI "bounds". ε = ``RIDGE`` x tr(J^T J / N) / P
  keeps G positive definite: J^T J has rank <= min(N, P), and an update moving only along its
  null space would otherwise cost nothing to an outlier test.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, jacfwd

__all__ = ["METRICS", "RIDGE", "gauss_newton_metric", "probe_queries"]

METRICS = ("qfi", "identity", "gauss-newton")
RIDGE = 1e-3


def probe_queries(task: Any, cfg: dict[str, Any]) -> torch.Tensor | None:
    """The query grid an operator task's outputs are read at (``data.queries`` points of [0, 1]),
    None for a classifier."""
    if getattr(task, "kind", "") != "operator":
        return None
    return torch.linspace(0.0, 1.0, cfg["data"]["queries"], dtype=torch.float64)


def gauss_newton_metric(
    model: nn.Module, keys: list[str], inputs: torch.Tensor, queries: torch.Tensor | None = None,
    ridge: float = RIDGE,
) -> np.ndarray:
    """G_GN (P, P) over the state-dict entries ``keys`` (flattened in that order, as
    :func:`fedqnn.param_vectors.flatten_state`), at the model's current state, noiseless (eval mode)."""
    state = model.state_dict()
    shapes = [state[k].shape for k in keys]
    sizes = [state[k].numel() for k in keys]
    theta = torch.cat([state[k].detach().flatten().to(torch.float64) for k in keys])
    was_training = model.training
    model.eval()

    def outputs(flat: torch.Tensor) -> torch.Tensor:
        params = {k: v.reshape(s) for k, v, s in zip(keys, torch.split(flat, sizes), shapes)}
        args = (inputs,) if queries is None else (inputs, queries)
        return functional_call(model, params, args).reshape(-1)

    try:
        with warnings.catch_warnings():  # as in fedqnn.qfi: torch's own deprecation of jit.script
            warnings.filterwarnings("ignore", message="`torch.jit.script` is deprecated", category=DeprecationWarning)
            jac = jacfwd(outputs)(theta)  # (N, P)
    finally:
        model.train(was_training)
    g = (jac.T @ jac / jac.shape[0]).detach().numpy()
    eps = ridge * float(np.trace(g)) / g.shape[0]
    return g + eps * np.eye(g.shape[0])
