"""fedqnn.registry: lazy built-ins, dotted paths, entry points, errors; the ported registries."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from fedqnn.config import ConfigError, build_config, config_hash
from fedqnn.registry import (
    ATTACKS,
    PLUGINS,
    POLICIES,
    SCHEDULERS,
    STRATEGIES,
    TASKS,
    Registry,
    RegistryError,
    is_dotted_path,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def pkg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A throw-away module ``regtest_mod`` on sys.path; returns its name."""
    (tmp_path / "regtest_mod.py").write_text(textwrap.dedent("""
        class Thing:
            class Inner:
                pass
        VALUE = 42
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "regtest_mod"
    sys.modules.pop("regtest_mod", None)


def test_lazy_builtins_are_known_without_import_and_loaded_on_access(pkg: str) -> None:
    reg = Registry("thing", builtins={"t": f"{pkg}:Thing", "inner": f"{pkg}:Thing.Inner"})
    assert "t" in reg and list(reg) == ["t", "inner"] and len(reg) == 2 and reg.names() == ["t", "inner"]
    assert pkg not in sys.modules and not reg.is_loaded("t")
    thing = reg["t"]
    assert thing.__name__ == "Thing" and reg.is_loaded("t") and reg["inner"] is thing.Inner
    assert reg.resolve("t") is thing


def test_a_module_may_register_its_names_itself(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reg = Registry("thing")
    (tmp_path / "regtest_provider.py").write_text(
        "import sys\nREG = sys.modules['regtest_registry_under_test']\nREG.provide('p', 'provided')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(sys.modules, "regtest_registry_under_test", reg)  # type: ignore[arg-type]
    reg.register_lazy("p", "regtest_provider")
    reg.register_lazy("q", "regtest_provider")
    try:
        assert reg["p"] == "provided"
        with pytest.raises(RegistryError, match="did not register 'q'"):
            reg["q"]
    finally:
        sys.modules.pop("regtest_provider", None)
    reg.register("p", "mine")
    reg.provide("p", "theirs")  # a loaded entry is kept
    assert reg["p"] == "mine"


def test_dotted_paths_resolve_in_both_spellings(pkg: str) -> None:
    reg = Registry("thing")
    assert reg.resolve(f"{pkg}:VALUE") == 42 == reg.resolve(f"{pkg}.VALUE")
    assert reg.resolve(f"{pkg}:Thing.Inner").__name__ == "Inner"
    with pytest.raises(RegistryError, match=r"^thing: cannot import module 'no_such_mod_x'"):
        reg.resolve("no_such_mod_x:Thing")
    with pytest.raises(RegistryError, match=rf"^thing: module '{pkg}' has no attribute 'Nope'"):
        reg.resolve(f"{pkg}:Nope")


def test_unknown_names_list_the_known_ones_and_the_closest() -> None:
    reg = Registry("widget", group="fedqnn.no-such-group", builtins={"alpha": "x:y", "beta": "x:z"})
    with pytest.raises(RegistryError) as err:
        reg.resolve("alpah")
    text = str(err.value)
    assert text.startswith("widget: unknown 'alpah' (did you mean alpha?)")
    assert "alpha, beta" in text and "fedqnn.no-such-group" in text
    assert isinstance(err.value, KeyError) and isinstance(err.value, ValueError)
    with pytest.raises(KeyError):
        reg["alpah"]
    with pytest.raises(RegistryError, match="non-empty string"):
        reg.register("", object())


@pytest.mark.parametrize("text,ok", [
    ("pkg.module:Class", True), ("pkg.module.Class", True), ("module:Class", True),
    ("pkg.mod:Class.attr", True), ("Class", False), ("pkg.:C", False), ("a:b:c", False),
    ("pkg.mod:", False), (":C", False), ("pkg mod:C", False), ("1pkg.mod:C", False), (3, False),
])
def test_is_dotted_path(text: object, ok: bool) -> None:
    assert is_dotted_path(text) is ok


def test_groups_and_plugins_registry() -> None:
    assert {r.group for r in (STRATEGIES, ATTACKS, POLICIES, SCHEDULERS, TASKS, PLUGINS)} == {
        "fedqnn.strategies", "fedqnn.attacks", "fedqnn.broker_policies", "fedqnn.schedulers",
        "fedqnn.tasks", "fedqnn.plugins"}
    assert list(PLUGINS) == ["manifest", "adversary", "qkd", "broker", "partitions", "verifier", "noisy_eval",
                             "progress", "tracking"]


def test_builtin_tables_match_the_modules_that_define_them() -> None:
    """Every lazily named built-in loads to the right kind of object, and the defining modules add
    no name the tables miss (config validation only sees the tables)."""
    names = {r.kind: list(r) for r in (STRATEGIES, ATTACKS, POLICIES, SCHEDULERS, TASKS)}
    import clients.attacks
    import fedqnn.network.policies as policies
    import fedqnn.scheduling.registry as scheduling
    import fedqnn.tasks as tasks
    import strategies.registry as strategies

    assert strategies.REGISTRY is STRATEGIES and clients.attacks.ATTACKS is ATTACKS
    assert policies.POLICIES is POLICIES and scheduling.METHODS is SCHEDULERS and tasks.TASKS is TASKS
    assert all(STRATEGIES[n] is f for n, f in strategies.BUILTINS.items())
    assert all(callable(STRATEGIES[n]) for n in STRATEGIES)
    assert all(ATTACKS[n].name == n for n in ATTACKS)
    assert all(issubclass(POLICIES[n], policies.BrokerPolicy) and POLICIES[n].name == n for n in POLICIES)
    assert all(callable(SCHEDULERS[n]) for n in SCHEDULERS)
    assert all(isinstance(TASKS[n], tasks.Task) and TASKS[n].name == n for n in TASKS)
    assert {r.kind: list(r) for r in (STRATEGIES, ATTACKS, POLICIES, SCHEDULERS, TASKS)} == names


def test_plugins_config_field() -> None:
    from fedqnn.plugins import check_plugins

    base = build_config()
    assert "plugins" not in base and "plugins" not in build_config({"plugins": []})
    assert config_hash(build_config({"plugins": []})) == config_hash(base)
    cfg = build_config({"plugins": ["tests.plugins.outside:Tally", "tests.plugins.outside.Forgetful"]})
    assert cfg["plugins"] == ["tests.plugins.outside:Tally", "tests.plugins.outside.Forgetful"]
    missing = build_config({"plugins": ["pkg.mod:Plugin"]})  # clients validate without the server's plugins
    check_plugins(cfg)
    with pytest.raises(ConfigError, match=r"^plugins: cannot import module 'pkg.mod'"):
        check_plugins(missing)  # the server side, before the run starts
    with pytest.raises(ConfigError, match=r"^plugins: module 'tests.plugins.outside' has no attribute 'Nope'"):
        check_plugins(build_config({"plugins": ["tests.plugins.outside:Nope"]}))
    with pytest.raises(ConfigError, match=r"^plugins: expected dotted paths .*got 'Plugin'"):
        build_config({"plugins": ["pkg.mod:P", "Plugin"]})
    with pytest.raises(ConfigError, match=r"^plugins: expected list"):
        build_config({"plugins": "pkg.mod:Plugin"})
    with pytest.raises(ConfigError, match=r"did you mean plugins"):
        build_config({"plugin": ["pkg.mod:Plugin"]})


ENTRY_POINTS = """
[fedqnn.plugins]
myplugin = regtest_plug:Plugin
[fedqnn.attacks]
my-attack = regtest_plug:attack
[fedqnn.strategies]
my-strategy = regtest_plug:strategy
[fedqnn.schedulers]
my-method = regtest_plug:method
[fedqnn.broker_policies]
my-policy = regtest_plug:Policy
[fedqnn.tasks]
my-task = regtest_plug:Task
"""

PLUGIN_CHECK = """
from fedqnn.config import build_config
from fedqnn.registry import PLUGINS
assert "myplugin" in PLUGINS.names() and PLUGINS.resolve("myplugin").__name__ == "Plugin"
cfg = build_config({"attack": "my-attack", "strategy": "my-strategy", "broker.policy": "my-policy",
                    "partition": "circuit", "partition.qpu_qubits": 2, "partition.placement": "my-method"})
assert cfg["attack"] == "my-attack"
from clients.attacks import get_attack, list_attacks
assert "my-attack" in list_attacks() and get_attack("my-attack").omniscient
from fedqnn.scheduling.registry import available_methods, get_method
assert "my-method" in available_methods() and get_method("my-method").__name__ == "method"
from fedqnn.network.policies import get_policy, policy_names
assert "my-policy" in policy_names() and type(get_policy("my-policy")).__name__ == "Policy"
from fedqnn.tasks import get_task
assert get_task("my-task").name == "my-task"
print("ok")
"""


def test_entry_points_reach_every_registry(tmp_path: Path) -> None:
    (tmp_path / "regtest_plug.py").write_text(textwrap.dedent("""
        from fedqnn.network.policies import AwarePolicy
        from fedqnn.tasks import Antiderivative

        class Plugin: pass
        def attack(own, honest, rng, *, n, f): return -own
        def strategy(cfg):
            from strategies.registry import REGISTRY
            return REGISTRY["fedavg"](cfg)
        def method(problem, time_limit, seed, **options): raise NotImplementedError
        class Policy(AwarePolicy): name = "my-policy"
        class Task(Antiderivative): name = "my-task"
    """))
    dist = tmp_path / "regtest_plug-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: regtest-plug\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(ENTRY_POINTS)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), str(ROOT), os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, "-c", PLUGIN_CHECK], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
