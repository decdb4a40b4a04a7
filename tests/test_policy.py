"""Policies: heads fit their action spaces, save/load round-trips, checkpoints never unpickle."""

import json
import pickle

import gymnasium as gym
import numpy as np
import pytest
import torch

from protege.errors import CheckpointError, ConfigError, DataError
from protege.policies import Policy, PolicyConfig

OBS = gym.spaces.Box(-5, 5, (4,), np.float32)


@pytest.mark.usefixtures("both_paths")
@pytest.mark.parametrize(
    ("act_space", "head"),
    [
        (gym.spaces.Discrete(3), "categorical"),
        (gym.spaces.Box(-2, 2, (2,), np.float32), "mse"),
        (gym.spaces.Box(-2, 2, (2,), np.float32), "gaussian"),
    ],
)
def test_save_load_round_trip(tmp_path, act_space, head):
    torch.manual_seed(0)
    policy = Policy(PolicyConfig.for_spaces(OBS, act_space, head=head, hidden_sizes=(32, 32)))
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(100, 4)).astype(np.float32)
    acts = np.array([act_space.sample() for _ in range(100)])
    policy.set_normalization(obs, acts)
    policy.save(tmp_path / "p")
    assert sorted(p.name for p in (tmp_path / "p").iterdir()) == [
        "config.json",
        "model.safetensors",
    ]
    loaded = Policy.load(tmp_path / "p")
    assert loaded.config == policy.config
    np.testing.assert_array_equal(loaded.act(obs[:10]), policy.act(obs[:10]))
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    np.testing.assert_array_equal(
        loaded.act(obs[:10], deterministic=False, generator=g1),
        policy.act(obs[:10], deterministic=False, generator=g2),
    )
    out = policy.act(obs[:10])
    if isinstance(act_space, gym.spaces.Discrete):
        assert out.dtype == np.int64 and out.shape == (10,)
    else:
        assert out.dtype == np.float32 and out.shape == (10, 2)
        assert (out >= -2).all() and (out <= 2).all()


class Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_a_pickle_disguised_as_a_checkpoint_is_refused(tmp_path, capsys):
    policy = Policy(PolicyConfig.for_spaces(OBS, gym.spaces.Discrete(2), hidden_sizes=(8,)))
    policy.save(tmp_path / "p")
    (tmp_path / "p" / "model.safetensors").write_bytes(pickle.dumps({"w": Evil()}))
    with pytest.raises(CheckpointError, match="not a valid safetensors file"):
        Policy.load(tmp_path / "p")
    # torch.save output (a zip of pickles) is refused the same way
    torch.save({"w": torch.zeros(2)}, tmp_path / "p" / "model.safetensors")
    with pytest.raises(CheckpointError, match="not a valid safetensors file"):
        Policy.load(tmp_path / "p")
    assert "pwned" not in capsys.readouterr().out


def test_bad_checkpoints_name_the_file(tmp_path):
    with pytest.raises(CheckpointError, match=r"config\.json: missing"):
        Policy.load(tmp_path)
    policy = Policy(PolicyConfig.for_spaces(OBS, gym.spaces.Discrete(2), hidden_sizes=(8,)))
    policy.save(tmp_path / "p")
    cfg = tmp_path / "p" / "config.json"
    good = cfg.read_text()
    cfg.write_text("{oops")
    with pytest.raises(CheckpointError, match=r"config\.json: corrupt JSON"):
        Policy.load(tmp_path / "p")
    meta = json.loads(good)
    meta["policy"]["hidden_sizes"] = [16]
    cfg.write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="weights do not match config"):
        Policy.load(tmp_path / "p")
    meta["policy"]["bogus"] = 1
    cfg.write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=r"unknown fields \['bogus'\]"):
        Policy.load(tmp_path / "p")
    meta = json.loads(good)
    meta["policy"]["head"] = "nope"
    cfg.write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="unknown head 'nope'"):
        Policy.load(tmp_path / "p")


