"""The one rollout loop: collection, DAgger, intervention and evaluation all run through it.

What differs between them is the gate (who acts, whether the expert labels: the contract is
:class:`~protege.rollout.gates.Gate`) and the observers (what is recorded, stored and
measured: :mod:`protege.rollout.observers`). Episodes are spread evenly over the sub-envs of a
gymnasium vector env (sub-env i runs ``(n_episodes + i) // n_envs`` of them), so short
episodes do not crowd out long ones and bias the mean. A finished episode can be appended to a
store at once (:class:`~protege.rollout.observers.StoreEpisodes`): a crash loses only the
episodes in flight.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, Protocol

import gymnasium as gym
import numpy as np
import torch

from protege.data.obs import check_obs
from protege.experts.base import Expert
from protege.rollout.gates import Gate, LazyExpert, StepView
from protege.rollout.observers import EpisodeEnd, Observer, RolloutResult, Step
from protege.tasks.base import EpisodeOutcome


class Actor(Protocol):
    """A learner as the loop sees it (a :class:`protege.policies.Policy` is one)."""

    def act(
        self, obs: Any, deterministic: bool = True, generator: torch.Generator | None = None
    ) -> np.ndarray: ...

    def episodes_started(self, mask: np.ndarray | None = None) -> None:
        """New episodes start in every sub-env (``mask`` None, before the first ``act``) or
        in those where ``mask`` (N,) is True: forget their per-episode state (observation
        history, queued action chunk)."""
        ...


def rollout(
    env: gym.vector.VectorEnv,
    n_episodes: int,
    *,
    gate: Gate,
    seed: int,
    learner: Actor | None = None,
    expert: Expert | None = None,
    observers: Sequence[Observer] = (),
    deterministic: bool = True,
    generator: torch.Generator | None = None,
) -> RolloutResult:
    """Run ``n_episodes`` episodes on the vector env ``env`` and return what happened.

    Args:
        gate: decides per step and sub-env who acts and whether the expert's action is a
            label (:class:`~protege.rollout.gates.Gate` states the contract).
        seed: the vector env's reset seed.
        learner: the policy being trained or evaluated (None to let only the expert act);
            ``deterministic`` and ``generator`` are how it acts.
        expert: asked lazily, only where the gate (or an observer) needs it.
        observers: told each step and each finished episode
            (:mod:`protege.rollout.observers`): recording and storing episodes, success,
            disagreement, progress. They fill in the result's ``successes``,
            ``disagreement`` and ``episodes``.
    """
    n = env.num_envs
    targets = np.array([(n_episodes + i) // n for i in range(n)])
    done_count = np.zeros(n, np.int64)
    act_space = env.single_action_space
    discrete = isinstance(act_space, gym.spaces.Discrete)
    template = (
        np.zeros(n, np.int64)
        if discrete
        else np.zeros((n, *(act_space.shape or ())), np.asarray(act_space.sample()).dtype)
    )
    lazy = LazyExpert(expert, act_space)
    result = RolloutResult(seed=seed)
    wall0 = time.perf_counter()

    for o in observers:
        o.on_rollout_start(env, n_episodes, seed)
    obs, infos = env.reset(seed=seed)
    check_obs(obs, env.single_observation_space, "the env's first observations")
    if learner is not None:
        learner.episodes_started()
    for i in range(n):
        gate.begin_episode(i)
        if done_count[i] < targets[i]:
            for o in observers:
                o.on_episode_start(i)
    t = np.zeros(n, np.int64)
    ep_return = np.zeros(n, np.float64)
    interventions = _InterventionCounter(n)
    while (done_count < targets).any():
        learner_action = None
        if learner is not None:
            t0 = time.perf_counter()
            learner_action = learner.act(obs, deterministic=deterministic, generator=generator)
            result.learner_seconds += time.perf_counter() - t0
        t0 = time.perf_counter()
        active = done_count < targets
        lazy.begin_step(obs, infos, template, active)
        view = StepView(obs, infos, learner_action, lazy, t)
        decision = gate.decide(view)
        expert_needed = decision.expert_acts | decision.label
        for o in observers:
            wanted = o.ask_expert(view, decision)
            if wanted is not None:
                expert_needed = expert_needed | wanted
        expert_needed &= active  # sub-envs past their quota only keep stepping: never ask
        if expert_needed.any():
            lazy(expert_needed)
        expert_action = lazy.actions
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
        next_obs, reward, terminated, truncated, next_infos = env.step(executed)
        result.env_seconds += time.perf_counter() - t0

        result.expert_steps += int((decision.expert_acts & active).sum())
        result.learner_steps += int((~decision.expert_acts & active).sum())
        result.labels += int((decision.label & active).sum())
        interventions.step(decision.expert_acts, t)
        ep_return += reward
        if observers:
            step = Step(
                obs=obs,
                infos=infos,
                t=t.copy(),
                active=active,
                learner_action=learner_action,
                expert_action=expert_action,
                asked=lazy.asked,
                decision=decision,
                executed=executed,
                reward=reward,
                terminated=terminated,
                truncated=truncated,
            )
            for o in observers:
                o.on_step(step)
        t += 1
        infos = next_infos

        finished = terminated | truncated
        for i in np.flatnonzero(finished).tolist():
            if done_count[i] < targets[i]:
                outcome = EpisodeOutcome(
                    float(ep_return[i]),
                    int(t[i]),
                    bool(terminated[i]),
                    bool(truncated[i]),
                    _final_info(infos, i),
                )
                result.returns.append(outcome.episode_return)
                result.lengths.append(outcome.length)
                n_interventions = interventions.episode(i)
                result.interventions += n_interventions
                if observers:
                    final_obs = infos.get("final_obs")
                    end = EpisodeEnd(
                        outcome, n_interventions, None if final_obs is None else final_obs[i]
                    )
                    for o in observers:
                        o.on_episode_end(i, end)
                done_count[i] += 1
            t[i] = 0
            ep_return[i] = 0.0
            gate.begin_episode(int(i))
            if done_count[i] < targets[i]:
                for o in observers:
                    o.on_episode_start(i)
        if finished.any() and learner is not None:
            learner.episodes_started(finished)
        obs = next_obs
    result.expert_queries = lazy.queries
    result.wall_seconds = time.perf_counter() - wall0
    for o in observers:
        o.on_rollout_end(result)
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
