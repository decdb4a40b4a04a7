"""Executing action chunks: a queue, or ACT's temporal ensemble.

A chunked policy predicts H future actions. Two ways to turn chunks into one action per step:

* **Queue** (Diffusion Policy, ACT without ensembling): predict, execute the first
  ``n_action_steps``, then predict again.
* **Temporal ensemble** (ACT): predict every step and execute, for the current step, the
  exponentially weighted average of every prediction made for it, weights ``exp(-coeff * i)``
  with i = 0 the oldest prediction. ``coeff`` is a setting to benchmark, not a default to trust:
  LeRobot measured 87.6% success without ensembling and 70.8% with ACT's coeff=0.01 on a sim task.

Each sub-env of a vector env has its own queue or ensemble; ``episodes_started(mask)`` clears
finished ones.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

Predict = Callable[[Any, np.ndarray], np.ndarray]
"""predict(obs (N, ...) or a dict of parts, env_mask (N,) bool) -> chunks (n, H, A) for the
envs in the mask."""


class ChunkExecutor:
    def __init__(self, chunk_size: int, n_action_steps: int, ensemble_coeff: float | None):
        if not 1 <= n_action_steps <= chunk_size:
            raise ValueError(f"n_action_steps must be in [1, chunk_size={chunk_size}]")
        self.chunk_size = chunk_size
        self.n_action_steps = n_action_steps
        self.ensemble_coeff = ensemble_coeff
        self._plan: np.ndarray | None = None  # (N, H, A) queue, or running ensemble average
        self._count = np.zeros((0, chunk_size), np.int64)  # predictions in each slot (ensemble)
        self._step = np.zeros(0, np.int64)  # steps executed from the current plan (queue)

    def episodes_started(self, mask: np.ndarray | None = None) -> None:
        if mask is None:
            self._plan = None
            return
        self._count[mask] = 0
        self._step[mask] = self.n_action_steps

    def _ensure(self, n: int, act_dim: int) -> np.ndarray:
        if self._plan is None or len(self._plan) != n:
            self._plan = np.zeros((n, self.chunk_size, act_dim), np.float32)
            self._count = np.zeros((n, self.chunk_size), np.int64)
            self._step = np.full(n, self.n_action_steps, np.int64)
        return self._plan

    def act(self, obs: Any, predict: Predict, act_dim: int, n: int | None = None) -> np.ndarray:
        """The action of each of the ``n`` sub-envs (default ``len(obs)``; give it for a dict
        of observation parts) this step, predicting new chunks where needed."""
        n = len(obs) if n is None else n
        plan = self._ensure(n, act_dim)
        if self.ensemble_coeff is None:
            need = self._step >= self.n_action_steps
            if need.any():
                plan[need] = predict(obs, need)
                self._step[need] = 0
            action = plan[np.arange(n), self._step].copy()
            self._step += 1
            return action
        # Temporal ensemble: slot k of the plan holds the running weighted mean for step t+k.
        new = predict(obs, np.ones(n, bool))
        weights = np.exp(-self.ensemble_coeff * np.arange(self.chunk_size + 1))
        cum = np.concatenate([[0.0], np.cumsum(weights)])
        c = self._count
        w_new = weights[c][..., None]
        plan[:] = (plan * cum[c][..., None] + w_new * new) / cum[c + 1][..., None]
        action = plan[:, 0].copy()
        # Shift the window by one step: slot k+1 becomes slot k; the last slot is empty.
        plan[:, :-1] = plan[:, 1:]
        plan[:, -1] = 0.0
        self._count = np.concatenate([c[:, 1:] + 1, np.zeros((n, 1), np.int64)], axis=1)
        return action
