"""A fleet's robots on workers: each worker holds a shard of the robots' envs and the expert.

:class:`ShardedRobots` is a :class:`~protege.rollout.fleet.Robots` source for
:class:`~protege.rollout.fleet.Fleet` whose robots live on W workers
(:class:`~protege.rollout.ray_workers.RayWorkers`): worker w holds a :class:`RobotShard` (its
share of the N robots, contiguous blocks, and a copy of the simulated supervisors' expert,
put in Ray's object store once). The fleet keeps everything else in the driver: the learner
(one batch of all N observations per step, as locally), the gate's signals, the allocation,
the people's windows and keys, the store. Each fleet step is one call per worker, all at
once: "step these robots with these actions; where a supervisor drives, ask your expert", and
the answers are the step results and the expert's actions, so a run gives the local run's
episodes, labels, allocation and numbers (for an expert whose action depends on the
observation only, as every scripted expert's does).

**A worker that dies** is replaced
(:meth:`~protege.rollout.ray_workers.RayWorkers.call`) by one holding a fresh copy of its
shard; each of its robots with an episode in flight re-runs that episode from its seed with
the actions it already took (the driver keeps them; the expert is not asked again) and must
arrive where it was, then the step is sent again. Only those episodes are re-run, nothing
reaches the store twice (the driver alone writes it), and the numbers are those of an
uninterrupted run. An env that does not arrive at the same observation is not reproducible
from its seed: an error says so.

Example:
    >>> with RayWorkers(2) as workers:
    ...     robots = ShardedRobots(workers, task, 8, task.make_expert())
    ...     result = Fleet(robots, gate, expert, config, task.success, task.spaces[1]).run(...)
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import gymnasium as gym
import numpy as np

from protege.data.obs import stack
from protege.errors import ConfigError
from protege.experts.base import Expert
from protege.rollout.fleet import _template
from protege.rollout.gates import LazyExpert
from protege.tasks.base import Task

MAX_LOSSES = 3
"""Workers of one shard that may die in a row (during one call, or the re-runs after it)
before the run gives up."""

StepResult = tuple[Any, float, bool, bool, dict[str, Any]]
Calls = Mapping[int, tuple[str, tuple[Any, ...]]]


class Holders(Protocol):
    """Workers that each hold one object and answer calls of its methods
    (:class:`~protege.rollout.ray_workers.RayWorkers`)."""

    n: int

    def hold(self, objects: Sequence[Any]) -> None:
        """Worker w holds ``objects[w]`` (what they hold alike is sent once)."""
        ...

    def call(self, calls: Calls) -> tuple[dict[int, Any], list[int]]:
        """``{w: (method, args)}`` run at once on the workers' objects; the answers by worker,
        and the workers that died (each already replaced by a new worker holding a fresh copy
        of the object first sent)."""
        ...


@dataclass
class RobotShard:
    """What one worker holds: envs of ``task`` for the robots ``robots`` (global indices),
    made on the worker at first use, and the ``expert`` (None: people supervise)."""

    task: Task
    expert: Expert | None
    robots: list[int]
    rgb: bool = False
    """Make envs rendering ``rgb_array`` frames (people watch them)."""
    envs: dict[int, gym.Env] = field(default_factory=dict)
    obs: dict[int, Any] = field(default_factory=dict)

    def _env(self, i: int) -> gym.Env:
        if i not in self.envs:
            if i not in self.robots:
                raise KeyError(f"robot {i} is not on this worker")
            self.envs[i] = self._make()
        return self.envs[i]

    def _make(self) -> gym.Env:
        if self.rgb:
            try:
                return self.task.make_env(render_mode="rgb_array")
            except (TypeError, ValueError, gym.error.Error):
                pass
        return self.task.make_env()

    def reset(self, i: int, seed: int) -> Any:
        """Start robot ``i``'s episode seeded ``seed``; its first observation."""
        self.obs[i], _ = self._env(i).reset(seed=seed)
        return self.obs[i]

    def step(
        self, idx: list[int], actions: np.ndarray, supervised: np.ndarray
    ) -> tuple[list[StepResult], np.ndarray, int]:
        """Step robots ``idx``: each on its row of ``actions``, or where ``supervised``, on
        the expert's action for its observation (the expert asked once, about those
        robots). The step results, the expert's actions (rows of the supervised robots) and
        the expert's queries."""
        supervised = np.asarray(supervised, bool)
        actions = np.asarray(actions)
        expert_rows, queries = actions[:0], 0
        if supervised.any():
            space = self.task.spaces[1]
            rows = stack([self.obs[i] for i in idx])
            lazy = LazyExpert(self.expert, space)
            lazy.begin_step(rows, {}, _template(space, len(idx)))
            answer = lazy(supervised)
            expert_rows, queries = answer[supervised], lazy.queries
            mask = supervised.reshape((len(idx),) + (1,) * (actions.ndim - 1))
            actions = np.where(mask, answer, actions).astype(actions.dtype)
        out: list[StepResult] = []
        for i, a in zip(idx, actions, strict=True):
            obs, r, term, trunc, _ = self._env(i).step(a)
            self.obs[i] = obs
            out.append((obs, float(r), bool(term), bool(trunc), {}))
        return out, expert_rows, queries

    def replay(self, orders: list[tuple[int, int, list[Any]]]) -> list[Any]:
        """Re-run each robot's episode in flight: ``(robot, seed, actions taken so far)``;
        the observations they arrive at."""
        out = []
        for i, seed, actions in orders:
            self.reset(i, seed)
            for a in actions:
                self.obs[i] = self._env(i).step(a)[0]
            out.append(self.obs[i])
        return out

    def render(self, i: int) -> np.ndarray | None:
        """Robot ``i``'s frame if its env renders ``rgb_array`` (and has been reset), else
        None."""
        if i not in self.obs:
            return None
        env = self._env(i)
        return np.asarray(env.render()) if env.render_mode == "rgb_array" else None

    def close(self) -> None:
        for env in self.envs.values():
            env.close()
        self.envs.clear()


