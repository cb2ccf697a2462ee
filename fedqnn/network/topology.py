"""Network graphs of client QPUs (``node-<i>``) and the server, with link and memory parameters.

Topologies (``broker.topology``):

* ``ring``: the server and the clients on a ring, plus ``chords * n`` random chords (the
  QNet-NO ring-with-chords layout; a small world, so paths are short);
* ``grid``: a square grid, the server in the middle;
* ``star``: every client linked directly to the server;
* ``geometric``: random geometric graph in the unit square (``radius``, or the smallest
  radius that connects it);
* ``file``: a GraphML file (``.graphml``/``.xml``) or a whitespace edge list
  ``u v [key=value ...]`` (one edge per line, ``#`` comments). Optional edge attributes
  ``F0`` (fresh fidelity), ``B0`` (|Phi-> weight), ``p`` (success per attempt), ``tau``
  (attempt period, s), ``capacity`` (slots per channel); optional node attribute ``T``
  (memory coherence time, s; relative if ``broker.target_R`` calibrates it). Missing
  attributes take the config's values; nodes must be named ``node-<i>`` and the server.

Every edge carries ``F0, B0, p, tau, capacity`` and every node ``T``; heterogeneity
(``broker.heterogeneity = h``) draws p and T from log-normal factors of mean 1 and spread h,
and F0 uniformly in F0 +- 0.05 h (clipped to [0.26, 0.999]).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np

from fedqnn.schema import ConfigError

__all__ = ["Network", "build_network"]

_EDGE_ATTRS = ("F0", "B0", "p", "tau", "capacity")


@dataclass
class Network:
    """A graph with parameters and one path (list of node names) per client to the server."""

    graph: nx.Graph
    server: str
    clients: list[str]
    paths: dict[str, list[str]]


def _ring(names: list[str], server: str, chords: float, rng: np.random.Generator) -> nx.Graph:
    order = [server, *names]
    g = nx.cycle_graph(len(order)) if len(order) > 2 else nx.path_graph(len(order))
    g = nx.relabel_nodes(g, dict(enumerate(order)))
    n_chords = int(round(chords * len(names)))
    tries = 0
    while n_chords > 0 and tries < 50 * (n_chords + 1):
        tries += 1
        a, b = rng.choice(len(order), size=2, replace=False)
        u, v = order[int(a)], order[int(b)]
        if not g.has_edge(u, v):
            g.add_edge(u, v)
            n_chords -= 1
    return g


def _grid(names: list[str], server: str) -> nx.Graph:
    total = len(names) + 1
    side = math.ceil(math.sqrt(total))
    cells = sorted(
        ((i, j) for i in range(side) for j in range(side)),
        key=lambda c: ((c[0] - (side - 1) / 2) ** 2 + (c[1] - (side - 1) / 2) ** 2, c),
    )[:total]
    label = {cells[0]: server, **{c: n for c, n in zip(cells[1:], names)}}
    g = nx.Graph()
    g.add_nodes_from(label.values())
    for (i, j), u in label.items():
        for nb in ((i + 1, j), (i, j + 1)):
            if nb in label:
                g.add_edge(u, label[nb])
    if not nx.is_connected(g):  # a ragged last row can cut a corner off: bridge it
        comps = list(nx.connected_components(g))
        for comp in comps[1:]:
            g.add_edge(next(iter(comp)), server)
    return g


def _star(names: list[str], server: str) -> nx.Graph:
    g = nx.Graph()
    g.add_node(server)
    g.add_edges_from((server, n) for n in names)
    return g


def _geometric(
    names: list[str], server: str, radius: float | None, rng: np.random.Generator
) -> nx.Graph:
    order = [server, *names]
    pos = rng.random((len(order), 2))
    pos[0] = 0.5  # server in the middle
    d = np.sqrt(((pos[:, None, :] - pos[None, :, :]) ** 2).sum(-1))

    def graph(r: float) -> nx.Graph:
        g = nx.Graph()
        g.add_nodes_from(order)
        iu, ju = np.nonzero(np.triu(d <= r, 1))
        g.add_edges_from((order[i], order[j]) for i, j in zip(iu, ju))
        return g

    if radius is not None:
        g = graph(radius)
        if not nx.is_connected(g):
            raise ConfigError(f"broker.radius: {radius} leaves the geometric graph disconnected")
        return g
    cands = np.unique(d[np.triu_indices(len(order), 1)])
    lo, hi = 0, len(cands) - 1
    while lo < hi:  # smallest radius that connects the graph
        mid = (lo + hi) // 2
        if nx.is_connected(graph(float(cands[mid]))):
            hi = mid
        else:
            lo = mid + 1
    return graph(float(cands[lo]))


def _parse_value(text: str) -> Any:
    try:
        return float(text)
    except ValueError:
        return text


def _from_file(path: str, names: list[str], server: str) -> nx.Graph:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"broker.topology_file: no such file {path!r}")
    if p.suffix.lower() in (".graphml", ".xml"):
        try:
            g = nx.Graph(nx.read_graphml(p))
        except Exception as exc:  # noqa: BLE001 - networkx raises several kinds
            raise ConfigError(f"broker.topology_file: not readable GraphML ({exc})") from exc
    else:
        g = nx.Graph()
        for lineno, raw in enumerate(p.read_text().splitlines(), 1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            parts = line.split()
            if len(parts) < 2:
                raise ConfigError(f"broker.topology_file: line {lineno}: expected 'u v [key=value ...]'")
            attrs: dict[str, Any] = {}
            for item in parts[2:]:
                if "=" not in item:
                    raise ConfigError(f"broker.topology_file: line {lineno}: {item!r} is not key=value")
                k, v = item.split("=", 1)
                attrs[k] = _parse_value(v)
            g.add_edge(parts[0], parts[1], **attrs)
    missing = [n for n in [server, *names] if n not in g]
    if missing:
        raise ConfigError(
            f"broker.topology_file: nodes missing from {path!r}: {', '.join(missing[:5])}"
            + (" ..." if len(missing) > 5 else "")
        )
    for u, v, data in g.edges(data=True):
        for k in _EDGE_ATTRS:
            if k in data:
                try:
                    data[k] = float(data[k])
                except (TypeError, ValueError) as exc:
                    raise ConfigError(f"broker.topology_file: edge {u}-{v}: {k} is not a number") from exc
    for n, data in g.nodes(data=True):
        if "T" in data:
            try:
                data["T"] = float(data["T"])
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"broker.topology_file: node {n}: T is not a number") from exc
    return g


def _lognormal(rng: np.random.Generator, sigma: float, size: int) -> np.ndarray:
    if sigma == 0.0:
        return np.ones(size)
    return np.exp(sigma * rng.standard_normal(size) - sigma**2 / 2.0)


def build_network(cfg: dict[str, Any], node_names: list[str], rng: np.random.Generator) -> Network:
    """Graph, parameters and client paths for a validated broker config.

    Node attribute ``T`` holds the memory time constant in units of ``broker.memory_T``
    (i.e. a relative factor) unless the file gave absolute values; the broker scales it.
    """
    server = cfg["server"]
    if len(set(node_names)) != len(node_names):
        raise ConfigError("broker: node names must be unique")
    if server in node_names:
        raise ConfigError(f"broker.server: {server!r} is also a client name")
    kind = cfg["topology"]
    if kind == "ring":
        g = _ring(node_names, server, cfg["chords"], rng)
    elif kind == "grid":
        g = _grid(node_names, server)
    elif kind == "star":
        g = _star(node_names, server)
    elif kind == "geometric":
        g = _geometric(node_names, server, cfg["radius"], rng)
    else:
        g = _from_file(cfg["topology_file"], node_names, server)
    h = cfg["heterogeneity"]
    edges = sorted(tuple(sorted(e)) for e in g.edges())
    p_f = _lognormal(rng, h, len(edges))
    f_jit = rng.uniform(-0.05 * h, 0.05 * h, len(edges))
    for (u, v), pf, fj in zip(edges, p_f, f_jit):
        d = g.edges[u, v]
        d.setdefault("p", min(1.0, cfg["p"] * pf))
        d.setdefault("F0", float(np.clip(cfg["F0"] + fj, 0.26, 0.999)))
        d.setdefault("tau", cfg["tau"])
        d.setdefault("capacity", cfg["capacity"])
        if "B0" not in d:
            d["B0"] = (1.0 - d["F0"]) / 3.0 if cfg["B0"] is None else min(cfg["B0"], 1.0 - d["F0"])
        if not (0.25 < d["F0"] <= 1.0 and 0.0 < d["p"] <= 1.0 and d["tau"] > 0 and d["capacity"] >= 1):
            raise ConfigError(f"broker.topology_file: edge {u}-{v} has out-of-range parameters {d}")
    nodes = sorted(g.nodes())
    t_f = _lognormal(rng, h, len(nodes))
    for n, tf in zip(nodes, t_f):
        g.nodes[n].setdefault("T", float(tf))
        if not g.nodes[n]["T"] > 0:
            raise ConfigError(f"broker.topology_file: node {n} has T <= 0")
    paths = _routes(g, server, node_names, cfg["routing"])
    return Network(graph=g, server=server, clients=list(node_names), paths=paths)


def _routes(g: nx.Graph, server: str, names: list[str], routing: str) -> dict[str, list[str]]:
    if routing == "fidelity":
        for _, _, d in g.edges(data=True):  # swaps multiply Werner parameters: add -ln w0
            d["_cost"] = -math.log(max((4.0 * d["F0"] - 1.0) / 3.0, 1e-12)) + 1e-9
        tree = nx.single_source_dijkstra_path(g, server, weight="_cost")
    else:
        tree = nx.single_source_shortest_path(g, server)
    out: dict[str, list[str]] = {}
    for n in names:
        if n not in tree:
            raise ConfigError(f"broker.topology: client {n} has no path to {server!r}")
        out[n] = list(reversed(tree[n]))  # client ... server
    return out
