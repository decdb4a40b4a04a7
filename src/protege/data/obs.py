"""Observations of one array or of several named parts.

A task's observation space is a ``Box`` (one array per step) or a ``gymnasium.spaces.Dict``
of named parts, each a ``Box``: state vectors (floats) and camera images (uint8 ``(H, W, C)``).
Nested dicts are not supported. A batch of observations is then either an array
``(N, *shape)`` or a ``dict[str, array]`` with every part ``(N, *part_shape)`` (what a
gymnasium vector env returns for a Dict space). The helpers here treat both alike, so that
code which slices, stacks or counts observations needs no branch of its own.

Example:
    >>> parts = part_spaces(env.observation_space)    # {"cam": Box(...), "state": Box(...)}
    >>> n_rows(obs)                                    # N, for an array or a dict of parts
    >>> take(obs, np.flatnonzero(mask))                # the rows in mask, per part
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from protege.configs.checks import MAX_PARTS, PART_NAME
from protege.errors import DataError

Obs = Any
"""An array ``(N, *shape)`` (or a lazy :class:`~protege.data.frames.FrameArray`), or a
``dict[str, array]`` of parts with the same N rows each."""


def is_parts(obs: Any) -> bool:
    """Whether ``obs`` is a dict of parts (rather than one array)."""
    return isinstance(obs, Mapping)


def is_dict_space(space: gym.Space) -> bool:
    """Whether ``space`` is an observation space of named parts (a ``Dict``)."""
    return isinstance(space, gym.spaces.Dict)


def part_spaces(space: gym.Space, where: str = "observation space") -> dict[str, gym.spaces.Box]:
    """The parts of a Dict observation space, in its order, each checked to be a ``Box``
    with a valid name; a DataError naming the part otherwise (a nested Dict, a Discrete
    part, a name that cannot name a file, more than :data:`MAX_PARTS` parts)."""
    if not isinstance(space, gym.spaces.Dict):
        raise DataError(f"{where}: expected a Dict space of named parts, got {space!r}")
    if not 1 <= len(space.spaces) <= MAX_PARTS:
        raise DataError(f"{where}: a Dict space needs 1 to {MAX_PARTS} parts, not {len(space)}")
    parts: dict[str, gym.spaces.Box] = {}
    for name, sub in space.spaces.items():
        if not isinstance(name, str) or not PART_NAME.fullmatch(name):
            raise DataError(
                f"{where}: part name {name!r} must be 1-64 letters, digits, '_', '.' or '-' "
                "(not starting with '.' or '-')"
            )
        if isinstance(sub, gym.spaces.Dict):
            raise DataError(
                f"{where}: part {name!r} is itself a Dict; nested dicts are not supported"
            )
        if not isinstance(sub, gym.spaces.Box):
            raise DataError(f"{where}: part {name!r} is {sub!r}; every part must be a Box")
        parts[name] = sub
    return parts


def is_image_shape(shape: Sequence[int], dtype: Any = np.uint8) -> bool:
    """Whether rows of this shape and dtype are camera images: uint8 ``(H, W, C)``."""
    return len(shape) == 3 and np.dtype(dtype) == np.uint8


def n_rows(obs: Obs) -> int:
    """N: the rows of an array, or of every part of a dict (checked to agree)."""
    if not is_parts(obs):
        return len(obs)
    sizes = {name: len(part) for name, part in obs.items()}
    if len(set(sizes.values())) > 1:
        raise DataError(f"observation parts have different numbers of rows: {sizes}")
    return next(iter(sizes.values())) if sizes else 0


def take(obs: Obs, index: Any) -> Obs:
    """``obs[index]`` (an integer array, a boolean mask, a slice or one integer), per part."""
    if is_parts(obs):
        return {name: part[index] for name, part in obs.items()}
    return obs[index]


def stack(rows: Sequence[Obs]) -> Obs:
    """Single observations (arrays, or dicts of parts) stacked into one batch ``(N, ...)``."""
    if rows and is_parts(rows[0]):
        return {name: np.stack([r[name] for r in rows]) for name in rows[0]}
    return np.stack(rows)


def as_numpy(obs: Obs) -> Obs:
    """Every part as a numpy array (decompressing lazy frames)."""
    if is_parts(obs):
        return {name: np.asarray(part) for name, part in obs.items()}
    return np.asarray(obs)


def flat(obs: Obs) -> np.ndarray:
    """``(N, D)`` float64: every part flattened and concatenated in order (image bytes as
    their values 0-255). For what needs one vector per observation: a success critic's
    input, a scripted expert that reads several parts."""
    parts = list(obs.values()) if is_parts(obs) else [obs]
    n = n_rows(obs)
    return np.concatenate([np.asarray(p, np.float64).reshape(n, -1) for p in parts], axis=1)


def check_obs(obs: Obs, space: gym.Space, where: str) -> None:
    """Raise a DataError naming the part if a batch ``(N, ...)`` does not fit ``space``:
    a missing or unknown part, or a part whose per-row shape or dtype kind differs."""
    if not is_dict_space(space):
        if is_parts(obs):
            raise DataError(f"{where}: got observation parts {sorted(obs)}; the task has a {space}")
        return
    parts = part_spaces(space, where)
    if not is_parts(obs):
        raise DataError(f"{where}: got one array; the task's observations are parts {list(parts)}")
    missing, unknown = sorted(set(parts) - set(obs)), sorted(set(obs) - set(parts))
    if missing or unknown:
        raise DataError(f"{where}: observation parts missing {missing}, unknown {unknown}")
    for name, sub in parts.items():
        arr = obs[name]
        shape = tuple(np.shape(arr)[1:])
        if shape != tuple(sub.shape):
            raise DataError(
                f"{where}: observation part {name!r} has shape {shape} per row; "
                f"the task's is {tuple(sub.shape)}"
            )
        want, got = np.dtype(sub.dtype), np.dtype(getattr(arr, "dtype", np.float64))
        if (want.kind == "f") != (got.kind == "f") or (want == np.uint8) != (got == np.uint8):
            raise DataError(
                f"{where}: observation part {name!r} has dtype {got}; the task's is {want}"
            )
