"""Fixed demand in federated runs (issue 17): a 50-QPU run with fraction_train 0.5 selects
exactly K = 25 nodes every round, whatever their links' state; each either takes part or is
counted with an event (``bell-unserved``, ``no-reply``).

The control: a plugin that puts back the old eligibility filter (select among the nodes whose
links can serve) selects fewer than 25 in a round with outages, and the test's count fails.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fedqnn.plugins import RoundPlugin
from fedqnn.server_app import run_server
from tests.faults.helpers import LocalGrid, config, rows

SETTINGS: dict[str, Any] = {
    "clients": 50, "rounds": 2, "fraction_train": 0.5, "broker.outage_prob": 0.3, "attack": "none",
    "byzantine_fraction": 0.0, "data.samples_per_client": 8, "data.test_samples": 10, "strategy": "fedavg",
}


class OldEligibility(RoundPlugin):
    """The negative control: selection among the nodes the broker calls servable (before)."""

    name = "old-eligibility"

    def setup(self, run: Any) -> None:
        self.broker = run.services["broker"]

    def filter_eligible(self, state: Any, nodes: list[str]) -> list[str]:
        ok = set(self.broker.eligible(state.round))
        return [n for n in nodes if n in ok]


def _selected_per_round(out: Path) -> list[int]:
    counted = []
    for r in rows(out):
        away = {e["node"] for e in r.get("events", []) if e["event"] in ("bell-unserved", "no-reply")}
        took_part = set(r.get("weights") or {}) | {x["node"] for x in r["rejected"]}
        assert not away & took_part
        counted.append(r["num_participants"] + len(away))
    return counted


def test_a_50_qpu_run_selects_exactly_25_nodes_every_round(tmp_path: Path) -> None:
    cfg = config(tmp_path / "run", **SETTINGS)
    run_server(LocalGrid(50), cfg)
    assert _selected_per_round(tmp_path / "run") == [25, 25]
    assert any(e["event"] == "bell-unserved" for r in rows(tmp_path / "run") for e in r.get("events", [])), \
        "outages left some selected node unserved (the case the count must include)"


def test_control_the_old_eligibility_filter_selects_fewer(tmp_path: Path, monkeypatch: Any) -> None:
    import fedqnn.plugins as plugins

    monkeypatch.setattr(plugins, "BUILTINS", (*plugins.BUILTINS, f"{__name__}:OldEligibility"))
    cfg = config(tmp_path / "old", **SETTINGS)
    run_server(LocalGrid(50), cfg)
    assert min(_selected_per_round(tmp_path / "old")) < 25
