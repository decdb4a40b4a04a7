"""Episodes: the unit a store appends and a rollout produces.

Shape legend used across protege: T = steps in an episode, N = transitions or envs in a batch,
B = batch, H = chunk (horizon) length, A = action dimension, F = feature dimension.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from protege.errors import DataError

# Who chose the executed action at a step (``Episode.actor``).
EXPERT = 0
LEARNER = 1


@dataclass(frozen=True)
class Episode:
    """One episode, validated on construction.

    ``actions`` are the *labels* (the expert's action where ``labeled``); ``executed`` is what
    the env actually received (the learner's action, a β-mixture, a noisy expert action...).
    For plain expert demonstrations the two are equal and every step is labeled.
    """

    obs: np.ndarray | dict[str, np.ndarray]
    """(T+1, *obs_shape): the observations, the last one after the final step; or a dict of
    named parts (a state vector, camera images), each (T+1, *part_shape)."""
    actions: np.ndarray
    """(T, *act_shape): expert labels; int64 for Discrete, float32 for Box."""
    rewards: np.ndarray
    """(T,) float32."""
    terminated: bool = False
    truncated: bool = False
    executed: np.ndarray | None = None
    """(T, *act_shape): the executed actions; ``None`` means equal to ``actions``."""
    actor: np.ndarray | None = None
    """(T,) uint8, EXPERT or LEARNER; ``None`` means the expert acted throughout."""
    labeled: np.ndarray | None = None
    """(T,) bool: whether ``actions[t]`` is an expert label; ``None`` means all are."""
    round: int = 0
    """The DAgger round (0 for demonstrations)."""
    seed: int | None = None
    extras: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        t = len(self.actions)
        if t == 0:
            raise DataError("an episode needs at least one step")
        parts = self.obs.items() if isinstance(self.obs, dict) else [("", self.obs)]
        if not parts:
            raise DataError("episode obs is a dict with no parts")
        for name, part in parts:
            if len(part) != t + 1:
                what = f"obs part {name!r}" if name else "obs"
                raise DataError(f"episode {what} has {len(part)} rows; expected T+1 = {t + 1}")
        if len(self.rewards) != t:
            raise DataError(f"episode rewards has {len(self.rewards)} rows; expected T = {t}")
        for name in ("executed", "actor", "labeled"):
            value = getattr(self, name)
            if value is not None and len(value) != t:
                raise DataError(f"episode {name} has {len(value)} rows; expected T = {t}")

    def __len__(self) -> int:
        return len(self.actions)

    @property
    def executed_actions(self) -> np.ndarray:
        return self.actions if self.executed is None else self.executed

    @property
    def actors(self) -> np.ndarray:
        return np.full(len(self), EXPERT, np.uint8) if self.actor is None else self.actor

    @property
    def label_mask(self) -> np.ndarray:
        return np.ones(len(self), bool) if self.labeled is None else self.labeled

    @property
    def episode_return(self) -> float:
        return float(np.sum(self.rewards, dtype=np.float64))
