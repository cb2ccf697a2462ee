"""Node names (``node-<partition-id>``) and the order every output lists nodes in."""

from __future__ import annotations

__all__ = ["node_order", "participants_per_round"]


def node_order(name: str) -> tuple[int, str]:
    """Sort key: ``node-2`` before ``node-10`` (by the numeric tail); other names after, by name."""
    tail = name.rsplit("-", 1)[-1]
    return (int(tail), name) if tail.isdigit() else (1 << 30, name)


def participants_per_round(fraction_train: float, eligible: int) -> int:
    """K = round(fraction_train x eligible), at least 1 and at most ``eligible``: the nodes a round
    selects (the server's selection, the pre-run strategy check and the attack matrix use it)."""
    return min(max(1, int(round(fraction_train * eligible))), eligible)
