"""RL rollouts through protege's one rollout loop: a sampling actor, the batch it yields, GAE.

The RL learners (:mod:`protege.algos.ppo`) collect with :func:`protege.rollout.loop.rollout`
like every other method: the same vector envs, episode seeding, observers and progress bars.
:class:`SamplingActor` is the learner the loop drives: it samples from the policy's head and
remembers, per step, the head-space action, its log-probability and the critic's value;
:class:`RLBuffer` is the observer that pairs them with the loop's rewards and episode ends.
Every finished episode can also go to a store (:class:`RLEpisodes`), marked as RL's: the learner
acted throughout, no step carries an expert label, and ``extras`` record the update that
collected it (``rl_update``) and its index within that update (``episode``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from protege.data.episode import Episode
from protege.data.store import Store
from protege.policies.policy import Policy
from protege.rollout.gates import LearnerGate
from protege.rollout.loop import rollout
from protege.rollout.observers import EpisodeEnd, Observer, Step, StoreEpisodes


def derived_seed(*parts: int) -> int:
    """A 63-bit seed determined by ``parts`` alone (the run's seed, the update, ...)."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(2, np.uint64)[0] >> 1)


class SamplingActor:
    """The policy as the rollout loop's learner, acting by sampling its head.

    ``last`` holds what the latest :meth:`act` computed for all N sub-envs: the head-space
    action ``(N, 1, A)`` (normalized; indices for a discrete head), its log-probability ``(N,)``
    and the critic's value ``(N,)``."""

    def __init__(self, policy: Policy, critic: nn.Module):
        self.policy = policy
        self.critic = critic
        self.last: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None

    @torch.no_grad()
    def act(
        self, obs: np.ndarray, deterministic: bool = True, generator: torch.Generator | None = None
    ) -> np.ndarray:
        p = self.policy
        obs_n = p.normalize_obs(torch.from_numpy(np.ascontiguousarray(obs)))
        feats = p.features(obs_n)
        raw = p.head.sample(feats, generator)
        logp = p.head.log_prob(feats, raw)[:, 0]
        self.last = (raw, logp, self.critic(obs_n).squeeze(-1))
        out = p.unnormalize_actions(raw).numpy()[:, 0]
        if p.config.discrete:
            return out[:, 0].round().astype(np.int64)
        if p.config.action_low is not None and p.config.action_high is not None:
            out = np.clip(out, p.config.action_low, p.config.action_high)
        return out.astype(np.float32)

    def episodes_started(self, mask: np.ndarray | None = None) -> None:
        """One-step policies only (checked by the learner): nothing to forget."""


@dataclass
class RolloutBatch:
    """The steps of one update's episodes, episode after episode (in order of completion).

    Row ``k`` is one step: ``obs[k]`` acted on, ``next_obs[k]`` reached. A reward source
    (:class:`protege.algos.ppo.RewardSource`) may read any of it."""

    obs: np.ndarray
    next_obs: np.ndarray
    actions: np.ndarray
    """(N, ...) the actions sent to the env (env units)."""
    raw_actions: torch.Tensor
    """(N, 1, A) the head-space actions the log-probabilities are of."""
    logp: torch.Tensor
    values: torch.Tensor
    env_rewards: np.ndarray
    terminal: np.ndarray
    """(N,) True at the last step of an episode that terminated (no bootstrap)."""
    last: np.ndarray
    """(N,) True at the last step of every episode (terminated or truncated)."""
    episode_returns: list[float] = field(default_factory=list)
    episode_lengths: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.env_rewards)


class RLBuffer(Observer):
    """Collects a :class:`RolloutBatch` from the loop's steps and the actor's ``last``."""

    def __init__(self, actor: SamplingActor):
        self.actor = actor
        self._open: dict[int, dict[str, list]] = {}
        self.done: list[dict[str, list]] = []

    def on_rollout_start(self, env: gym.vector.VectorEnv, n_episodes: int, seed: int) -> None:
        self._open, self.done = {}, []

    def on_episode_start(self, env_index: int) -> None:
        self._open[env_index] = {k: [] for k in ("obs", "act", "raw", "logp", "v", "r")}

    def on_step(self, step: Step) -> None:
        assert self.actor.last is not None
        raw, logp, v = self.actor.last
        for i in np.flatnonzero(step.active).tolist():
            b = self._open[i]
            b["obs"].append(step.obs[i])
            b["act"].append(step.executed[i])
            b["raw"].append(raw[i])
            b["logp"].append(logp[i])
            b["v"].append(v[i])
            b["r"].append(float(step.reward[i]))

    def on_episode_end(self, env_index: int, end: EpisodeEnd) -> None:
        b = self._open.pop(env_index)
        b["final"] = [end.final_obs]
        b["terminated"] = [end.outcome.terminated]
        self.done.append(b)

    def batch(self) -> RolloutBatch:
        """Every finished episode's steps, in order of completion."""
        eps = self.done
        obs = np.concatenate([np.stack(e["obs"]) for e in eps])
        nxt = np.concatenate([np.stack([*e["obs"][1:], e["final"][0]]) for e in eps])
        lengths = [len(e["r"]) for e in eps]
        ends = np.cumsum(lengths) - 1
        last = np.zeros(len(obs), bool)
        last[ends] = True
        terminal = np.zeros(len(obs), bool)
        terminal[ends] = [bool(e["terminated"][0]) for e in eps]
        rewards = np.concatenate([np.asarray(e["r"], np.float64) for e in eps])
        return RolloutBatch(
            obs=obs.astype(np.float32, copy=False),
            next_obs=nxt.astype(np.float32, copy=False),
            actions=np.concatenate([np.stack(e["act"]) for e in eps]),
            raw_actions=torch.stack([r for e in eps for r in e["raw"]]),
            logp=torch.stack([x for e in eps for x in e["logp"]]),
            values=torch.stack([x for e in eps for x in e["v"]]),
            env_rewards=rewards,
            terminal=terminal,
            last=last,
            episode_returns=[float(sum(e["r"])) for e in eps],
            episode_lengths=lengths,
        )


