"""The Byzantine section: ``byzantine_fraction``, ``attack`` and ``drain_pairs`` (light).

Also the attack names beyond the vector zoo (data, protocol and network attacks), which
:mod:`clients.byzantine` acts on. Imports :mod:`fedqnn.schema` and :mod:`fedqnn.registry` only.
"""

from __future__ import annotations

from typing import Any

from fedqnn.byzantine_count import byzantine_count
from fedqnn.registry import ATTACKS, is_dotted_path
from fedqnn.schema import ConfigError, Field, Section, field

__all__ = ["FIELDS", "SECTION", "check", "attack_names", "split_attack", "PROTOCOL_ATTACKS",
           "DATA_ATTACKS", "NETWORK_ATTACKS"]

PROTOCOL_ATTACKS = ("replay", "impersonation")
NETWORK_ATTACKS = ("bell-drain",)
DATA_ATTACKS = ("label-flip",)

FIELDS: dict[str, Field] = {
    "byzantine_fraction": field(0.2, float, "fraction of Byzantine clients, 0 = none (robust rules take "
                                "f = ceil(fraction x n))", low=0.0, high=0.5),
    "attack": field("alie", str, "what the Byzantine clients do (fedqnn run --set attack=NAME; 'none' = honest); "
                    "several joined by '+' (alie+bell-drain) give the Byzantine nodes one each, in turn"),
    "drain_pairs": field(40, int, "attack=bell-drain: extra end-to-end Bell pairs each Byzantine node asks the "
                         "broker for every round and never uses", low=1),
}


def attack_names() -> list[str]:
    """Every attack name: ``none``, the vector zoo (built-ins and ``fedqnn.attacks`` entry points),
    then the data, protocol and network attacks."""
    return ["none", *ATTACKS.names(), *DATA_ATTACKS, *PROTOCOL_ATTACKS, *NETWORK_ATTACKS]


def split_attack(attack: str) -> list[str]:
    """``"alie+bell-drain"`` -> ``["alie", "bell-drain"]`` (a mixture: one attack per node)."""
    return [a.strip() for a in str(attack).split("+")]


def check(cfg: dict[str, Any]) -> None:
    """Known attack names (normalises ``cfg["attack"]``), enough Byzantine nodes for a mixture,
    none in deployments, and a broker for ``bell-drain``."""
    parts = split_attack(cfg["attack"])
    names = attack_names()
    bad = [a for a in parts if a not in names and not is_dotted_path(a)]
    if bad or ("none" in parts and len(parts) > 1):
        raise ConfigError(f"attack: expected one of {', '.join(names)}, a dotted path module:function, or "
                          f"several joined by '+' (one per Byzantine node, in turn); got {cfg['attack']!r}")
    cfg["attack"] = "+".join(parts)  # normalised: no stray spaces
    n_byz = byzantine_count(cfg["byzantine_fraction"], cfg["clients"])
    if len(parts) > 1 and 0 < n_byz < len(parts):
        raise ConfigError(f"attack: the mixture {cfg['attack']!r} needs at least {len(parts)} Byzantine nodes, "
                          f"but byzantine_fraction x clients gives {n_byz}")
    if cfg["security"]["registry"] and cfg["byzantine_fraction"] > 0 and cfg["attack"] != "none":
        raise ConfigError(
            "byzantine_fraction: the simulated Byzantine clients re-sign with simulation keys; with "
            "security.registry (a deployment) set byzantine_fraction=0 or attack=none")
    if "bell-drain" in parts and cfg["byzantine_fraction"] > 0 and cfg["broker"]["policy"] == "off":
        raise ConfigError("attack: 'bell-drain' drains the entanglement broker's pairs; broker.policy must not "
                          "be 'off'")


SECTION = Section(FIELDS, check)
