"""Fleet-DAgger (Hoque, Chen, Sharma, Dharmarajan, Thananjeyan, Abbeel & Goldberg, CoRL 2022,
"Fleet-DAgger: Interactive Robot Fleet Learning with Scalable Human Supervision"): N robots
learn at once from K supervisors, and the learner is retrained between rounds on every
label the supervisors gave.

Each interactive round runs its episodes on a fleet of ``FleetConfig.robots`` robots
(:class:`~protege.rollout.fleet.Fleet`): each robot takes the round's next episode when it
finishes one, asks for help where ThriftyDAgger's gate would (novelty above δ_h, Q below
β_h), and the supervisors go to the robots of highest priority (failures waiting for a reset,
then novelty, then risk), or at random / in turn for the baselines. The robots are
ThriftyDAgger learners (bootstrap ensemble plus success critic), trained, calibrated and
checkpointed exactly as :mod:`protege.algos.thrifty` does, and the round engine
(:func:`protege.algos.engine.run`) keeps the rounds, the durable store, ``--resume`` and the
evaluation. Each stored episode records the supervisor time it took (``attention_seconds``:
switching, driving, resetting), the steps it waited, the requests, visits and resets; a
round's row sums them.

**Resume.** A round is one batch. A resumed round runs its whole fleet again (every choice
is seeded from ``(seed, round)``, every episode from ``(seed, round, index)``) and stores
only the episodes that are missing, so it reaches the same numbers as an uninterrupted run.

Example:
    >>> result = fleet.run(task, "runs/fleet/store", DAggerConfig(rounds=4, episodes_per_round=16),
    ...                    FleetConfig(robots=8, supervisors=2, allocation="priority"))
"""

from __future__ import annotations

import dataclasses
import itertools
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np

from protege.algos import engine, thrifty
from protege.algos.engine import MethodSpec
from protege.algos.results import DAggerResult
from protege.algos.rounds import (
    EpisodeHook,
    Recorder,
    Sources,
    derive_seed,
    episode_seed,
    gate_seed,
)
from protege.configs.fleet import FleetConfig
from protege.configs.interactive import DAggerConfig
from protege.data.episode import Episode
from protege.data.obs import is_parts, take
from protege.data.store import Store
from protege.errors import ConfigError
from protege.experts.base import Expert
from protege.policies.policy import Policy
from protege.policies.thrifty import ThriftyLearner
from protege.rollout.fleet import Fleet, LocalRobots, Robots
from protege.rollout.fleet_result import FleetResult
from protege.rollout.fleet_shards import Holders, ShardedRobots
from protege.rollout.gates import Decision, Gate, LearnerGate, StepView
from protege.rollout.gates_interactive import ThriftyGate
from protege.rollout.loop import rollout
from protege.rollout.observers import KeepEpisodes, Observer
from protege.tasks.base import Task

if TYPE_CHECKING:
    from protege.teleop.desk import Desk

_FLEET = 7
"""Seed key of a round's fleet draws (priority ties, random allocation)."""

RobotSource = Callable[[Sources, int], Robots]
"""``(sources, n) -> robots``: where a round's N robots live (default :class:`LocalRobots`
on ``sources.make_env`` or the task's env; on Ray workers: :func:`sharded_robots`)."""


def local_robots(sources: Sources, n: int) -> Robots:
    """N gymnasium envs in this process."""
    return LocalRobots(sources.make_env or sources.task.make_env, n)


def sharded_robots(workers: Holders, rgb: bool = False) -> RobotSource:
    """N robots on ``workers`` (:class:`~protege.rollout.ray_workers.RayWorkers`), each
    holding its share of the envs and a copy of the expert (``rgb``: envs render frames for
    people's windows; people's robots act on the driver's keys)."""

    def make(sources: Sources, n: int) -> Robots:
        if sources.make_env is not None or sources.episode_env is not None:
            raise ConfigError(
                "--method fleet --workers: the workers make the task's own envs; this run "
                "makes its envs on the driver"
            )
        expert = None if rgb else sources.expert
        return ShardedRobots(workers, sources.task, n, expert, rgb=rgb)

    return make


