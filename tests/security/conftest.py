"""Fixtures for the security tests: a Flower task identity, a key registry, a verifier."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
os.environ.setdefault("FLWR_DISABLE_UPDATE_CHECK", "1")

from fedqnn.security.keys import KeyRegistry  # noqa: E402
from fedqnn.security.verifier import Verifier  # noqa: E402
from tests.security.helpers import NODES, RUN_ID, SEED  # noqa: E402


@pytest.fixture
def task_identity():
    """Let tests build Flower ``Message`` instructions outside a running app: flwr >= 1.41
    reads ``TaskIdentity`` (run_id, node_id, task_id) when creating one."""
    try:
        from flwr.supercore.task_identity import TaskIdentity
    except ImportError:  # older Flower: nothing to set
        yield None
        return
    saved = {a: getattr(TaskIdentity, f"_{a}", None) for a in ("run_id", "node_id", "task_id")}
    TaskIdentity.run_id = 42
    TaskIdentity.node_id = 1
    TaskIdentity.task_id = 1
    try:
        yield TaskIdentity
    finally:
        for a, v in saved.items():
            setattr(TaskIdentity, f"_{a}", v)


@pytest.fixture
def registry() -> KeyRegistry:
    return KeyRegistry.for_simulation(SEED, NODES)


@pytest.fixture
def verifier(registry: KeyRegistry) -> Verifier:
    return Verifier(registry, RUN_ID, seed=SEED)
