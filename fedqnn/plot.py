"""``DIR/metrics.png``: the run's story in four panels (matplotlib, Agg; no Flower).

(a) the headline metric per round, skipped rounds shaded; (b) train and test loss; (c) every
node in every round: accepted, rejected (by reason) or absent (no reply, not served), the
Byzantine nodes labelled; (d) the entanglement broker's served fraction and utilization. A run
whose every round was skipped says so across the figure.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fedqnn.nodes import node_order

__all__ = ["plot_run", "build_figure", "PLAIN"]

PLAIN = {  # metric keys -> what a reader calls them
    "rel_l2": "relative L2 error (training resolution)",
    "rel_l2_hires": "relative L2 error (unseen resolution)",
    "accuracy": "test accuracy",
    "loss": "test loss (server)",
}
AXIS = {"rel_l2": "relative L2 error (lower is better)", "accuracy": "test accuracy (higher is better)"}
ABSENT = ("no-reply", "bell-unserved")  # events of a selected node that did not take part


def _rounds_axis(ax: Any, rounds: list[int]) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if rounds:
        ax.set_xlim(min(rounds) - 0.5, max(rounds) + 0.5)
    ax.set_xlabel("round")


def _shade_skipped(ax: Any, rows: list[dict[str, Any]]) -> None:
    for r in rows:
        if r.get("skipped"):
            ax.axvspan(r["round"] - 0.5, r["round"] + 0.5, color="0.85", zorder=0)
            ax.text(r["round"], 0.98, "skipped", transform=ax.get_xaxis_transform(), ha="center", va="top",
                    color="0.35", fontsize=7)


def _metric_panel(ax: Any, rows: list[dict[str, Any]], metric: str) -> None:
    done = [r for r in rows if r.get("eval")]
    names = [metric] + sorted({k for r in done for k in r["eval"] if k not in (metric, "loss")})
    for k in names:
        pts = [(r["round"], r["eval"][k]) for r in done if r["eval"].get(k) is not None]
        if pts:
            ax.plot(*zip(*pts), marker="o", label=PLAIN.get(k, k))
    noisy = [(r["round"], r["eval_noisy"][metric]) for r in rows  # the reference QPU (fedqnn/noisy_eval.py)
             if (r.get("eval_noisy") or {}).get(metric) is not None]
    if noisy:
        ax.plot(*zip(*noisy), marker="x", ls="--", label=f"{PLAIN.get(metric, metric)} on a reference QPU")
    _shade_skipped(ax, rows)
    ax.set_ylabel(AXIS.get(metric, metric))
    ax.set_title("global model on the server's test set")
    if any(ax.get_legend_handles_labels()):
        ax.legend(fontsize=8)


def _loss_panel(ax: Any, rows: list[dict[str, Any]]) -> None:
    series = {"train loss (clients, weighted mean)": [(r["round"], r.get("train_loss")) for r in rows],
              PLAIN["loss"]: [(r["round"], (r.get("eval") or {}).get("loss")) for r in rows]}
    for (label, pts), marker in zip(series.items(), "os"):
        pts = [(x, y) for x, y in pts if y is not None and y > 0]
        if pts:
            ax.plot(*zip(*pts), marker=marker, label=label)
    if ax.lines:
        ax.set_yscale("log")
        ax.legend(fontsize=8)
    _shade_skipped(ax, rows)
    ax.set_ylabel("loss (log scale)")
    ax.set_title("training")


def _node_states(row: dict[str, Any], nodes: list[str]) -> dict[str, str]:
    """node -> "accepted" / "rejected: <reason>" / "<event>" for one round (unknown nodes left out)."""
    states = {e["node"]: e["event"] for e in row.get("events") or [] if e.get("event") in ABSENT}
    states.update({x["node"]: f"rejected: {x['reason']}" for x in row.get("rejected") or []})
    accepted = set(row.get("weights") or {})
    if not accepted:  # no weights: accepted = the rest, if the counts agree
        rest = [n for n in nodes if n not in states]
        if len(rest) == row.get("num_participants", 0) - len(row.get("rejected") or []):
            accepted = set(rest)
    label = "replied (round skipped)" if row.get("skipped") else "accepted"
    states.update({n: label for n in accepted if n not in states})
    return states


def _style(state: str, palette: Any) -> dict[str, Any]:
    if state == "accepted":
        return dict(marker="o", color="tab:green")
    if state.startswith("replied"):
        return dict(marker="o", facecolors="none", edgecolors="tab:green")
    if state.startswith("rejected"):
        return dict(marker="x", color=next(palette, "black"))
    return dict(marker="v" if state == "no-reply" else "s", color="0.55" if state == "no-reply" else "tab:cyan")


def _nodes_panel(ax: Any, rows: list[dict[str, Any]], nodes: list[str], byzantine: list[str]) -> None:
    ys = {n: i for i, n in enumerate(nodes)}
    styles: dict[str, dict[str, Any]] = {}
    palette = iter(["tab:red", "tab:orange", "tab:purple", "tab:brown", "tab:pink", "tab:olive"])
    for r in rows:
        for node, state in _node_states(r, nodes).items():
            if node not in ys:
                continue
            if state not in styles:
                styles[state] = _style(state, palette)
            ax.scatter([r["round"]], [ys[node]], s=36, label=state, **styles[state])
    handles, labels = ax.get_legend_handles_labels()
    uniq = dict(zip(labels, handles))
    if uniq:
        ax.legend(uniq.values(), uniq.keys(), fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2),
                  ncol=min(3, len(uniq)), frameon=False)
    ax.set_yticks(range(len(nodes)))
    ax.set_yticklabels([f"{n} (Byzantine)" if n in byzantine else n for n in nodes], fontsize=7)
    for tick, n in zip(ax.get_yticklabels(), nodes):
        if n in byzantine:
            tick.set_color("tab:red")
    ax.set_ylim(-0.5, len(nodes) - 0.5 + 0.6)  # headroom for the "skipped" labels
    ax.set_ylabel("node")
    _shade_skipped(ax, rows)
    ax.set_title("nodes per round")


def _broker_panel(ax: Any, rows: list[dict[str, Any]]) -> None:
    for key, label, marker in (("served", "served (delivered / requested pairs)", "o"),
                               ("utilization", "utilization (used / spent raw pairs)", "s")):
        pts = [(r["round"], r["bell"][key]) for r in rows if (r.get("bell") or {}).get(key) is not None]
        if pts:
            ax.plot(*zip(*pts), marker=marker, label=label)
    ax.set_ylim(0, 1.15)  # headroom for the "skipped" labels
    _shade_skipped(ax, rows)
    ax.set_ylabel("fraction")
    ax.set_title("entanglement broker (Bell pairs)")
    if ax.lines:
        ax.legend(fontsize=8, loc="lower left")
    else:
        ax.text(0.5, 0.5, "broker off (broker.policy = off)", transform=ax.transAxes, ha="center", color="0.4")


def build_figure(rows: list[dict[str, Any]], metric: str, summary: dict[str, Any] | None = None) -> Any:
    """The figure of ``rows`` (``metrics.jsonl``); ``summary`` adds the node list, the Byzantine
    nodes and the attack. The caller saves and closes it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = summary or {}
    cfg = summary.get("config") or {}
    byzantine = list(summary.get("byzantine_nodes") or [])
    seen = {x["node"] for r in rows for key in ("rejected", "events") for x in r.get(key) or []}
    seen |= {n for r in rows for n in r.get("weights") or {}}
    nodes = sorted({f"node-{i}" for i in range(int(cfg.get("clients") or 0))} | seen | set(byzantine), key=node_order)
    rounds = [r["round"] for r in rows]
    fig, axes = plt.subplots(2, 2, figsize=(12, max(6.5, 4.0 + 0.18 * len(nodes))))
    _metric_panel(axes[0][0], rows, metric)
    _loss_panel(axes[0][1], rows)
    _nodes_panel(axes[1][0], rows, nodes, byzantine)
    _broker_panel(axes[1][1], rows)
    for ax in axes.flat:
        _rounds_axis(ax, rounds)
    strategy = cfg.get("strategy") or (rows[0]["strategy"] if rows else "")
    attack = summary.get("attack")
    who = f", attack {attack} by {', '.join(byzantine)}" if byzantine else ", no Byzantine nodes" if attack else ""
    fig.suptitle(f"fedqnn run: strategy {strategy}, {len(nodes)} nodes, {len(rows)} rounds{who}")
    fig.tight_layout()
    if rows and all(r.get("skipped") for r in rows):
        fig.text(0.5, 0.5, f"ALL {len(rows)} ROUNDS SKIPPED\n{rows[0]['skipped']}", ha="center", va="center",
                 fontsize=15, color="tab:red", wrap=True,
                 bbox=dict(facecolor="white", edgecolor="tab:red", alpha=0.9))
    return fig


def plot_run(rows: list[dict[str, Any]], path: Path, metric: str, summary: dict[str, Any] | None = None) -> None:
    """Draw :func:`build_figure` into ``path``."""
    import matplotlib.pyplot as plt

    fig = build_figure(rows, metric, summary)
    fig.savefig(path, dpi=110)
    plt.close(fig)
