"""Observation history for policies that see the last K observations (frame stacking).

Training needs no state: the dataset view stacks stored single frames at sample time. Acting
does: :class:`ObsHistory` keeps, like :class:`~protege.policies.chunking.ChunkExecutor`, one
row per sub-env of a vector env, and ``episodes_started(mask)`` restarts the sub-envs whose episodes
ended.
"""

from __future__ import annotations

import numpy as np

from protege.errors import DataError


class ObsHistory:
    """The last K observations of every sub-env, for policies with ``n_obs_steps = K > 1``.

    A restarted sub-env's next observation fills all K slots: the same padding training uses
    before an episode's first step. A call with a different number of rows (a new vector env,
    or a batch of unrelated observations) starts every row afresh.

    Example:
        >>> hist = ObsHistory(4)
        >>> stacks = hist.push(obs_N, obs_shape)   # (N, 4, *obs_shape), oldest first
        >>> hist.episodes_started(finished_N)      # those sub-envs start new episodes
    """

    def __init__(self, n_obs_steps: int):
        if n_obs_steps < 1:
            raise ValueError(f"n_obs_steps must be ≥ 1, got {n_obs_steps}")
        self.n_obs_steps = n_obs_steps
        self._frames: np.ndarray | None = None  # (N, K, *obs_shape), oldest first
        self._fresh = np.zeros(0, bool)

    def episodes_started(self, mask: np.ndarray | None = None) -> None:
        """Forget the history of every sub-env (``mask`` None) or of those in ``mask``."""
        if mask is None or self._frames is None:
            self._frames = None
            return
        self._fresh |= np.asarray(mask, bool)

    def push(self, obs: np.ndarray, obs_shape: tuple[int, ...]) -> np.ndarray:
        """Append one observation per sub-env; returns the ``(N, K, *obs_shape)`` stacks."""
        if tuple(obs.shape[1:]) != tuple(obs_shape):
            raise DataError(
                f"policy expects observations of shape {tuple(obs_shape)}, "
                f"got {tuple(obs.shape[1:])}"
            )
        frames = self._frames
        if frames is None or len(frames) != len(obs) or frames.dtype != obs.dtype:
            frames = np.repeat(obs[:, None], self.n_obs_steps, axis=1)
            self._frames = frames
            self._fresh = np.zeros(len(obs), bool)
        else:
            frames[:, :-1] = frames[:, 1:].copy()
            frames[:, -1] = obs
            if self._fresh.any():
                frames[self._fresh] = obs[self._fresh][:, None]
                self._fresh[:] = False
        return frames.copy()


class PartsHistory:
    """:class:`ObsHistory` for observations of several parts: one history per part, pushed
    and restarted together (``push`` takes and returns dicts of parts)."""

    def __init__(self, n_obs_steps: int):
        self.n_obs_steps = n_obs_steps
        self.parts: dict[str, ObsHistory] = {}

    def episodes_started(self, mask: np.ndarray | None = None) -> None:
        """Forget the history of every sub-env (``mask`` None) or of those in ``mask``."""
        for history in self.parts.values():
            history.episodes_started(mask)

    def push(
        self, obs: dict[str, np.ndarray], shapes: dict[str, tuple[int, ...]]
    ) -> dict[str, np.ndarray]:
        """Append one observation per sub-env to every part's history; returns each part's
        ``(N, K, *part_shape)`` stacks."""
        if not isinstance(obs, dict) or set(obs) != set(shapes):
            got = sorted(obs) if isinstance(obs, dict) else "one array"
            raise DataError(f"policy expects observation parts {list(shapes)}, got {got}")
        out = {}
        for name, shape in shapes.items():
            history = self.parts.setdefault(name, ObsHistory(self.n_obs_steps))
            try:
                out[name] = history.push(np.asarray(obs[name]), shape)
            except DataError as exc:
                raise DataError(f"observation part {name!r}: {exc}") from None
        return out
