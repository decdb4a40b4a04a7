"""Episodes: the unit a store appends and a rollout produces.

Shape legend used across protege: T = steps in an episode, N = transitions or envs in a batch,
B = batch, H = chunk (horizon) length, A = action dimension, F = feature dimension.
"""

from __future__ import annotations

import dataclasses
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
    """(T+1, *obs_shape): the observations, the last one after the final step; or, for a
    task whose observations have several parts (a ``Dict`` space), a dict of them, each
    (T+1, *part_shape)."""
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
        if isinstance(self.obs, dict):
            if not self.obs:
                raise DataError("episode obs is a dict with no parts")
            for name, part in self.obs.items():
                if isinstance(part, dict):
                    raise DataError(
                        f"episode obs part {name!r} is itself a dict; nested dicts are not "
                        "supported"
                    )
                rows = len(part) if np.ndim(part) else 0
                if rows != t + 1:
                    raise DataError(
                        f"episode obs part {name!r} has {rows} rows; expected T+1 = {t + 1}"
                    )
        elif len(self.obs) != t + 1:
            raise DataError(f"episode obs has {len(self.obs)} rows; expected T+1 = {t + 1}")
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

    def head(self, steps: int) -> Episode:
        """The first ``steps`` steps (every step if it has fewer), cut off rather than ended
        (``truncated``, not ``terminated``): a shorter demonstration from the same start."""
        if steps >= len(self):
            return self
        if steps < 1:
            raise DataError(f"an episode's head needs at least one step, not {steps}")

        def cut(a: np.ndarray | None, n: int) -> np.ndarray | None:
            return None if a is None else a[:n]

        obs = (
            {k: v[: steps + 1] for k, v in self.obs.items()}
            if isinstance(self.obs, dict)
            else self.obs[: steps + 1]
        )
        return dataclasses.replace(
            self,
            obs=obs,
            actions=self.actions[:steps],
            rewards=self.rewards[:steps],
            executed=cut(self.executed, steps),
            actor=cut(self.actor, steps),
            labeled=cut(self.labeled, steps),
            terminated=False,
            truncated=True,
        )
