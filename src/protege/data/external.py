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

from dataclasses import dataclass, field, replace
from typing import Any

import gymnasium as gym
import numpy as np

from protege.data.episode import Episode
from protege.errors import DataError


@dataclass
class ExternalDataset:
    """Episodes read from (or to be written to) another project's dataset format."""

    episodes: list[Episode]
    """Each ``obs`` a dict of parts, every part ``(T+1, *part_shape)``."""
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
    """What a reader noticed and the user should know (not errors)."""

    @property
    def parts(self) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
        """Part name → (per-step shape, dtype), from the first episode."""
        if not self.episodes:
            return {}
        obs = self.episodes[0].obs
        assert isinstance(obs, dict)
        return {k: (tuple(v.shape[1:]), v.dtype) for k, v in obs.items()}


def is_image(shape: tuple[int, ...], dtype: np.dtype) -> bool:
    """Whether a part of this per-step shape and dtype is a camera image: uint8 (H, W, C)."""
    return len(shape) == 3 and np.dtype(dtype) == np.uint8 and shape[2] in (1, 3, 4)


def part_space(shape: tuple[int, ...], dtype: np.dtype) -> gym.spaces.Box:
    """The space of one part: [0, 255] uint8 for images, unbounded float32 otherwise."""
    if is_image(shape, dtype):
        return gym.spaces.Box(0, 255, shape, np.uint8)
    return gym.spaces.Box(-np.inf, np.inf, shape, np.float32)


def action_space_of(actions: np.ndarray) -> gym.Space:
    """The action space a dataset's actions imply: Discrete for integer scalars, else Box."""
    if actions.dtype.kind in "iu" and actions.ndim == 1:
        return gym.spaces.Discrete(int(actions.max()) + 1 if actions.size else 1)
    return gym.spaces.Box(-np.inf, np.inf, tuple(actions.shape[1:]), np.float32)


def check_same_parts(episodes: list[Episode], where: str) -> None:
    """Raise a DataError unless every episode has the same parts with the same shapes."""
    first: dict[str, tuple[tuple[int, ...], str]] | None = None
    for i, ep in enumerate(episodes):
        if not isinstance(ep.obs, dict):
            raise DataError(f"{where}: episode {i} observations are not a dict of parts")
        parts = {k: (tuple(v.shape[1:]), np.dtype(v.dtype).name) for k, v in ep.obs.items()}
        if first is None:
            first = parts
        elif parts != first:
            raise DataError(f"{where}: episode {i} has parts {parts}; episode 0 has {first}")


def select_parts(data: ExternalDataset, parts: list[str], where: str) -> ExternalDataset:
    """``data`` with only the observation ``parts`` (part names or the format's own names)."""
    by_key = {key: part for part, key in data.keys.items()}
    chosen = [by_key.get(p, p) for p in parts]
    unknown = [p for p, c in zip(parts, chosen, strict=True) if c not in data.parts]
    if unknown:
        raise DataError(
            f"{where}: no observation part {unknown[0]!r}; the parts are "
            + ", ".join(f"{p} ({data.keys.get(p, p)})" for p in data.parts)
        )
    episodes = [with_obs(ep, {c: ep.obs[c] for c in chosen}) for ep in data.episodes]
    return replace(
        data,
        episodes=episodes,
        keys={c: data.keys[c] for c in chosen if c in data.keys},
        names={k: v for k, v in data.names.items() if k in chosen or k == "action"},
    )


def with_obs(ep: Episode, obs: Any) -> Episode:
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
