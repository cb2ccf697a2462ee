"""Flower-free entanglement broker: network model, physics, inventory, policies (issue 4).

``Broker.from_config(cfg, node_names, seed)`` is the entry point; see ``docs/broker.md``.
The names below are imported on first use, so the light ``fedqnn.network.config`` (the broker's
config section) loads without the simulator.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "BELL_KEYS",
    "BROKER_FIELDS",
    "Broker",
    "BrokerPolicy",
    "Service",
    "get_policy",
    "policy_names",
    "validate_broker_config",
]

_HOME = {
    "BELL_KEYS": "fedqnn.network.broker",
    "Broker": "fedqnn.network.broker",
    "Service": "fedqnn.network.broker",
    "BROKER_FIELDS": "fedqnn.network.config",
    "validate_broker_config": "fedqnn.network.config",
    "BrokerPolicy": "fedqnn.network.policies",
    "get_policy": "fedqnn.network.policies",
    "policy_names": "fedqnn.network.policies",
}


def __getattr__(name: str) -> Any:
    if name in _HOME:
        return getattr(importlib.import_module(_HOME[name]), name)
    raise AttributeError(f"module 'fedqnn.network' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
