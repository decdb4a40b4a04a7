"""The one rollout loop: collection, DAgger, intervention and evaluation all run through it.

What differs between them is the gate (who acts, whether the expert labels) and what is kept.
Episodes are spread evenly over the sub-envs of a gymnasium vector env (sub-env i runs
``(n_episodes + i) // n_envs`` of them), so short episodes do not crowd out long ones and bias
the mean. Every finished episode can be appended to a store at once: a crash loses only the
episodes in flight.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import gymnasium as gym
import numpy as np
import torch
from tqdm.auto import tqdm

from protege.data.episode import EXPERT, LEARNER, Episode
from protege.data.store import Store
from protege.experts.base import Expert
from protege.rollout.gates import Gate, LazyExpert, StepView
from protege.tasks.base import EpisodeOutcome, SuccessTest


class Actor(Protocol):
    """A learner as the loop sees it (a :class:`protege.policies.Policy` is one)."""

    def act(
        self, obs: np.ndarray, deterministic: bool = True, generator: torch.Generator | None = None
    ) -> np.ndarray: ...

    def episodes_started(self, mask: np.ndarray | None = None) -> None:
        """New episodes start in every sub-env (``mask`` None, before the first ``act``) or
        in those where ``mask`` (N,) is True: forget their per-episode state (observation
        history, queued action chunk)."""
        ...


@dataclass
class RolloutResult:
    """Per-episode results (in order of completion) and what the run cost in expert effort."""

    seed: int
    returns: list[float] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)
    successes: list[bool] = field(default_factory=list)
    disagreement: list[np.ndarray] = field(default_factory=list)
    """Per episode, (T,) disagreement with the expert at each step the learner acted (NaN where
    the expert acted or was not asked): 1/0 for discrete actions, L2 distance for continuous."""
    episodes: list[Episode] = field(default_factory=list)
    labels: int = 0
    """Expert actions stored as training labels."""
    expert_queries: int = 0
    """Every time the expert was asked for an action (labels, supervision, evaluation)."""
    expert_steps: int = 0
    learner_steps: int = 0
    interventions: int = 0
    """Interventions in the finished episodes (:func:`count_interventions`)."""
    env_seconds: float = 0.0
    learner_seconds: float = 0.0
    expert_seconds: float = 0.0
    wall_seconds: float = 0.0

    @property
    def n_episodes(self) -> int:
        return len(self.returns)


def rollout(
    env: gym.vector.VectorEnv,
    n_episodes: int,
    *,
    gate: Gate,
    seed: int,
    learner: Actor | None = None,
    expert: Expert | None = None,
    success: SuccessTest | None = None,
    store: Store | None = None,
    round: int = 0,
    keep_episodes: bool = False,
    measure_disagreement: bool = False,
    deterministic: bool = True,
    generator: torch.Generator | None = None,
    progress: bool | str = False,
    on_episode: Callable[[Episode], None] | None = None,
) -> RolloutResult:
    """Run ``n_episodes`` episodes on the vector env ``env`` and return what happened.

    Args:
        gate: decides per step and sub-env who acts and whether the expert's action is stored.
        learner: the policy being trained or evaluated (None to let only the expert act).
        expert: queried lazily, only where the gate (or ``measure_disagreement``) needs it.
        store: each finished episode is appended to it, durably, as soon as it ends.
        measure_disagreement: also ask the expert at every learner step to measure how far
            the learner's own trajectory takes it from what the expert would do.
        progress: show a progress bar (a string sets its description).
    """
    n = env.num_envs
    targets = np.array([(n_episodes + i) // n for i in range(n)])
    done_count = np.zeros(n, np.int64)
    record = keep_episodes or store is not None or on_episode is not None
    act_space = env.single_action_space
    discrete = isinstance(act_space, gym.spaces.Discrete)
    template = (
        np.zeros(n, np.int64)
        if discrete
        else np.zeros((n, *(act_space.shape or ())), np.asarray(act_space.sample()).dtype)
    )
    lazy = LazyExpert(expert)
    result = RolloutResult(seed=seed)
    wall0 = time.perf_counter()

    obs, infos = env.reset(seed=seed)
    if learner is not None:
        learner.episodes_started()
    for i in range(n):
        gate.begin_episode(i)
    t = np.zeros(n, np.int64)
    ep_return = np.zeros(n, np.float64)
    interventions = _InterventionCounter(n)
    bufs = [_Buffer() for _ in range(n)]
    disagree: list[list[float]] = [[] for _ in range(n)]
    if record:
        for i in range(n):
            bufs[i].obs.append(obs[i])
    bar = tqdm(
        total=n_episodes,
        desc=progress if isinstance(progress, str) else "rollout",
        disable=not progress,
        unit="ep",
        leave=False,
    )
    while (done_count < targets).any():
        learner_action = None
        if learner is not None:
            t0 = time.perf_counter()
            learner_action = learner.act(obs, deterministic=deterministic, generator=generator)
            result.learner_seconds += time.perf_counter() - t0
        t0 = time.perf_counter()
        active = done_count < targets
        lazy.begin_step(obs, infos, template, active)
        decision = gate.decide(StepView(obs, infos, learner_action, lazy, t))
        expert_needed = decision.expert_acts | decision.label
        if measure_disagreement and learner_action is not None:
            expert_needed = expert_needed | ~decision.expert_acts
        expert_needed &= active  # sub-envs past their quota only keep stepping: never ask
        expert_action = lazy(expert_needed) if expert_needed.any() else template
        result.expert_seconds += time.perf_counter() - t0

        if learner_action is None:
            executed = expert_action.copy()
        else:
            mask = decision.expert_acts.reshape((n,) + (1,) * (template.ndim - 1))
            executed = np.where(mask, expert_action, learner_action).astype(template.dtype)
        if decision.executed is not None:
            m = decision.expert_acts.reshape((n,) + (1,) * (template.ndim - 1))
            executed = np.where(m, decision.executed, executed).astype(template.dtype)

        t0 = time.perf_counter()
        next_obs, reward, terminated, truncated, infos = env.step(executed)
        result.env_seconds += time.perf_counter() - t0

        actor = np.where(decision.expert_acts, EXPERT, LEARNER)
        result.expert_steps += int((decision.expert_acts & active).sum())
        result.learner_steps += int((~decision.expert_acts & active).sum())
        result.labels += int((decision.label & active).sum())
        interventions.step(decision.expert_acts, t)
        ep_return += reward
        if measure_disagreement and learner_action is not None:
            gap = _disagreement(learner_action, expert_action, discrete)
            gap = np.where(decision.expert_acts, np.nan, gap)
            for i in np.flatnonzero(active).tolist():
                disagree[i].append(float(gap[i]))
        if record:
            label = np.where(
                decision.label.reshape((n,) + (1,) * (template.ndim - 1)), expert_action, executed
            )
            for i in np.flatnonzero(active).tolist():
                b = bufs[i]
                b.actions.append(label[i])
                b.executed.append(executed[i])
                b.rewards.append(float(reward[i]))
                b.actor.append(int(actor[i]))
                b.labeled.append(bool(decision.label[i]))
        t += 1

        finished = terminated | truncated
        for i in np.flatnonzero(finished).tolist():
            if done_count[i] < targets[i]:
                final_info = _final_info(infos, i)
                outcome = EpisodeOutcome(
                    float(ep_return[i]),
                    int(t[i]),
                    bool(terminated[i]),
                    bool(truncated[i]),
                    final_info,
                )
                result.returns.append(outcome.episode_return)
                result.lengths.append(outcome.length)
                result.successes.append(bool(success(outcome)) if success else False)
                result.interventions += interventions.episode(i)
                if measure_disagreement:
                    result.disagreement.append(np.array(disagree[i], np.float64))
                if record:
                    b = bufs[i]
                    b.obs.append(infos["final_obs"][i])
                    episode = b.to_episode(terminated[i], truncated[i], round, seed)
                    if store is not None:
                        store.append(episode)
                    if keep_episodes:
                        result.episodes.append(episode)
                    if on_episode is not None:
                        on_episode(episode)
                done_count[i] += 1
                bar.update(1)
            bufs[i] = _Buffer()
            disagree[i] = []
            t[i] = 0
            ep_return[i] = 0.0
            gate.begin_episode(int(i))
        if finished.any() and learner is not None:
            learner.episodes_started(finished)
        obs = next_obs
        if record:
            for i in np.flatnonzero(done_count < targets).tolist():
                bufs[i].obs.append(obs[i])
    bar.close()
    result.expert_queries = lazy.queries
    result.wall_seconds = time.perf_counter() - wall0
    return result


def count_interventions(expert_driven: np.ndarray) -> int:
    """The interventions in one episode, from whether the expert drove each of its steps
    (``episode.actors == EXPERT``): the one rule for the loop, every DAgger variant, the
    store's per-episode counts and a person at the keyboard.

    An intervention is a maximal run of expert-driven steps in an episode in which the
    learner also drove. A run from the first step counts (the expert took control before the
    learner's first move); an episode the expert drove throughout has none (a demonstration,
    DART's noisy expert, a person who never handed over): nobody was taken over from.

    Example:
        >>> count_interventions(np.array([1, 1, 0, 0, 1, 0], bool))  # from step 0, then 4
        2
    """
    expert = np.asarray(expert_driven, bool).reshape(-1)
    if expert.all():
        return 0
    return int(expert[0]) + int((expert[1:] & ~expert[:-1]).sum())


class _InterventionCounter:
    """:func:`count_interventions` online, for every sub-env at once (no Python loop per
    step): the hand-overs to the expert after the first step, plus one for a takeover at the
    first step once the learner has driven."""

    def __init__(self, n: int):
        self.handovers = np.zeros(n, np.int64)
        self.first = np.zeros(n, bool)
        self.learner_drove = np.zeros(n, bool)
        self.prev = np.zeros(n, bool)

    def step(self, expert_acts: np.ndarray, t: np.ndarray) -> None:
        """Who drove step ``t`` (N,) of each sub-env's episode (t = 0 starts a new one)."""
        expert = np.asarray(expert_acts, bool)
        start = t == 0
        self.first = np.where(start, expert, self.first)
        self.learner_drove = np.where(start, False, self.learner_drove) | ~expert
        self.handovers = np.where(start, 0, self.handovers + (expert & ~self.prev))
        self.prev = expert.copy()

    def episode(self, i: int) -> int:
        """The interventions of sub-env ``i``'s episode so far."""
        return int(self.handovers[i]) + int(self.first[i] and self.learner_drove[i])


@dataclass
class _Buffer:
    obs: list[np.ndarray] = field(default_factory=list)
    actions: list[Any] = field(default_factory=list)
    executed: list[Any] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)
    actor: list[int] = field(default_factory=list)
    labeled: list[bool] = field(default_factory=list)

    def to_episode(self, terminated: bool, truncated: bool, round: int, seed: int) -> Episode:
        return Episode(
            obs=np.stack(self.obs),
            actions=np.stack(self.actions),
            rewards=np.asarray(self.rewards, np.float32),
            terminated=bool(terminated),
            truncated=bool(truncated),
            executed=np.stack(self.executed),
            actor=np.asarray(self.actor, np.uint8),
            labeled=np.asarray(self.labeled, bool),
            round=round,
            seed=seed,
        )


def _disagreement(learner: np.ndarray, expert: np.ndarray, discrete: bool) -> np.ndarray:
    if discrete:
        return (learner != expert).astype(np.float64)
    diff = np.asarray(learner, np.float64) - np.asarray(expert, np.float64)
    return np.linalg.norm(diff.reshape(len(diff), -1), axis=1)


def _final_info(infos: dict[str, Any], i: int) -> dict[str, Any]:
    final = infos.get("final_info", {})
    out = {}
    for key, value in final.items():
        if key.startswith("_"):
            continue
        m = final.get("_" + key)
        if m is None or m[i]:
            out[key] = value[i]
    return out
