"""The Expert protocol: anything that can label any state the learner reaches.

An expert is batched: ``act(obs_N, infos)`` takes N observations (one per sub-env of a vector
env) and returns N actions. ``infos`` is the vector env's info dict (or ``None``); experts that
need privileged simulator state (e.g. a car's pose) read it from there, never from the
observation the learner sees.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np


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
