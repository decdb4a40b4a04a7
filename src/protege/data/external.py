"""Datasets in other projects' formats (LeRobot, robomimic), as protege episodes, and back.

A reader (:func:`protege.data.lerobot_io.read_lerobot`,
:func:`protege.data.robomimic_io.read_robomimic`) returns an :class:`ExternalDataset`: protege
:class:`~protege.data.episode.Episode` objects whose ``obs`` is a dict of named parts, each
``(T+1, *part_shape)`` (float32 state vectors, uint8 ``(H, W, C)`` images), plus what the
format says about them (the original feature names, per-dimension names, fps, task text).
A writer takes the same object. :func:`import_dataset` and :func:`export_dataset` connect them
to a protege store.

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

import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from protege.data.episode import Episode
from protege.errors import DataError

FORMATS = ("lerobot", "robomimic")
"""The formats :func:`import_dataset` and :func:`export_dataset` read and write (Minari has
its own module, :mod:`protege.data.minari_io`)."""

SOURCE_FILE = "source.json"
"""Written into a store by :func:`import_dataset`: the names and metadata an export reuses."""


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


# ============================================================================ store bridge
def import_dataset(
    fmt: str,
    source: str | os.PathLike,
    out: str | os.PathLike,
    task: str | None = None,
    parts: list[str] | None = None,
) -> tuple[Any, ExternalDataset]:
    """Read ``source`` (``fmt``: "lerobot" or "robomimic") into a new protege store at ``out``.

    A dataset with one observation part (a state vector, or one camera) becomes a store with
    that part as its Box observation; several parts need a store with a Dict observation space.
    The part names, per-dimension names, fps, task text and format metadata go into the
    store's ``source.json`` so :func:`export_dataset` writes them back. ``parts``: import
    only these observation parts (e.g. ``["state"]`` of a dataset that also has camera
    images). Returns (the store, what was read).
    """
    from protege.data.store import Store

    data = read_external(fmt, source)
    if not data.episodes:
        raise DataError(f"{source}: the dataset has no episodes")
    if parts:
        data = select_parts(data, parts, str(source))
    found = data.parts
    action_space = action_space_of(np.concatenate([ep.actions for ep in data.episodes]))
    if len(found) == 1:
        ((name, (shape, dtype)),) = found.items()
        obs_space: gym.Space = part_space(shape, dtype)
        episodes = [_with_obs(ep, ep.obs[name]) for ep in data.episodes]
    else:
        obs_space = gym.spaces.Dict({k: part_space(s, d) for k, (s, d) in found.items()})
        episodes = data.episodes
    try:
        store = Store.create(out, obs_space, action_space, task=task)
    except DataError as exc:
        if not isinstance(obs_space, gym.spaces.Dict):
            raise
        raise DataError(
            f"{source}: {exc}: the dataset has {len(found)} observation parts "
            f"({', '.join(found)}); import one of them with --parts NAME (parts=[NAME])"
        ) from None
    store.extend(episodes)
    (store.path / SOURCE_FILE).write_text(
        json.dumps(
            {
                "format": fmt,
                "parts": list(found),
                "keys": data.keys,
                "names": data.names,
                "fps": data.fps,
                "tasks": data.tasks,
                "info": data.info,
            },
            indent=1,
        )
    )
    return store, data


def export_dataset(
    fmt: str,
    store: Any,
    out: str | os.PathLike,
    fps: int | None = None,
    **options: Any,
) -> Path:
    """Write every episode of ``store`` (a Store or its path) in format ``fmt`` at ``out``.

    Names and metadata come from the store's ``source.json`` when it was imported; a store
    with one Box observation exports it as the part ``image`` (uint8 (H, W, C)) or ``state``.
    ``options`` go to the writer (``video`` for LeRobot). Returns the written path.
    """
    from protege.data.store import Store

    if not isinstance(store, Store):
        store = Store.open(store)
    if len(store) == 0:
        raise DataError(f"{store.path}: the store is empty; nothing to export")
    source = _read_source(store.path)
    parts = source.get("parts") or []
    episodes = []
    for ep in store.episodes():
        if isinstance(ep.obs, dict):
            episodes.append(ep)
            continue
        if len(parts) == 1:
            name = parts[0]
        else:
            name = "image" if is_image(ep.obs.shape[1:], ep.obs.dtype) else "state"
        episodes.append(_with_obs(ep, {name: ep.obs}))
    default_task = store.task or "protege"
    tasks = [str(t) for t in source.get("tasks") or []]
    data = ExternalDataset(
        episodes=episodes,
        keys=dict(source.get("keys") or {}),
        names=dict(source.get("names") or {}),
        fps=fps or source.get("fps"),
        tasks=(tasks + [tasks[-1] if tasks else default_task] * len(episodes))[: len(episodes)],
        info=dict(source.get("info") or {}),
    )
    if source.get("format") != fmt:  # metadata of another format is not carried over
        data.info = {}
    if isinstance(store.action_space, gym.spaces.Discrete):
        data.info["discrete_actions"] = int(store.action_space.n)
    data.info.setdefault("task", store.task)
    return write_external(fmt, data, out, **options)


def read_external(fmt: str, source: str | os.PathLike) -> ExternalDataset:
    """Read the dataset at ``source`` in format ``fmt``."""
    if fmt == "lerobot":
        from protege.data.lerobot_io import read_lerobot

        return read_lerobot(source)
    if fmt == "robomimic":
        from protege.data.robomimic_io import read_robomimic

        return read_robomimic(source)
    raise DataError(f"unknown dataset format {fmt!r}; expected one of {FORMATS}")


def write_external(fmt: str, data: ExternalDataset, out: str | os.PathLike, **options: Any) -> Path:
    """Write ``data`` at ``out`` in format ``fmt``; returns the written path."""
    if fmt == "lerobot":
        from protege.data.lerobot_write import write_lerobot

        return write_lerobot(data, out, **options)
    if fmt == "robomimic":
        from protege.data.robomimic_io import write_robomimic

        return write_robomimic(data, out, **options)
    raise DataError(f"unknown dataset format {fmt!r}; expected one of {FORMATS}")


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
    episodes = [_with_obs(ep, {c: ep.obs[c] for c in chosen}) for ep in data.episodes]
    return replace(
        data,
        episodes=episodes,
        keys={c: data.keys[c] for c in chosen if c in data.keys},
        names={k: v for k, v in data.names.items() if k in chosen or k == "action"},
    )


def _read_source(path: Path) -> dict[str, Any]:
    file = path / SOURCE_FILE
    if not file.exists():
        return {}
    try:
        source = json.loads(file.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{file}: unreadable ({exc})") from None
    if not isinstance(source, dict):
        raise DataError(f"{file}: expected a JSON object")
    return source


def _with_obs(ep: Episode, obs: Any) -> Episode:
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
