"""The rounds of an interactive run on workers: one unit per batch, committed in batch order.

The single-process engine collects a round batch by batch (:func:`protege.algos.rounds.collect`,
``n_envs`` episodes at once, each seeded from (seed, round, index)). On workers
(:class:`~protege.rollout.ray_workers.RayWorkers`) each batch is a :class:`BatchUnit` that
runs exactly that on a worker, so its episodes, labels and gate draws are the local ones; the
driver appends them to the store (:class:`BatchMerger`: batch b's episodes after batches
0..b-1, in the order they ended, as the local run appends them), the ones that arrived
together as one group commit (:class:`~protege.rollout.remote.GroupCommit`): the
``after_episode`` hook sees an episode once its group is on disk. A driver killed mid-group
loses that group's episodes; ``--resume`` runs them again with their seeds.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from protege.algos.rounds import Sources, collect
from protege.data.episode import Episode
from protege.data.store import Store
from protege.errors import ConfigError
from protege.experts.base import Expert
from protege.rollout.gates import Gate
from protege.rollout.remote import Emit, GroupCommit, UnitDone
from protege.tasks.base import Task


@dataclass
class BatchUnit:
    """One batch of a round of an interactive run (:func:`protege.algos.rounds.collect`):
    episodes ``indices`` of ``round``, one per sub-env, each seeded from (seed, round,
    index). Emits each episode as the store keeps it, then a :class:`UnitDone`."""

    task: Task
    expert: Expert
    gate: Gate
    learner: Any | None
    round: int
    indices: list[int]
    seed: int

    def run(self, emit: Emit) -> None:
        """Collect the batch, emitting every stored episode as it ends."""
        collect(
            Sources(self.task, self.expert),
            _EmitStore(emit),  # type: ignore[arg-type]
            self.gate,
            self.learner,
            self.round,
            self.indices,
            self.seed,
        )
        emit(UnitDone())


class _EmitStore:
    """What :class:`~protege.algos.rounds.Recorder` needs of a store, sending each episode on."""

    def __init__(self, emit: Emit):
        self.emit, self.n = emit, 0

    def append(self, episode: Episode) -> None:
        self.emit(episode)
        self.n += 1

    def __len__(self) -> int:
        return self.n


class BatchMerger:
    """Commits batch ``b``'s episodes (in the order they ended) once batches ``0..b-1`` are
    all committed: the store order of the single-process run, which collects batch by batch."""

    def __init__(self, n_batches: int, commit: Callable[[Episode], None]):
        self.commit = commit
        self.buffers: list[list[Episode]] = [[] for _ in range(n_batches)]
        self.done = [False] * n_batches
        self.next = 0

    def feed(self, batch: int, msg: Any) -> None:
        """A message from unit ``batch``."""
        if isinstance(msg, UnitDone):
            self.done[batch] = True
        else:
            self.buffers[batch].append(msg)
        while self.next < len(self.done):
            buf = self.buffers[self.next]
            while buf:
                self.commit(buf.pop(0))
            if not self.done[self.next]:
                break
            self.next += 1


def collect_batches(
    sources: Sources,
    store: Store,
    gate: Gate,
    learner: Any | None,
    round: int,
    batches: Sequence[Sequence[int]],
    seed: int,
    workers: Any | None = None,
) -> None:
    """Collect ``batches`` of ``round`` (lists of episode indices) into ``store``: one after
    another here (:func:`protege.algos.rounds.collect`), or at once on ``workers`` (a
    :class:`~protege.rollout.ray_workers.RayWorkers`), with the same episodes and store."""
    if workers is None:
        for batch in batches:
            collect(sources, store, gate, learner, round, batch, seed)
        return
    if sources.make_env is not None or sources.episode_env is not None:
        raise ConfigError(
            "--workers: this method makes its own envs on the driver (a person's window, "
            "AggreVaTe's roll-in states); run it without workers"
        )

    group = GroupCommit(store)
    hook = sources.after_episode

    def commit(episode: Episode) -> None:
        then = None if hook is None else lambda index: hook(episode, index)
        group.add(episode, then)

    units = [
        BatchUnit(sources.task, sources.expert, gate, learner, round, list(b), seed)
        for b in batches
    ]
    merger = BatchMerger(len(units), commit)
    workers.run(units, merger.feed, group.flush)
    group.flush()
