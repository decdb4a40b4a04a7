"""Soft actor-critic from a categorical or Gaussian policy, the demonstrations in its replay.

``protege finetune --algo sac``: an off-policy learner. PPO learns only
from the batch it just collected; this learner keeps every step it has seen and, with
demonstrations (``--bc-data``, with rewards), draws part of every minibatch from them
(symmetric sampling, as RLPD: Ball et al. 2023), so the demonstrations teach the critic what
the expert's actions are worth from the first gradient step on.

**The learner.** Twin Q networks ``Q₁, Q₂(s, ·)`` (one output per action, on their own
standardized observations) learn by TD on ``nstep``-step returns,
``y = Σ_{j<n} γ^j r_{t+j} + γ^n (1 − terminal) V̄(s_{t+n})`` with the soft value
``V̄(s) = Σ_a π(a|s) [min Q̄(s, a) − α (log π(a|s) − log π₀(a|s))]`` of Polyak-averaged targets.
The actor minimizes ``Σ_a π(a|s) [α (log π(a|s) − log π₀(a|s)) − min Q(s, a)]`` exactly over
the actions (no sampling): its optimum is ``π ∝ π₀ exp(Q/α)``, the starting policy ``π₀``
re-weighted by the critic. For a Gaussian head (continuous actions) the Q networks take the
action as an input and the sums over actions become one reparameterized sample
``a = μ + σ ε`` (clamped to the action bounds), with the KL between the two Gaussians in
closed form: ``α KL(π(s) ‖ π₀(s)) − min Q(s, a)``. ``α`` is the fine-tuning run's KL coefficient
(``FinetuneConfig.kl``, decayed per update by ``kl_decay``), so the KL anchor to the BC policy
is the regularizer SAC's entropy bonus is elsewhere (with ``kl`` 0 the actor follows the
critic greedily). Rewards are multiplied by ``reward_scale`` for the critics.

Every update collects whole episodes through :func:`~protege.algos.rl_rollout.collect_episodes`
(protege's rollout loop, seeded from ``(seed, update)``) and draws its minibatches from
``(seed, update)``: the learner's state after an update (:meth:`SAC.state`: networks,
optimizer moments, the replay) is all a resumed run needs to reach the same numbers.
"""

from __future__ import annotations

import copy
import functools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from protege.algos.finetune_checkpoint import load_optimizers, optimizer_tensors
from protege.algos.finetune_checkpoint import part as tensor_part
from protege.algos.ppo import check_trainable, renormalize_obs
from protege.algos.rl_rollout import RolloutBatch, SamplingActor, collect_episodes, derived_seed
from protege.configs.rl import SACConfig
from protege.data.transitions import Transitions
from protege.errors import ConfigError, DataError, TrainingError
from protege.policies.heads.categorical import CategoricalHead
from protege.policies.heads.gaussian import GaussianHead
from protege.policies.mlp import mlp
from protege.policies.policy import Policy
from protege.rollout.observers import Observer
from protege.tasks.base import Task

FIELDS = ("obs", "actions", "returns", "next_obs", "done", "discount")
"""A replay transition: ``returns`` the n-step reward sum, ``discount`` γ^n (n ≤ nstep, fewer
at an episode's end), ``done`` 1 where the episode terminated within the n steps."""


def nstep_transitions(
    obs: np.ndarray,
    actions: np.ndarray,
    rewards: np.ndarray,
    next_obs: np.ndarray,
    terminal: np.ndarray,
    last: np.ndarray,
    n: int,
    gamma: float,
) -> dict[str, np.ndarray]:
    """Steps of concatenated whole episodes (``last`` marks each one's end, ``terminal`` the
    ends that terminated) as ``n``-step transitions (:data:`FIELDS`)."""
    size = len(rewards)
    returns = np.zeros(size, np.float64)
    reach = np.zeros(size, np.int64)  # the step whose next_obs each transition bootstraps from
    discount = np.zeros(size, np.float64)
    done = np.zeros(size, np.float32)
    ends = np.flatnonzero(last)
    first = 0
    for end in ends.tolist():
        for k in range(first, end + 1):
            m = min(n, end + 1 - k)
            returns[k] = np.dot(gamma ** np.arange(m), rewards[k : k + m])
            reach[k] = k + m - 1
            discount[k] = gamma**m
            done[k] = float(terminal[end]) if k + m - 1 == end else 0.0
        first = end + 1
    if first != size:
        raise ValueError("the steps must end with an episode's last step")
    return {
        "obs": np.asarray(obs, np.float32),
        "actions": _actions(actions, size),
        "returns": returns.astype(np.float32),
        "next_obs": np.asarray(next_obs, np.float32)[reach],
        "done": done,
        "discount": discount.astype(np.float32),
    }


