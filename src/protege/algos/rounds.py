"""An interactive run's episodes: how each is seeded, collected, recorded and put in order.

:func:`protege.algos.dagger.run` owns the rounds; this module owns what happens to one
round's episodes. Every random choice is derived from ``(seed, round, episode index)``
(:func:`episode_seed`, :func:`gate_seed`, :func:`train_seed`), each episode is appended to
the store the moment it ends with its index, seed, expert queries and interventions
(:class:`Recorder`), and training data are read back ordered by (round, episode index),
never by completion order (:func:`ordered`), so a resumed run sees exactly the data an
uninterrupted one did.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import gymnasium as gym
import numpy as np

from protege.data.episode import EXPERT, Episode
from protege.data.obs import take
from protege.data.store import Store, Transitions
from protege.experts.base import Expert
from protege.rollout.gates import Gate
from protege.rollout.loop import count_interventions, rollout
from protege.rollout.observers import EpisodeEnd, RecordEpisodes, Step
from protege.tasks.base import EpisodeOutcome, Task

# ------------------------------------------------------------------------------ seeds
_EPISODE, _GATE, _TRAIN = 0, 1, 2


def derive_seed(seed: int, *keys: int) -> int:
    """A 31-bit seed determined by ``(seed, *keys)`` alone (NumPy's SeedSequence hashing)."""
    return int(np.random.SeedSequence([seed, *keys]).generate_state(1)[0]) & 0x7FFFFFFF


def episode_seed(seed: int, round: int, index: int) -> int:
    """The env seed of episode ``index`` of ``round``."""
    return derive_seed(seed, _EPISODE, round, index)


def gate_seed(seed: int, round: int, index: int) -> int:
    """The seed of the gate's random draws (β, DART noise) in episode ``index`` of ``round``."""
    return derive_seed(seed, _GATE, round, index)


def train_seed(seed: int, round: int) -> int:
    """The seed of the training run that ends ``round``."""
    return derive_seed(seed, _TRAIN, round)


def round_gate_seed(seed: int, round: int) -> int:
    """The seed of round ``round``'s gate as built (before any episode re-seeds it)."""
    return derive_seed(seed, _GATE, round)


EpisodeHook = Callable[[Episode, int], None]
"""Called after each episode is appended, with the episode as stored and its store index."""


# ------------------------------------------------------------------------ collection
class SeedFirstReset(gym.Wrapper):
    """Seeds the env's first reset with a fixed seed, whatever the vector env passes."""

    def __init__(self, env: gym.Env, seed: int):
        super().__init__(env)
        self._seed: int | None = seed

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> Any:
        if self._seed is not None:
            seed, self._seed = self._seed, None
        return self.env.reset(seed=seed, options=options)


@dataclass
class Sources:
    """Where a run's episodes come from: the task, the expert, how a sub-env is made, and
    who hears about each stored episode."""

    task: Task
    expert: Expert
    make_env: Callable[[], gym.Env] | None = None
    after_episode: EpisodeHook | None = None
    episode_env: EpisodeEnv | None = None


EpisodeEnv = Callable[[gym.Env, int, int], gym.Env]
"""``(env, round, index) -> env``: wraps the sub-env made for episode ``index`` of ``round``
before its first (seeded) reset; AggreVaTe restores a roll-in's state in it."""


def _make_env(sources: Sources, round: int, index: int, seed: int) -> gym.Env:
    make = sources.make_env or sources.task.make_env
    env = make()
    if sources.episode_env is not None:
        env = sources.episode_env(env, round, index)
    return SeedFirstReset(env, seed)


class Recorder(RecordEpisodes):
    """Records one batch of a round, one episode per sub-env: pins the gate's draws in each
    episode to (seed, round, index), counts the expert queries each episode costs, and
    appends every finished episode to the store with its index, seed, counts and the gate's
    :meth:`~protege.rollout.gates.Gate.episode_extras`."""

    def __init__(
        self,
        gate: Gate,
        store: Store,
        task: Task,
        round: int,
        indices: Sequence[int],
        seed: int,
        after_episode: EpisodeHook | None = None,
    ):
        super().__init__(round=round)
        self.gate, self.store, self.task = gate, store, task
        self.after_episode = after_episode
        self.indices = list(indices)
        self.run_seed = seed
        self.queries = np.zeros(len(indices), np.int64)
        self.stored = 0
        self._final_info: dict[int, dict[str, Any]] = {}

    def on_episode_start(self, env_index: int) -> None:
        super().on_episode_start(env_index)
        self.queries[env_index] = 0
        idx = self.indices[env_index]
        self.gate.seed_episode(env_index, gate_seed(self.run_seed, self.round, idx))

    def on_step(self, step: Step) -> None:
        super().on_step(step)
        self.queries[step.asked & step.active] += 1

    def on_episode_end(self, env_index: int, end: EpisodeEnd) -> None:
        # The success test sees the episode's final info (Meta-World's and the lane task's
        # success is there), so keep it for :meth:`on_episode`, which the base class calls.
        self._final_info[env_index] = end.outcome.final_info
        super().on_episode_end(env_index, end)

    def on_episode(self, env_index: int, episode: Episode) -> None:
        idx = self.indices[env_index]
        ep = episode
        interventions = count_interventions(ep.actors == EXPERT)
        final_info = self._final_info.pop(env_index, {})
        outcome = EpisodeOutcome(
            ep.episode_return, len(ep), ep.terminated, ep.truncated, final_info
        )
        extras = dict(self.gate.episode_extras(env_index))
        extras.update(
            episode=float(idx),
            queries=float(self.queries[env_index]),
            interventions=float(interventions),
            success=float(bool(self.task.success(outcome))),
        )
        seed = episode_seed(self.run_seed, self.round, idx)
        stored = dataclasses.replace(ep, seed=seed, extras=extras)
        self.store.append(stored)
        self.stored += 1
        if self.after_episode is not None:
            self.after_episode(stored, len(self.store) - 1)


def collect(
    sources: Sources,
    store: Store,
    gate: Gate,
    learner: Any | None,
    round: int,
    indices: Sequence[int],
    seed: int,
) -> None:
    """Collect episodes ``indices`` of ``round``, one per sub-env, appending each to
    ``store`` as it ends."""
    task = sources.task
    seeds = [episode_seed(seed, round, e) for e in indices]
    env = gym.vector.SyncVectorEnv(
        [partial(_make_env, sources, round, e, s) for e, s in zip(indices, seeds, strict=True)],
        autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,
    )
    recorder = Recorder(gate, store, task, round, indices, seed, sources.after_episode)
    try:
        rollout(
            env,
            len(indices),
            gate=gate,
            seed=seeds[0],
            learner=learner,
            expert=sources.expert,
            observers=[recorder],
        )
    finally:
        env.close()
    if recorder.stored != len(indices):
        raise RuntimeError(f"collected {recorder.stored} of {len(indices)} episodes")


def missing_batches(target: int, n_envs: int, have: set[int]) -> list[list[int]]:
    """The batches of a round of ``target`` episodes still to collect: episodes
    ``k·n_envs … k·n_envs + n_envs − 1`` not in ``have``, the empty ones left out."""
    spans = (range(s, min(s + n_envs, target)) for s in range(0, target, n_envs))
    return [b for span in spans if (b := [e for e in span if e not in have])]


# ---------------------------------------------------------------------- in order
def has_external_demos(store: Store) -> bool:
    """Round-0 episodes not collected by :func:`~protege.algos.engine.run` (no episode index):
    demonstrations."""
    return any(e.round == 0 and e.episode is None for e in store.index)


def stored_indices(store: Store, round: int) -> set[int]:
    return {e.episode for e in store.index if e.round == round and e.episode is not None}


def _order_keys(store: Store) -> list[tuple[int, float, int]]:
    return [(e.round, float(e.extras.get("episode", i)), i) for i, e in enumerate(store.index)]


def ordered(
    store: Store,
    min_round: int = 0,
    max_round: int | None = None,
    before_episode: int | None = None,
) -> Transitions | None:
    """The store's steps of rounds ``min_round..max_round`` ordered by (round, episode
    index): the same arrays whatever order the episodes finished in (None if empty). With
    ``before_episode``, only the episodes of ``max_round`` with a smaller index."""
    if max_round is not None and max_round < min_round:
        return None
    keys = _order_keys(store)
    chosen = [
        k
        for k in sorted(keys)
        if k[0] >= min_round
        and (max_round is None or k[0] <= max_round)
        and (before_episode is None or k[0] != max_round or k[1] < before_episode)
    ]
    if not chosen:
        return None
    return reorder_episodes(store.transitions(), np.array([k[2] for k in chosen], np.int64))


def reorder_episodes(data: Transitions, order: np.ndarray) -> Transitions:
    """The episodes ``order`` (indices, repeats allowed) of ``data``, in that order."""
    return data.take_episodes(order)


def next_observations(data: Transitions) -> tuple[np.ndarray, np.ndarray]:
    """(next_obs (N, ...), last (N,) bool): the observation after each step within its
    episode; at an episode's last step ``next_obs`` repeats ``obs`` and ``last`` is True."""
    n = len(data)
    idx = np.arange(n) + 1
    last = np.zeros(n, bool)
    last[data.episode_starts + data.episode_lengths - 1] = True
    idx[last] -= 1
    return take(data.obs, idx), last
