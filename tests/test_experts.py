"""The built-in tasks' scripted experts: seeded returns, success rates and queryability."""

from __future__ import annotations

import re

import gymnasium as gym
import numpy as np
import pytest

import protege
import protege.tasks
from protege.data.store import Store
from protege.errors import ConfigError
from protege.experts import CallableExpert, ExpertActor, PolicyExpert, SB3Expert
from protege.experts.base import Expert
from protege.experts.classic import LunarLanderExpert
from protege.policies import Policy, PolicyConfig
from protege.tasks import EpisodeOutcome, Task

CLASSIC = [
    "cartpole",
    "lunarlander",
    "lunarlander-tight",
    "lunarlander-steady",
    "lunarlander-continuous",
    "pendulum",
    "mountaincar-continuous",
    "mountaincar",
]
N_EPISODES = 20

# Fraction of the 20 seeded episodes the task's own success test must pass.
MIN_SUCCESS = {
    "cartpole": 1.0,
    "mountaincar-continuous": 1.0,
    "mountaincar": 1.0,
    "lunarlander": 0.9,
    "lunarlander-tight": 0.9,
    "lunarlander-steady": 1.0,
    "lunarlander-continuous": 0.9,
    "pendulum": 0.5,  # return ≥ −200 is out of reach from some bottom starts
}


def _rollouts(name: str) -> tuple[list[EpisodeOutcome], list[np.ndarray]]:
    """Run the task's expert on seeds 0..19; return the outcomes and final observations."""
    task = protege.tasks.make(name)
    env = task.make_env()
    expert = task.make_expert()
    expert.begin_run(seed=0)
    outcomes, finals = [], []
    try:
        for seed in range(N_EPISODES):
            obs, _ = env.reset(seed=seed)
            ret, length = 0.0, 0
            while True:
                obs, reward, terminated, truncated, info = env.step(expert.act(obs[None])[0])
                ret += float(reward)
                length += 1
                if terminated or truncated:
                    break
            assert length <= task.horizon
            outcomes.append(EpisodeOutcome(ret, length, terminated, truncated, dict(info)))
            finals.append(obs)
    finally:
        env.close()
    return outcomes, finals


@pytest.mark.parametrize("name", CLASSIC)
def test_expert_reaches_its_level(name: str) -> None:
    task = protege.tasks.make(name)
    assert task.expert_return is not None
    outcomes, finals = _rollouts(name)
    returns = np.array([o.episode_return for o in outcomes])
    success = np.mean([task.success(o) for o in outcomes])
    assert returns.mean() >= task.expert_return, (name, returns.round(1))
    assert success >= MIN_SUCCESS[name], (name, success, returns.round(1))
    if name == "pendulum":
        # However costly the swing-up, every episode ends balanced upright (cos θ ≈ 1, at rest).
        final = np.stack(finals)
        assert (final[:, 0] > 0.99).all() and (np.abs(final[:, 2]) < 0.1).all(), final


@pytest.mark.parametrize("name", CLASSIC)
def test_expert_is_queryable_anywhere(name: str) -> None:
    """Batched labels at arbitrary states: right shape, dtype and inside the action space."""
    task = protege.tasks.make(name)
    obs_space, act_space = task.spaces
    obs_space.seed(0)
    batch = np.stack([obs_space.sample() for _ in range(64)])
    expert = task.make_expert()
    assert isinstance(expert, Expert)
    actions = expert.act(batch, None)
    if isinstance(act_space, gym.spaces.Discrete):
        assert actions.shape == (64,) and actions.dtype == np.int64
        assert ((actions >= 0) & (actions < act_space.n)).all()
    else:
        assert isinstance(act_space, gym.spaces.Box)
        assert actions.shape == (64, *act_space.shape) and actions.dtype == np.float32
        assert np.isfinite(actions).all()
        assert (actions >= act_space.low).all() and (actions <= act_space.high).all()
    # Row i of a batch is the label of observation i alone.
    np.testing.assert_array_equal(expert.act(batch[5:6]), actions[5:6])
    with pytest.raises(ValueError):
        expert.act(batch[0])


