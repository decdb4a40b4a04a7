"""protege stores to and from other projects' dataset formats (LeRobot, robomimic).

:func:`import_dataset` reads a dataset (:mod:`protege.data.lerobot_io`,
:mod:`protege.data.robomimic_io`) into a new store; :func:`export_dataset` writes a store
(:mod:`protege.data.lerobot_write`, :mod:`protege.data.robomimic_io`). Part names, the final
observation and what each format keeps: :mod:`protege.data.external`.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from tqdm.auto import tqdm

from protege.data.episode import Episode
from protege.data.external import (
    ExternalDataset,
    LazyEpisodes,
    action_space_of,
    is_image,
    part_space,
    with_obs,
)
from protege.data.spaces import space_to_json
from protege.errors import ConfigError, DataError

FORMATS = ("lerobot", "robomimic")
"""The formats :func:`import_dataset` and :func:`export_dataset` read and write (Minari has
its own module, :mod:`protege.data.minari_io`)."""

SOURCE_FILE = "source.json"
"""Written into a store by :func:`import_dataset`: the names and metadata an export reuses."""


def import_dataset(
    fmt: str,
    source: str | os.PathLike,
    out: str | os.PathLike,
    task: str | None = None,
    parts: list[str] | None = None,
    progress: bool = False,
) -> tuple[Any, ExternalDataset]:
    """Read ``source`` (``fmt``: "lerobot" or "robomimic") into a new protege store at ``out``.

    A dataset with one observation part (a state vector, or one camera) becomes a store with
    that part as its Box observation; several parts need a store with a Dict observation space.
    ``parts`` imports only the observation parts named (e.g. ``["state"]`` of a dataset that
    also has camera images). Episodes stream from the source into the store one at a time. The
    part names, per-dimension names, fps, task text and format metadata go into the store's
    ``source.json`` so :func:`export_dataset` writes them back. If reading fails part way, the
    new store is removed. Returns (the store, what was read).
    """
    from protege.data.store import Store

    data = read_external(fmt, source, parts)
    if not len(data.episodes):
        raise DataError(f"{source}: the dataset has no episodes")
    found = data.parts
    action_space = data.action_space or action_space_of(
        np.concatenate([ep.actions for ep in data.episodes])
    )
    obs_space: gym.Space
    episodes: Iterable[Episode]
    if len(found) == 1:
        ((name, (shape, dtype)),) = found.items()
        obs_space = part_space(shape, dtype)
        episodes = (with_obs(ep, ep.obs[name]) for ep in data.episodes)
    else:
        obs_space = gym.spaces.Dict({k: part_space(s, d) for k, (s, d) in found.items()})
        episodes = data.episodes
    if isinstance(obs_space, gym.spaces.Dict):
        try:
            space_to_json(obs_space)  # what a store can hold
        except DataError as exc:
            raise DataError(
                f"{source}: the dataset has {len(found)} observation parts ({', '.join(found)}) "
                f"and {exc}; import one of them with --parts NAME (parts=[NAME])"
            ) from None
    store = Store.create(out, obs_space, action_space, task=task)
    try:
        store.extend(tqdm(episodes, total=len(data.episodes), disable=not progress))
        source_json = {
            "format": fmt,
            "parts": list(found),
            "keys": data.keys,
            "names": data.names,
            "fps": data.fps,
            "tasks": data.tasks,
            "info": data.info,
        }
        (store.path / SOURCE_FILE).write_text(json.dumps(source_json, indent=1))
    except BaseException:
        store.close()
        shutil.rmtree(store.path, ignore_errors=True)
        raise
    return store, data


def export_dataset(
    fmt: str,
    store: Any,
    out: str | os.PathLike,
    fps: int | None = None,
    progress: bool = False,
    **options: Any,
) -> Path:
    """Write every episode of ``store`` (a Store or its path) in format ``fmt`` at ``out``.

    Names and metadata come from the store's ``source.json`` when it was imported; a store
    with one Box observation exports it as the part ``image`` (uint8 (H, W, C)) or ``state``.
    ``options`` go to the writer (``video`` for LeRobot). Returns the written path.
    """
    from protege.data.spaces import data_shape_dtype
    from protege.data.store import Store

    if not isinstance(store, Store):
        store = Store.open(store)
    if len(store) == 0:
        raise DataError(f"{store.path}: the store is empty; nothing to export")
    source = _read_source(store.path)
    space = store.observation_space
    if isinstance(space, gym.spaces.Dict):
        parts = {k: data_shape_dtype(sub) for k, sub in space.spaces.items()}
    else:
        shape, dtype = data_shape_dtype(space)
        names = source.get("parts") or []
        name = names[0] if len(names) == 1 else ("image" if is_image(shape, dtype) else "state")
        parts = {name: (shape, dtype)}
    n = len(store)
    tasks = [str(t) for t in source.get("tasks") or []]
    default_task = tasks[-1] if tasks else (store.task or "protege")
    data = ExternalDataset(
        episodes=_store_episodes(store, next(iter(parts)), progress),
        keys=dict(source.get("keys") or {}),
        names=dict(source.get("names") or {}),
        fps=fps or source.get("fps"),
        tasks=(tasks + [default_task] * n)[:n],
        info=dict(source.get("info") or {}) if source.get("format") == fmt else {},
        parts=parts,
        action_space=store.action_space,
    )
    data.info.setdefault("task", store.task)
    return write_external(fmt, data, out, **options)


def _store_episodes(store: Any, name: str, progress: bool) -> LazyEpisodes:
    """The store's episodes, each ``obs`` a dict of parts (a Box observation is the part
    ``name``), read in one pass when loaded in order."""
    state: dict[str, Any] = {"next": 0, "it": None}
    bar = tqdm(total=len(store), disable=not progress)

    def load(i: int) -> Episode:
        if state["it"] is None or i < state["next"]:
            state["it"], state["next"] = iter(store.episodes()), 0
        while True:
            ep = next(state["it"])
            state["next"] += 1
            if state["next"] - 1 == i:
                bar.update(1)
                if state["next"] == len(store):
                    bar.close()
                return ep if isinstance(ep.obs, dict) else with_obs(ep, {name: ep.obs})

    return LazyEpisodes(len(store), load)


def _require_lerobot_packages() -> None:
    import importlib.util

    missing = [m for m in ("pyarrow", "av") if importlib.util.find_spec(m) is None]
    if missing:
        raise ConfigError(
            f"LeRobot datasets need {' and '.join(missing)}: pip install 'protege[datasets]'"
        )


def read_external(
    fmt: str, source: str | os.PathLike, parts: list[str] | None = None
) -> ExternalDataset:
    """Read the dataset at ``source`` in format ``fmt`` (only the observation ``parts``
    named, if given)."""
    if fmt == "lerobot":
        _require_lerobot_packages()
        from protege.data.lerobot_io import read_lerobot

        return read_lerobot(source, parts)
    if fmt == "robomimic":
        from protege.data.robomimic_io import read_robomimic

        return read_robomimic(source, parts)
    raise DataError(f"unknown dataset format {fmt!r}; expected one of {FORMATS}")


def write_external(fmt: str, data: ExternalDataset, out: str | os.PathLike, **options: Any) -> Path:
    """Write ``data`` at ``out`` in format ``fmt``; returns the written path."""
    if fmt == "lerobot":
        _require_lerobot_packages()
        from protege.data.lerobot_write import write_lerobot

        return write_lerobot(data, out, **options)
    if fmt == "robomimic":
        from protege.data.robomimic_io import write_robomimic

        return write_robomimic(data, out, **options)
    raise DataError(f"unknown dataset format {fmt!r}; expected one of {FORMATS}")


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
