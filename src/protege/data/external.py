"""Datasets in other projects' formats (LeRobot, robomimic), as protege episodes, and back.

A reader (:func:`protege.data.lerobot_io.read_lerobot`,
:func:`protege.data.robomimic_io.read_robomimic`) returns an :class:`ExternalDataset`: protege
:class:`~protege.data.episode.Episode` objects whose ``obs`` is a dict of named parts, each
``(T+1, *part_shape)`` (float32 state vectors, uint8 ``(H, W, C)`` images), plus what the
format says about them (the original feature names, per-dimension names, fps, task text).
A writer takes the same object; :mod:`protege.data.interop` connects them to a protege store.

**Part names.** LeRobot's ``observation.state`` is the part ``state``,
``observation.image`` the part ``image``, ``observation.images.<cam>`` the part ``<cam>`` and
any other ``observation.<x>`` the part ``<x>``; robomimic's ``obs/<key>`` is the part ``<key>``.
The original names are kept (``ExternalDataset.keys``, and in a store's ``source.json``) so
an export writes the names it read.

**The final observation.** protege keeps T+1 observations per episode (the last one after the
final step); LeRobot stores T frames (observation and action together) and robomimic stores
``obs`` and ``next_obs``, T each. On import from LeRobot the final observation repeats the
last frame; on export to LeRobot it is dropped (frames 0..T-1 carry the actions). On import
from robomimic it is ``next_obs[T-1]``; on export ``obs`` is rows 0..T-1 and ``next_obs``
rows 1..T, so a robomimic round trip is exact.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, overload

import gymnasium as gym
import numpy as np

from protege.data.episode import Episode
from protege.errors import DataError


class LazyEpisodes(Sequence[Episode]):
    """Episodes loaded one at a time, when indexed or iterated: a dataset need not fit in
    memory. Loading in order is fastest (readers keep the current file open)."""

    def __init__(self, n: int, load: Callable[[int], Episode]):
        self._n, self._load = n, load

    def __len__(self) -> int:
        return self._n

    @overload
    def __getitem__(self, i: int) -> Episode: ...
    @overload
    def __getitem__(self, i: slice) -> list[Episode]: ...
    def __getitem__(self, i: int | slice) -> Episode | list[Episode]:
        if isinstance(i, slice):
            return [self._load(j) for j in range(*i.indices(self._n))]
        if not -self._n <= i < self._n:
            raise IndexError(f"episode {i} of {self._n}")
        return self._load(i % self._n)


Parts = dict[str, tuple[tuple[int, ...], np.dtype]]
"""Part name → (per-step shape, dtype)."""


@dataclass
class ExternalDataset:
    """Episodes read from (or to be written to) another project's dataset format."""

    episodes: Sequence[Episode]
    """Each ``obs`` a dict of parts, every part ``(T+1, *part_shape)``; readers return a
    :class:`LazyEpisodes`."""
    keys: dict[str, str] = field(default_factory=dict)
    """Part name → the format's own name (``"state"`` → ``"observation.state"``); a part not
    listed gets the default name of the format it is written to."""
    names: dict[str, list[str] | None] = field(default_factory=dict)
    """Part name (or ``"action"``) → names of its dimensions (LeRobot's ``names``)."""
    fps: int | None = None
    """Frames per second (LeRobot's ``fps``)."""
    tasks: list[str] = field(default_factory=list)
    """The task text of each episode (LeRobot's ``tasks``); empty when the format has none."""
    info: dict[str, Any] = field(default_factory=dict)
    """Other metadata of the source: ``robot_type`` (LeRobot), ``env_args`` and ``masks``
    (robomimic)."""
    notes: list[str] = field(default_factory=list)
    """What a reader noticed and the user should know (not errors); a reader may add notes
    while its episodes are loaded."""
    parts: Parts = field(default_factory=dict)
    """Every episode's parts; by default those of the first episode."""
    action_space: gym.Space | None = None
    """What the actions imply (readers set it; see :func:`action_space_of`)."""

    def __post_init__(self) -> None:
        if not self.parts and len(self.episodes):
            obs = self.episodes[0].obs
            if not isinstance(obs, dict):
                raise DataError("episode 0 observations are not a dict of parts")
            self.parts = {k: (tuple(v.shape[1:]), np.dtype(v.dtype)) for k, v in obs.items()}


def is_image(shape: tuple[int, ...], dtype: np.dtype) -> bool:
    """Whether a part of this per-step shape and dtype is a camera image: uint8 (H, W, C)."""
    return len(shape) == 3 and np.dtype(dtype) == np.uint8 and shape[2] in (1, 3, 4)


def part_space(shape: tuple[int, ...], dtype: np.dtype) -> gym.spaces.Box:
    """The space of one part: [0, 255] uint8 for images, unbounded float32 otherwise."""
    if is_image(shape, dtype):
        return gym.spaces.Box(0, 255, shape, np.uint8)
    return gym.spaces.Box(-np.inf, np.inf, shape, np.float32)


def action_space_of(actions: np.ndarray) -> gym.Space:
    """The action space a dataset's actions (all of them, concatenated) imply: Discrete(max+1)
    for integer scalars, else an unbounded float32 Box."""
    if actions.dtype.kind in "iu" and actions.ndim == 1:
        return gym.spaces.Discrete(int(actions.max()) + 1 if actions.size else 1)
    return gym.spaces.Box(-np.inf, np.inf, tuple(actions.shape[1:]), np.float32)


def check_parts(ep: Episode, parts: Parts, where: str) -> dict[str, np.ndarray]:
    """``ep.obs`` if it has exactly ``parts`` (names, shapes, dtypes), else a DataError."""
    if not isinstance(ep.obs, dict):
        raise DataError(f"{where}: observations are not a dict of parts")
    found = {k: (tuple(v.shape[1:]), np.dtype(v.dtype)) for k, v in ep.obs.items()}
    if found != parts:
        raise DataError(f"{where}: parts {found}; the first episode has {parts}")
    return ep.obs


def choose_parts(available: dict[str, str], wanted: list[str] | None, where: str) -> dict[str, str]:
    """The entries of ``available`` (part → the format's name) that ``wanted`` names, by part
    name or by the format's name; all of them for None."""
    if not wanted:
        return dict(available)
    by_key = {key: part for part, key in available.items()}
    chosen = {}
    for name in wanted:
        part = by_key.get(name, name)
        if part not in available:
            raise DataError(
                f"{where}: no observation part {name!r}; the parts are "
                + ", ".join(f"{p} ({k})" for p, k in available.items())
            )
        chosen[part] = available[part]
    return chosen


def with_obs(ep: Episode, obs: Any) -> Episode:
    """``ep`` with other observations."""
    return Episode(
        obs=obs,
        actions=ep.actions,
        rewards=ep.rewards,
        terminated=ep.terminated,
        truncated=ep.truncated,
        executed=ep.executed,
        actor=ep.actor,
        labeled=ep.labeled,
        round=ep.round,
        seed=ep.seed,
        extras=ep.extras,
    )
