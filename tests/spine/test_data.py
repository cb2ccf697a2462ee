import numpy as np
import pytest

from fedqnn import data as D
from fedqnn.config import build_config
from fedqnn.tasks import get_task


def test_pools_are_deterministic_and_streams_differ():
    a = D.antiderivative_pool(20, 0.2, seed=3, stream="train")
    b = D.antiderivative_pool(20, 0.2, seed=3, stream="train")
    c = D.antiderivative_pool(20, 0.2, seed=3, stream="test")
    assert np.array_equal(a.u, b.u) and np.array_equal(a.s, b.s)
    assert not np.allclose(a.u, c.u)


def test_antiderivative_is_the_integral():
    pool = D.antiderivative_pool(5, 0.2, seed=0, stream="t")
    ds = np.gradient(pool.s, pool.x, axis=1)
    assert np.max(np.abs(ds[:, 5:-5] - pool.u[:, 5:-5])) < 1e-2 * np.max(np.abs(pool.u))
    assert np.all(pool.s[:, 0] == 0)


def test_heat_solution_matches_the_fourier_closed_form():
    # a single mode cos(2πx) decays as exp(-ν (2π)^2 T)
    pool = D.heat_pool(3, 0.3, seed=0, stream="t", nu=0.01, t_end=1.0)
    body = pool.u[:, :-1]
    n = body.shape[1]
    coeff = np.fft.rfft(body, axis=1)[:, 1]
    out = np.fft.rfft(pool.s[:, :-1], axis=1)[:, 1]
    np.testing.assert_allclose(out, coeff * np.exp(-0.01 * (2 * np.pi) ** 2), rtol=1e-10)
    assert n == D.FINE - 1


def test_grf_has_the_kernel_covariance():
    u = D.grf_samples(4000, 0.2, seed=1, stream="cov")
    x = np.linspace(0, 1, D.FINE)
    i, j = 200, 400
    emp = np.mean(u[:, i] * u[:, j])
    exact = np.exp(-((x[i] - x[j]) ** 2) / (2 * 0.2**2))
    assert abs(emp - exact) < 0.06
    assert abs(np.var(u[:, i]) - 1.0) < 0.08


@pytest.mark.parametrize("num_parts", [1, 3, 10])
def test_iid_partition_sizes_and_disjointness(num_parts):
    parts = D.iid_partition(103, num_parts, seed=0)
    sizes = [len(p) for p in parts]
    assert sum(sizes) == 103 and max(sizes) - min(sizes) <= 1
    allidx = np.concatenate(parts)
    assert len(np.unique(allidx)) == 103


def test_dirichlet_partition_is_disjoint_complete_and_skewed():
    groups = np.repeat(np.arange(10), 50)
    parts = D.dirichlet_partition(groups, 5, alpha=0.1, seed=0)
    allidx = np.concatenate(parts)
    assert sorted(allidx.tolist()) == list(range(500))
    # small alpha: each client is dominated by few groups
    dominance = [np.bincount(groups[p], minlength=10).max() / len(p) for p in parts]
    assert np.mean(dominance) > 0.3
    iid_like = D.dirichlet_partition(groups, 5, alpha=1000.0, seed=0)
    assert np.mean([np.bincount(groups[p], minlength=10).max() / len(p) for p in iid_like]) < 0.2


def test_dirichlet_rejects_bad_alpha():
    with pytest.raises(ValueError, match="alpha"):
        D.dirichlet_partition(np.zeros(10, int), 2, alpha=0.0, seed=0)


@pytest.mark.parametrize("task", ["antiderivative", "digits"])
def test_client_shares_are_disjoint(task):
    cfg = build_config({"task": task, "data.samples_per_client": 20, "clients": 4})
    t = get_task(task)
    xs = [t.client_data(cfg, i, 4).x.numpy() for i in range(4)]
    assert all(len(x) == 20 for x in xs)
    rows = {tuple(np.round(r, 10)) for x in xs for r in x}
    assert len(rows) == 80