def rendered_robots(sources: Sources, n: int) -> Robots:
    """N gymnasium envs in this process rendering ``rgb_array`` frames (if the task's env
    can), for people's windows."""
    task = sources.task

    def make() -> gym.Env:
        try:
            return task.make_env(render_mode="rgb_array")
        except (TypeError, ValueError, gym.error.Error):
            return task.make_env()

    return LocalRobots(make, n)


class _Book(Gate):
    """What the store's :class:`~protege.algos.rounds.Recorder` reads of a fleet: each
    episode's extras. (A fleet decides who drives itself; it is never a rollout's gate.)"""

    def __init__(self, fleet: Fleet):
        self.fleet = fleet

    def decide(self, step: StepView) -> Decision:
        raise TypeError("a fleet's robots are driven by Fleet.run, not by a rollout loop")

    def episode_extras(self, env_index: int) -> dict[str, float]:
        return self.fleet.episode_extras(env_index)


class FleetRecorder(Recorder):
    """The round engine's recorder for a fleet: robot ``i`` runs the episode at
    ``fleet.position[i]``; episodes already in the store (a resumed round) are not stored
    again."""

    def __init__(
        self,
        fleet: Fleet,
        store: Store,
        task: Task,
        round: int,
        seed: int,
        after_episode: EpisodeHook | None = None,
        skip: set[int] | None = None,
    ):
        n = fleet.robots.num_robots
        super().__init__(_Book(fleet), store, task, round, [-1] * n, seed, after_episode)
        self.fleet = fleet
        self.skip = skip or set()
        self.seen = 0

    def on_episode_start(self, env_index: int) -> None:
        self.indices[env_index] = int(self.fleet.position[env_index])
        super().on_episode_start(env_index)

    def on_episode(self, env_index: int, episode: Episode) -> None:
        self.seen += 1
        if self.indices[env_index] not in self.skip:
            super().on_episode(env_index, episode)


def fleet_collector(
    config: FleetConfig, robots: RobotSource = local_robots, people: Desk | None = None
) -> engine.Collector:
    """The engine's collector for a fleet round (see :data:`engine.Collector`); ``people``:
    the supervisors are people at these windows (a round they quit ends early)."""

    def collect(
        sources: Sources,
        store: Store,
        gate: Gate,
        learner: Any,
        round: int,
        batch: list[int],
        seed: int,
    ) -> None:
        if not isinstance(gate, ThriftyGate) or not isinstance(learner, ThriftyLearner):
            raise ConfigError("fleet mode needs ThriftyDAgger's learner and gate")
        have = {e.episode for e in store.index if e.round == round and e.episode is not None}
        source = robots(sources, config.robots)
        try:
            task = sources.task
            fleet = Fleet(
                source, gate, sources.expert, config, task.success, task.spaces[1], people
            )
            rec = FleetRecorder(fleet, store, task, round, seed, sources.after_episode, have)
            rng = np.random.default_rng(derive_seed(seed, _FLEET, round, batch[0]))
            fleet.run(
                batch,
                lambda e: episode_seed(seed, round, e),
                rng,
                learner=learner,
                observers=[rec],
            )
        finally:
            source.close()
        if people is not None:
            if people.quit_requested:
                return  # the engine's stop() ends the run; --resume re-runs what is missing
            people.notice(f"round {round} done: the learner is training")
        if rec.seen != len(batch):
            raise RuntimeError(f"fleet ran {rec.seen} of {len(batch)} episodes")

    return collect


