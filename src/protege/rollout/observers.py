"""What the rollout loop tells, and the observers that listen.

:func:`protege.rollout.loop.rollout` runs episodes; everything else a run wants (writing the
store, keeping episodes, judging success, measuring disagreement, a progress bar, a demo's
own measurements) is an :class:`Observer` told each step and each finished episode with its
sub-env index, as acme's ``EnvironmentLoop`` tells its observers. An observer can also ask
the loop for the expert's action where it needs it (:meth:`Observer.ask_expert`): those asks
are lazy and counted like the gate's.

Example:
    >>> success, kept = Success(task.success), KeepEpisodes()
    >>> r = rollout(env, 10, gate=LearnerGate(), seed=0, learner=policy,
    ...             observers=[success, kept, Disagreement()])
    >>> r.successes, r.episodes, r.disagreement   # filled in by those observers
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import gymnasium as gym
import numpy as np
from tqdm.auto import tqdm

from protege.data.episode import EXPERT, LEARNER, Episode
from protege.data.obs import stack, take
from protege.data.store import Store
from protege.errors import ConfigError
from protege.rollout.gates import Decision, StepView
from protege.tasks.base import EpisodeOutcome, SuccessTest


@dataclass
class RolloutResult:
    """Per-episode results (in order of completion) and what the run cost in expert effort.

    The loop fills in returns, lengths, counts and times; ``successes``, ``disagreement`` and
    ``episodes`` are filled in by the :class:`Success`, :class:`Disagreement` and
    :class:`KeepEpisodes` observers (empty without them)."""

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
    """Interventions in the finished episodes (:func:`protege.rollout.loop.count_interventions`)."""
    env_seconds: float = 0.0
    learner_seconds: float = 0.0
    expert_seconds: float = 0.0
    wall_seconds: float = 0.0

    @property
    def n_episodes(self) -> int:
        return len(self.returns)


@dataclass
class Step:
    """One step of all N sub-envs, as the loop took it. Only the rows where ``active`` is
    True belong to episodes that count; the others (sub-envs past their quota, stepping until
    the batch is done) are stepped but never recorded."""

    obs: Any
    """(N, ...) the observations acted on (or a dict of parts, :mod:`protege.data.obs`)."""
    infos: dict[str, Any]
    """Their info dict (what the gate and the expert saw)."""
    t: np.ndarray
    """(N,) int: the step's index within each sub-env's episode."""
    active: np.ndarray
    """(N,) bool: sub-envs whose current episode counts."""
    learner_action: np.ndarray | None
    """(N, ...) the learner's proposal, or None when there is no learner."""
    expert_action: np.ndarray
    """(N, ...) the expert's action where ``asked``, zeros elsewhere."""
    asked: np.ndarray
    """(N,) bool: where the expert was asked this step (each row one counted query)."""
    decision: Decision
    executed: np.ndarray
    """(N, ...) the actions sent to the env."""
    reward: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray

    @property
    def label_actions(self) -> np.ndarray:
        """(N, ...) the action an episode stores at this step: the expert's where the gate
        labels, the executed one elsewhere."""
        n = len(self.executed)
        where = self.decision.label.reshape((n,) + (1,) * (self.executed.ndim - 1))
        return np.where(where, self.expert_action, self.executed)


@dataclass(frozen=True)
class EpisodeEnd:
    """How a counted episode ended."""

    outcome: EpisodeOutcome
    """Return, length, terminated/truncated and the env's final info."""
    interventions: int
    final_obs: np.ndarray | None
    """The observation the episode ended in (None if the vector env does not report
    ``final_obs``, i.e. does not autoreset on the same step)."""


class Observer:
    """Told what the rollout loop does; every hook does nothing by default.

    For each rollout: ``on_rollout_start`` once; then, for each sub-env ``i`` whose episode
    counts, ``on_episode_start(i)``, one ``on_step`` per step (rows where ``step.active``),
    and ``on_episode_end(i, end)`` after its last step (before the gate begins sub-env
    ``i``'s next episode, so gate state still describes the finished one); finally
    ``on_rollout_end(result)``, where an observer may add what it measured to the result.
    Episodes end in order of completion; several ending on one step are told in ascending
    sub-env order.
    """

    def on_rollout_start(self, env: gym.vector.VectorEnv, n_episodes: int, seed: int) -> None:
        """A rollout of ``n_episodes`` episodes starts on ``env``, whose reset takes ``seed``."""

    def on_episode_start(self, env_index: int) -> None:
        """A counted episode starts in sub-env ``env_index``."""

    def ask_expert(self, step: StepView, decision: Decision) -> np.ndarray | None:
        """(N,) bool: sub-envs where this observer needs the expert's action this step
        (asked lazily and counted, like the gate's asks), or None."""
        return None

    def on_step(self, step: Step) -> None:
        """All N sub-envs took a step."""

    def on_episode_end(self, env_index: int, end: EpisodeEnd) -> None:
        """Sub-env ``env_index``'s counted episode has ended."""

    def on_rollout_end(self, result: RolloutResult) -> None:
        """The rollout is done; add what this observer measured to ``result``."""


class Success(Observer):
    """Judges every finished episode by ``test`` (a task's success test): ``result.successes``."""

    def __init__(self, test: SuccessTest):
        self.test = test
        self.values: list[bool] = []

    def on_rollout_start(self, env: gym.vector.VectorEnv, n_episodes: int, seed: int) -> None:
        self.values = []

    def on_episode_end(self, env_index: int, end: EpisodeEnd) -> None:
        self.values.append(bool(self.test(end.outcome)))

    def on_rollout_end(self, result: RolloutResult) -> None:
        result.successes.extend(self.values)


