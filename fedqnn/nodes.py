"""Node names (``node-<partition-id>``) and the order every output lists nodes in."""

from __future__ import annotations

__all__ = ["node_order"]


def node_order(name: str) -> tuple[int, str]:
    """Sort key: ``node-2`` before ``node-10`` (by the numeric tail); other names after, by name."""
    tail = name.rsplit("-", 1)[-1]
    return (int(tail), name) if tail.isdigit() else (1 << 30, name)
