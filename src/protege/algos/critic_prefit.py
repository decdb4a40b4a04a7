"""A critic that starts out knowing the demonstrations' values: fit before the first update.

:class:`~protege.algos.ppo.PPO` with ``prefit`` (``protege finetune --critic-prefit N``) fits
its critic to :class:`CriticPrefit`'s targets at its first update, after the observation
renormalization and before any advantage: :func:`demo_returns` makes them from the
demonstrations (each step's discounted return to its episode's end; a time-limited
episode's tail completed by the critic's own value of its last observation), and
:func:`prefit_critic` fits them. No env steps are spent, unlike the critic-only warm-up
updates. The demonstrator's returns are the values of *its* policy: where the policy being
fine-tuned does worse they are too high, and PPO's own targets correct them from the
first update on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from protege.algos.critics import mc_returns
from protege.algos.rl_rollout import RolloutBatch, derived_seed
from protege.data.transitions import Transitions

if TYPE_CHECKING:
    from protege.algos.ppo import PPO


@dataclass
class CriticPrefit:
    """Returns to fit the critic to before the first update (:func:`prefit_critic`).

    Step ``i``'s target is ``returns[i] + tail_discount[i] · V(tail_obs[i])``: the discounted
    sum of its episode's remaining rewards and, for an episode cut off by a time limit, the
    critic's value of the observation after its last step, discounted by γ^(steps to it)
    (``tail_discount`` 0 for a terminated episode; both None: every episode terminated),
    recomputed from the critic every ``refresh`` steps."""

    obs: np.ndarray
    returns: np.ndarray
    steps: int
    tail_discount: np.ndarray | None = None
    tail_obs: np.ndarray | None = None
    refresh: int = 100


def demo_returns(demos: Transitions, gamma: float, steps: int) -> CriticPrefit:
    """The critic pre-fit's targets on ``demos``: each step's discounted return to its
    episode's end and, where a time limit cut the episode off, the discount to its final
    observation (the critic's value of it completes the return)."""
    obs = np.asarray(demos.obs, np.float32)
    tail_discount = tail_obs = None
    if demos.terminated is not None and demos.final_obs is not None:
        cut = ~np.asarray(demos.terminated, bool)
        if cut.any():
            ep = demos.episode_of_step()
            end = (demos.episode_starts + demos.episode_lengths)[ep]
            tail_discount = np.where(cut[ep], gamma ** (end - np.arange(len(obs))), 0.0)
            tail_obs = np.asarray(demos.final_obs, np.float32)[ep]
    return CriticPrefit(obs, mc_returns(demos, gamma), steps, tail_discount, tail_obs)


def batch_returns(
    batch: RolloutBatch, rewards: np.ndarray, gamma: float, steps: int
) -> CriticPrefit:
    """The pre-fit's targets on a rollout batch of whole episodes (``rewards``: what the
    learner trains on): each step's discounted return to its episode's end and, for an
    episode cut off by a time limit, the discount to the observation after its last step."""
    n = len(rewards)
    returns, tail_discount = np.zeros(n), np.zeros(n)
    tail_obs = np.zeros_like(np.asarray(batch.next_obs, np.float32))
    running = discount = 0.0
    tail = tail_obs[0] if n else None
    for k in range(n - 1, -1, -1):
        if batch.last[k]:
            running = 0.0
            discount = 0.0 if batch.terminal[k] else gamma
            tail = batch.next_obs[k]
        else:
            discount *= gamma
        running = float(rewards[k]) + gamma * running
        returns[k], tail_discount[k], tail_obs[k] = running, discount, tail
    obs = np.asarray(batch.obs, np.float32)
    return CriticPrefit(obs, returns, steps, tail_discount, tail_obs)


def prefit_critic(learner: PPO, prefit: CriticPrefit) -> dict[str, float]:
    """Fit ``learner``'s critic to ``prefit``'s targets for ``prefit.steps`` Adam steps
    (``critic_lr``, minibatches of ``minibatch_size`` drawn from the seed), fixing the
    value scale at the returns' standard deviation if not yet fixed. Returns the critic's
    root-mean-square error on the targets, in return units, before and after."""
    cfg = learner.config
    returns = np.asarray(prefit.returns, np.float64)
    if learner.value_scale == 0.0:
        learner.value_scale = max(float(np.std(returns)), 1e-3)
    scale = learner.value_scale

    def normalized(x: np.ndarray) -> torch.Tensor:
        return learner.policy.normalize_obs(torch.as_tensor(x, dtype=torch.float32)).detach()

    obs_n = normalized(prefit.obs)
    tail_n = None
    if prefit.tail_discount is not None and prefit.tail_obs is not None:
        tail_n = normalized(prefit.tail_obs)

    def targets() -> torch.Tensor:
        t = torch.as_tensor(returns / scale, dtype=torch.float32)
        if tail_n is not None:
            with torch.no_grad():
                v = learner.critic(tail_n).squeeze(-1)
            t = t + torch.as_tensor(prefit.tail_discount, dtype=torch.float32) * v
        return t

    def rmse(target: torch.Tensor) -> float:
        with torch.no_grad():
            err = (learner.critic(obs_n).squeeze(-1) - target).pow(2).mean().sqrt()
        return float(err) * scale

    target = targets()
    before = rmse(target)
    opt = torch.optim.Adam(learner.critic.parameters(), lr=cfg.critic_lr)
    g = torch.Generator().manual_seed(derived_seed(cfg.seed, 5))
    size = min(cfg.minibatch_size, len(target))
    for step in range(prefit.steps):
        if tail_n is not None and step % prefit.refresh == 0:
            target = targets()
        idx = torch.randint(len(target), (size,), generator=g)
        loss = (learner.critic(obs_n[idx]).squeeze(-1) - target[idx]).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(learner.critic.parameters(), cfg.max_grad_norm)
        opt.step()
    return {"prefit_rmse_before": before, "prefit_rmse_after": rmse(targets())}