class ShardedRobots:
    """N robots of ``task`` on ``workers`` (at most one shard per robot: with more workers
    than robots, the extra ones idle), each worker with a copy of ``expert`` (None: people
    supervise, from the driver). ``rgb``: the envs render frames for people's windows."""

    runs_expert = True

    def __init__(
        self,
        workers: Holders,
        task: Task,
        n: int,
        expert: Expert | None,
        *,
        rgb: bool = False,
    ):
        if n < 1:
            raise ConfigError(f"a fleet needs at least one robot, got {n}")
        self.workers, self.num_robots = workers, n
        blocks = np.array_split(np.arange(n), min(workers.n, n))
        self.shards = [RobotShard(task, expert, b.tolist(), rgb) for b in blocks]
        self.where = np.zeros(n, np.int64)
        """The worker holding each robot."""
        for w, b in enumerate(blocks):
            self.where[b] = w
        self.seed: list[int | None] = [None] * n
        """Each robot's episode seed (None: no episode in flight)."""
        self.taken: list[list[Any]] = [[] for _ in range(n)]
        """The actions each robot took in its episode in flight (to re-run it)."""
        self.last: list[Any] = [None] * n
        self.lost = 0
        """Workers lost (and replaced) while these robots ran."""
        workers.hold(self.shards)

    # ------------------------------------------------------------------ Robots protocol
    def reset(self, i: int, seed: int) -> Any:
        obs = self._call({int(self.where[i]): ("reset", (i, seed))})[int(self.where[i])]
        self.seed[i], self.taken[i], self.last[i] = seed, [], obs
        return obs

    def step(self, idx: Sequence[int], actions: np.ndarray) -> list[StepResult]:
        """Step robots ``idx`` on ``actions`` (people's and the learner's)."""
        return self.step_supervised(idx, actions, np.zeros(len(idx), bool))[0]

    def step_supervised(
        self, idx: Sequence[int], actions: np.ndarray, supervised: np.ndarray
    ) -> tuple[list[StepResult], np.ndarray, int]:
        """One call per worker holding some of ``idx``, all at once (see
        :meth:`RobotShard.step`); the results in the order of ``idx``."""
        idx, actions = list(idx), np.asarray(actions)
        supervised = np.asarray(supervised, bool)
        parts: dict[int, list[int]] = {}
        for k, i in enumerate(idx):
            parts.setdefault(int(self.where[i]), []).append(k)
        calls = {
            w: ("step", ([idx[k] for k in ks], actions[ks], supervised[ks]))
            for w, ks in parts.items()
        }
        answers = self._call(calls)
        results: list[StepResult | None] = [None] * len(idx)
        expert = np.zeros((int(supervised.sum()), *actions.shape[1:]), actions.dtype)
        place = np.cumsum(supervised) - 1  # row of each supervised robot in ``expert``
        queries = 0
        for w, ks in parts.items():
            stepped, rows, asked = answers[w]
            queries += asked
            sup = [k for k in ks if supervised[k]]
            for k, row in zip(sup, rows, strict=True):
                expert[place[k]] = row
            for k, r in zip(ks, stepped, strict=True):
                results[k] = r
                i = idx[k]
                self.taken[i].append(expert[place[k]] if supervised[k] else actions[k])
                self.last[i] = r[0]
                if r[2] or r[3]:  # over: re-run never again (its next is a reset)
                    self.seed[i] = None
        return [r for r in results if r is not None], expert, queries

    def render(self, i: int) -> np.ndarray | None:
        """Robot ``i``'s frame, from the worker holding it."""
        w = int(self.where[i])
        frame: np.ndarray | None = self._call({w: ("render", (i,))})[w]
        return frame

    def close(self) -> None:
        """Close the workers' envs (best effort: a run that failed keeps its own error)."""
        with contextlib.suppress(Exception):
            self.workers.call({w: ("close", ()) for w in range(len(self.shards))})

    # ------------------------------------------------------------------ lost workers
    def _call(self, calls: Calls) -> dict[int, Any]:
        """``calls`` on the workers; a worker that died is replaced, its robots' episodes in
        flight re-run and its call sent again."""
        out: dict[int, Any] = {}
        pending, losses = dict(calls), dict.fromkeys(calls, 0)
        while pending:
            got, lost = self.workers.call(pending)
            out.update(got)
            for w in lost:
                self._lose(w, losses)
                self._restore(w, losses)
            pending = {w: pending[w] for w in lost}
        return out

    def _lose(self, w: int, losses: dict[int, int]) -> None:
        self.lost += 1
        losses[w] = losses.get(w, 0) + 1
        if losses[w] >= MAX_LOSSES:
            raise RuntimeError(
                f"fleet: {losses[w]} workers died in a row running robots "
                f"{self.shards[w].robots}; giving up"
            )

    def _restore(self, w: int, losses: dict[int, int]) -> None:
        """Worker w's new copy of its shard: every episode in flight re-run."""
        orders = [
            (i, seed, self.taken[i])
            for i in self.shards[w].robots
            if (seed := self.seed[i]) is not None
        ]
        if not orders:
            return
        while True:
            got, lost = self.workers.call({w: ("replay", (orders,))})
            if not lost:
                break
            self._lose(w, losses)
        for (i, seed, _), obs in zip(orders, got[w], strict=True):
            if not _same(obs, self.last[i]):
                raise ConfigError(
                    f"fleet: robot {i}'s episode (seed {seed}), re-run after its worker died, "
                    "reached other observations: its env is not reproducible from its seed "
                    "and actions, so robots on workers cannot recover it"
                )


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, Mapping):
        return isinstance(b, Mapping) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return bool(np.array_equal(np.asarray(a), np.asarray(b)))
