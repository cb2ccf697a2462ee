"""Deterministic random streams derived from (seed, purpose, round, partition-id).

Every random draw in a run comes from a stream named here, so one seed makes a run repeat
exactly, independent of process layout, reply arrival order or resumption.
"""

from __future__ import annotations

import hashlib

import numpy as np

__all__ = ["derive_seed", "rng", "torch_generator"]


def derive_seed(seed: int, *keys: object) -> int:
    """A 63-bit seed from the master seed and any labels (strings or ints), stable across runs."""
    h = hashlib.sha256(repr((int(seed),) + tuple(str(k) for k in keys)).encode()).digest()
    return int.from_bytes(h[:8], "little") & ((1 << 63) - 1)


def rng(seed: int, *keys: object) -> np.random.Generator:
    """A NumPy generator for the stream ``(seed, *keys)``."""
    return np.random.default_rng(derive_seed(seed, *keys))


def torch_generator(seed: int, *keys: object):  # -> torch.Generator
    """A torch CPU generator for the stream ``(seed, *keys)``."""
    import torch

    g = torch.Generator()
    g.manual_seed(derive_seed(seed, *keys))
    return g
