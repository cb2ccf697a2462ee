"""``simulation.*``: validated, absent unless given, and turned into Flower's backend config."""

import pytest

from fedqnn.config import ConfigError, build_config
from fedqnn.simulation import _backend_config


def test_simulation_keys_are_absent_by_default_so_configs_stay_as_recorded():
    assert "simulation" not in build_config()
    cfg = build_config({"simulation.ray_address": "127.0.0.1:6379", "simulation.client_cpus": 0.5})
    assert cfg["simulation"] == {"ray_address": "127.0.0.1:6379", "client_cpus": 0.5}


@pytest.mark.parametrize("value", ["ray://h:10001", "localhost", "h:0", "h:99999", ":6379", "h:port"])
def test_bad_ray_address_names_the_field(value):
    with pytest.raises(ConfigError, match=r"^simulation.ray_address: expected 'auto' or HOST:PORT"):
        build_config({"simulation.ray_address": value})


def test_bad_client_cpus_names_the_field():
    with pytest.raises(ConfigError, match=r"^simulation.client_cpus"):
        build_config({"simulation.client_cpus": -1})


def test_backend_config_private_runtime_or_cluster():
    local = _backend_config(build_config())
    assert local["client_resources"] == {"num_cpus": 1, "num_gpus": 0.0}
    assert "address" not in local["init_args"] and local["init_args"]["num_cpus"] >= 1
    cluster = _backend_config(build_config({"simulation.ray_address": "auto", "simulation.client_cpus": 0.5}))
    assert cluster["init_args"]["address"] == "auto" and cluster["client_resources"]["num_cpus"] == 0.5
    assert "num_cpus" not in cluster["init_args"]  # Ray refuses num_cpus when it attaches to a cluster
