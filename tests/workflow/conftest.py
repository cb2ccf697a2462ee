"""``local_batch``: :func:`fedqnn.simulation.run_batch` swapped for the same round loop on the
in-process grid (tests/faults/helpers.LocalGrid), so sweeps run without the Simulation Engine;
each run's ``metrics.png`` is not drawn (2 s a run; :mod:`fedqnn.plot` is tested on its own)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import fedqnn.results
import fedqnn.simulation as simulation
from fedqnn.server_app import run_server
from tests.faults.helpers import LocalGrid


@pytest.fixture()
def local_batch(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The ``out`` of every config run, in order."""
    ran: list[str] = []

    def fake(cfgs: list[dict[str, Any]], on_done: Any = None) -> list[dict[str, Any]]:
        out = []
        for cfg in cfgs:
            ran.append(cfg["out"])
            run_server(LocalGrid(cfg["clients"]), cfg)
            summary = json.loads((Path(cfg["out"]) / "summary.json").read_text())
            on_done(cfg, summary)
            out.append(summary)
        return out

    monkeypatch.setattr(simulation, "run_batch", fake)
    monkeypatch.setattr(fedqnn.results, "plot_metrics", lambda *a, **k: None)
    return ran
