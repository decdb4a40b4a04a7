"""A checkpoint is untrusted input: hand-made attacks on small saved policies, ensembles and
ThriftyDAgger learners. Each must end in one CheckpointError naming the file and the field or
tensor, quickly (nothing huge is allocated: the limits are checked before any network is)."""

from __future__ import annotations

import json
import pickle
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from protege.errors import CheckpointError, ConfigError
from protege.policies import Policy, PolicyConfig
from protege.policies.ensemble import PolicyEnsemble
from protege.policies.success_q import SuccessQ
from protege.policies.thrifty import ThriftyLearner

OBS = gym.spaces.Box(-5, 5, (4,), np.float32)  # cartpole's spaces
ACT = gym.spaces.Discrete(2)
BOX = gym.spaces.Box(-1, 1, (2,), np.float32)


@pytest.fixture(autouse=True)
def fast() -> Iterator[None]:
    """Every attack is refused within a second: nothing of the attacked size was built."""
    start = time.perf_counter()
    yield
    assert time.perf_counter() - start < 5.0


def saved_policy(path: Path, **overrides: Any) -> Path:
    space = overrides.pop("action_space", ACT)
    cfg = PolicyConfig.for_spaces(OBS, space, hidden_sizes=(8, 8), **overrides)
    return Policy(cfg, seed=0).save(path)


def edit_config(path: Path, edit: Callable[[dict[str, Any]], None]) -> Path:
    cfg = path / "config.json"
    meta = json.loads(cfg.read_text())
    edit(meta["policy"])
    cfg.write_text(json.dumps(meta))
    return cfg


def refused(load: Callable[[], object], file: Path, *words: str) -> str:
    with pytest.raises(CheckpointError) as err:
        load()
    message = str(err.value)
    assert str(file) in message, message
    for word in words:
        assert word in message, message
    return message


def setter(field: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(d: dict[str, Any]) -> None:
        d[field] = value

    return edit


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("hidden_sizes", [10**9]),
        ("hidden_sizes", [65_537]),
        ("hidden_sizes", [8] * 65),
        ("hidden_sizes", ["8"]),
        ("hidden_sizes", [True]),
        ("hidden_sizes", [-8]),
        ("hidden_sizes", 8),
        ("chunk_size", 10**9),
        ("chunk_size", 4_097),
        ("chunk_size", "4"),
        ("chunk_size", 0),
        ("chunk_size", True),
        ("chunk_size", 1.5),
        ("n_obs_steps", 10**9),
        ("n_obs_steps", -1),
        ("n_action_steps", None),
        ("act_dim", 10**9),
        ("act_dim", "1"),
        ("n_actions", -2),
        ("n_actions", 10**9),
        ("discrete", 1),
        ("normalize_obs", "yes"),
        ("obs_shape", [10**9]),
        ("obs_shape", [4, -1]),
        ("obs_shape", [2] * 9),
        ("obs_shape", "4"),
        ("random_shift", -1),
        ("temporal_ensemble_coeff", float("nan")),
        ("temporal_ensemble_coeff", "0.01"),
        ("encoder", 3),
        ("head", None),
        ("action_norm", "wide"),
        ("head_kwargs", []),
        ("encoder_kwargs", {"activation": {"nested": 1}}),
    ],
)
def test_bad_config_fields_are_refused_naming_file_and_field(
    tmp_path: Path, field: str, value: Any
) -> None:
    path = saved_policy(tmp_path / "p")
    cfg = edit_config(path, setter(field, value))
    refused(lambda: Policy.load(path), cfg, field)


def test_a_network_too_big_in_total_is_refused_before_it_is_built(tmp_path: Path) -> None:
    # each width is allowed; together they would be 65,536² ≈ 4.3e9 parameters (17 GB)
    path = saved_policy(tmp_path / "p")
    cfg = edit_config(path, setter("hidden_sizes", [65_536, 65_536]))
    refused(lambda: Policy.load(path), cfg, "over the bound")
    # an observation whose dimensions are each allowed but whose product is not
    cfg = edit_config(path, setter("obs_shape", [65_536, 65_536]))
    refused(lambda: Policy.load(path), cfg, "obs_shape")


def test_huge_head_settings_are_refused_before_they_are_built(tmp_path: Path) -> None:
    path = saved_policy(tmp_path / "p", action_space=BOX, head="diffusion")
    cfg = edit_config(path, setter("head_kwargs", {"hidden_dim": 65_536, "n_blocks": 8}))
    refused(lambda: Policy.load(path), cfg, "over the bound")
    cfg = edit_config(path, setter("head_kwargs", {"n_blocks": 10**9}))
    refused(lambda: Policy.load(path), cfg, "head_kwargs.n_blocks")


