"""The attack zoo: Byzantine attacks on update vectors, by name, plus the ``fedqnn.attacks``
entry-point group.

    >>> from clients.attacks import get_attack
    >>> spec = get_attack("alie")
    >>> bad = spec(own, honest, rng, n=20, f=4)          # doctest: +SKIP

Every attack has the signature ``fn(own, honest, rng, *, n, f, **params) -> (d,) array``
(:mod:`clients.attacks.zoo`). ``spec.omniscient`` says whether it needs the honest updates (the
server-side adversary hook supplies them); ``spec.claims`` whether it also lies in its reported
stamp/calibration (``stamp-inflation``). Data- and protocol-level attacks (``label-flip``,
``replay``, ``impersonation``, Bell-pair draining) are the integrator's; :func:`flip_labels` is
a helper for the first.

A plug-in registers ``name = "pkg.module:obj"`` in the ``fedqnn.attacks`` entry-point group,
``obj`` being an :class:`AttackSpec` or a function with the signature above (taken as
omniscient).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from clients.attacks.adaptive import boundary, fit_capture, fit_capture_claim, optimising
from clients.attacks.zoo import (
    AttackError,
    alie,
    alie_z,
    fang_krum,
    fang_median,
    flip_labels,
    gaussian,
    inflate_calibration,
    inflate_stamp,
    ipm,
    mimic,
    min_max,
    min_sum,
    perturbation,
    scaled,
    sign_flip,
    stamp_adaptive,
    stamp_inflation,
)
from fedqnn.registry import ATTACKS, is_dotted_path

__all__ = [
    "AttackSpec",
    "ATTACKS",
    "ENTRY_POINT_GROUP",
    "AttackError",
    "get_attack",
    "list_attacks",
    "alie",
    "alie_z",
    "boundary",
    "fit_capture",
    "fit_capture_claim",
    "optimising",
    "fang_krum",
    "fang_median",
    "flip_labels",
    "gaussian",
    "inflate_calibration",
    "inflate_stamp",
    "ipm",
    "mimic",
    "min_max",
    "min_sum",
    "perturbation",
    "scaled",
    "sign_flip",
    "stamp_adaptive",
    "stamp_inflation",
]

ENTRY_POINT_GROUP = ATTACKS.group  # "fedqnn.attacks"

AttackFn = Callable[..., np.ndarray]


@dataclass(frozen=True)
class AttackSpec:
    """A named attack: ``fn(own, honest, rng, *, n, f, **params)``; ``omniscient``: needs the
    honest updates; ``claims``: also inflates the reported stamp/calibration; ``cite``: source."""

    name: str
    fn: AttackFn
    omniscient: bool
    claims: bool = False
    cite: str = ""
    claim: Callable[[dict[str, Any]], dict[str, Any]] | None = None  # calibration -> what the node reports

    def __call__(self, own: np.ndarray, honest: np.ndarray | None, rng: np.random.Generator | None,
                 *, n: int | None = None, f: int = 1, **params: Any) -> np.ndarray:
        if self.omniscient and honest is None:
            raise AttackError(f"{self.name} is omniscient: pass the honest updates")
        return self.fn(own, honest, rng, n=n, f=f, **params)


# ATTACKS (fedqnn.registry) names the built-ins lazily as this module; here they are filled in.
for _spec in [
    AttackSpec("sign-flip", sign_flip, False, cite="minus the attacker's own honest update"),
    AttackSpec("gaussian", gaussian, False, cite="random N(mu, sigma^2 I) update"),
    AttackSpec("scaled", scaled, False, cite="Bagdasaryan et al., AISTATS 2020 (boosting)"),
    AttackSpec("alie", alie, True, cite="Baruch, Baruch, Goldberg, NeurIPS 2019"),
    AttackSpec("ipm", ipm, True, cite="Xie, Koyejo, Gupta, UAI 2020"),
    AttackSpec("mimic", mimic, True, cite="Karimireddy, He, Jaggi, ICLR 2022"),
    AttackSpec("min-max", min_max, True, cite="Shejwalkar & Houmansadr, NDSS 2021"),
    AttackSpec("min-sum", min_sum, True, cite="Shejwalkar & Houmansadr, NDSS 2021"),
    AttackSpec("fang-krum", fang_krum, True, cite="Fang, Cao, Jia, Gong, USENIX Security 2020"),
    AttackSpec("fang-median", fang_median, True, cite="Fang, Cao, Jia, Gong, USENIX Security 2020"),
    AttackSpec("stamp-adaptive", stamp_adaptive, True,
               cite="white box against CEAS's stamp-consistency filter (fedqnn, docs/attacks.md)"),
    AttackSpec("stamp-inflation", stamp_inflation, False, claims=True,
               cite="CEAS Definition 4: Byzantine nodes control their reported calibration"),
    AttackSpec("boundary", boundary, True,
               cite="white box: just inside CEAS's far bound, one common direction (fedqnn, issue 16)"),
    AttackSpec("fit-capture", fit_capture, True, claim=fit_capture_claim,
               cite="white box: claims and placement chosen to steer CEAS's scale fit (fedqnn, issue 16)"),
    AttackSpec("optimising", optimising, True,
               cite="min-max aimed at CEAS: simulates the server's round (Shejwalkar & Houmansadr 2021's idea)"),
]:
    ATTACKS.provide(_spec.name, _spec)


def _from_entry_point(name: str) -> AttackSpec | None:
    ep = ATTACKS.entry_points().get(name)
    if ep is None:
        return None
    obj = ep.load()
    if isinstance(obj, AttackSpec):
        return obj
    if callable(obj):
        return AttackSpec(name, obj, omniscient=True, cite=f"plug-in {ep.value}")
    raise AttackError(f"entry point {ENTRY_POINT_GROUP}:{name} is neither an AttackSpec nor callable")


def _from_dotted_path(path: str) -> AttackSpec:
    """``module:function``: an AttackSpec, or a callable ``(own, honest, rng, *, n, f) -> update``
    (``honest`` may be None) with an optional ``claim`` attribute, ``(calibration) -> calibration``
    (keys ``p``, ``r``, ``shots``), deciding what the node reports."""
    obj = ATTACKS.resolve(path)
    if isinstance(obj, AttackSpec):
        return obj
    if not callable(obj):
        raise AttackError(f"attack: {path!r} is neither an AttackSpec nor callable")
    return AttackSpec(path, obj, omniscient=False, cite=f"dotted path {path}", claim=getattr(obj, "claim", None))


def get_attack(name: str) -> AttackSpec:
    """The attack ``name`` from the built-in registry, else from the ``fedqnn.attacks`` entry
    points, else a dotted path ``module:function``."""
    if name in ATTACKS:
        return ATTACKS[name]
    if is_dotted_path(name) and name not in ATTACKS.entry_points():
        return _from_dotted_path(name)
    spec = _from_entry_point(name)
    if spec is None:
        known = ", ".join(list_attacks())
        raise KeyError(f"unknown attack {name!r}; known: {known}")
    return spec


def list_attacks() -> list[str]:
    """Built-in attack names plus the installed ``fedqnn.attacks`` entry points."""
    return ATTACKS.names()
