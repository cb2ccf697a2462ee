"""Task placement on a QPU network (the QNet-NO model) and its reduction to :class:`Problem`.

Tasks j: qubits q_j, duration d_j, priority w_j, minimum link fidelity fmin_j, precedence
edges j -> k.  QPUs i: qubit capacity Q_i, speed s_i, gate error eps_i, coherence time T2_i.
Links (i, i'): fidelity F.  Derived:

    t_ij = d_j / s_i                                 execution time
    c_ij = w_j * t_ij * (1 + 10 eps_i q_j)           priority-weighted cost
    allowed_ij = q_j <= Q_i and t_ij <= T2_i         (coherence)
    F_ii' = max over paths of prod of link fidelities (entanglement swapping), F_ii = 1
    D_ii' = -ln F_ii'                                communication distance
    edge e = (j, k) for each precedence j -> k, w_e = min(q_j, q_k), fmin_e = max(fmin_j, fmin_k)

Precedence fixes start times: :func:`schedule_times` runs tasks in topological order, one at a
time per QPU, start_k = max(finish of predecessors (+ D as latency across QPUs), QPU free).
"""

from __future__ import annotations

from dataclasses import dataclass

import networkx as nx
import numpy as np

from fedqnn.scheduling.problem import Problem
from fedqnn.seeding import rng as seeded_rng

__all__ = ["Task", "QPU", "Network", "to_problem", "schedule_times", "qnet_instance"]


@dataclass
class Task:
    qubits: int
    duration: float
    priority: float = 1.0
    fmin: float = 0.0
    predecessors: tuple[int, ...] = ()


@dataclass
class QPU:
    capacity: int
    speed: float = 1.0
    error: float = 0.001
    t2: float = float("inf")


@dataclass
class Network:
    qpus: list[QPU]
    links: dict[tuple[int, int], float]  # (i, i') -> fidelity in (0, 1]


def path_fidelity(net: Network) -> np.ndarray:
    """F_ii' = max-product path fidelity (shortest path on -ln F); 0 if disconnected."""
    m = len(net.qpus)
    G = nx.Graph()
    G.add_nodes_from(range(m))
    for (i, k), f in net.links.items():
        if not 0 < f <= 1:
            raise ValueError(f"links: fidelity of ({i},{k}) must be in (0, 1], got {f}")
        G.add_edge(i, k, w=-np.log(f))
    F = np.zeros((m, m))
    for i, dist in nx.all_pairs_dijkstra_path_length(G, weight="w"):
        for k, d in dist.items():
            F[i, k] = np.exp(-d)
    return F


def to_problem(tasks: list[Task], net: Network, lambda1: float = 1.0, lambda2: float = 0.5,
               name: str = "placement") -> Problem:
    """The assignment :class:`Problem` of the module docstring."""
    m, n = len(net.qpus), len(tasks)
    if m == 0 or n == 0:
        raise ValueError("tasks/qpus: need at least one of each")
    q = np.array([t.qubits for t in tasks], float)
    d = np.array([t.duration for t in tasks], float)
    w = np.array([t.priority for t in tasks], float)
    s = np.array([u.speed for u in net.qpus], float)
    eps = np.array([u.error for u in net.qpus], float)
    cap = np.array([u.capacity for u in net.qpus], float)
    t2 = np.array([u.t2 for u in net.qpus], float)
    if np.any(s <= 0):
        raise ValueError("qpus.speed: must be > 0")
    t = d[None, :] / s[:, None]
    cost = w[None, :] * t * (1 + 10 * eps[:, None] * q[None, :])
    allowed = (q[None, :] <= cap[:, None]) & (t <= t2[:, None])
    F = path_fidelity(net)
    with np.errstate(divide="ignore"):
        D = np.where(F > 0, -np.log(np.maximum(F, 1e-300)), 50.0)
    np.fill_diagonal(D, 0.0)
    edges, ew, ef = [], [], []
    for k, tk in enumerate(tasks):
        for j in tk.predecessors:
            if not 0 <= j < n or j == k:
                raise ValueError(f"tasks[{k}].predecessors: bad index {j}")
            edges.append((j, k))
            ew.append(min(q[j], q[k]))
            ef.append(max(tasks[j].fmin, tk.fmin))
    return Problem(cost=cost, resource=np.broadcast_to(q, (m, n)).copy(), capacity=cap,
                   allowed=allowed, edges=np.array(edges, int).reshape(-1, 2), edge_weight=ew,
                   edge_fmin=ef, distance=D, fidelity=F, duration=t, lambda1=lambda1,
                   lambda2=lambda2, sense="min", name=name,
                   meta={"predecessors": [list(tk.predecessors) for tk in tasks]})