def run(
    task: Task,
    store_path: str | os.PathLike[str],
    config: DAggerConfig | None = None,
    method_config: FleetConfig | None = None,
    *,
    make_policy: Callable[[], Policy] | None = None,
    robots: RobotSource | None = None,
    people: Desk | None = None,
    **kwargs: Any,
) -> DAggerResult:
    """Fleet-DAgger through :func:`protege.algos.engine.run` (same keyword arguments).

    Each interactive round's ``config.episodes_per_round`` episodes run as one fleet of
    ``method_config.robots`` robots (``config.n_envs`` is not used); round 0 is the expert's
    demonstrations, as in every method. ``robots`` says where the robots live (default: in
    this process, rendering frames when people watch; with ``workers=``, a
    :class:`~protege.rollout.ray_workers.RayWorkers`, on those workers
    (:func:`sharded_robots`), with the same episodes and numbers, and the demonstrations and
    evaluations on them too).

    With ``method_config.people`` the supervisors are people at ``people`` (default: a
    window each, :meth:`~protege.teleop.desk.Desk.open`, closed at the end): the round's
    fleet runs at their pace, ESC at any window ends the run after the episodes already
    finished (all stored), and ``resume=True`` re-runs the cut round's missing episodes."""
    config = config or DAggerConfig()
    fc = method_config or FleetConfig()
    if people is not None and not fc.people:
        raise ConfigError("people= needs FleetConfig(people=True) (--people)")
    store = Path(store_path)
    trainer, gate_factory, before_batch = thrifty.parts(task, store, config, fc, make_policy)
    kwargs.setdefault("method", "fleet")
    kwargs.setdefault("settings", fc)
    desk = people
    if fc.people and desk is None:
        from protege.teleop.desk import Desk

        desk = Desk.open(task, fc.supervisors, 1.0 / fc.step_seconds, fc.displays)
    if desk is not None:
        kwargs.setdefault("stop", lambda: desk.quit_requested)
    workers = kwargs.get("workers")
    if robots is None and workers is not None:
        robots = sharded_robots(workers, rgb=fc.people)
    source = robots or (rendered_robots if fc.people else local_robots)
    try:
        return engine.run(
            task,
            None,
            store,
            dataclasses.replace(config, n_envs=max(config.episodes_per_round, 1)),
            gate_factory,
            trainer=trainer,
            before_batch=before_batch,
            collector=fleet_collector(fc, source, desk),
            **kwargs,
        )
    finally:
        if desk is not None and people is None:
            desk.close()


def calibrated_gate(
    task: Task, learner: ThriftyLearner, config: FleetConfig, episodes: int, seed: int
) -> ThriftyGate:
    """``learner``'s gate with its thresholds calibrated (α_h = ``config.alpha_h``) on the
    states of ``episodes`` episodes it drives alone, as ThriftyDAgger calibrates on robot-mode
    states: a fixed learner's fleet then asks for help at about the rate α_h sets."""
    gate = ThriftyGate(
        learner,
        learner.critic,
        alpha_h=config.alpha_h,
        switch_back_discrepancy=learner.switch_back_discrepancy,
        min_calibration=config.min_calibration,
    )
    kept = KeepEpisodes()
    env = task.make_vec_env(min(episodes, 8))
    try:
        rollout(env, episodes, gate=LearnerGate(), seed=seed, learner=learner, observers=[kept])
    finally:
        env.close()
    rows = [take(e.obs, slice(0, len(e))) for e in kept.episodes]
    if is_parts(rows[0]):
        obs: Any = {k: np.concatenate([r[k] for r in rows]) for k in rows[0]}
    else:
        obs = np.concatenate(rows)
    if not gate.calibrate(obs):
        raise ConfigError(f"{episodes} episodes hold too few states to calibrate the gate")
    return gate


def simulate(
    task: Task,
    gate: ThriftyGate,
    config: FleetConfig,
    steps: int,
    seed: int,
    *,
    expert: Expert | None = None,
    robots: Robots | None = None,
    workers: Holders | None = None,
    observers: Sequence[Observer] = (),
) -> FleetResult:
    """Run a fleet of ``config.robots`` robots driven by ``gate``'s learner for ``steps``
    fleet steps, episodes without end (seeded from ``seed``), nothing stored: what the
    allocation alone buys, for a fixed learner (``benchmarks/fleet.py``). The robots live in
    this process, or on ``workers`` (the same numbers), or in ``robots``; ``observers`` are
    told every step and episode."""
    expert = task.make_expert() if expert is None else expert
    expert.begin_run(seed)
    if robots is None and workers is not None:
        robots = ShardedRobots(workers, task, config.robots, expert)
    source = robots or LocalRobots(task.make_env, config.robots)
    try:
        fleet = Fleet(source, gate, expert, config, task.success, task.spaces[1])
        return fleet.run(
            itertools.count(),
            lambda e: episode_seed(seed, 0, e),
            np.random.default_rng(gate_seed(seed, 0, 0)),
            observers=observers,
            max_steps=steps,
        )
    finally:
        source.close()


SPEC = MethodSpec("fleet", "Fleet-DAgger", FleetConfig, run, ThriftyLearner.load)
