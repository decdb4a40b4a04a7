"""Collect expert demonstrations into a store."""

from __future__ import annotations

import os

from protege.data.store import Store
from protege.experts.adapters import check_expert
from protege.experts.base import Expert
from protege.rollout.gates import ExpertGate, Gate
from protege.rollout.loop import rollout
from protege.rollout.observers import RolloutResult, StoreEpisodes, Success, progress_bar
from protege.tasks.base import Task


def collect(
    task: Task,
    store: Store | str | os.PathLike,
    episodes: int,
    n_envs: int = 8,
    seed: int = 0,
    expert: Expert | None = None,
    gate: Gate | None = None,
    progress: bool | str = False,
) -> RolloutResult:
    """Run the task's expert for ``episodes`` episodes and append each one durably to ``store``.

    A path creates the store (or appends to the one there, if its spaces match the task's).

    Example:
        >>> collect(protege.tasks.make("lunarlander"), "demos/lunar", episodes=100, seed=0)
    """
    expert = expert or task.make_expert()
    env = task.make_vec_env(min(n_envs, episodes))
    try:
        # Before the store is created: a wrong expert leaves no empty store behind.
        check_expert(expert, env.single_observation_space, env.single_action_space)
        if not isinstance(store, Store):
            obs_space, act_space = task.spaces
            store = Store.create(store, obs_space, act_space, task=task.name, exist_ok=True)
        expert.begin_run(seed)
        return rollout(
            env,
            episodes,
            gate=gate or ExpertGate(),
            seed=seed,
            expert=expert,
            observers=[Success(task.success), StoreEpisodes(store), *progress_bar(progress)],
        )
    finally:
        env.close()