class Disagreement(Observer):
    """How far the learner's choices drift from the expert's along the learner's own
    trajectory: asks the expert at every step the learner acts and keeps, per episode, the
    gap at each step (``result.disagreement``): 1/0 for discrete actions, L2 distance for
    continuous ones, NaN where the expert acted."""

    def __init__(self) -> None:
        self.discrete = False
        self.per_episode: list[np.ndarray] = []
        self._open: dict[int, list[float]] = {}

    def on_rollout_start(self, env: gym.vector.VectorEnv, n_episodes: int, seed: int) -> None:
        self.discrete = isinstance(env.single_action_space, gym.spaces.Discrete)
        self.per_episode, self._open = [], {}

    def on_episode_start(self, env_index: int) -> None:
        self._open[env_index] = []

    def ask_expert(self, step: StepView, decision: Decision) -> np.ndarray | None:
        return None if step.learner_action is None else ~decision.expert_acts

    def on_step(self, step: Step) -> None:
        if step.learner_action is None:
            return
        gap = _disagreement(step.learner_action, step.expert_action, self.discrete)
        gap = np.where(step.decision.expert_acts, np.nan, gap)
        for i in np.flatnonzero(step.active).tolist():
            self._open[i].append(float(gap[i]))

    def on_episode_end(self, env_index: int, end: EpisodeEnd) -> None:
        self.per_episode.append(np.array(self._open.pop(env_index), np.float64))

    def on_rollout_end(self, result: RolloutResult) -> None:
        result.disagreement.extend(self.per_episode)


class Progress(Observer):
    """A progress bar over the rollout's episodes."""

    def __init__(self, desc: str = "rollout"):
        self.desc = desc
        self.bar: Any = None

    def on_rollout_start(self, env: gym.vector.VectorEnv, n_episodes: int, seed: int) -> None:
        self.bar = tqdm(total=n_episodes, desc=self.desc, unit="ep", leave=False)

    def on_episode_end(self, env_index: int, end: EpisodeEnd) -> None:
        self.bar.update(1)

    def on_rollout_end(self, result: RolloutResult) -> None:
        self.bar.refresh()  # draw the finished count (tqdm skips updates within mininterval)
        self.bar.close()


def progress_bar(spec: bool | str) -> list[Observer]:
    """``[Progress()]`` if ``spec`` asks for a bar (a string is its description), else []."""
    if not spec:
        return []
    return [Progress(spec if isinstance(spec, str) else "rollout")]


EpisodeSink = Callable[[int, Episode], None]
"""Receives each finished episode with its sub-env index."""


class RecordEpisodes(Observer):
    """Builds each finished episode as the store keeps it (observations, label and executed
    actions, rewards, who acted, which steps are labeled; tagged with ``round`` and the
    rollout's seed) and hands it to :meth:`on_episode`, which passes it to ``sink``.
    Subclasses override :meth:`on_episode`; each instance records its own copy."""

    def __init__(self, sink: EpisodeSink | None = None, *, round: int = 0):
        self.sink = sink
        self.round = round
        self.seed = 0
        self._open: dict[int, _Buffer] = {}

    def on_rollout_start(self, env: gym.vector.VectorEnv, n_episodes: int, seed: int) -> None:
        self.seed = seed
        self._open = {}

    def on_episode_start(self, env_index: int) -> None:
        self._open[env_index] = _Buffer()

    def on_step(self, step: Step) -> None:
        label = step.label_actions
        actor = np.where(step.decision.expert_acts, EXPERT, LEARNER)
        for i in np.flatnonzero(step.active).tolist():
            b = self._open[i]
            b.obs.append(take(step.obs, i))
            b.actions.append(label[i])
            b.executed.append(step.executed[i])
            b.rewards.append(float(step.reward[i]))
            b.actor.append(int(actor[i]))
            b.labeled.append(bool(step.decision.label[i]))

    def on_episode_end(self, env_index: int, end: EpisodeEnd) -> None:
        b = self._open.pop(env_index)
        if end.final_obs is None:
            raise ConfigError(
                "recording episodes needs a vector env that autoresets on the same step "
                "(its infos carry 'final_obs'; see Task.make_vec_env)"
            )
        b.obs.append(end.final_obs)
        o = end.outcome
        self.on_episode(env_index, b.to_episode(o.terminated, o.truncated, self.round, self.seed))

    def on_episode(self, env_index: int, episode: Episode) -> None:
        """A finished episode, as recorded."""
        if self.sink is not None:
            self.sink(env_index, episode)


class StoreEpisodes(RecordEpisodes):
    """Appends every finished episode to ``store``, durably, the moment it ends: a crash
    loses only the episodes in flight."""

    def __init__(self, store: Store, *, round: int = 0, extras: dict[str, float] | None = None):
        super().__init__(round=round)
        self.store = store
        self.extras = dict(extras or {})
        """Numbers stored with every episode (e.g. the source of a mixed collection)."""

    def on_episode(self, env_index: int, episode: Episode) -> None:
        if self.extras:
            episode = replace(episode, extras={**episode.extras, **self.extras})
        self.store.append(episode)


class KeepEpisodes(RecordEpisodes):
    """Keeps every finished episode in memory: ``result.episodes``."""

    def __init__(self, *, round: int = 0):
        super().__init__(round=round)
        self.episodes: list[Episode] = []

    def on_rollout_start(self, env: gym.vector.VectorEnv, n_episodes: int, seed: int) -> None:
        super().on_rollout_start(env, n_episodes, seed)
        self.episodes = []

    def on_episode(self, env_index: int, episode: Episode) -> None:
        self.episodes.append(episode)

    def on_rollout_end(self, result: RolloutResult) -> None:
        result.episodes.extend(self.episodes)


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
            obs=stack(self.obs),
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
