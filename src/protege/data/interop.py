"""protege stores to and from other projects' dataset formats (LeRobot, robomimic).

:func:`import_dataset` reads a dataset (:mod:`protege.data.lerobot_io`,
:mod:`protege.data.robomimic_io`) into a new store; :func:`export_dataset` writes a store
(:mod:`protege.data.lerobot_write`, :mod:`protege.data.robomimic_io`). Part names, the final
observation and what each format keeps: :mod:`protege.data.external`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from protege.data.external import (
    ExternalDataset,
    action_space_of,
    is_image,
    part_space,
    select_parts,
    with_obs,
)
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
        episodes = [with_obs(ep, ep.obs[name]) for ep in data.episodes]
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
        episodes.append(with_obs(ep, {name: ep.obs}))
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


def _require_lerobot_packages() -> None:
    import importlib.util

    missing = [m for m in ("pyarrow", "av") if importlib.util.find_spec(m) is None]
    if missing:
        raise ConfigError(
            f"LeRobot datasets need {' and '.join(missing)}: pip install 'protege[datasets]'"
        )


def read_external(fmt: str, source: str | os.PathLike) -> ExternalDataset:
    """Read the dataset at ``source`` in format ``fmt``."""
    if fmt == "lerobot":
        _require_lerobot_packages()
        from protege.data.lerobot_io import read_lerobot

        return read_lerobot(source)
    if fmt == "robomimic":
        from protege.data.robomimic_io import read_robomimic

        return read_robomimic(source)
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
