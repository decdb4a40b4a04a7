"""Rollouts cut into units of work that run anywhere, and put back in the local run's order.

A worker (:mod:`protege.rollout.ray_workers`) runs one *unit* at a time with the same loop as
a single process (:func:`protege.rollout.loop.rollout`) and streams back a message per
finished episode; the driver alone commits them (to the store, the result, the progress bar),
in the order the single-process run would have, so the same seed gives the same episodes,
labels, numbers and store:

* :class:`SlotUnit` (``collect``, ``evaluate``): sub-env ``i`` of the local vector env of
  ``n`` sub-envs. Locally sub-env i is reset with ``seed + i`` and runs
  ``(episodes + i) // n`` episodes one after another; a unit runs exactly those on a one-env
  vector env. :class:`SlotMerger` commits episodes in the local loop's order of completion
  (by the step at which each ended, then by sub-env).
* :class:`~protege.algos.remote_rounds.BatchUnit` (the rounds of DAgger, its gated variants
  and DART): one batch of a round, exactly as :func:`protege.algos.rounds.collect` runs it
  locally (its episodes are seeded from (seed, round, index)).

**Weights go out once.** The objects every unit of a call holds (the learner and its
weights, the gate, the expert, the task) are split off (:func:`split_shared`): the workers
get them as one object put once per call (a round's batches, an evaluation), and each unit
only names them; a worker puts them back (:func:`join_shared`) before it runs the unit.

A unit is deterministic, so a unit whose worker died is run again from its start, and the
messages the driver already has from it are dropped (:class:`Deduplicate`): an episode is
committed once. This module imports no Ray.
"""

from __future__ import annotations

import dataclasses
import heapq
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from protege.data.episode import Episode
from protege.experts.base import Expert
from protege.rollout.gates import Gate
from protege.rollout.observers import (
    Disagreement,
    EpisodeEnd,
    Observer,
    RecordEpisodes,
    RolloutResult,
    Success,
)
from protege.tasks.base import Task

Emit = Callable[[Any], None]
"""How a unit hands a message to whoever runs it (a worker streams it to the driver)."""


# ============================================================================ messages
@dataclass
class SlotEpisode:
    """One finished episode of a :class:`SlotUnit`."""

    slot: int
    k: int
    """Its place among the slot's episodes (0, 1, ...)."""
    end_step: int
    """The slot's steps up to and including this episode's last: the local loop's step at
    which it ended."""
    episode_return: float
    length: int
    success: bool
    interventions: int
    disagreement: np.ndarray | None
    episode: Episode | None
    """The recorded episode (collect), None when nothing is stored (evaluate)."""


@dataclass
class UnitDone:
    """A unit has finished; its counts (the totals of its whole rollout)."""

    labels: int = 0
    expert_queries: int = 0
    expert_steps: int = 0
    learner_steps: int = 0
    env_seconds: float = 0.0
    learner_seconds: float = 0.0
    expert_seconds: float = 0.0

    @classmethod
    def of(cls, r: RolloutResult) -> UnitDone:
        """The counts of a finished rollout ``r``."""
        return cls(
            r.labels,
            r.expert_queries,
            r.expert_steps,
            r.learner_steps,
            r.env_seconds,
            r.learner_seconds,
            r.expert_seconds,
        )


# ============================================================================== units
@dataclass
class SlotUnit:
    """Sub-env ``slot`` of a local rollout: ``episodes`` episodes from a reset with ``seed``
    (the local run's seed + slot), on a one-env vector env of ``task``."""

    task: Task
    slot: int
    seed: int
    episodes: int
    gate: Gate
    expert: Expert | None
    """Who labels (None: the task's own expert, made on the worker)."""
    make_expert: bool
    """Whether to make the task's expert on the worker when ``expert`` is None."""
    learner: Any | None = None
    record: bool = False
    """Record the episodes (for a store) and send them back."""
    measure_disagreement: bool = False
    deterministic: bool = True
    generator_seed: int | None = None
    """Seed of the learner's sampling generator (stochastic evaluation only)."""

    def run(self, emit: Emit) -> None:
        """Run the slot's episodes, emitting a :class:`SlotEpisode` for each and a
        :class:`UnitDone` at the end."""
        from protege.experts.adapters import check_expert
        from protege.rollout.loop import rollout

        expert = self.expert
        if expert is None and self.make_expert:
            expert = self.task.make_expert()
        env = self.task.make_vec_env(1)
        try:
            check_expert(expert, env.single_observation_space, env.single_action_space)
            if expert is not None:
                expert.begin_run(self.seed - self.slot)
            success = Success(self.task.success)
            disagreement = Disagreement() if self.measure_disagreement else None
            tell = _SlotTeller(self.slot, emit, success, disagreement, self.record)
            observers: list[Observer] = [success, *([disagreement] if disagreement else []), tell]
            generator = None
            if self.generator_seed is not None:
                generator = torch.Generator().manual_seed(self.generator_seed)
            r = rollout(
                env,
                self.episodes,
                gate=self.gate,
                seed=self.seed,
                learner=self.learner,
                expert=expert,
                observers=observers,
                deterministic=self.deterministic,
                generator=generator,
            )
        finally:
            env.close()
        emit(UnitDone.of(r))