def _actions(actions: np.ndarray, size: int) -> np.ndarray:
    """Discrete actions as (size,) int64, continuous ones as (size, act_dim) float32."""
    a = np.asarray(actions)
    if np.issubdtype(a.dtype, np.integer):
        return a.astype(np.int64).reshape(size)
    return a.astype(np.float32).reshape(size, -1)


def demo_transitions(demos: Transitions, n: int, gamma: float) -> dict[str, np.ndarray]:
    """``demos``' labeled-and-executed steps as n-step transitions (the executed action, the
    one whose reward was recorded). Needs rewards and each episode's final observation."""
    if demos.final_obs is None or demos.terminated is None:
        raise DataError("the demonstrations record no final observations: --algo sac needs them")
    if not np.asarray(demos.rewards).any():
        raise DataError(
            "the demonstrations carry no rewards (every reward is 0): --algo sac learns their "
            "values; collect them from a task with rewards, or give no --bc-data"
        )
    obs = np.asarray(demos.obs, np.float32)
    ends = demos.episode_starts + demos.episode_lengths - 1
    nxt = np.concatenate([obs[1:], obs[:1]])
    nxt[ends] = np.asarray(demos.final_obs, np.float32).reshape(len(ends), -1)
    last = np.zeros(len(obs), bool)
    last[ends] = True
    terminal = np.zeros(len(obs), bool)
    terminal[ends] = np.asarray(demos.terminated, bool)
    return nstep_transitions(obs, demos.executed, demos.rewards, nxt, terminal, last, n, gamma)


class Replay:
    """A ring of n-step transitions (:data:`FIELDS`), the oldest dropped first."""

    def __init__(self, capacity: int, obs_dim: int, act_dim: int | None = None):
        """``act_dim`` None: discrete actions (int64 indices)."""
        self.capacity, self.size, self.pos = capacity, 0, 0
        actions = (
            np.zeros((capacity, act_dim), np.float32) if act_dim else np.zeros(capacity, np.int64)
        )
        self.data: dict[str, np.ndarray] = {
            "obs": np.zeros((capacity, obs_dim), np.float32),
            "actions": actions,
            "returns": np.zeros(capacity, np.float32),
            "next_obs": np.zeros((capacity, obs_dim), np.float32),
            "done": np.zeros(capacity, np.float32),
            "discount": np.zeros(capacity, np.float32),
        }

    def add(self, part: dict[str, np.ndarray]) -> None:
        for k in range(len(part["actions"])):
            i = self.pos
            for name in FIELDS:
                self.data[name][i] = part[name][k].reshape(self.data[name][i].shape)
            self.pos = (self.pos + 1) % self.capacity
            self.size = min(self.size + 1, self.capacity)