def test_unknown_and_mistyped_head_settings_are_refused(tmp_path: Path) -> None:
    path = saved_policy(tmp_path / "p", action_space=BOX, head="mog")
    cfg = edit_config(path, setter("head_kwargs", {"n_component": 3}))
    message = refused(lambda: Policy.load(path), cfg, "head_kwargs", "'n_component'")
    assert "n_components" in message  # the accepted ones are listed
    cfg = edit_config(path, setter("head_kwargs", {"n_components": "3"}))
    refused(lambda: Policy.load(path), cfg, "head_kwargs.n_components")
    cfg = edit_config(path, setter("head_kwargs", {"n_components": 0}))
    refused(lambda: Policy.load(path), cfg, "n_components")
    # a setting a config field owns is refused too (n_actions is the config's)
    path = saved_policy(tmp_path / "d")
    cfg = edit_config(path, setter("head_kwargs", {"n_actions": 3}))
    refused(lambda: Policy.load(path), cfg, "'n_actions'")
    cfg = edit_config(path, setter("encoder_kwargs", {"n_obs_steps": 3}))
    refused(lambda: Policy.load(path), cfg, "encoder_kwargs", "'n_obs_steps'")
    cfg = edit_config(path, setter("encoder_kwargs", {"widths": [3]}))
    refused(lambda: Policy.load(path), cfg, "encoder_kwargs", "'widths'", "activation")


def test_a_right_head_setting_still_loads(tmp_path: Path) -> None:
    cfg = PolicyConfig.for_spaces(
        OBS, BOX, head="mog", hidden_sizes=(8,), head_kwargs={"n_components": 3}
    )
    policy = Policy(cfg, seed=0)
    loaded = Policy.load(policy.save(tmp_path / "p"))
    assert loaded.head.K == 3


def test_fresh_configs_with_unknown_settings_are_config_errors() -> None:
    with pytest.raises(ConfigError, match=r"head_kwargs: unknown setting 'n_component'"):
        Policy(PolicyConfig.for_spaces(OBS, BOX, head="mog", head_kwargs={"n_component": 3}))
    with pytest.raises(ConfigError, match=r"encoder_kwargs: unknown setting 'chanels'"):
        Policy(PolicyConfig.for_spaces(OBS, BOX, encoder_kwargs={"chanels": [8]}))
    with pytest.raises(ConfigError, match="hidden_sizes"):
        PolicyConfig.for_spaces(OBS, BOX, hidden_sizes=(10**9,))
    with pytest.raises(ConfigError, match="chunk_size"):
        PolicyConfig.for_spaces(OBS, BOX, chunk_size=10**9)


def test_unknown_top_level_and_policy_keys_are_refused(tmp_path: Path) -> None:
    path = saved_policy(tmp_path / "p")
    cfg = edit_config(path, setter("n_layers", 3))
    refused(lambda: Policy.load(path), cfg, "unknown fields ['n_layers']")
    cfg = edit_config(path, lambda d: [d.pop("n_layers"), d.pop("act_dim")])
    refused(lambda: Policy.load(path), cfg, "missing fields ['act_dim']")
    meta = json.loads(cfg.read_text())
    meta["policy"] = [1, 2]
    cfg.write_text(json.dumps(meta))
    refused(lambda: Policy.load(path), cfg, "must be an object")
    path = saved_policy(tmp_path / "q")
    cfg = path / "config.json"
    good = json.loads(cfg.read_text())
    for key, value in [("hooks", "x"), ("task", ["cartpole"]), ("kind", "ensemble")]:
        cfg.write_text(json.dumps({**good, key: value}))
        refused(lambda: Policy.load(path), cfg, key)
    cfg.write_text(json.dumps({**good, "task": "cartpole"}))
    Policy.load(path)


def edit_tensors(path: Path, edit: Callable[[dict[str, torch.Tensor]], None]) -> Path:
    file = path / "model.safetensors"
    tensors = load_file(str(file))
    edit(tensors)
    save_file(tensors, str(file))
    return file


def first_weight(t: dict[str, torch.Tensor]) -> str:
    return next(k for k in sorted(t) if k.endswith("weight"))


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        (lambda t: t.pop(first_weight(t)), ["missing ['encoder.net.0.weight']"]),
        (lambda t: t.update(extra=torch.zeros(2)), ["unexpected ['extra']"]),
        (
            lambda t: t.update({first_weight(t): torch.zeros(3, 3)}),
            ["'encoder.net.0.weight'", "shape (3, 3)"],
        ),
        (
            lambda t: t.update({first_weight(t): t[first_weight(t)].double()}),
            ["'encoder.net.0.weight'", "dtype torch.float64"],
        ),
        (
            lambda t: t[first_weight(t)].view(-1).__setitem__(0, float("nan")),
            ["'encoder.net.0.weight'", "NaN or infinite"],
        ),
        (
            lambda t: t["obs_std"].__setitem__(1, float("inf")),
            ["'obs_std'", "NaN or infinite"],
        ),
        (
            lambda t: t["head.linear.bias"].__setitem__(0, -float("inf")),
            ["'head.linear.bias'", "NaN or infinite"],
        ),
    ],
)
def test_tensors_are_checked_against_the_config(
    tmp_path: Path, edit: Callable[[dict[str, torch.Tensor]], None], words: list[str]
) -> None:
    path = saved_policy(tmp_path / "p")
    file = edit_tensors(path, edit)
    refused(
        lambda: Policy.load(path),
        file,
        "weights do not match config" if "NaN" not in words[-1] else "",
        *words,
    )