@pytest.mark.parametrize("continuous", [False, True])
def test_lunarlander_expert_matches_gymnasium_heuristic(continuous: bool) -> None:
    from gymnasium.envs.box2d.lunar_lander import heuristic

    rng = np.random.default_rng(0)
    obs = rng.normal(0.0, 0.6, size=(500, 8)).astype(np.float32)
    obs[:, 6:] = rng.random((500, 2)) < 0.2  # leg contacts are 0/1
    stub = type("Stub", (), {"unwrapped": type("U", (), {"continuous": continuous})})
    expected = np.array([heuristic(stub, row) for row in obs])
    got = LunarLanderExpert(continuous=continuous, robust=False).act(obs)
    np.testing.assert_array_equal(got, expected.astype(got.dtype))


def test_unknown_task_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="nope"):
        protege.tasks.make("nope")


# ------------------------------------------------------------- adapters: SB3 and policies
@pytest.fixture(scope="module")
def sb3():
    return pytest.importorskip("stable_baselines3", reason="stable-baselines3 is a dev extra")


def _sb3_model(sb3, algo: str, task_name: str):
    """An untrained model (random weights, seeded): its predictions are arbitrary, so an
    adapter that altered them would show."""
    env = protege.tasks.make(task_name).make_env()
    return getattr(sb3, algo)("MlpPolicy", env, seed=0, device="cpu")


@pytest.mark.parametrize(("algo", "name"), [("PPO", "lunarlander"), ("PPO", "pendulum")])
def test_sb3_expert_labels_with_the_models_own_predictions(tmp_path, sb3, algo, name):
    task = protege.tasks.make(name)
    model = _sb3_model(sb3, algo, name)
    expert = SB3Expert(model)
    protege.collect(task, tmp_path / "s", episodes=2, n_envs=2, seed=0, expert=expert)
    data = Store.open(tmp_path / "s").transitions()
    want, _ = model.predict(data.obs, deterministic=True)
    _same_actions(data.actions, want.reshape(data.actions.shape))
    assert (data.actions != task.make_expert().act(data.obs)).any()  # not the task's expert
    batch = data.obs[:16]
    got = expert.act(batch)
    _, act_space = task.spaces
    if isinstance(act_space, gym.spaces.Discrete):
        assert got.shape == (16,) and got.dtype == np.int64
    else:
        assert got.shape == (16, *act_space.shape) and got.dtype == np.float32
    # Batched: row i is the model's prediction for observation i alone.
    rows = [model.predict(o, deterministic=True)[0] for o in batch]
    _same_actions(got, np.stack(rows).reshape(got.shape))


def _same_actions(got: np.ndarray, want: np.ndarray) -> None:
    """Equal: exactly for discrete actions, up to float rounding (batch size changes the
    order of a matrix product's sums) for continuous ones."""
    if got.dtype.kind == "f":
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    else:
        np.testing.assert_array_equal(got, want)


def _saved_policy(path, task_name: str, **kw) -> Policy:
    """A small random policy with non-trivial normalization, saved to ``path``."""
    task = protege.tasks.make(task_name)
    policy = Policy(PolicyConfig.for_spaces(*task.spaces, hidden_sizes=(16,), **kw), seed=0)
    rng = np.random.default_rng(0)
    obs = rng.normal(0.5, 2.0, (64, *task.spaces[0].shape)).astype(np.float32)
    act_space = task.spaces[1]
    if isinstance(act_space, gym.spaces.Discrete):
        actions = rng.integers(0, act_space.n, 64)
    else:
        actions = rng.uniform(-1, 1, (64, *act_space.shape)).astype(np.float32)
    policy.set_normalization(obs, actions)
    policy.save(path)
    return policy


