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


@pytest.fixture
def message_context():
    """Let tests build ``flwr`` Messages outside a running app (flwr 1.42 needs a task identity)."""
    try:
        from flwr.common import message as _m  # noqa: F401
    except ImportError:  # pragma: no cover
        yield
        return
    yield
