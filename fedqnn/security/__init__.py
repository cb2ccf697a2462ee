"""Authenticated updates: node keys, signed envelopes, verification, validation, QKD.

Modules: :mod:`.crypto` (all cryptography), :mod:`.keys`, :mod:`.envelope`,
:mod:`.verifier`, :mod:`.validator`, :mod:`.qkd`, :mod:`.flower_glue`, :mod:`.cli`, and the
light :mod:`.config` (the ``auth``/``security``/``qkd`` config sections). See ``docs/security.md``.
The names below are imported on first use (so ``fedqnn.security.config`` loads alone).
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["AUTH_REASONS", "Claim", "Verdict", "Verifier"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("fedqnn.security.verifier"), name)
    raise AttributeError(f"module 'fedqnn.security' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
