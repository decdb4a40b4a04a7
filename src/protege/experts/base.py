"""The Expert protocol: anything that can label any state the learner reaches.

An expert is batched: ``act(obs_N, infos)`` takes N observations (one per sub-env of a vector
env) and returns N actions. ``infos`` is the vector env's info dict (or ``None``); experts that
need privileged simulator state (e.g. a car's pose) read it from there, never from the
observation the learner sees.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import gymnasium as gym
import numpy as np

from protege.data.spaces import describe_space
from protege.errors import ConfigError


@runtime_checkable
class Expert(Protocol):
    """A queryable supervisor: scripted controller, trained policy or a person."""

    def act(self, obs: np.ndarray, infos: dict[str, Any] | None = None) -> np.ndarray:
        """Return the expert's action for each of the N observations in ``obs``."""
        ...

    def begin_run(self, seed: int | None = None) -> None:
        """A run starts (collection, an evaluation, an interactive run), seeded by ``seed``:
        experts with internal state (a random generator, a plan) reset it here. Called once
        per run, before the first ``act``; not at every episode."""
        ...


def expert_name(expert: Any) -> str:
    """How errors name an expert: its ``name`` attribute, else its class."""
    name = getattr(expert, "name", None)
    return name if isinstance(name, str) else f"the expert ({type(expert).__name__})"


def check_actions(expert: Any, actions: Any, space: gym.Space) -> np.ndarray:
    """``actions`` (one per observation asked about) as an array, if every one lies in
    ``space``; else a :class:`ConfigError` naming the expert, the action and the space (asked
    before anything is stored, so no label outside the space reaches a store)."""
    arr = np.asarray(actions)
    if isinstance(space, gym.spaces.Discrete):
        lo, n = int(space.start), int(space.n)
        numeric = arr.dtype.kind in "biuf"
        ok = (arr == np.round(arr)) & (arr >= lo) & (arr < lo + n) if numeric else None
        shape_ok = arr.ndim == 1
    elif isinstance(space, gym.spaces.Box):
        shape_ok = arr.ndim >= 1 and tuple(arr.shape[1:]) == tuple(space.shape or ())
        numeric = arr.dtype.kind in "biuf"
        ok = None
        if shape_ok and numeric:
            flat = arr.reshape(len(arr), -1).astype(np.float64)
            ok = np.isfinite(flat) & (flat >= space.low.ravel()) & (flat <= space.high.ravel())
            ok = ok.all(axis=1)
    else:
        return arr
    if not shape_ok or ok is None or not np.all(ok):
        if not shape_ok or ok is None:
            shown = f"an array of shape {arr.shape} and dtype {arr.dtype}"
        else:
            bad = int(np.flatnonzero(~np.asarray(ok).reshape(len(arr), -1).all(axis=1))[0])
            shown = np.array2string(np.asarray(arr[bad]), precision=4, threshold=8)
        raise ConfigError(
            f"{expert_name(expert)}: action {shown} is outside the task's action space "
            f"({describe_space(space)}); nothing was stored"
        )
    return arr
