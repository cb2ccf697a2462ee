"""Authenticated updates: node keys, signed envelopes, verification, validation, QKD.

Modules: :mod:`.crypto` (all cryptography), :mod:`.keys`, :mod:`.envelope`,
:mod:`.verifier`, :mod:`.validator`, :mod:`.qkd`, :mod:`.flower_glue`, :mod:`.cli`.
See ``docs/security.md``.
"""

from fedqnn.security.verifier import AUTH_REASONS, Claim, Verdict, Verifier

__all__ = ["AUTH_REASONS", "Claim", "Verdict", "Verifier"]