def test_truncated_and_pickled_weights_are_refused(tmp_path: Path) -> None:
    path = saved_policy(tmp_path / "p")
    file = path / "model.safetensors"
    data = file.read_bytes()
    for cut in (len(data) - 1, len(data) // 2, 9, 0):
        file.write_bytes(data[:cut])
        refused(lambda: Policy.load(path), file, "not a valid safetensors file")
    file.write_bytes(pickle.dumps({"w": np.zeros(3)}))
    refused(lambda: Policy.load(path), file, "not a valid safetensors file")
    file.write_bytes(data)
    Policy.load(path)  # the untouched file still loads


def saved_ensemble(path: Path) -> Path:
    members = [Policy(PolicyConfig.for_spaces(OBS, ACT, hidden_sizes=(8,)), seed=s) for s in (0, 1)]
    return PolicyEnsemble(members).save(path)


@pytest.mark.parametrize(
    ("members", "words"),
    [
        (10**9, ["'members'", "[1, 256]"]),
        (-1, ["at least one member"]),
        ("2", ["'members'", "integer"]),
        (True, ["'members'", "integer"]),
        (2.0, ["'members'", "integer"]),
    ],
)
def test_ensemble_member_counts_are_bounded(tmp_path: Path, members: Any, words: list[str]) -> None:
    path = saved_ensemble(tmp_path / "e")
    meta = path / "ensemble.json"
    meta.write_text(json.dumps({"kind": "ensemble", "members": members}))
    refused(lambda: PolicyEnsemble.load(path), meta, *words)


def test_ensemble_members_are_each_validated(tmp_path: Path) -> None:
    path = saved_ensemble(tmp_path / "e")
    meta = path / "ensemble.json"
    meta.write_text(json.dumps({"kind": "ensemble", "members": 2, "extra": 1}))
    refused(lambda: PolicyEnsemble.load(path), meta, "unknown fields ['extra']")
    meta.write_text(json.dumps({"kind": "ensemble", "members": 2}))
    cfg = edit_config(path / "member_1", setter("hidden_sizes", [10**9]))
    refused(lambda: PolicyEnsemble.load(path), cfg, "hidden_sizes")


def saved_learner(path: Path) -> Path:
    members = [Policy(PolicyConfig.for_spaces(OBS, ACT, hidden_sizes=(8,)), seed=s) for s in (0, 1)]
    critic = SuccessQ(4, 1, 2, (8, 8))
    return ThriftyLearner(PolicyEnsemble(members), critic, 0.25).save(path)


def edit_thrifty(path: Path, edit: Callable[[dict[str, Any]], None]) -> Path:
    file = path / "thrifty.json"
    meta = json.loads(file.read_text())
    edit(meta)
    file.write_text(json.dumps(meta))
    return file


def critic_setter(field: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(meta: dict[str, Any]) -> None:
        meta["critic"][field] = value

    return edit


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        (critic_setter("hidden", [10**9]), ["critic.hidden[0]"]),
        (critic_setter("hidden", [65_536, 65_536]), ["critic", "over the bound"]),
        (critic_setter("hidden", []), ["critic.hidden"]),
        (critic_setter("obs_dim", "4"), ["critic.obs_dim"]),
        (critic_setter("obs_dim", 10**12), ["critic.obs_dim"]),
        (critic_setter("act_dim", -1), ["critic.act_dim"]),
        (critic_setter("n_actions", True), ["critic.n_actions"]),
        (critic_setter("depth", 3), ["'critic'"]),
        (setter("critic", [1]), ["'critic'"]),
        (setter("switch_back_discrepancy", float("nan")), ["switch_back_discrepancy"]),
        (setter("switch_back_discrepancy", "0.25"), ["switch_back_discrepancy"]),
        (setter("bonus", 1), ["unknown fields ['bonus']"]),
    ],
)
def test_thrifty_metadata_is_typed_and_bounded(
    tmp_path: Path, edit: Callable[[dict[str, Any]], None], words: list[str]
) -> None:
    path = saved_learner(tmp_path / "l")
    file = edit_thrifty(path, edit)
    refused(lambda: ThriftyLearner.load(path), file, *words)


def test_critic_tensors_are_checked(tmp_path: Path) -> None:
    path = saved_learner(tmp_path / "l")
    file = path / "critic.safetensors"
    good = load_file(str(file))
    bad = dict(good)
    bad["q1.1.weight"] = torch.full_like(good["q1.1.weight"], float("nan"))
    save_file(bad, str(file))
    refused(lambda: ThriftyLearner.load(path), file, "'q1.1.weight'", "NaN")
    bad = {k: v for k, v in good.items() if k != "obs_std"}
    save_file(bad, str(file))
    refused(lambda: ThriftyLearner.load(path), file, "missing ['obs_std']")
    save_file(good, str(file))
    assert ThriftyLearner.load(path).critic is not None