class RLEpisodes(StoreEpisodes):
    """Appends RL's episodes to ``store`` durably, each tagged ``rl_update`` (the update that
    collected it) and ``episode`` (its index within that update). Episodes the store already
    holds (a run resumed after a crash redoes the update it was in) are not appended twice:
    the same seed collects the same episodes again."""

    def __init__(self, store: Store):
        super().__init__(store)
        self.update = 0
        self.count = 0
        self.stored: set[tuple[int, int]] = set()
        for rec in store.index:
            u, e = rec.extras.get("rl_update"), rec.extras.get("episode")
            if u is not None and e is not None:
                self.stored.add((int(u), int(e)))

    def begin_update(self, update: int) -> None:
        """The next episodes are the ``update``-th update's."""
        self.update, self.count = update, 0

    def on_episode(self, env_index: int, episode: Episode) -> None:
        key = (self.update, self.count)
        self.count += 1
        if key in self.stored:
            return
        extras = {**episode.extras, "rl_update": float(key[0]), "episode": float(key[1])}
        self.store.append(dataclasses.replace(episode, extras=extras))
        self.stored.add(key)


def collect_episodes(
    env: gym.vector.VectorEnv,
    actor: SamplingActor,
    min_steps: int,
    seed: int,
    update: int,
    observers: list[Observer],
) -> RolloutBatch:
    """At least ``min_steps`` steps of whole episodes sampled by ``actor``, in rollouts of one
    episode per sub-env seeded from ``(seed, update, call)`` (action draws from ``(seed,
    update)``); ``observers`` see every step, and a store's :class:`RLEpisodes` is told the
    update first. The RL learners' one way of collecting (:mod:`protege.algos.ppo`,
    :mod:`protege.algos.sac`)."""
    n_envs = env.num_envs
    buffer = RLBuffer(actor)
    generator = torch.Generator().manual_seed(derived_seed(seed, update, 1))
    for o in observers:
        if isinstance(o, RLEpisodes):
            o.begin_update(update)
    parts: list[RolloutBatch] = []
    steps, call = 0, 0
    while steps < min_steps:
        rollout(
            env,
            n_envs,
            gate=LearnerGate(label=False),
            seed=derived_seed(seed, update, 2, call) % 2**31,
            learner=actor,
            observers=[buffer, *observers],
            deterministic=False,
            generator=generator,
        )
        parts.append(buffer.batch())
        steps += len(parts[-1])
        call += 1
    return concat(parts)


def concat(parts: list[RolloutBatch]) -> RolloutBatch:
    """One batch of ``parts``' steps, in order."""
    if len(parts) == 1:
        return parts[0]
    return RolloutBatch(
        obs=np.concatenate([p.obs for p in parts]),
        next_obs=np.concatenate([p.next_obs for p in parts]),
        actions=np.concatenate([p.actions for p in parts]),
        raw_actions=torch.cat([p.raw_actions for p in parts]),
        logp=torch.cat([p.logp for p in parts]),
        values=torch.cat([p.values for p in parts]),
        env_rewards=np.concatenate([p.env_rewards for p in parts]),
        terminal=np.concatenate([p.terminal for p in parts]),
        last=np.concatenate([p.last for p in parts]),
        episode_returns=[r for p in parts for r in p.episode_returns],
        episode_lengths=[n for p in parts for n in p.episode_lengths],
    )


def gae(
    rewards: np.ndarray,
    values: np.ndarray,
    next_values: np.ndarray,
    terminal: np.ndarray,
    last: np.ndarray,
    gamma: float,
    lam: float,
    terminal_value: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Generalized advantage estimates and value targets over concatenated whole episodes.

    ``next_values[k]`` is V(next_obs[k]) (used only at an episode's last step: the bootstrap
    of a truncated episode; a terminated one bootstraps from ``terminal_value``, 0 unless the
    reward has an absorbing state). Returns (advantages, targets).
    """
    n = len(rewards)
    adv = np.zeros(n, np.float64)
    running = 0.0
    for k in range(n - 1, -1, -1):
        if last[k]:
            bootstrap = terminal_value if terminal[k] else next_values[k]
            running = 0.0
        else:
            bootstrap = values[k + 1]
        delta = rewards[k] + gamma * bootstrap - values[k]
        running = delta + gamma * lam * running
        adv[k] = running
    return adv, adv + values