class SAC:
    """Soft actor-critic on ``policy`` (categorical or Gaussian head) and ``task`` (module
    docstring).

    Args:
        anchor: the frozen starting policy π₀ of the KL term (None: no KL term).
        kl: the KL coefficient α at update ``start``; ``kl · kl_decay^(u − start)`` after.
        demos: demonstrations drawn into every minibatch (``demo_fraction`` of it).
        observers: more observers for every rollout (a store:
            :class:`~protege.algos.rl_rollout.RLEpisodes`).
    """

    def __init__(
        self,
        policy: Policy,
        task: Task,
        config: SACConfig,
        *,
        anchor: Policy | None = None,
        kl: float = 0.0,
        kl_decay: float = 1.0,
        start: int = 0,
        demos: Transitions | None = None,
        observers: Sequence[Observer] = (),
    ):
        check_trainable(policy, "the policy")
        if not isinstance(policy.head, CategoricalHead | GaussianHead):
            raise ConfigError(
                f"--algo sac fine-tunes categorical and gaussian heads, not "
                f"{policy.config.head!r}; use --algo ppo"
            )
        self.discrete = isinstance(policy.head, CategoricalHead)
        self.policy, self.task, self.config = policy, task, config
        self.anchor = anchor.eval().requires_grad_(False) if anchor is not None else None
        self.kl, self.kl_decay, self.start = kl, kl_decay, start
        self.observers = list(observers)
        obs_dim = int(np.prod(policy.config.obs_shape))
        act_dim = policy.config.act_dim
        q_in = obs_dim if self.discrete else obs_dim + act_dim
        q_out = policy.config.n_actions if self.discrete else 1
        self.bounds = None
        """The action bounds in the policy's normalized units (continuous actions)."""
        if not self.discrete and policy.config.action_low is not None:
            lo, hi = policy.config.action_low, policy.config.action_high
            self.bounds = (
                policy.normalize_actions(torch.tensor(lo, dtype=torch.float32)),
                policy.normalize_actions(torch.tensor(hi, dtype=torch.float32)),
            )
        self.demos = demo_transitions(demos, config.nstep, config.gamma) if demos else None
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derived_seed(config.seed, 7))
            self.q = nn.ModuleList(
                [
                    nn.Sequential(
                        mlp(q_in, config.critic_hidden_sizes),
                        nn.Linear(config.critic_hidden_sizes[-1], q_out),
                    )
                    for _ in range(2)
                ]
            )
        self.q_target = copy.deepcopy(self.q).requires_grad_(False)
        self.obs_mean = torch.zeros(obs_dim)
        self.obs_std = torch.ones(obs_dim)
        policy.eval()
        self.policy_opt = torch.optim.Adam(policy.parameters(), lr=config.lr)
        self.critic_opt = torch.optim.Adam(self.q.parameters(), lr=config.critic_lr)
        self.replay = Replay(config.buffer_size, obs_dim, None if self.discrete else act_dim)
        self.updates = 0
        self.env_steps = 0
        self.actor = SamplingActor(policy, _NoValue())
        self._env: Any = None

    def close(self) -> None:
        """Close the learner's vector env."""
        if self._env is not None:
            self._env.close()
            self._env = None

    def collect(self, update: int) -> RolloutBatch:
        cfg = self.config
        if self._env is None:
            self._env = self.task.make_vec_env(cfg.n_envs)
        return collect_episodes(
            self._env, self.actor, cfg.rollout_steps, cfg.seed, update, self.observers
        )

    def alpha(self, update: int) -> float:
        """The KL coefficient at ``update`` (0 without an anchor)."""
        if self.anchor is None:
            return 0.0
        return self.kl * self.kl_decay ** max(update - self.start, 0)

    def step(self, train_policy: bool = True) -> dict[str, float]:
        """Collect one batch of episodes, add it to the replay and take ``utd`` gradient steps
        per collected step (the critics only, without ``train_policy``)."""
        cfg, u = self.config, self.updates
        batch = self.collect(u)
        if u == 0:
            if cfg.renormalize_obs:
                renormalize_obs(self.policy, batch.obs)
            first = (
                batch.obs if self.demos is None else np.concatenate([batch.obs, self.demos["obs"]])
            )
            x = np.asarray(first, np.float64).reshape(len(first), -1)
            self.obs_mean = torch.as_tensor(x.mean(0), dtype=torch.float32)
            self.obs_std = torch.as_tensor(np.maximum(x.std(0), 1e-3), dtype=torch.float32)
        self.replay.add(
            nstep_transitions(
                batch.obs,
                batch.actions,
                batch.env_rewards,
                batch.next_obs,
                batch.terminal,
                batch.last,
                cfg.nstep,
                cfg.gamma,
            )
        )
        g = torch.Generator().manual_seed(derived_seed(cfg.seed, u, 3))
        alpha = self.alpha(u)
        sums: dict[str, float] = {}
        n_grad = max(1, round(cfg.utd * len(batch)))
        for _ in range(n_grad):
            mb = self._minibatch(g)
            for k, v in self._gradient_step(mb, alpha, train_policy, g).items():
                sums[k] = sums.get(k, 0.0) + v
        metrics = {k: v / n_grad for k, v in sums.items()}
        metrics["episode_return"] = float(np.mean(batch.episode_returns))
        metrics["episodes"] = float(len(batch.episode_returns))
        metrics["kl_weight"] = alpha
        for k, v in metrics.items():
            if not math.isfinite(v):
                raise TrainingError(f"SAC update {u}: {k} is {v}", u, max(u - 1, 0))
        self.updates += 1
        self.env_steps += len(batch)
        return metrics

    def _minibatch(self, g: torch.Generator) -> dict[str, torch.Tensor]:
        cfg = self.config
        n_demo = round(cfg.batch_size * cfg.demo_fraction) if self.demos is not None else 0
        parts = []
        if n_demo:
            assert self.demos is not None
            i = torch.randint(len(self.demos["actions"]), (n_demo,), generator=g).numpy()
            parts.append({k: v[i] for k, v in self.demos.items()})
        if cfg.batch_size - n_demo:
            i = torch.randint(self.replay.size, (cfg.batch_size - n_demo,), generator=g).numpy()
            parts.append({k: v[i] for k, v in self.replay.data.items()})
        return {k: torch.from_numpy(np.concatenate([p[k] for p in parts])) for k in FIELDS}

    def _logp(self, policy: Policy, obs: torch.Tensor) -> torch.Tensor:
        head = policy.head
        assert isinstance(head, CategoricalHead)
        logits = head.logits(policy.features(policy.normalize_obs(obs)))[:, 0]
        return F.log_softmax(logits, -1)

    def _q(
        self, nets: nn.ModuleList, obs: torch.Tensor, action: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Both Q networks on standardized ``obs`` (and, continuous, the normalized action)."""
        x = (obs.flatten(1) - self.obs_mean) / self.obs_std
        if action is not None:
            x = torch.cat([x, action.reshape(len(x), -1)], 1)
        return nets[0](x), nets[1](x)

    def _gradient_step(
        self, mb: dict[str, torch.Tensor], alpha: float, train_policy: bool, g: torch.Generator
    ) -> dict[str, float]:
        if self.discrete:
            return self._discrete_step(mb, alpha, train_policy)
        return self._continuous_step(mb, alpha, train_policy, g)

    def _discrete_step(
        self, mb: dict[str, torch.Tensor], alpha: float, train_policy: bool
    ) -> dict[str, float]:
        cfg = self.config
        with torch.no_grad():
            logp = self._logp(self.policy, mb["next_obs"])
            penalty = (
                alpha * (logp - self._logp(self.anchor, mb["next_obs"]))
                if self.anchor is not None and alpha
                else torch.zeros_like(logp)
            )
            q1, q2 = self._q(self.q_target, mb["next_obs"])
            v = (logp.exp() * (torch.min(q1, q2) - penalty)).sum(-1)
            y = mb["returns"] * cfg.reward_scale + mb["discount"] * (1 - mb["done"]) * v
        q1, q2 = self._q(self.q, mb["obs"])
        a = mb["actions"][:, None]
        q_loss = F.mse_loss(q1.gather(1, a)[:, 0], y) + F.mse_loss(q2.gather(1, a)[:, 0], y)
        self._critic_update(q_loss)
        out = {"q_loss": q_loss.item()}
        if train_policy:
            logp = self._logp(self.policy, mb["obs"])
            with torch.no_grad():
                q = torch.min(*self._q(self.q, mb["obs"]))
                anchor = None
                if self.anchor is not None and alpha:
                    anchor = self._logp(self.anchor, mb["obs"])
            pi = logp.exp()
            kl = (pi * (logp - anchor)).sum(-1).mean() if anchor is not None else logp.sum() * 0
            loss = alpha * kl - (pi * q).sum(-1).mean()
            self._actor_update(loss)
            out.update({"policy_loss": loss.item(), "kl": kl.item()})
        return out

    def _sample(self, obs: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """A reparameterized action (normalized, clamped to the bounds) and KL(π ‖ π₀) per row
        (zeros without an anchor)."""
        policy, head = self.policy, self.policy.head
        assert isinstance(head, GaussianHead)
        feats = policy.features(policy.normalize_obs(obs))
        a = head.sample(feats, g)[:, 0]
        if self.bounds is not None:
            a = torch.max(torch.min(a, self.bounds[1]), self.bounds[0])
        if self.anchor is None:
            return a, torch.zeros(len(a))
        anchor = self.anchor
        with torch.no_grad():
            anchor_feats = anchor.features(anchor.normalize_obs(obs))
        assert isinstance(anchor.head, GaussianHead)
        return a, head.kl(feats, anchor.head, anchor_feats)[:, 0]

    def _continuous_step(
        self, mb: dict[str, torch.Tensor], alpha: float, train_policy: bool, g: torch.Generator
    ) -> dict[str, float]:
        cfg = self.config
        with torch.no_grad():
            a_next, kl_next = self._sample(mb["next_obs"], g)
            q1, q2 = self._q(self.q_target, mb["next_obs"], a_next)
            v = torch.min(q1, q2)[:, 0] - alpha * kl_next
            y = mb["returns"] * cfg.reward_scale + mb["discount"] * (1 - mb["done"]) * v
        a = self.policy.normalize_actions(mb["actions"])
        q1, q2 = self._q(self.q, mb["obs"], a)
        q_loss = F.mse_loss(q1[:, 0], y) + F.mse_loss(q2[:, 0], y)
        self._critic_update(q_loss)
        out = {"q_loss": q_loss.item()}
        if train_policy:
            a_new, kl_rows = self._sample(mb["obs"], g)
            q = torch.min(*self._q(self.q, mb["obs"], a_new))[:, 0]
            kl = kl_rows.mean()
            loss = alpha * kl - q.mean()
            self._actor_update(loss)
            out.update({"policy_loss": loss.item(), "kl": kl.item()})
        return out

    def _critic_update(self, q_loss: torch.Tensor) -> None:
        self.critic_opt.zero_grad()
        q_loss.backward()
        nn.utils.clip_grad_norm_(self.q.parameters(), self.config.max_grad_norm)
        self.critic_opt.step()
        with torch.no_grad():
            for p, t in zip(self.q.parameters(), self.q_target.parameters(), strict=True):
                t.lerp_(p, self.config.tau)

    def _actor_update(self, loss: torch.Tensor) -> None:
        self.policy_opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(self.policy.parameters(), self.config.max_grad_norm)
        self.policy_opt.step()

    # ---------------------------------------------------------------------- state
    def state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Everything a resumed run needs: tensors (safetensors) and numbers (JSON)."""
        tensors = {f"policy.{k}": v for k, v in self.policy.state_dict().items()}
        tensors.update({f"q.{k}": v for k, v in self.q.state_dict().items()})
        tensors.update({f"q_target.{k}": v for k, v in self.q_target.state_dict().items()})
        tensors["obs_mean"], tensors["obs_std"] = self.obs_mean, self.obs_std
        tensors.update(optimizer_tensors(self._optimizers()))
        for k, v in self.replay.data.items():
            tensors[f"replay.{k}"] = torch.from_numpy(v[: self.replay.size])
        numbers = {
            "updates": self.updates,
            "env_steps": self.env_steps,
            "replay_pos": self.replay.pos,
        }
        return {k: v.detach().clone().contiguous() for k, v in tensors.items()}, numbers

    def _optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"policy_opt": self.policy_opt, "critic_opt": self.critic_opt}

    def load_state(self, tensors: dict[str, torch.Tensor], numbers: dict[str, Any]) -> None:
        """Restore what :meth:`state` returned."""

        part = functools.partial(tensor_part, tensors)
        self.policy.load_state_dict(part("policy"))
        self.q.load_state_dict(part("q"))
        self.q_target.load_state_dict(part("q_target"))
        self.obs_mean, self.obs_std = tensors["obs_mean"], tensors["obs_std"]
        load_optimizers(self._optimizers(), tensors)
        replay = part("replay")
        size = len(replay["actions"])
        for k, v in replay.items():
            self.replay.data[k][:size] = v.numpy()
        self.replay.size, self.replay.pos = size, int(numbers["replay_pos"])
        self.updates = int(numbers["updates"])
        self.env_steps = int(numbers["env_steps"])


class _NoValue(nn.Module):
    """The sampling actor's value slot: SAC records no state values while collecting."""

    def forward(self, obs_n: torch.Tensor) -> torch.Tensor:
        return torch.zeros(len(obs_n), 1)