class _SlotTeller(RecordEpisodes):
    """Emits each finished episode of a slot (observers before it have judged it)."""

    def __init__(
        self,
        slot: int,
        emit: Emit,
        success: Success,
        disagreement: Disagreement | None,
        record: bool,
    ):
        super().__init__()
        self.slot, self.emit, self.record = slot, emit, record
        self.success, self.disagreement = success, disagreement
        self.k = 0
        self.steps = 0
        self._end: EpisodeEnd | None = None

    def on_step(self, step: Any) -> None:
        if self.record:
            super().on_step(step)

    def on_episode_start(self, env_index: int) -> None:
        if self.record:
            super().on_episode_start(env_index)

    def on_episode_end(self, env_index: int, end: EpisodeEnd) -> None:
        self._end = end
        if self.record:
            super().on_episode_end(env_index, end)  # calls on_episode
        else:
            self.on_episode(env_index, None)

    def on_episode(self, env_index: int, episode: Episode | None) -> None:
        end = self._end
        assert end is not None
        o = end.outcome
        self.steps += o.length
        gaps = self.disagreement.per_episode[-1] if self.disagreement is not None else None
        self.emit(
            SlotEpisode(
                self.slot,
                self.k,
                self.steps,
                o.episode_return,
                o.length,
                self.success.values[-1],
                end.interventions,
                gaps,
                episode,
            )
        )
        self.k += 1


