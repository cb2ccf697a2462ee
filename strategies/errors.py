"""The one error robust rules raise when their precondition on (n, f) or their inputs fail (a
leaf module: the Flower strategies and the vector rules both raise it; the server records the
round as skipped with its message)."""

from __future__ import annotations

__all__ = ["PreconditionError"]


class PreconditionError(ValueError):
    """A robust rule's precondition does not hold (for example Krum's n >= 2f + 3)."""
