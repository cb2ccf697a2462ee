"""Flower-free entanglement broker: network model, physics, inventory, policies (issue 4).

``Broker.from_config(cfg, node_names, seed)`` is the entry point; see ``docs/broker.md``.
"""

from __future__ import annotations

from fedqnn.network.broker import BELL_KEYS, Broker, Service
from fedqnn.network.config import BROKER_FIELDS, validate_broker_config
from fedqnn.network.policies import BrokerPolicy, get_policy, policy_names

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
