"""Scheduler tests: QUBO exactness, Ising mapping, QAOA vs PennyLane, feasibility flags,
determinism, GAP reader, statistics, CLI JSON keys."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import wilcoxon

from fedqnn.scheduling import Problem, available_methods, read_gap, read_gap_file, solve
from fedqnn.scheduling.exact import solve_highs
from fedqnn.scheduling.placement import qnet_instance, schedule_times
from fedqnn.scheduling.qaoa import pennylane_probs, run_qaoa, statevector
from fedqnn.scheduling.qubo import all_bitstrings, build_qubo, qubo_to_ising
from fedqnn.scheduling.stats import bootstrap_ci, holm, paired_compare, rank_biserial

GAP_DIR = Path(__file__).resolve().parents[2] / "benchmarks" / "gap"  # OR-Library gap1-12 (benchmarks/gap/README.md)


def small_problem(seed: int, m: int = 2, n: int = 4, edges: bool = False) -> Problem:
    r = np.random.default_rng(seed)
    a = r.integers(1, 5, (m, n))
    kw = {}
    if edges:
        kw = dict(edges=[(0, 1), (1, 2)], edge_weight=[1.0, 2.0], edge_fmin=[0.9, 0.0],
                  distance=np.array([[0, 1.0], [1.0, 0]])[:m, :m],
                  fidelity=np.array([[1, 0.8], [0.8, 1]])[:m, :m], lambda1=1.0)
    return Problem(cost=r.integers(1, 10, (m, n)), resource=a,
                   capacity=np.ceil(0.7 * a.sum(1) / 1.0 * (1.0 / m) * 1.6), **kw)


def brute_force(p: Problem) -> tuple[float, set[tuple[int, ...]]]:
    best, arg = np.inf, set()
    for x in itertools.product(range(p.m), repeat=p.n):
        ev = p.evaluate(np.array(x))
        if ev.feasible:
            if ev.objective < best - 1e-9:
                best, arg = ev.objective, {x}
            elif abs(ev.objective - best) <= 1e-9:
                arg.add(x)
    return best, arg


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("edges", [False, True])
def test_qubo_minimum_is_optimal_assignment(seed: int, edges: bool) -> None:
    p = small_problem(seed, edges=edges)
    best, arg = brute_force(p)
    assert np.isfinite(best), "small_problem must generate feasible instances (else this test checks nothing)"
    q = build_qubo(p, capacity="slack")
    assert q.num_vars <= 20
    E = q.energies(all_bitstrings(q.num_vars))
    emin = E.min()
    assert emin == pytest.approx(best)
    for row in all_bitstrings(q.num_vars)[np.isclose(E, emin)]:
        assert tuple(q.decode(row)) in arg


def test_subproblem_qubo_energy_equals_objective() -> None:
    p = small_problem(3, n=5, edges=True)
    base = np.array([0, 1, 0, 1, 0])
    q = build_qubo(p, tasks=[1, 3], base=base, capacity="none")
    for row in all_bitstrings(q.num_vars):
        x = q.decode(row)
        if (x >= 0).all():
            ev = p.evaluate(x)
            pen = ev.violations["fidelity"]
            if pen == 0:
                assert q.energies(row[None])[0] == pytest.approx(ev.objective)


def test_ising_conversion_matches_qubo_on_every_state() -> None:
    p = small_problem(1, edges=True)
    for cap in ("slack", "unbalanced", "none"):
        q = build_qubo(p, capacity=cap)
        ising = qubo_to_ising(q)
        B = all_bitstrings(q.num_vars)
        Z = 1 - 2 * B  # x = (1 - z)/2
        np.testing.assert_allclose(ising.energies(Z), q.energies(B), atol=1e-8)


@pytest.mark.parametrize("mixer", ["x", "xy"])
def test_statevector_qaoa_matches_pennylane(mixer: str) -> None:
    p = small_problem(2, n=3)
    q = build_qubo(p, capacity="none")
    g, b = np.array([0.2, 0.5]), np.array([0.7, 0.3])
    ours = np.abs(statevector(q, g, b, mixer, scale=7.0)) ** 2
    ref = pennylane_probs(q, g, b, mixer, scale=7.0)
    np.testing.assert_allclose(ours, ref, atol=1e-10)


def test_xy_mixer_keeps_one_hot() -> None:
    p = small_problem(4, n=3)
    q = build_qubo(p, capacity="none")
    res = run_qaoa(q, p=2, mixer="xy", shots=64, maxiter=10, rng=np.random.default_rng(0))
    for row in res.samples:
        assert (q.decode(row) >= 0).all()


def test_gap_reader_on_real_file() -> None:
    probs = read_gap_file(GAP_DIR / "gap1.txt")
    assert len(probs) == 5
    p = probs[0]
    assert (p.m, p.n) == (5, 15)
    assert p.optimum == 336 and p.sense == "max"
    r = solve_highs(p, time_limit=20)
    assert r.optimal and p.report(r.objective) == pytest.approx(336)


def test_gap_reader_errors_name_the_field() -> None:
    with pytest.raises(ValueError, match="truncated"):
        read_gap("1\n2 3\n1 2 3")
    with pytest.raises(ValueError, match="sense"):
        read_gap("1\n1 1\n1\n1\n1", sense="up")
    with pytest.raises(ValueError, match="resource"):
        Problem(cost=np.ones((2, 3)), resource=np.ones((3, 2)), capacity=[1, 1])


@pytest.mark.parametrize("method", ["greedy", "sa", "random", "qi-random", "qaoa", "hybrid",
                                    "exact", "auto"])
def test_every_assignment_feasible_or_flagged(method: str) -> None:
    p = qnet_instance(4, 8, 0.70, 0.80, seed=1)
    tight = Problem(cost=[[1, 2, 3]], resource=[[2, 2, 2]], capacity=[4])  # infeasible
    for prob in (p, tight):
        s = solve(prob, method, time_limit=1.0, seed=0, tabu_iters=50, moves=2000, sweeps=1)
        ev = prob.evaluate(s.assignment)
        assert s.feasible == ev.feasible
        assert s.violations == ev.violations
        assert s.objective == pytest.approx(prob.report(ev.objective))
        if not s.feasible:
            assert sum(s.violations.values()) > 0
    assert not solve(tight, method, time_limit=1.0, tabu_iters=20, moves=500, sweeps=1).feasible


@pytest.mark.parametrize("method", ["greedy", "sa", "random", "qi-random", "qaoa", "hybrid"])
def test_deterministic_under_seed(method: str) -> None:
    p = read_gap_file(GAP_DIR / "gap1.txt")[2]
    kw = dict(time_limit=60.0, tabu_iters=40, moves=3000, sweeps=1, shots=32, qaoa_share=1.0,
              qubits=8)
    a = solve(p, method, seed=5, **kw)
    b = solve(p, method, seed=5, **kw)
    np.testing.assert_array_equal(a.assignment, b.assignment)


def test_schedule_times_respect_precedence() -> None:
    p = qnet_instance(4, 12, 0.85, 0.95, seed=2)
    x = solve(p, "greedy").assignment
    start, finish, makespan = schedule_times(p, x)
    for j, k in p.edges:
        assert start[k] >= finish[j] - 1e-9
    assert makespan == pytest.approx(finish.max())


def test_holm_known_values() -> None:
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(holm([0.5]), [0.5])


def test_paired_compare_known_inputs() -> None:
    a = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0])
    b = a + np.array([1, 2, 3, 4, 5, 6, 7, 8]) * 0.5
    r = paired_compare(a, b, "A-B", np.random.default_rng(0), n_boot=2000)
    assert r.p == pytest.approx(wilcoxon(a, b).pvalue)
    assert r.rank_biserial == -1.0
    assert r.mean_diff == pytest.approx(-2.25)
    assert r.ci[0] <= -2.25 <= r.ci[1]
    same = paired_compare(a, a, "A-A", np.random.default_rng(0), n_boot=200)
    assert same.p == 1.0 and same.rank_biserial == 0.0


def test_bootstrap_constant_and_rank_biserial_mixed() -> None:
    lo, hi = bootstrap_ci(np.full(10, 3.0), np.random.default_rng(0), n_boot=100)
    assert lo == hi == 3.0
    # ranks of |d| = 1, 2, 3: W+ = 1 + 3, W- = 2
    assert rank_biserial(np.array([1.0, -2.0, 3.0])) == pytest.approx((4 - 2) / 6)


def test_cli_json_keys(capsys: pytest.CaptureFixture[str]) -> None:
    from fedqnn.cli import main

    rc = main(["schedule", "--gap", str(GAP_DIR / "gap1.txt"), "--instance", "0",
               "--method", "exact", "--time-limit", "5", "--json"])
    out = capsys.readouterr().out.strip().splitlines()
    assert rc == 0 and len(out) == 1
    rec = json.loads(out[0])
    for key in ("objective", "sense", "feasible", "seconds", "optimum", "gap_pct"):
        assert key in rec
    assert rec["sense"] == "max" and rec["optimum"] == 336 and rec["gap_pct"] == 0.0


def test_cli_bad_input_exits_nonzero(capsys: pytest.CaptureFixture[str]) -> None:
    from fedqnn.cli import main

    assert main(["schedule", "--gap", "/nonexistent.txt"]) == 2
    assert "--gap" in capsys.readouterr().err
    assert main(["schedule", "--gap", str(GAP_DIR / "gap1.txt"), "--time-limit", "0"]) == 2
    assert "--time-limit" in capsys.readouterr().err


def test_registry_lists_methods_and_rejects_unknown() -> None:
    assert {"auto", "hybrid", "qaoa", "exact"} <= set(available_methods())
    with pytest.raises(ValueError, match="method"):
        solve(small_problem(0), "nope")


@pytest.mark.parametrize("seeding", ["uniform", "greedy", "sa"])
def test_ablation_equal_samples_and_trace(seeding: str) -> None:
    p = read_gap_file(GAP_DIR / "gap1.txt")[0]
    s = solve(p, "hybrid", time_limit=60.0, seed=1, seeding=seeding, samples=6,
              tabu_time=60.0, tabu_iters=30)
    assert s.info["samples"] == 6 and s.feasible
    tr = s.info["trace"]
    assert tr and all(t1 <= t2 for (t1, _), (t2, _) in zip(tr, tr[1:]))
    # GAP files are maximisation: the best-so-far profit never decreases and ends at the answer
    assert all(f1 <= f2 for (_, f1), (_, f2) in zip(tr, tr[1:]))
    assert tr[-1][1] == pytest.approx(s.objective)


def test_time_to_target_from_trace() -> None:
    from types import SimpleNamespace

    from fedqnn.bench.schedule import _time_to_target

    sol = SimpleNamespace(info={"trace": [(0.1, 90.0), (0.4, 99.6), (0.9, 100.0)]})
    tt = _time_to_target(sol, 100.0)
    assert tt == {"t_gap1": 0.4, "t_gap0.5": 0.4, "t_gap0": 0.9}
    assert np.isnan(_time_to_target(SimpleNamespace(info={}), 100.0)["t_gap0"])


def test_bench_schedule_reads_the_shipped_gap_files_by_default(capsys: pytest.CaptureFixture[str],
                                                               monkeypatch: pytest.MonkeyPatch,
                                                               tmp_path: Path) -> None:
    """No --gap-dir: the repository's benchmarks/gap, from any working directory (issue 18)."""
    from fedqnn.bench.schedule import DEFAULT_GAP_DIR
    from fedqnn.cli import main

    assert DEFAULT_GAP_DIR == GAP_DIR and (GAP_DIR / "README.md").is_file()
    monkeypatch.chdir(tmp_path)
    assert main(["bench", "schedule", "--files", "gap1", "--instances", "0", "--methods", "greedy",
                 "--time-limit", "0.5"]) == 0
    assert "gap1-0    greedy=" in capsys.readouterr().out
    # control: a directory without the files is a clear exit 2 naming the flag, not a traceback
    assert main(["bench", "schedule", "--gap-dir", str(tmp_path), "--files", "gap1"]) == 2
    assert "--gap-dir/--files: no such GAP file" in capsys.readouterr().err
