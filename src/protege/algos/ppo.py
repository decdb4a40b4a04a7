"""PPO on a protege policy: a lean learner on protege's own rollout loop, reward pluggable.

**Why not stable-baselines3's PPO.** SB3's PPO owns its rollout loop (``collect_rollouts`` on
its own ``VecEnv``), its policies (``ActorCriticPolicy``) and its checkpoints (zip archives
with pickled objects). Reusing it here would mean replacing its loop to send rollouts through
protege's (episodes, seeding, observers, the store recording which episodes came from RL),
wrapping a protege :class:`~protege.policies.Policy` (normalization, any head with a
log-probability) as an SB3 policy and re-writing its checkpoints without pickle: more code
than the PPO update itself, which is ~100 lines below. So the learner is lean and protege's.

**The learner.** :class:`PPO` collects whole episodes through
:func:`protege.rollout.loop.rollout` (at least ``rollout_steps`` steps per update, in rollouts
of ``n_envs`` episodes, each seeded from ``(seed, update, call)``), computes GAE and runs the
clipped surrogate on the policy's own head (``log_prob`` of head-space actions: categorical,
Gaussian, mixture, binned). The critic is a separate MLP on the policy's normalized
observations, with its own optimizer and a value scale fixed at the first update. Every
random draw of update ``u`` (env seeds, action samples, minibatch order) derives from
``(seed, u)``, so the learner's state after an update (weights, optimizer moments, counters:
:meth:`PPO.state`) is all a resumed run needs to reach the same numbers.

**Pluggable.** The reward comes from a :class:`RewardSource` (the env's by default; GAIL,
AIRL or a preference model supply their own and may learn on every batch), and extra policy
losses are :class:`PolicyTerm` s (a KL anchor to a frozen policy, a BC loss on
demonstrations: :mod:`protege.algos.finetune`).

Example:
    >>> learner = PPO(policy, task, PPOConfig(seed=0))
    >>> while learner.env_steps < 100_000:
    ...     metrics = learner.step()          # collect one batch, update
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from protege.algos.critic_prefit import CriticPrefit, batch_returns, prefit_critic
from protege.algos.finetune_checkpoint import load_optimizers, optimizer_tensors
from protege.algos.finetune_checkpoint import part as tensor_part
from protege.algos.rl_rollout import (
    RolloutBatch,
    SamplingActor,
    collect_episodes,
    derived_seed,
    gae,
)
from protege.configs.rl import PPOConfig
from protege.errors import ConfigError, TrainingError
from protege.policies.encoders import MLPEncoder
from protege.policies.heads import HEADS
from protege.policies.policy import Policy
from protege.rollout.observers import Observer
from protege.tasks.base import Task


def log_prob_heads() -> list[str]:
    """The registered heads RL can fine-tune: those with a tractable log-probability."""
    return sorted(name for name, cls in HEADS.items() if cls.has_log_prob)


def check_trainable(policy: Policy, where: str) -> None:
    """A ConfigError naming ``where`` unless RL can train ``policy``: a head with a
    log-probability, one action per step and no observation history."""
    cfg = policy.config
    if not policy.head.has_log_prob:
        kind = "categorical" if cfg.discrete else "gaussian"
        raise ConfigError(
            f"{where}: head {cfg.head!r} has no log-probability, so RL cannot fine-tune it; "
            f"heads that can: {', '.join(log_prob_heads())}. Retrain the policy with one "
            f"(`protege train ... --head {kind}`) and fine-tune that"
        )
    if cfg.chunk_size != 1 or cfg.n_obs_steps != 1:
        raise ConfigError(
            f"{where}: RL fine-tunes one-step policies (chunk_size 1, n_obs_steps 1), "
            f"not chunk_size {cfg.chunk_size}, n_obs_steps {cfg.n_obs_steps}"
        )


@torch.no_grad()
def renormalize_obs(policy: Policy, obs: np.ndarray) -> bool:
    """Re-express ``policy``'s observation normalization with the mean and standard deviation
    of ``obs`` (its own rollouts), changing the first layer so the policy's function stays the
    same (to float rounding). Returns False (and changes nothing) unless the policy normalizes
    observations with an MLP encoder.

    Why: statistics from a few demonstrations are narrow (an expert keeps CartPole's pole
    within a hundredth of a radian), so the states RL explores become inputs of size 10-100
    and every gradient step on the first layer moves the policy far. In the rollouts' own
    units the same function is well conditioned. With ``x̃ = (x − μ)/σ`` and first layer
    ``W x̃ + b``, new statistics (μ', σ') give ``W' = W·diag(σ'/σ)``, ``b' = b + W (μ' − μ)/σ``.
    """
    if not policy.config.normalize_obs or type(policy.encoder) is not MLPEncoder:
        return False
    if not policy.encoder.linears:
        return False
    x = np.asarray(obs, np.float64).reshape(len(obs), -1)
    mean_new = torch.as_tensor(x.mean(0), dtype=torch.float32)
    std = x.std(0)
    std_new = torch.as_tensor(np.where(std < 1e-6, 1.0, std), dtype=torch.float32)
    mean_old, std_old = policy.obs_mean.reshape(-1), policy.obs_std.reshape(-1)
    first = policy.encoder.linears[0]
    w = first.weight.double()
    first.bias.copy_(first.bias.double() + w @ ((mean_new - mean_old) / std_old).double())
    first.weight.copy_(w * (std_new / std_old).double()[None, :])
    policy.obs_mean.copy_(mean_new.reshape(policy.obs_mean.shape))
    policy.obs_std.copy_(std_new.reshape(policy.obs_std.shape))
    return True


class Critic(nn.Module):
    """V(s): a tanh MLP on the policy's normalized observations (flattened)."""

    def __init__(self, obs_dim: int, hidden_sizes: Sequence[int]):
        super().__init__()
        layers: list[nn.Module] = []
        width = obs_dim
        for h in hidden_sizes:
            layers += [nn.Linear(width, h), nn.Tanh()]
            width = h
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, obs_n: torch.Tensor) -> torch.Tensor:
        return self.net(obs_n.flatten(1))


