"""How a policy drove CarRacing's evaluation tracks: return, tiles visited, off-track events.

:func:`drive` runs a learner (or the expert) on seeded tracks with an observer that records the
car's distance from the centreline at every step; :class:`Driving` holds the result, one entry
per track in the same order for every method, and derives the off-track events from it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from gymnasium.envs.box2d.car_racing import TRACK_WIDTH

from protege.rollout.gates import ExpertGate, LearnerGate
from protege.rollout.loop import Actor, rollout
from protege.rollout.observers import EpisodeEnd, Observer, Step
from protege.tasks.base import Task

CONTROL = "BC + steps"
"""The control: BC trained as many steps as DAgger's final policy, on the demonstrations only."""

OFF_TRACK = float(TRACK_WIDTH)
"""Half-width of CarRacing's road (40/6 ≈ 6.67 world units): the car's centre farther than this
from the centreline is off the road."""


@dataclass
class Driving:
    """How one method drove the evaluation tracks, one entry per track in the same order for
    every method (sorted by sub-env, then by episode within it: the track's identity)."""

    name: str
    labels: int
    """Expert labels the method trained on (0 for the expert)."""
    returns: np.ndarray
    lengths: np.ndarray
    tiles: np.ndarray
    """Fraction of each track's tiles visited."""
    offsets: list[np.ndarray] = field(default_factory=list)
    """Per episode, ``|track_offset|`` at every step (before the step's action)."""
    wall_seconds: float = 0.0

    @property
    def mean_return(self) -> float:
        return float(np.mean(self.returns))

    @property
    def std_return(self) -> float:
        return float(np.std(self.returns))

    def paired_difference(self, other: Driving) -> tuple[float, float]:
        """Mean per-track return difference ``self − other`` and its standard error (both
        drove the same tracks, so the track-to-track spread cancels)."""
        diff = self.returns - other.returns
        se = float(np.std(diff, ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else float("nan")
        return float(np.mean(diff)), se

    def events(self) -> list[np.ndarray]:
        """Per episode, the steps at which the car left the road (on → off transitions)."""
        out = []
        for off in self.offsets:
            outside = off > OFF_TRACK
            starts = np.flatnonzero(outside & ~np.concatenate([[False], outside[:-1]]))
            out.append(starts)
        return out

    @property
    def first_off(self) -> np.ndarray:
        """Step of each episode's first off-track event (NaN if it never left the road)."""
        return np.array([e[0] if len(e) else np.nan for e in self.events()], float)

    @property
    def off_fraction(self) -> float:
        """Fraction of all steps driven with the car's centre off the road."""
        flat = np.concatenate(self.offsets) if self.offsets else np.zeros(0)
        return float(np.mean(flat > OFF_TRACK)) if flat.size else float("nan")

    def off_by_step(self, horizon: int) -> np.ndarray:
        """(horizon,) fraction of episodes off the road at each step (an ended episode counts
        as on the road: it finished its lap or left the playfield, see ``lengths``)."""
        grid = np.zeros((len(self.offsets), horizon))
        for i, off in enumerate(self.offsets):
            n = min(len(off), horizon)
            grid[i, :n] = off[:n] > OFF_TRACK
        return grid.mean(0) if len(grid) else np.zeros(horizon)

    def summary(self) -> dict[str, Any]:
        events = self.events()
        return {
            "labels": self.labels,
            "mean_return": self.mean_return,
            "std_return": self.std_return,
            "returns": self.returns.tolist(),
            "lengths": self.lengths.tolist(),
            "tiles_visited": self.tiles.tolist(),
            "mean_tiles_visited": float(np.mean(self.tiles)),
            "off_track_events": [e.tolist() for e in events],
            "episodes_with_off_track": int(sum(len(e) > 0 for e in events)),
            "first_off_track_step": [None if np.isnan(v) else int(v) for v in self.first_off],
            "off_track_step_fraction": self.off_fraction,
            "wall_seconds": self.wall_seconds,
        }


class _Monitor(Observer):
    """Records ``|track_offset|`` at every step of every counted episode and the tiles
    visited at its end, with which sub-env and which of its episodes it was (its track)."""

    def __init__(self) -> None:
        self.trace: dict[int, list[float]] = {}
        self.offsets: list[np.ndarray] = []
        self.tiles: list[float] = []
        self.keys: list[tuple[int, int]] = []
        """(sub-env, episode of that sub-env) of every finished episode: which track it was."""
        self._count: dict[int, int] = {}

    def on_episode_start(self, env_index: int) -> None:
        self.trace[env_index] = []

    def on_step(self, step: Step) -> None:
        offset = np.abs(np.asarray(step.infos["track_offset"], float))
        for i in np.flatnonzero(step.active).tolist():
            self.trace[i].append(float(offset[i]))

    def on_episode_end(self, env_index: int, end: EpisodeEnd) -> None:
        self.offsets.append(np.array(self.trace.pop(env_index), float))
        info = end.outcome.final_info
        total = float(np.asarray(info.get("track_tiles", np.nan)))
        visited = float(np.asarray(info.get("tiles_visited", np.nan)))
        self.tiles.append(visited / total if total > 0 else float("nan"))
        self.keys.append((env_index, self._count.get(env_index, 0)))
        self._count[env_index] = self._count.get(env_index, 0) + 1


def drive(
    name: str,
    task: Task,
    learner: Actor | None,
    episodes: int,
    seed: int,
    n_envs: int,
    labels: int = 0,
) -> Driving:
    """Run ``learner`` (or, if None, the task's expert) on seeded tracks and record how it
    drove. The tracks are those :func:`protege.evaluate` with the same ``seed`` and
    ``n_envs`` uses (DAgger's per-round evaluation)."""
    env = task.make_vec_env(min(n_envs, episodes))
    expert = task.make_expert()
    monitor = _Monitor()
    t0 = time.perf_counter()
    try:
        r = rollout(
            env,
            episodes,
            gate=ExpertGate() if learner is None else LearnerGate(label=False),
            seed=seed,
            learner=learner,
            expert=expert if learner is None else None,
            observers=[monitor],
        )
    finally:
        env.close()
    # Episodes finish in an order that depends on how each method drives; sort them by track.
    order = sorted(range(len(monitor.keys)), key=lambda j: monitor.keys[j])
    return Driving(
        name=name,
        labels=labels,
        returns=np.asarray(r.returns, float)[order],
        lengths=np.asarray(r.lengths)[order],
        tiles=np.asarray(monitor.tiles, float)[order],
        offsets=[monitor.offsets[j] for j in order],
        wall_seconds=time.perf_counter() - t0,
    )
