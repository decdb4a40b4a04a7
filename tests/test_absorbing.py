"""Terminations as absorbing states in adversarial imitation (issue 16, part 4): terminated
episodes (not time-limit truncations) lead to the absorbing state on both sides, the
discriminator sees it flagged, and the PPO return bootstraps a termination with its reward."""

from __future__ import annotations

import dataclasses
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

from protege.algos.adversarial import AdversarialReward
from protege.algos.adversarial_inputs import (
    ExpertSteps,
    absorbing_mass,
    uses_absorbing,
    uses_bc_start,
)
from protege.algos.ppo import PPO
from protege.algos.rl_rollout import gae
from protege.configs.adversarial import AdversarialConfig
from protege.configs.policy import PolicyConfig
from protege.configs.rl import PPOConfig
from protege.errors import ConfigError
from protege.experts.adapters import CallableExpert
from protege.policies.policy import Policy
from protege.rewards.discriminator import DiscriminatorNet, spec_for
from protege.tasks.base import Task


class CoinEnd(gym.Env):
    """Each episode either terminates after 2 steps or runs until its time limit (3 steps,
    a truncation), by a coin drawn at reset."""

    observation_space = gym.spaces.Box(-10.0, 10.0, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, render_mode: Any = None):
        self.t, self.ends = 0, False

    def reset(self, *, seed: int | None = None, options: Any = None) -> Any:
        super().reset(seed=seed)
        self.t, self.ends = 0, bool(self.np_random.random() < 0.5)
        return np.array([0.0, float(self.ends)], np.float32), {}

    def step(self, action: Any) -> Any:
        self.t += 1
        obs = np.array([float(self.t), float(self.ends)], np.float32)
        return obs, 1.0, self.ends and self.t == 2, False, {}


COIN = Task(
    name="coin",
    env_id=CoinEnd,
    expert_factory=lambda: CallableExpert(lambda obs: np.zeros(len(obs), np.int64)),
    horizon=3,
)


def coin_batch(rollout_steps: int, n_envs: int) -> tuple[Policy, Any]:
    """A small categorical policy and one PPO batch of its episodes on the coin task."""
    policy = Policy(PolicyConfig.for_spaces(*COIN.spaces, hidden_sizes=(8,), head="categorical"))
    learner = PPO(policy, COIN, PPOConfig(rollout_steps=rollout_steps, n_envs=n_envs, seed=0))
    try:
        return policy, learner.collect(0)
    finally:
        learner.close()


def test_gae_bootstraps_a_termination_with_the_absorbing_value() -> None:
    r, v, nxt = np.ones(4), np.zeros(4), np.full(4, 10.0)
    last = np.array([False, True, False, True])
    terminal = np.array([False, True, False, False])  # ep 1 terminated, ep 2 truncated
    adv, _ = gae(r, v, nxt, terminal, last, gamma=0.5, lam=1.0, terminal_value=4.0)
    assert np.allclose(adv, [1 + 0.5 * 3, 1 + 0.5 * 4, 1 + 0.5 * 6, 1 + 0.5 * 10])


def test_terminations_not_truncations_end_in_the_absorbing_state() -> None:
    policy, batch = coin_batch(rollout_steps=20, n_envs=4)
    lengths = np.asarray(batch.episode_lengths)
    assert set(lengths.tolist()) == {2, 3}  # both kinds of ending occurred
    ends = np.flatnonzero(batch.last)
    assert batch.terminal[ends].tolist() == (lengths == 2).tolist()
    assert not batch.terminal[~batch.last].any()

    expert_obs = np.array([[0, 1], [1, 1], [0, 0], [1, 0], [2, 0]], np.float32)
    expert = ExpertSteps(
        obs=expert_obs,
        actions=np.zeros(5, np.int64),
        next_obs=expert_obs + 1,
        done=np.array([False, True, False, False, False]),  # one terminated, one truncated
        length=np.array([2, 2, 3, 3, 3]),
    )
    # a terminated episode spends what its time limit had left in the absorbing state
    assert absorbing_mass(expert.done, expert.length, 10).tolist() == [0, 8, 0, 0, 0]
    cfg = AdversarialConfig(disc_updates=2, disc_batch_size=8, disc_hidden_sizes=(8,))
    assert uses_absorbing(cfg, expert)
    assert not uses_absorbing(AdversarialConfig(absorbing="off"), expert)
    never = dataclasses.replace(expert, done=np.zeros(5, bool))  # CartPole's, Pendulum's
    assert not uses_absorbing(cfg, never) and not uses_bc_start(cfg, never)
    assert uses_bc_start(cfg, expert)
    assert not uses_bc_start(AdversarialConfig(state_only=True), expert)
    spec = spec_for(
        "gail", *COIN.spaces, expert.obs, state_only=False, hidden_sizes=(8,), gamma=0.9,
        spectral_norm=False, absorbing=True,
    )  # fmt: skip
    reward = AdversarialReward(DiscriminatorNet(spec), policy, expert, cfg, seed=0, horizon=3)
    metrics = reward.update(batch, 0)
    n_term = int((lengths == 2).sum())  # each with 3 - 2 = 1 step of absorbing state
    assert float(reward.replay["mass"].sum()) == n_term
    share_e, share_p = reward.absorbing_shares()
    assert share_e == pytest.approx(1 / 6)
    assert share_p == pytest.approx(n_term / (n_term + len(batch)))
    assert metrics["absorbing_share_policy"] == pytest.approx(share_p)
    r = reward.rewards(batch)
    std = float(np.std(reward.raw_rewards(batch).numpy(), ddof=1))
    r_abs = reward.absorbing_reward() / std
    assert r_abs > 0 and reward.terminal_value(0.9) == pytest.approx(r_abs / 0.1, rel=1e-5)
    assert r.shape == (len(batch),)