class RewardSource:
    """Where the learner's rewards come from (the env's by default).

    GAIL, AIRL and preference learning subclass it: :meth:`update` may train a model on each
    new batch (the policy's latest samples) before :meth:`rewards` labels it; :meth:`tensors`
    and :meth:`load_tensors` carry its learned state through checkpoints."""

    name = "env"

    def update(self, batch: RolloutBatch, update: int) -> dict[str, float]:
        """Learn from the policy's newest batch (nothing by default); returns metrics."""
        return {}

    def rewards(self, batch: RolloutBatch) -> np.ndarray:
        """(len(batch),) the reward of every step."""
        return batch.env_rewards

    def terminal_value(self, gamma: float) -> float:
        """The value of what follows a termination, in the units of the latest
        :meth:`rewards` (0: nothing; a source with an absorbing state returns its reward's
        discounted sum, ``r / (1 − γ)``). Truncated episodes bootstrap from the critic."""
        return 0.0

    def tensors(self) -> dict[str, torch.Tensor]:
        return {}

    def load_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        """Restore what :meth:`tensors` returned."""


class PolicyTerm:
    """An extra loss on the policy, added to PPO's with a weight that may change per update."""

    name = "term"

    def weight(self, update: int) -> float:
        return 0.0

    def loss(self, policy: Policy, mb: dict[str, torch.Tensor], update: int) -> torch.Tensor:
        """The term on one PPO minibatch ``mb`` (``obs``: observations, ``obs_n``: them
        normalized by the policy, ``raw``: head-space actions, ``logp_old``: their
        log-probabilities when sampled). A frozen policy normalizes ``obs`` itself: the
        learner re-expresses the policy's normalization at its first update
        (``PPOConfig.renormalize_obs``), so ``obs_n`` is in the policy's units only."""
        raise NotImplementedError

    def observe(self, batch: RolloutBatch, rewards: np.ndarray, update: int) -> None:
        """See each update's batch and its rewards before the update (nothing by default)."""

    def tensors(self) -> dict[str, torch.Tensor]:
        """What the term learned from batches, for the learner's checkpoint."""
        return {}

    def load_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        """Restore what :meth:`tensors` returned."""


