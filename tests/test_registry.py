"""The method registry: names without importing torch, specs that agree with their entries,
and learner checkpoints loaded by the kind their JSON records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from protege.algos import registry
from protege.algos.registry import LearnerEntry, MethodEntry
from protege.errors import CheckpointError, ConfigError
from protege.policies import Policy, PolicyConfig
from protege.policies.ensemble import PolicyEnsemble
from protege.policies.thrifty import ThriftyLearner


def small_policy() -> Policy:
    return Policy(PolicyConfig(obs_shape=(4,), act_dim=1, discrete=True, n_actions=2,
                               head="categorical", hidden_sizes=(8,)))  # fmt: skip


def test_every_method_module_exports_the_spec_its_entry_describes() -> None:
    assert registry.names() == (
        "dagger",
        "hg-dagger",
        "ensemble",
        "thrifty",
        "dart",
        "smile",
        "aggrevate",
        "fleet",
    )
    for name in registry.names():
        entry = registry.entry(name)
        spec = entry.spec()
        assert (spec.name, spec.title, spec.config) == (name, entry.title, entry.config_class())
        assert callable(spec.run) and callable(spec.load)


def test_an_entry_that_disagrees_with_its_module_is_refused() -> None:
    wrong = MethodEntry("dagger-again", "protege.algos.dagger", "DAgger")
    with pytest.raises(ConfigError, match="does not match its registry entry"):
        wrong.spec()
    with pytest.raises(ConfigError, match="unknown method 'gail'; known: dagger, hg-dagger"):
        registry.entry("gail")


def test_a_plugin_registers_a_method(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "METHODS", dict(registry.METHODS))
    entry = MethodEntry("mine", "my_plugin.method", "Mine", "my_plugin.config:MineConfig")
    assert registry.register(entry) is entry
    assert registry.names()[-1] == "mine"
    with pytest.raises(ConfigError, match="already registered"):
        registry.register(entry)


def test_learners_are_loaded_by_the_kind_they_record(tmp_path: Path) -> None:
    policy, ensemble = small_policy(), PolicyEnsemble([small_policy(), small_policy()])
    policy.save(tmp_path / "p")
    ensemble.save(tmp_path / "e")
    ThriftyLearner(PolicyEnsemble([small_policy()]), None, 0.25).save(tmp_path / "t")
    kinds = {"p": ("config.json", "policy"), "e": ("ensemble.json", "ensemble")}
    kinds["t"] = ("thrifty.json", "thrifty")
    for folder, (file, kind) in kinds.items():
        assert json.loads((tmp_path / folder / file).read_text())["kind"] == kind
        assert registry.learner_kind(tmp_path / folder) == kind
    assert isinstance(registry.load_learner(tmp_path / "p"), Policy)
    assert isinstance(registry.load_learner(tmp_path / "e"), PolicyEnsemble)
    loaded = registry.load_learner(tmp_path / "t")
    assert isinstance(loaded, ThriftyLearner) and loaded.switch_back_discrepancy == 0.25


def test_checkpoints_written_before_kinds_load_by_their_file_name(tmp_path: Path) -> None:
    small_policy().save(tmp_path / "p")
    PolicyEnsemble([small_policy()]).save(tmp_path / "e")
    for folder, file in (("p", "config.json"), ("e", "ensemble.json")):
        meta = json.loads((tmp_path / folder / file).read_text())
        del meta["kind"]
        (tmp_path / folder / file).write_text(json.dumps(meta))
    assert isinstance(registry.load_learner(tmp_path / "p"), Policy)
    assert isinstance(registry.load_learner(tmp_path / "e"), PolicyEnsemble)


def test_an_unknown_kind_names_the_file_and_a_missing_one_the_policy_file(tmp_path: Path) -> None:
    small_policy().save(tmp_path / "p")
    meta = json.loads((tmp_path / "p" / "config.json").read_text())
    (tmp_path / "p" / "config.json").write_text(json.dumps({**meta, "kind": "diffuser"}))
    with pytest.raises(CheckpointError, match=r"config\.json: learner kind 'diffuser'"):
        registry.load_learner(tmp_path / "p")
    with pytest.raises(CheckpointError, match=r"config\.json: missing"):
        registry.load_learner(tmp_path / "nothing")


def test_a_plugin_registers_a_learner_kind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "LEARNERS", dict(registry.LEARNERS))
    registry.register_learner(LearnerEntry("twin", "twin.json", "protege.policies.policy:Policy"))
    small_policy().save(tmp_path / "p")
    (tmp_path / "p" / "twin.json").write_text('{"kind": "twin"}')
    (tmp_path / "p" / "config.json").rename(tmp_path / "p" / "other.json")
    assert registry.learner_kind(tmp_path / "p") == "twin"
    with pytest.raises(ConfigError, match="already registered"):
        registry.register_learner(LearnerEntry("twin", "x.json", "a:B"))