@pytest.mark.parametrize(("name", "kw"), [("lunarlander", {}), ("pendulum", {"chunk_size": 4})])
def test_policy_expert_labels_with_the_saved_policys_predictions(tmp_path, name, kw):
    """The loaded policy labels exactly as the one that was saved; a chunked policy labels
    each state with the first action of the chunk it predicts there, keeping no queue."""
    task = protege.tasks.make(name)
    policy = _saved_policy(tmp_path / "p", name, **kw)
    expert = PolicyExpert.load(tmp_path / "p")
    protege.collect(task, tmp_path / "s", episodes=2, n_envs=2, seed=0, expert=expert)
    data = Store.open(tmp_path / "s").transitions()
    if policy.config.discrete:
        _same_actions(data.actions, policy.act(data.obs))
    else:
        first = policy.predict_chunk(data.obs, deterministic=True)[:, 0]
        _same_actions(data.actions, first.astype(np.float32))
    assert (data.actions != task.make_expert().act(data.obs)).any()  # not the task's expert
    again = expert.act(data.obs[:8])
    np.testing.assert_array_equal(again, expert.act(data.obs[:8]))  # stateless
    _same_actions(again, data.actions[:8])


def test_an_sb3_model_for_other_spaces_is_refused(tmp_path, sb3):
    cartpole = _sb3_model(sb3, "PPO", "cartpole")
    lander = _sb3_model(sb3, "PPO", "lunarlander")
    with pytest.raises(
        ConfigError,
        match=r"SB3Expert \(PPO model\): the model's observation space \(Box float32 \(4,\)"
        r".*does not match the task's \(Box float32 \(8,\)",
    ):
        protege.collect(
            protege.tasks.make("lunarlander"), tmp_path / "s", 2, expert=SB3Expert(cartpole)
        )
    assert not (tmp_path / "s").exists()  # no empty store left behind
    with pytest.raises(
        ConfigError,
        match=r"the model's action space \(Discrete\(4\)\) does not match the task's "
        r"\(Box float32 \(2,\)",
    ):
        protege.collect(
            protege.tasks.make("lunarlander-continuous"),
            tmp_path / "s",
            2,
            expert=SB3Expert(lander),
        )
    with pytest.raises(ConfigError, match=r"observations of shape \(4,\), got .* \(3, 8\)"):
        SB3Expert(cartpole).act(np.zeros((3, 8), np.float32))


def test_a_policy_for_other_spaces_is_refused(tmp_path):
    _saved_policy(tmp_path / "p", "cartpole")
    config = re.escape(str(tmp_path / "p" / "config.json"))
    expert = PolicyExpert.load(tmp_path / "p")
    with pytest.raises(
        ConfigError,
        match=rf"{config}: the policy's observations \(shape \(4,\)\) does not match the "
        r"task's \(Box float32 \(3,\)",
    ):
        protege.collect(protege.tasks.make("pendulum"), tmp_path / "s", 2, expert=expert)
    # A task whose expert is that policy: evaluating anything on it, or the expert itself.
    acrobot = Task("acrobot", "Acrobot-v1", lambda: expert, horizon=50)  # obs (6,)
    with pytest.raises(ConfigError, match=rf"{config}: the policy's observations"):
        protege.evaluate(ExpertActor(CallableExpert(np.zeros_like)), acrobot, episodes=1)
    with pytest.raises(ConfigError, match=rf"{config}: the policy's observations"):
        protege.rollout.evaluate_expert(acrobot, episodes=1)
    with pytest.raises(ConfigError, match=rf"{config}: .* got an array of shape \(2, 6\)"):
        expert.act(np.zeros((2, 6), np.float32))
    lander = _saved_policy(tmp_path / "q", "lunarlander")
    with pytest.raises(
        ConfigError,
        match=r"the policy's action space \(Discrete\(4\)\) does not match the task's "
        r"\(Box float32 \(2,\)",
    ):
        protege.collect(
            protege.tasks.make("lunarlander-continuous"),
            tmp_path / "s",
            2,
            expert=PolicyExpert(lander),
        )