@pytest.mark.usefixtures("both_paths")
def test_observation_shape_mismatch_is_a_clear_error():
    policy = Policy(PolicyConfig.for_spaces(OBS, gym.spaces.Discrete(2), hidden_sizes=(8,)))
    with pytest.raises(DataError, match=r"expects observations of shape \(4,\), got \(5,\)"):
        policy.act(np.zeros((2, 5), np.float32))


def test_the_mlp_encoder_refuses_an_activation_it_does_not_implement():
    for encoder in ("mlp", "cnn"):
        obs_shape = (4,) if encoder == "mlp" else (36, 36, 3)
        cfg = PolicyConfig(
            obs_shape=obs_shape,
            act_dim=1,
            encoder=encoder,
            encoder_kwargs={"activation": "tanh"},
        )
        with pytest.raises(ConfigError, match=f"the {encoder} encoder: activation 'tanh'"):
            Policy(cfg)
    relu = PolicyConfig(obs_shape=(4,), act_dim=1, encoder_kwargs={"activation": "relu"})
    assert Policy(relu).config.encoder_kwargs == {"activation": "relu"}


def test_the_mlp_encoder_computes_what_its_modules_do():
    """One copy of the MLP arithmetic (protege.policies.mlp): the encoder's forward equals
    its nn.Sequential of Linear and ReLU modules to the bit."""
    policy = Policy(PolicyConfig(obs_shape=(3, 2), act_dim=1, hidden_sizes=(32, 16)), seed=0)
    obs = torch.randn(7, 3, 2)
    with torch.no_grad():
        assert torch.equal(policy.encoder(obs), policy.encoder.net(obs.flatten(1)))
    assert [m.out_features for m in policy.mlp_layers] == [32, 16, 1]


def test_head_must_fit_the_action_space():
    with pytest.raises(CheckpointError, match="does not fit a Discrete action space"):
        Policy(PolicyConfig.for_spaces(OBS, gym.spaces.Discrete(2), head="mse"))
    with pytest.raises(ConfigError, match="n_action_steps"):
        PolicyConfig.for_spaces(OBS, gym.spaces.Discrete(2), chunk_size=2, n_action_steps=3)


def test_normalization_is_saved_and_constant_features_are_left_alone(tmp_path):
    policy = Policy(PolicyConfig.for_spaces(OBS, gym.spaces.Box(-1, 1, (1,)), hidden_sizes=(8,)))
    obs = np.c_[np.random.default_rng(0).normal(3, 2, (500, 3)), np.ones(500)].astype(np.float32)
    policy.set_normalization(obs, np.full((500, 1), 0.5, np.float32))
    assert torch.allclose(policy.obs_mean[:3], torch.tensor([3.0] * 3), atol=0.3)
    assert policy.obs_std[3] == 1.0  # never divided by a zero std
    assert policy.act_scale[0] == 1.0
    policy.save(tmp_path / "p")
    loaded = Policy.load(tmp_path / "p")
    assert torch.equal(loaded.obs_mean, policy.obs_mean)


def test_seeded_construction_is_independent_of_global_state():
    cfg = PolicyConfig.for_spaces(OBS, gym.spaces.Discrete(2), hidden_sizes=(16,))
    torch.manual_seed(1)
    a = Policy(cfg, seed=3)
    torch.manual_seed(2)
    b = Policy(cfg, seed=3)
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(x, y), name
    assert not torch.equal(Policy(cfg, seed=4).head.linear.weight, a.head.linear.weight)


def _reference_act(policy: Policy, obs: np.ndarray) -> np.ndarray:
    """act() the long way: the modules' forward and the head's mode()."""
    with torch.inference_mode():
        feats = policy.features(policy.normalize_obs(torch.from_numpy(obs)))
        acts = policy.unnormalize_actions(policy.head.mode(feats)).numpy()[:, 0]
    if policy.config.discrete:
        return acts[:, 0].astype(np.int64)
    return np.clip(acts, policy._low, policy._high).astype(np.float32)