def schedule_times(problem: Problem, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """(start, finish, makespan) of assignment ``x`` under the precedence edges."""
    n = problem.n
    G = nx.DiGraph()
    G.add_nodes_from(range(n))
    G.add_edges_from(map(tuple, problem.edges))
    start, finish = np.zeros(n), np.zeros(n)
    free = np.zeros(problem.m)
    for k in nx.topological_sort(G):
        i = x[k]
        ready = max((finish[j] + (problem.distance[x[j], i] if x[j] != i else 0.0)
                     for j in G.predecessors(k)), default=0.0)
        start[k] = max(ready, free[i])
        finish[k] = start[k] + problem.duration[i, k]
        free[i] = finish[k]
    return start, finish, float(finish.max())


def qnet_instance(nodes: int, tasks: int, fid_low: float, fid_high: float, seed: int = 0,
                  fmin: float = 0.75, chords: float = 0.5, slack: float = 1.3,
                  lambda1: float = 1.0, lambda2: float = 0.5) -> Problem:
    """A QNet-NO grid instance: ring of ``nodes`` QPUs plus ``chords * nodes`` random chords,
    link fidelities U(fid_low, fid_high), ``tasks`` tasks with 2..8 qubits, priorities 1..4,
    each with 0..2 earlier predecessors; half the tasks need fmin (the draft's 0.75) on their
    links; total capacity = ``slack`` x total demand."""
    if nodes < 2 or tasks < 1:
        raise ValueError("nodes/tasks: need nodes >= 2 and tasks >= 1")
    if not 0 < fid_low <= fid_high <= 1:
        raise ValueError("fidelity: need 0 < fid_low <= fid_high <= 1")
    g = seeded_rng(seed, "qnet", nodes, tasks, fid_low, fid_high)
    links = {(i, (i + 1) % nodes): float(g.uniform(fid_low, fid_high)) for i in range(nodes)}
    for _ in range(int(round(chords * nodes))):
        a, b = g.choice(nodes, 2, replace=False)
        if (a, b) not in links and (b, a) not in links:
            links[(int(a), int(b))] = float(g.uniform(fid_low, fid_high))
    tl = []
    for k in range(tasks):
        npred = int(g.integers(0, 3)) if k else 0
        preds = tuple(sorted({int(j) for j in g.integers(0, k, size=npred)})) if k else ()
        tl.append(Task(qubits=int(g.integers(2, 9)), duration=float(g.uniform(1, 10)),
                       priority=float(g.integers(1, 5)),
                       fmin=fmin if g.random() < 0.5 else 0.0, predecessors=preds))
    demand = sum(t.qubits for t in tl)
    share = g.dirichlet(np.full(nodes, 4.0))
    caps = np.maximum(8, np.ceil(slack * demand * share)).astype(int)
    qpus = [QPU(capacity=int(c), speed=float(g.uniform(0.5, 2.0)),
                error=float(g.uniform(1e-4, 5e-3)), t2=float(g.uniform(15, 40))) for c in caps]
    return to_problem(tl, Network(qpus, links), lambda1, lambda2,
                      name=f"qnet-n{nodes}-m{tasks}-f{fid_low:.2f}-{fid_high:.2f}-s{seed}")
