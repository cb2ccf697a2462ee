import pytest

from fedqnn.config import ConfigError, build_config, parse_set


def test_defaults_validate():
    cfg = build_config()
    assert cfg["task"] == "antiderivative" and cfg["clients"] >= 10
    assert cfg["model"]["device"] == "torch"


def test_precedence_lowest_first():
    cfg = build_config({"rounds": 3, "train.lr": 0.1}, {"rounds": 4}, parse_set(["train.lr=0.5"]))
    assert cfg["rounds"] == 4 and cfg["train"]["lr"] == 0.5


def test_nested_and_dotted_layers_agree():
    assert build_config({"model": {"qubits": 3}}) == build_config({"model.qubits": 3})


@pytest.mark.parametrize(
    "layer,field",
    [
        ({"clients": 0}, "clients"),
        ({"rounds": "many"}, "rounds"),
        ({"train.lr": -1.0}, "train.lr"),
        ({"data.split": "weird"}, "data.split"),
        ({"task": "nope"}, "task"),
        ({"strategy": "nope"}, "strategy"),
        ({"model.device": "no.such.device"}, "model.device"),
        ({"model.device": "default.qubit"}, "model.device"),  # noise needs the torch simulator
        ({"qpu.shots_choices": [0]}, "qpu.shots_choices"),
        ({"noise": "loud"}, "noise"),
        ({"attack": "nope"}, "attack"),
        ({"min_replies": 50, "clients": 3}, "min_replies"),
    ],
)
def test_bad_values_name_the_field(layer, field):
    with pytest.raises(ConfigError) as err:
        build_config(layer)
    assert str(err.value).startswith(field)


def test_unknown_key_suggests_the_closest():
    with pytest.raises(ConfigError, match="did you mean train.lr"):
        build_config({"train.lrr": 0.1})


def test_parse_set_types_and_errors():
    assert parse_set(["a=1", "b=0.5", "c=true", "d=fedavg", "e=\"x y\""]) == {
        "a": 1, "b": 0.5, "c": True, "d": "fedavg", "e": "x y"}
    with pytest.raises(ConfigError, match="key=value"):
        parse_set(["novalue"])


def test_qkd_config_sets_the_key_demand_and_refuses_what_cannot_work():
    cfg = build_config({"auth": "qkd", "qkd.pairs_per_round": 1234})
    assert cfg["broker"]["key_pairs_per_node"] == 1234
    assert build_config({})["broker"]["key_pairs_per_node"] == 0
    with pytest.raises(ConfigError, match=r"^auth: .*broker.policy"):
        build_config({"auth": "qkd", "broker.policy": "off"})
    with pytest.raises(ConfigError, match=r"^broker.key_pairs_per_node: .*auth=qkd"):
        build_config({"broker.key_pairs_per_node": 10})
    with pytest.raises(ConfigError, match=r"^qkd.key_bits"):
        build_config({"auth": "qkd", "qkd.key_bits": 8})


def test_attack_mixtures_are_normalised_and_need_enough_byzantine_nodes() -> None:
    assert build_config({"clients": 10}, {"attack": " alie + ipm "})["attack"] == "alie+ipm"
    with pytest.raises(ConfigError, match="needs at least 3 Byzantine nodes"):
        build_config({"clients": 10}, {"attack": "alie+ipm+bell-drain", "byzantine_fraction": 0.1})
    assert build_config({"clients": 10}, {"attack": "alie+ipm", "byzantine_fraction": 0.0})["attack"] == "alie+ipm"


def test_broker_quota_must_cover_a_participants_demand() -> None:
    with pytest.raises(ConfigError, match=r"broker.quota: expected >= 4"):
        build_config({"clients": 10}, {"broker.quota": 3})
    assert build_config({"clients": 10}, {"broker.quota": 4})["broker"]["quota"] == 4


def test_resume_accepts_a_checkpoint_written_before_a_key_existed() -> None:
    from fedqnn.checkpoint import CheckpointError, check_same_run

    cfg = build_config({"clients": 10}, {})
    stored = {k: v for k, v in cfg.items() if k != "drain_pairs"}  # an older run's config
    check_same_run(stored, cfg)
    with pytest.raises(CheckpointError, match="drain_pairs"):
        check_same_run(stored, {**cfg, "drain_pairs": 7})
