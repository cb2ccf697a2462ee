"""The local-training floor of ``fedqnn bench scale`` and its report (no Flower run)."""

import pytest

from fedqnn.bench.floor import _selected, measure_floor, workers
from fedqnn.bench.scale import scale_report
from fedqnn.config import build_config

TINY = {"clients": 4, "rounds": 2, "train.epochs": 1, "data.samples_per_client": 8, "fraction_train": 0.5}


def test_the_floor_trains_the_clients_the_server_selects():
    from fedqnn.server_app import _select

    cfg = build_config(TINY)
    names = [f"node-{i}" for i in range(cfg["clients"])]
    for r in (1, 2, 3):
        assert [f"node-{p}" for p in _selected(cfg, r)] == _select(cfg, names, r)
    # negative control: the selection depends on the round, so comparing rounds can fail
    assert any(_selected(cfg, 1) != _selected(cfg, r) for r in range(2, 8))


def test_measure_floor_counts_each_selected_client_once_per_round():
    cfg = build_config(TINY)
    floor = measure_floor(cfg, rounds=5)  # capped at cfg['rounds'] = 2
    assert len(floor.rounds) == 2 and floor.participants == 2.0
    assert floor.s_per_round == pytest.approx(sum(floor.rounds) / 2 / 2)  # median of 2 rounds / 2 workers
    assert floor.client_s == pytest.approx(sum(floor.rounds) / 4)


def test_workers_are_the_clients_that_train_at_once():
    assert workers(build_config({"clients": 50}), cores=2) == 2
    assert workers(build_config({"clients": 1, "min_replies": 1}), cores=2) == 1
    assert workers(build_config({"clients": 50, "num_cpus_per_client": 2}), cores=2) == 1
    assert workers(build_config({"clients": 50, "simulation.client_cpus": 0.5}), cores=2) == 2  # cores bound


def test_floor_refuses_bad_input():
    with pytest.raises(ValueError, match="rounds"):
        measure_floor(build_config(TINY), rounds=0)
    with pytest.raises(ValueError, match="partition"):
        measure_floor(build_config({**TINY, "partition": "unitary"}), rounds=1)


def test_scale_report_holds_the_contract_keys_and_its_ratios():
    from fedqnn.bench.floor import Floor

    cfg = build_config({"clients": 50, "rounds": 30})
    runs = {"ceas": {"s_per_round": 3.0, "steady_s_per_round": 2.4, "inrun_floor_s_per_round": 2.0,
                     "participants": 40.0},
            "plain": {"s_per_round": 2.0, "steady_s_per_round": 1.5, "inrun_floor_s_per_round": 1.2,
                      "participants": 50.0}}
    # the CEAS run instructed 40 of 50 clients: its floor is 0.075 s x 40 / 2 workers = 1.5 s
    floors = {"ceas": Floor(1.875, 2, 50.0, 0.075, [3.75]), "plain": Floor(1.25, 2, 50.0, 0.05, [2.5])}
    rep = scale_report(cfg, runs, floors, 3 * 2**29)
    assert {"clients": 50, "rounds": 30, "ceas_s_per_round": 3.0, "fedavg_s_per_round": 2.0,
            "floor_s_per_round": 1.5, "peak_gib": 1.5}.items() <= rep.items()
    assert (rep["ceas_over_floor"], rep["fedavg_over_floor"], rep["ceas_over_fedavg"]) == (2.0, 1.6, 1.5)
    assert rep["ceas_steady_over_floor"] == 1.6
    assert (rep["ceas_steady_over_inrun_floor"], rep["fedavg_steady_over_inrun_floor"]) == (1.2, 1.25)
    unscaled = scale_report(cfg, runs, {**floors, "ceas": Floor(1.5, 2, 50.0, 0.06, [3.0])}, 0)
    assert unscaled["floor_s_per_round"] == 1.2  # negative control: a floor for 50 clients is not the run's
    only = scale_report(cfg, {"ceas": runs["ceas"]}, {}, 0)  # no baseline, no floor: no ratios, no crash
    assert only["fedavg_s_per_round"] is None and only["ceas_over_floor"] is None


def test_the_probe_sums_the_train_seconds_of_the_good_replies():
    from types import SimpleNamespace

    from fedqnn.bench.floor import ClientSecondsProbe

    def reply(seconds, error=False):
        return SimpleNamespace(has_error=lambda: error, content={"metrics": {"train_seconds": seconds}})

    probe, row = ClientSecondsProbe(), {}
    state = SimpleNamespace(replies=[reply(0.25), reply(0.5), reply(9.0, error=True)])
    probe.after_replies(state)
    probe.on_record(state, row)
    assert row == {"client_train_s": 0.75}  # the error reply's seconds are not work the round used
