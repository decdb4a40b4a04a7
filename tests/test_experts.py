"""The built-in tasks' scripted experts: seeded returns, success rates and queryability."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import protege.tasks
from protege.errors import ConfigError
from protege.experts.base import Expert
from protege.experts.classic import LunarLanderExpert
from protege.tasks import EpisodeOutcome

CLASSIC = [
    "cartpole",
    "lunarlander",
    "lunarlander-continuous",
    "pendulum",
    "mountaincar-continuous",
]
N_EPISODES = 20

# Fraction of the 20 seeded episodes the task's own success test must pass.
MIN_SUCCESS = {
    "cartpole": 1.0,
    "mountaincar-continuous": 1.0,
    "lunarlander": 0.9,
    "lunarlander-continuous": 0.9,
    "pendulum": 0.5,  # return ≥ −200 is out of reach from some bottom starts
}


def _rollouts(name: str) -> tuple[list[EpisodeOutcome], list[np.ndarray]]:
    """Run the task's expert on seeds 0..19; return the outcomes and final observations."""
    task = protege.tasks.make(name)
    env = task.make_env()
    expert = task.make_expert()
    expert.reset(seed=0)
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
