"""Collect expert demonstrations into a store."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import numpy as np

from protege.configs.offline import MixSource, mix_counts
from protege.data.episode import Episode
from protege.data.store import Store
from protege.experts.adapters import check_expert
from protege.experts.base import Expert
from protege.experts.noisy import EpsilonExpert
from protege.rollout.gates import ExpertGate, Gate
from protege.rollout.loop import rollout
from protege.rollout.observers import RolloutResult, StoreEpisodes, Success, progress_bar
from protege.rollout.remote import SlotEpisode, SlotUnit, run_slots, slot_units, with_seed
from protege.tasks.base import Task

if TYPE_CHECKING:
    from protege.rollout.ray_workers import RayWorkers


def collect(
    task: Task,
    store: Store | str | os.PathLike,
    episodes: int,
    n_envs: int = 8,
    seed: int = 0,
    expert: Expert | None = None,
    gate: Gate | None = None,
    progress: bool | str = False,
    extras: dict[str, float] | None = None,
    workers: RayWorkers | None = None,
) -> RolloutResult:
    """Run the task's expert for ``episodes`` episodes and append each one durably to ``store``.

    A path creates the store (or appends to the one there, if its spaces match the task's).
    ``extras`` are numbers stored with every episode (:data:`protege.data.records.EXTRAS`).
    With ``workers`` the sub-envs run on Ray workers (:mod:`protege.rollout.remote`) and
    this process appends what they stream back: the same episodes, in the same order, the
    ones that arrive together committed as one group (one fsync per file).

    Example:
        >>> collect(protege.tasks.make("lunarlander"), "demos/lunar", episodes=100, seed=0)
    """
    if workers is not None:
        args = (task, store, episodes, n_envs, seed, expert, gate, progress, extras)
        return _collect_on(workers, *args)
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
            observers=[
                Success(task.success),
                StoreEpisodes(store, extras=extras),
                *progress_bar(progress),
            ],
        )
    finally:
        env.close()


def _collect_on(
    workers: RayWorkers,
    task: Task,
    store: Store | str | os.PathLike,
    episodes: int,
    n_envs: int,
    seed: int,
    expert: Expert | None,
    gate: Gate | None,
    progress: bool | str,
    extras: dict[str, float] | None,
) -> RolloutResult:
    obs_space, act_space = task.spaces
    check_expert(expert or task.make_expert(), obs_space, act_space)
    if not isinstance(store, Store):
        store = Store.create(store, obs_space, act_space, task=task.name, exist_ok=True)

    def unit(slot: int, slot_seed: int, n: int) -> SlotUnit:
        return SlotUnit(task, slot, slot_seed, n, gate or ExpertGate(), expert, True, record=True)

    def stored(msg: SlotEpisode) -> Episode:
        assert msg.episode is not None
        return with_seed(msg.episode, seed, extras)

    units = slot_units(episodes, n_envs, seed, unit)
    return run_slots(workers, units, seed, progress, store, stored)


def collect_mix(
    task: Task,
    store: Store | str | os.PathLike,
    sources: list[MixSource],
    episodes: int,
    n_envs: int = 8,
    seed: int = 0,
    progress: bool | str = False,
) -> list[tuple[MixSource, RolloutResult]]:
    """Data of known, mixed quality: ``episodes`` split among ``sources`` by their fractions
    (:func:`~protege.configs.offline.mix_counts`), each source the task's expert with
    ε-random actions (:class:`~protege.experts.noisy.EpsilonExpert`). Every step stores what
    the source did, labeled; every episode records its source's ε as the extra ``epsilon``.
    Source k's episodes are seeded from ``(seed, k)``.

    Example:
        >>> collect_mix(task, "demos/mixed", parse_mix("expert:0.1,random:0.9"), 100)
    """
    out = []
    space = task.spaces[1]
    for k, (source, count) in enumerate(zip(sources, mix_counts(sources, episodes), strict=True)):
        if count == 0:
            continue
        expert = EpsilonExpert(task.make_expert(), source.epsilon, space)
        run_seed = int(np.random.SeedSequence([seed, k]).generate_state(1)[0])
        label = f"{progress} {source.name}" if isinstance(progress, str) else progress
        result = collect(
            task,
            store,
            count,
            n_envs=n_envs,
            seed=run_seed,
            expert=expert,
            progress=label,
            extras={"epsilon": source.epsilon},
        )
        out.append((source, result))
    return out
