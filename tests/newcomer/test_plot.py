"""metrics.png tells the run's story (issue 18.11): integer rounds, labelled axes, plain names,
every node per round with the rejected and Byzantine ones marked, the broker's served and
utilization, and "all rounds skipped" when so. Checked on the figure's artists, not pixels."""

from __future__ import annotations

import json

import matplotlib.pyplot as plt
import pytest

from fedqnn.plot import build_figure
from fedqnn.results import read_metrics
from fedqnn.server_app import run_server
from tests.faults.helpers import LocalGrid, config


@pytest.fixture
def run(tmp_path):
    out = tmp_path / "run"
    cfg = config(out, rounds=3, **{"faults.dropout": 0.3})
    run_server(LocalGrid(cfg["clients"]), cfg)
    return read_metrics(out), json.loads((out / "summary.json").read_text()), out


def _texts(fig) -> list[str]:
    return [t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text"))]


def test_the_run_figure(run) -> None:
    rows, summary, out = run
    assert (out / "metrics.png").stat().st_size > 20_000
    fig = build_figure(rows, summary["metric"], summary)
    metric, loss, nodes, broker = fig.axes
    texts = _texts(fig)
    assert not any("rel_l2" in t for t in texts)  # plain names only
    assert metric.get_ylabel() == "relative L2 error (lower is better)"
    assert {ln.get_label() for ln in metric.lines} == {"relative L2 error (training resolution)",
                                                        "relative L2 error (unseen resolution)",
                                                        "relative L2 error (training resolution) on a reference QPU"}
    assert {ln.get_label() for ln in loss.lines} == {"train loss (clients, weighted mean)", "test loss (server)"}
    for ax in fig.axes:
        assert ax.get_xlabel() == "round" and ax.get_ylabel()
        fig.canvas.draw()
        ticks = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
        assert ticks and all(t.lstrip("−-").isdigit() for t in ticks), ticks  # integer rounds
    byz = summary["byzantine_nodes"]
    red = [t.get_text() for t in nodes.get_yticklabels() if t.get_color() == "tab:red"]
    assert byz and red == [f"{n} (Byzantine)" for n in byz]
    legend = [t.get_text() for t in nodes.get_legend().get_texts()]
    rejected = {f"rejected: {x['reason']}" for r in rows for x in r["rejected"]}
    assert "accepted" in legend and rejected and rejected <= set(legend)
    assert ("no-reply" in legend) == any(e["event"] == "no-reply" for r in rows for e in r.get("events", []))
    assert {ln.get_label().split(" (")[0] for ln in broker.lines} == {"served", "utilization"}
    assert f"attack alie by {', '.join(byz)}" in fig._suptitle.get_text()
    assert not any("ROUNDS SKIPPED" in t for t in texts)  # control for the next test
    plt.close(fig)


def test_all_rounds_skipped_says_so(run) -> None:
    rows, summary, _ = run
    skipped = [{**r, "eval": None, "train_loss": None, "skipped": "precondition: krum needs n >= 2f + 3 (n=4, f=1)"}
               for r in rows]
    fig = build_figure(skipped, summary["metric"], summary)
    assert "ALL 3 ROUNDS SKIPPED\nprecondition: krum needs n >= 2f + 3 (n=4, f=1)" in _texts(fig)
    assert _texts(fig).count("skipped") == 3 * 4  # every round shaded in every panel
    plt.close(fig)
