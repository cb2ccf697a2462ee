"""Attacks that plug in by dotted path (``attack=tests.ceas.absurd_claims:useless``): each sends its
honest update but claims a calibration no QPU could have, the single-input failure issue 16
names ("one false claim stops training")."""

from __future__ import annotations

from typing import Any

import numpy as np


def _honest(own: np.ndarray, honest: np.ndarray | None, rng: Any, *, n: int | None = None, f: int = 1) -> np.ndarray:
    return own


def useless(own: np.ndarray, honest: np.ndarray | None, rng: Any, *, n: int | None = None, f: int = 1) -> np.ndarray:
    return _honest(own, honest, rng, n=n, f=f)


useless.claim = lambda cal: {**cal, "p": 0.75, "r": 0.5}  # type: ignore[attr-defined]  # c = 0: no information


def invalid(own: np.ndarray, honest: np.ndarray | None, rng: Any, *, n: int | None = None, f: int = 1) -> np.ndarray:
    return _honest(own, honest, rng, n=n, f=f)


invalid.claim = lambda cal: {**cal, "r": 7.0}  # type: ignore[attr-defined]  # out of range


def malformed(own: np.ndarray, honest: np.ndarray | None, rng: Any, *, n: int | None = None, f: int = 1) -> np.ndarray:
    return _honest(own, honest, rng, n=n, f=f)


malformed.claim = lambda cal: {**cal, "shots": "many"}  # type: ignore[attr-defined]  # not a number: sent as NaN