def test_the_absorbing_state_is_its_own_flagged_input() -> None:
    obs_space = gym.spaces.Box(-10.0, 10.0, (2,), np.float32)
    act_space = gym.spaces.Discrete(3)
    demo_obs = np.array([[1.0, 2.0], [3.0, 5.0]], np.float32)
    kw: dict[str, Any] = dict(hidden_sizes=(4,), gamma=0.9, spectral_norm=False)
    net = DiscriminatorNet(spec_for("airl", obs_space, act_space, demo_obs, state_only=False,
                                    absorbing=True, **kw))  # fmt: skip
    obs = torch.tensor([[1.0, 2.0], [3.0, 5.0], [7.0, 7.0]])
    act = torch.tensor([0, 2, 1])
    done = torch.tensor([False, True, False])
    here = torch.tensor([False, False, True])
    x = net.inputs(obs, act, obs + 1, done, here)
    assert x["s"][:, -1].tolist() == [0, 0, 1] and x["s2"][:, -1].tolist() == [0, 1, 1]
    assert (x["s"][2] == 0).sum() == 2 and (x["s2"][1:, :2] == 0).all()  # zeroed states
    assert x["a"][2].abs().sum() == 0 and x["a"][:2].sum(-1).tolist() == [1, 1]
    # AIRL: a terminal step's h(s') is h of the absorbing state, not 0
    h_abs = net.h(x["s2"][1:2]).item()
    f = net.f_of(x, done)
    expect = net.g_of(x)[1] + 0.9 * h_abs - net.h(x["s"][1:2]).item()
    assert f[1].item() == pytest.approx(expect.item(), abs=1e-6)
    plain = DiscriminatorNet(spec_for("gail", obs_space, act_space, demo_obs, state_only=False,
                                      **kw))  # fmt: skip
    assert plain.inputs(obs, act, obs, done, here)["s"].shape == (3, 2)
    with pytest.raises(ConfigError, match="absorbing"):
        AdversarialConfig(absorbing="yes")
    with pytest.raises(ConfigError, match="bc_start must be one of auto, on, off"):
        AdversarialConfig(bc_start="bc")


def test_airl_s_entropy_bonus_is_off_from_a_bc_start_and_can_be_set() -> None:
    assert AdversarialConfig().entropy_weight(bc_start=True) == 0.0
    assert AdversarialConfig().entropy_weight(bc_start=False) == 1.0
    assert AdversarialConfig(airl_entropy=0.5).entropy_weight(bc_start=True) == 0.5
    with pytest.raises(ConfigError, match="airl_entropy"):
        AdversarialConfig(airl_entropy=-1.0)
    policy, batch = coin_batch(rollout_steps=8, n_envs=2)
    obs = np.zeros((2, 2), np.float32)
    expert = ExpertSteps(obs=obs, actions=np.zeros(2, np.int64), next_obs=obs + 1,
                         done=np.zeros(2, bool), length=np.array([3, 3]))  # fmt: skip
    spec = spec_for(
        "airl", *COIN.spaces, obs, state_only=False, hidden_sizes=(8,), gamma=0.9,
        spectral_norm=False, absorbing=False,
    )  # fmt: skip
    net, cfg = DiscriminatorNet(spec), AdversarialConfig()
    rewards = {
        c: AdversarialReward(net, policy, expert, cfg, seed=0, horizon=3, entropy=c).raw_rewards(
            batch
        )
        for c in (0.0, 0.5, 1.0)
    }
    logp = batch.logp.float()
    assert (logp < -1e-3).all()  # a stochastic policy: the bonus is not zero
    assert torch.allclose(rewards[1.0] - rewards[0.0], -logp, atol=1e-5)
    assert torch.allclose(rewards[0.5] - rewards[0.0], -0.5 * logp, atol=1e-5)