# ============================================================================ merging
def slot_targets(episodes: int, n_envs: int) -> list[int]:
    """Episodes each sub-env runs locally (:func:`protege.rollout.loop.rollout`)."""
    return [(episodes + i) // n_envs for i in range(n_envs)]


class SlotMerger:
    """Puts slot episodes back in the single-process loop's order of completion and commits
    each as soon as every episode before it in that order has arrived.

    ``commit(msg)`` receives the :class:`SlotEpisode` messages in that order; the merged
    result (returns, lengths, successes, disagreement, counts) is :attr:`result`.
    """

    def __init__(self, n_slots: int, seed: int, commit: Callable[[SlotEpisode], None]):
        self.commit = commit
        self.last = [0] * n_slots
        """Per slot, the end step of its latest episode to arrive (0: none yet)."""
        self.done = [False] * n_slots
        self.pending: list[tuple[int, int, int, SlotEpisode]] = []
        self.result = RolloutResult(seed=seed)

    def feed(self, slot: int, msg: Any) -> None:
        """A message from unit ``slot``."""
        if isinstance(msg, UnitDone):
            self.done[slot] = True
            r = self.result
            r.labels += msg.labels
            r.expert_queries += msg.expert_queries
            r.expert_steps += msg.expert_steps
            r.learner_steps += msg.learner_steps
            r.env_seconds += msg.env_seconds
            r.learner_seconds += msg.learner_seconds
            r.expert_seconds += msg.expert_seconds
        else:
            self.last[slot] = msg.end_step
            heapq.heappush(self.pending, (msg.end_step, msg.slot, msg.k, msg))
        self._flush()

    def _ready(self, end_step: int, slot: int) -> bool:
        return all(
            s == slot or self.done[s] or self.last[s] >= end_step for s in range(len(self.last))
        )

    def _flush(self) -> None:
        while self.pending and self._ready(self.pending[0][0], self.pending[0][1]):
            msg = heapq.heappop(self.pending)[3]
            r = self.result
            r.returns.append(msg.episode_return)
            r.lengths.append(msg.length)
            r.successes.append(msg.success)
            r.interventions += msg.interventions
            if msg.disagreement is not None:
                r.disagreement.append(msg.disagreement)
            self.commit(msg)

    def finish(self) -> RolloutResult:
        """The merged result, once every unit is done."""
        if self.pending or not all(self.done):
            raise RuntimeError("slot merger finished with episodes outstanding")
        return self.result


# ====================================================================== deduplication
@dataclass
class Deduplicate:
    """Drops the messages a unit re-run after a worker died has already sent: unit ``u``'s
    ``j``-th message is passed on once, however often the unit runs."""

    seen: dict[int, int] = field(default_factory=dict)

    def fresh(self, unit: int, seq: int) -> bool:
        """Whether message ``seq`` (0, 1, ... within one run of unit ``unit``) is new."""
        if seq < self.seen.get(unit, 0):
            return False
        self.seen[unit] = seq + 1
        return True


# ======================================================================= group commit
class GroupCommit:
    """The driver's appends to a store, committed a group at a time.

    :meth:`add` holds an episode; :meth:`flush` (called by
    :meth:`~protege.rollout.ray_workers.RayWorkers.run` once the messages that arrived
    together are fed) appends every held episode with one
    :meth:`~protege.data.store.Store.append_group`: one fsync per file for the group
    instead of one per episode. Each episode's ``then(store_index)`` (counting it: a hook,
    a progress bar) runs only once its group is on disk. A crash loses at most the group
    being committed; an interactive run's resume re-runs those episodes with their seeds
    (:func:`protege.algos.rounds.missing_batches`)."""

    def __init__(self, store: Any):
        self.store = store
        self.pending: list[tuple[Episode, Callable[[int], None] | None]] = []
        self.groups = 0
        """Commits made (each one fsync per file)."""

    def add(self, episode: Episode, then: Callable[[int], None] | None = None) -> None:
        """Hold ``episode`` for the next commit."""
        self.pending.append((episode, then))

    def flush(self) -> None:
        """Commit every held episode as one group, then run their ``then``s in order."""
        if not self.pending:
            return
        group, self.pending = self.pending, []
        self.store.append_group([episode for episode, _ in group])
        self.groups += 1
        first = len(self.store) - len(group)
        for i, (_, then) in enumerate(group):
            if then is not None:
                then(first + i)


def run_slots(
    workers: Any,
    units: list[SlotUnit],
    seed: int,
    progress: bool | str = False,
    store: Any | None = None,
    stored: Callable[[SlotEpisode], Episode] | None = None,
) -> RolloutResult:
    """Run ``units`` on ``workers`` (:class:`~protege.rollout.ray_workers.RayWorkers`) and
    merge them into the result the single-process rollout returns. With a ``store``, each
    episode goes there as ``stored(msg)``, in that run's order: the episodes that arrived
    together are committed as one group (:class:`GroupCommit`), and the progress bar counts
    them once they are on disk."""
    bar = tqdm(
        total=sum(u.episodes for u in units),
        desc=progress if isinstance(progress, str) else "rollout",
        unit="ep",
        leave=False,
        disable=not progress,
    )
    group = GroupCommit(store) if store is not None else None

    def told(msg: SlotEpisode) -> None:
        if group is None:
            bar.update(1)
        else:
            assert stored is not None
            group.add(stored(msg), lambda _: bar.update(1))

    merger = SlotMerger(len(units), seed, told)
    t0 = time.perf_counter()
    try:
        if group is None:
            workers.run(units, merger.feed)
        else:
            workers.run(units, merger.feed, group.flush)
            group.flush()
    finally:
        bar.close()
    result = merger.finish()
    result.wall_seconds = time.perf_counter() - t0
    return result


def with_seed(episode: Episode, seed: int, extras: dict[str, float] | None) -> Episode:
    """A slot's recorded episode as the local run stores it: the run's seed (not the slot's
    reset seed) and the collection's extras."""
    merged = {**episode.extras, **extras} if extras else episode.extras
    return dataclasses.replace(episode, seed=seed, extras=merged)


def slot_units(
    episodes: int, n_envs: int, seed: int, make: Callable[[int, int, int], SlotUnit]
) -> list[SlotUnit]:
    """The units of a local rollout of ``episodes`` on ``min(n_envs, episodes)`` sub-envs:
    ``make(slot, seed + slot, episodes_of_slot)`` for each sub-env."""
    n = min(n_envs, episodes)
    return [make(i, seed + i, k) for i, k in enumerate(slot_targets(episodes, n))]


# ===================================================================== shared objects
SHARED = "<shared>"
"""What a unit holds in place of an object split off by :func:`split_shared`."""
_PLAIN = (int, float, str, bool, bytes, type(None))


def split_shared(units: Sequence[Any]) -> tuple[list[Any], dict[str, Any]]:
    """The units with every field that holds the same object in all of them (and is not a
    plain value) replaced by :data:`SHARED`, and those objects by field name: one object to
    send once (a worker gets a fresh copy of it with each unit, so no state is carried over
    from unit to unit, as when each unit is sent whole)."""
    if not units or not all(dataclasses.is_dataclass(u) for u in units):
        return list(units), {}
    first = units[0]
    names = [
        f.name
        for f in dataclasses.fields(first)
        if not isinstance(getattr(first, f.name), _PLAIN)
        and all(getattr(u, f.name) is getattr(first, f.name) for u in units)
    ]
    shared = {name: getattr(first, name) for name in names}
    stripped = [dataclasses.replace(u, **dict.fromkeys(names, SHARED)) for u in units]
    return stripped, shared


def join_shared(unit: Any, shared: dict[str, Any] | None) -> Any:
    """``unit`` with the objects :func:`split_shared` took from it put back."""
    if not shared:
        return unit
    return dataclasses.replace(unit, **shared)