@pytest.mark.parametrize(
    ("act_space", "head"),
    [
        (gym.spaces.Discrete(3), "categorical"),
        (gym.spaces.Box(-2, 2, (2,), np.float32), "mse"),
        (gym.spaces.Box(-2, 2, (2,), np.float32), "gaussian"),
    ],
)
def test_fast_acting_path_matches_the_modules_and_follows_weight_changes(act_space, head):
    """(The acting plan itself; tests/test_bc.py and test_save_load_round_trip run with
    the fast paths off too.)"""
    policy = Policy(PolicyConfig.for_spaces(OBS, act_space, head=head, hidden_sizes=(32, 16)), 0)
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(200, 4)).astype(np.float32) * 3
    policy.set_normalization(obs, np.array([act_space.sample() for _ in range(200)]))
    policy.eval()

    def check() -> None:
        assert policy._fast_plan() is not None
        for n in (1, 8, 200):
            got, want = policy.act(obs[:n]), _reference_act(policy, obs[:n])
            assert got.dtype == want.dtype and got.shape == want.shape
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)

    check()
    before = policy.act(obs)
    with torch.no_grad():  # an in-place edit of one weight...
        policy.encoder.linears[1].weight.mul_(-1.5)
    check()  # ...is seen at once
    assert not np.array_equal(policy.act(obs), before)
    policy.load_state_dict(Policy(policy.config, seed=1).state_dict())
    check()
    policy.set_normalization(obs * 2 + 1, np.array([act_space.sample() for _ in range(200)]))
    check()
    policy.double()  # new tensors for every weight and statistic
    check()


def test_fast_acting_path_sees_flat_adamw_steps_and_bc_training(tmp_path):
    """BC trains through FlatAdamW's flat buffer; acting sees every step, during and after."""
    from protege.algos import bc
    from protege.algos.optim import FlatAdamW
    from protege.data.episode import Episode
    from protege.data.store import Store

    act_space = gym.spaces.Discrete(2)
    policy = Policy(PolicyConfig.for_spaces(OBS, act_space, hidden_sizes=(16,)), seed=0)
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(301, 4)).astype(np.float32)
    acts = (obs[:-1, 0] > 0).astype(np.int64)  # a rule BC learns in a few hundred steps

    box = gym.spaces.Box(-2, 2, (2,), np.float32)  # continuous outputs show stale weights
    regressor = Policy(PolicyConfig.for_spaces(OBS, box, hidden_sizes=(16,)), seed=0)
    opt = FlatAdamW(regressor.parameters(), lr=1e-2)
    before = regressor.act(obs)
    pred = regressor.head.mode(regressor.features(torch.from_numpy(obs)))
    pred.square().mean().backward()
    opt.step()
    assert not np.allclose(regressor.act(obs), before, atol=1e-3)
    np.testing.assert_allclose(regressor.act(obs), _reference_act(regressor, obs), atol=1e-6)
    opt.release()
    np.testing.assert_allclose(regressor.act(obs), _reference_act(regressor, obs), atol=1e-6)

    store = Store.create(tmp_path / "s", OBS, act_space, task="t")
    store.append(Episode(obs=obs, actions=acts, rewards=np.zeros(300, np.float32)))
    assert policy._fast_plan() is not None  # a plan of the untrained weights exists
    cfg = bc.BCConfig(steps=300, lr=1e-2, val_fraction=0, progress=False)
    bc.fit(policy, store.transitions(), cfg)
    assert (policy.act(obs[:-1]) == acts).mean() > 0.95
    np.testing.assert_array_equal(policy.act(obs[:-1]), _reference_act(policy, obs[:-1]))


def test_a_policy_saved_without_a_task_loads(tmp_path) -> None:
    """``protege train`` on a store that records no task saves ``task=None``: the checkpoint
    leaves the field out (it used to write null, which loading then refused)."""
    policy = Policy(PolicyConfig.for_spaces(OBS, gym.spaces.Discrete(2), hidden_sizes=(8,)), 0)
    policy.save(tmp_path / "p", extra={"task": None, "data": "somewhere"})
    back = Policy.load(tmp_path / "p")
    obs = np.zeros((3, 4), np.float32)
    np.testing.assert_array_equal(back.act(obs), policy.act(obs))
