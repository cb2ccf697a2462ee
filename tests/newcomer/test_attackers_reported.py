"""Who the attackers are: ``byzantine_nodes`` and ``attack`` in summary.json and on the console at
the start (issue 18.9); progress lines show the rejected nodes and events (issue 18.12)."""

from __future__ import annotations

import json

from clients.byzantine import Adversary, byzantine_nodes
from clients.byzantine_plugin import AdversaryPlugin
from fedqnn.config import build_config
from fedqnn.progress import round_line
from fedqnn.server_app import run_server
from tests.faults.helpers import LocalGrid, config


def _run(tmp_path, capsys, **overrides):
    cfg = config(tmp_path / "run", rounds=1, progress=True, **overrides)
    summary = run_server(LocalGrid(cfg["clients"]), cfg)
    return cfg, summary, capsys.readouterr().out.splitlines()


def test_summary_and_console_name_the_attackers(tmp_path, capsys) -> None:
    cfg, summary, lines = _run(tmp_path, capsys)
    expected = byzantine_nodes(cfg, [f"node-{i}" for i in range(cfg["clients"])])
    assert expected and summary["byzantine_nodes"] == expected and summary["attack"] == "alie"
    on_disk = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert on_disk["byzantine_nodes"] == expected and on_disk["attack"] == "alie"
    start = [ln for ln in lines if ln.startswith("[fedqnn] Byzantine nodes")]
    assert start == [f"[fedqnn] Byzantine nodes running alie: {', '.join(expected)} "
                     "(byzantine_fraction=0.2; simulated colluding insiders)"]
    assert lines.index(start[0]) < next(i for i, ln in enumerate(lines) if ln.startswith("[fedqnn] round 1/1"))
    assert lines[0].startswith("[fedqnn] run: strategy ceas, 5 nodes, 1 rounds")


def test_no_attack_reports_none(tmp_path, capsys) -> None:  # control: nothing invented
    _, summary, lines = _run(tmp_path, capsys, attack="none")
    assert summary["byzantine_nodes"] == [] and summary["attack"] == "none"
    assert "[fedqnn] no Byzantine nodes (attack=none)" in lines


def test_a_mixture_names_each_nodes_attack() -> None:
    cfg = build_config({"clients": 10, "attack": "alie+sign-flip"})
    plugin = AdversaryPlugin()
    plugin.adversary = Adversary(cfg, [f"node-{i}" for i in range(10)])
    (a, b) = plugin.adversary.nodes
    assert plugin.describe().startswith(f"Byzantine nodes: {a} (alie), {b} (sign-flip)")


def test_progress_line_shows_rejections_events_and_skips() -> None:
    row = {"round": 2, "eval": {"rel_l2": 0.123456}, "num_participants": 4, "wall_s": 1.26,
           "rejected": [{"node": "node-6", "reason": "outlier:stamp"}, {"node": "node-9", "reason": "outlier:stamp"},
                        {"node": "node-2", "reason": "bad-signature"}],
           "events": [{"node": "node-3", "event": "no-reply"}], "bell": {"served": 0.95}}
    assert round_line(row, 5, "rel_l2") == (
        "[fedqnn] round 2/5  rel_l2=0.1235  participants=4  rejected 3: node-6, node-9 (outlier:stamp); "
        "node-2 (bad-signature)  events: node-3 (no-reply)  Bell pairs served=0.95  1.3s")
    skipped = {"round": 1, "eval": None, "num_participants": 0, "wall_s": 0.0, "rejected": [],
               "skipped": "0 valid replies < min_replies=2"}
    assert round_line(skipped, 5, "rel_l2") == \
        "[fedqnn] round 1/5  participants=0  0.0s  SKIPPED: 0 valid replies < min_replies=2"


def test_results_files_are_as_readable_as_the_plot(tmp_path, capsys) -> None:
    import os
    import stat

    _run(tmp_path, capsys)
    out = tmp_path / "run"
    mode = {p: stat.S_IMODE(os.stat(out / p).st_mode) for p in
            ("metrics.jsonl", "summary.json", "metrics.png", "checkpoint/state.zip")}
    umask = os.umask(0)
    os.umask(umask)
    assert set(mode.values()) == {0o666 & ~umask}, {k: oct(v) for k, v in mode.items()}
    assert mode["summary.json"] & stat.S_IROTH  # 0644 under the usual umask 022, not mkstemp's 0600
