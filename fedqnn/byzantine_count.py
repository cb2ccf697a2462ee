"""The Byzantine count f that robust rules, the adversary and the attack matrix assume (a leaf
module: standard library only, so anything may import it)."""

from __future__ import annotations

import math

__all__ = ["byzantine_count"]


def byzantine_count(fraction: float, n: int) -> int:
    """f = ceil(fraction x n - 1e-9): the Byzantine nodes among n for a Byzantine ``fraction``.

    The 1e-9 absorbs binary round-off in the product: 0.55 x 100 is 55.00000000000001 in floating
    point, and a plain ceil would give 56 Byzantine nodes where the fraction means 55. A product
    that exceeds an integer by more than 1e-9 really is above it, so it still rounds up.
    """
    return int(math.ceil(fraction * n - 1e-9))