class PPO:
    """Proximal policy optimization of ``policy`` on ``task`` (see the module docstring).

    Args:
        reward: the reward source (the env's reward by default).
        terms: extra policy losses (:class:`PolicyTerm`).
        observers: more observers for every rollout (a store:
            :class:`~protege.algos.rl_rollout.RLEpisodes`, progress).
        prefit: at the first update, after the observation renormalization and before its
            advantages, fit the critic to these returns (:mod:`protege.algos.critic_prefit`: a
            fine-tuning run's demonstrations and their discounted returns-to-go). No env steps.
        prefit_own: at the first update, fit the critic for this many steps to that batch's
            own discounted returns-to-go before its advantages (the policy's own values, not
            a demonstrator's; its env steps are the update's).
    """

    def __init__(
        self,
        policy: Policy,
        task: Task,
        config: PPOConfig,
        *,
        reward: RewardSource | None = None,
        terms: Sequence[PolicyTerm] = (),
        observers: Sequence[Observer] = (),
        prefit: CriticPrefit | None = None,
        prefit_own: int = 0,
    ):
        check_trainable(policy, "the policy")
        self.prefit = prefit
        """Fit the critic to these returns at the first update, before its advantages
        (:func:`~protege.algos.critic_prefit.prefit_critic`); None: no pre-fit."""
        self.prefit_own = prefit_own
        """Steps fitting the critic to the first batch's own discounted returns before its
        advantages (:func:`~protege.algos.critic_prefit.batch_returns`; 0: off)."""
        self.policy, self.task, self.config = policy, task, config
        self.reward = reward or RewardSource()
        self.terms = list(terms)
        self.observers = list(observers)
        obs_dim = int(np.prod(policy.config.obs_shape))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derived_seed(config.seed, 7))
            self.critic = Critic(obs_dim, config.critic_hidden_sizes)
        policy.eval()  # no dropout: the same log-probabilities when sampling and updating
        self.policy_opt = torch.optim.Adam(policy.parameters(), lr=config.lr, eps=1e-5)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=config.critic_lr)
        self.updates = 0
        self.env_steps = 0
        self.value_scale = 0.0
        """Returns are divided by this for the critic (fixed at the first update)."""
        self.actor = SamplingActor(policy, _Scaled(self))
        self._env: Any = None

    # --------------------------------------------------------------------- collecting
    def collect(self, update: int) -> RolloutBatch:
        """At least ``rollout_steps`` steps of whole episodes by the current policy, in
        rollouts of ``n_envs`` episodes seeded from ``(seed, update, call)``."""
        cfg = self.config
        if self._env is None:
            self._env = self.task.make_vec_env(cfg.n_envs)
        return collect_episodes(
            self._env, self.actor, cfg.rollout_steps, cfg.seed, update, self.observers
        )

    def close(self) -> None:
        """Close the learner's vector env."""
        if self._env is not None:
            self._env.close()
            self._env = None

    # ----------------------------------------------------------------------- updating
    def step(self, train_policy: bool = True) -> dict[str, float]:
        """Collect one batch and update (the critic only, without ``train_policy``)."""
        u = self.updates
        batch = self.collect(u)
        metrics = self.update(batch, u, train_policy)
        self.updates += 1
        self.env_steps += len(batch)
        return metrics

    def update(self, batch: RolloutBatch, update: int, train_policy: bool) -> dict[str, float]:
        """One PPO update on ``batch``; returns its metrics (means over minibatches)."""
        cfg, policy = self.config, self.policy
        metrics: dict[str, float] = {}
        if update == 0:
            changed = cfg.renormalize_obs and renormalize_obs(policy, batch.obs)
            if self.prefit is not None:  # in the renormalized units, before any advantage
                metrics.update(prefit_critic(self, self.prefit))
                changed = True
            if changed:
                with torch.no_grad():  # the critic's values, in the new units
                    batch.values = self._value(torch.from_numpy(batch.obs))
        metrics.update(self.reward.update(batch, update))
        rewards = np.asarray(self.reward.rewards(batch), np.float64)
        for term in self.terms:
            term.observe(batch, rewards, update)
        if update == 0 and self.prefit_own > 0:  # the first batch's own returns
            own = prefit_critic(self, batch_returns(batch, rewards, cfg.gamma, self.prefit_own))
            metrics.update({f"own_{k}": v for k, v in own.items()})
            with torch.no_grad():
                batch.values = self._value(torch.from_numpy(batch.obs))
        terminal_value = float(self.reward.terminal_value(cfg.gamma))
        if terminal_value != 0.0:
            metrics["terminal_value"] = terminal_value
        with torch.no_grad():
            next_v = self._value(torch.from_numpy(batch.next_obs)).numpy().astype(np.float64)
        values = batch.values.numpy().astype(np.float64)
        adv, targets = gae(
            rewards,
            values,
            next_v,
            batch.terminal,
            batch.last,
            cfg.gamma,
            cfg.gae_lambda,
            terminal_value=terminal_value,
        )
        if self.value_scale == 0.0:
            self.value_scale = float(max(np.std(targets), 1e-3))
        obs_t = torch.from_numpy(batch.obs)
        obs_n = policy.normalize_obs(obs_t).detach()
        adv_t = torch.as_tensor(adv, dtype=torch.float32)
        adv_t = (adv_t - adv_t.mean()) / (adv_t.std() + 1e-8) if len(adv_t) > 1 else adv_t * 0
        target_t = torch.as_tensor(targets / self.value_scale, dtype=torch.float32)
        g = torch.Generator().manual_seed(derived_seed(cfg.seed, update, 3))
        sums: dict[str, float] = {}
        n_mb = 0
        for _ in range(cfg.epochs):
            order = torch.randperm(len(batch), generator=g)
            for start in range(0, len(batch), cfg.minibatch_size):
                idx = order[start : start + cfg.minibatch_size]
                mb = {
                    "obs": obs_t[idx],
                    "obs_n": obs_n[idx],
                    "raw": batch.raw_actions[idx],
                    "logp_old": batch.logp[idx],
                }
                v_loss = (self.critic(mb["obs_n"]).squeeze(-1) - target_t[idx]).pow(2).mean()
                self.critic_opt.zero_grad()
                v_loss.backward()
                nn.utils.clip_grad_norm_(self.critic.parameters(), cfg.max_grad_norm)
                self.critic_opt.step()
                _add(sums, "value_loss", v_loss.item())
                if train_policy:
                    for k, v in self._policy_step(mb, adv_t[idx], update).items():
                        _add(sums, k, v)
                n_mb += 1
        metrics.update({k: v / n_mb for k, v in sums.items()})
        metrics["episode_return"] = float(np.mean(batch.episode_returns))
        metrics["episodes"] = float(len(batch.episode_returns))
        for k, v in metrics.items():
            if not math.isfinite(v):
                raise TrainingError(f"PPO update {update}: {k} is {v}", update, max(update - 1, 0))
        return metrics

    def _policy_step(
        self, mb: dict[str, torch.Tensor], adv: torch.Tensor, update: int
    ) -> dict[str, float]:
        cfg, policy = self.config, self.policy
        feats = policy.features(mb["obs_n"])
        logp = policy.head.log_prob(feats, mb["raw"])[:, 0]
        log_ratio = logp - mb["logp_old"]
        ratio = log_ratio.exp()
        surrogate = torch.min(ratio * adv, ratio.clamp(1 - cfg.clip, 1 + cfg.clip) * adv)
        loss = -surrogate.mean()
        out = {"policy_loss": loss.item()}
        for term in self.terms:
            w = term.weight(update)
            if w > 0.0:
                t = term.loss(policy, {**mb, "feats": feats, "logp": logp}, update)
                loss = loss + w * t
                out[term.name] = t.item()
                out[f"{term.name}_weight"] = w
        self.policy_opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(policy.parameters(), cfg.max_grad_norm)
        self.policy_opt.step()
        with torch.no_grad():
            out["approx_kl_old"] = float(((ratio - 1) - log_ratio).mean())
            out["clip_fraction"] = float(((ratio - 1).abs() > cfg.clip).float().mean())
        return out

    def _value(self, obs: torch.Tensor) -> torch.Tensor:
        """V(obs) in return units (the critic predicts returns / ``value_scale``)."""
        v = self.critic(self.policy.normalize_obs(obs)).squeeze(-1)
        return v * (self.value_scale or 1.0)

    # ---------------------------------------------------------------------- state
    def state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Everything a resumed run needs: tensors (safetensors) and numbers (JSON)."""
        tensors = {f"policy.{k}": v for k, v in self.policy.state_dict().items()}
        tensors.update({f"critic.{k}": v for k, v in self.critic.state_dict().items()})
        tensors.update(optimizer_tensors(self._optimizers()))
        tensors.update({f"reward.{k}": v for k, v in self.reward.tensors().items()})
        for term in self.terms:
            tensors.update({f"term.{term.name}.{k}": v for k, v in term.tensors().items()})
        numbers = {
            "updates": self.updates,
            "env_steps": self.env_steps,
            "value_scale": self.value_scale,
        }
        return {k: v.detach().clone().contiguous() for k, v in tensors.items()}, numbers

    def _optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"policy_opt": self.policy_opt, "critic_opt": self.critic_opt}

    def load_state(self, tensors: dict[str, torch.Tensor], numbers: dict[str, Any]) -> None:
        """Restore what :meth:`state` returned."""

        part = functools.partial(tensor_part, tensors)
        self.policy.load_state_dict(part("policy"))
        self.critic.load_state_dict(part("critic"))
        load_optimizers(self._optimizers(), tensors)
        self.reward.load_tensors(part("reward"))
        for term in self.terms:
            term.load_tensors(part(f"term.{term.name}"))
        self.updates = int(numbers["updates"])
        self.env_steps = int(numbers["env_steps"])
        self.value_scale = float(numbers["value_scale"])


class _Scaled(nn.Module):
    """The learner's critic in return units, as the sampling actor records values."""

    def __init__(self, learner: PPO):
        super().__init__()
        self._learner = [learner]  # a list: not a registered submodule

    def forward(self, obs_n: torch.Tensor) -> torch.Tensor:
        learner = self._learner[0]
        return learner.critic(obs_n) * (learner.value_scale or 1.0)


def _add(sums: dict[str, float], key: str, value: float) -> None:
    sums[key] = sums.get(key, 0.0) + value
