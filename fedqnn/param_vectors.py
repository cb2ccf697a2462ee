"""Model state dicts as float64 vectors and back (the CEAS strategy and the adversary both work
on updates D = theta_k - theta_t as vectors)."""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["flatten_state", "unflatten_state"]


def flatten_state(sd: dict[str, torch.Tensor], keys: list[str]) -> np.ndarray:
    """The tensors ``sd[k]`` for k in ``keys``, flattened and concatenated, as float64."""
    return torch.cat([sd[k].flatten().to(torch.float64) for k in keys]).numpy()


def unflatten_state(vec: np.ndarray, like: dict[str, torch.Tensor], keys: list[str]) -> dict[str, torch.Tensor]:
    """Inverse of :func:`flatten_state`: slices of ``vec`` in the shapes and dtypes of ``like``."""
    out, i = {}, 0
    for k in keys:
        n = like[k].numel()
        out[k] = torch.tensor(vec[i : i + n], dtype=like[k].dtype).reshape(like[k].shape)
        i += n
    return out
