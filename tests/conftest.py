"""Shared fixtures: Flower offline, a private FLWR_HOME, one torch thread."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")
os.environ.setdefault("FLWR_DISABLE_UPDATE_CHECK", "1")
os.environ.setdefault("FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION", "1")


@pytest.fixture(autouse=True, scope="session")
def _flwr_home(tmp_path_factory: pytest.TempPathFactory) -> None:
    home = tmp_path_factory.mktemp("flwr_home")
    os.environ["FLWR_HOME"] = str(home)
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover
        pass


@pytest.fixture(autouse=True)
def task_identity():
    """Give the test process the task identity Flower's runtime would set.

    Since flwr 1.38 a ``Message`` built outside a running app stamps run_id / node_id from the
    process-wide ``TaskIdentity``; on 1.42 a bare test process raises
    ``TaskIdentity.run_id is not set`` without this.
    """
    try:
        from flwr.supercore.task_identity import TaskIdentity
    except ImportError:  # pragma: no cover - older/newer Flower without it
        yield
        return
    saved = (TaskIdentity._task_id, TaskIdentity._run_id, TaskIdentity._node_id)
    TaskIdentity.task_id = 1
    TaskIdentity.run_id = 1
    TaskIdentity.node_id = 0
    yield
    TaskIdentity._task_id, TaskIdentity._run_id, TaskIdentity._node_id = saved
