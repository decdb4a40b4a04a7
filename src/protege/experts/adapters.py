"""Turn what a user already has into a queryable expert in one line.

* any function ``obs_N -> actions_N`` (or a per-observation function with ``batched=False``);
* a saved protege policy (a directory with config.json + model.safetensors);
* a stable-baselines3 model (``model.predict`` is called deterministically).

Example:
    >>> expert = CallableExpert(lambda obs: (obs[:, 2] > 0).astype(int))
    >>> expert = PolicyExpert.load("runs/bc-lunar")
    >>> expert = SB3Expert(PPO.load("ppo_pendulum.zip"))
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np

from protege.policies.policy import Policy


class CallableExpert:
    """Wraps a function. ``batched=False`` applies it row by row."""

    def __init__(self, fn: Callable[[np.ndarray], Any], batched: bool = True):
        self.fn = fn
        self.batched = batched

    def act(self, obs: np.ndarray, infos: dict[str, Any] | None = None) -> np.ndarray:
        if self.batched:
            return np.asarray(self.fn(obs))
        return np.stack([np.asarray(self.fn(o)) for o in obs])

    def reset(self, seed: int | None = None) -> None:
        pass


class PolicyExpert:
    """A trained protege policy acting as the expert (deterministically)."""

    def __init__(self, policy: Policy):
        self.policy = policy

    @classmethod
    def load(cls, path: str | os.PathLike) -> PolicyExpert:
        return cls(Policy.load(path))

    def act(self, obs: np.ndarray, infos: dict[str, Any] | None = None) -> np.ndarray:
        # Chunked policies keep per-env queues; an expert asked about arbitrary states must not.
        chunks = self.policy.predict_chunk(obs, deterministic=True)
        first = chunks[:, 0]
        if self.policy.config.discrete:
            return first[:, 0].round().astype(np.int64)
        return first.astype(np.float32)

    def reset(self, seed: int | None = None) -> None:
        pass


class SB3Expert:
    """A stable-baselines3 model (PPO, SAC, DQN, ...) acting as the expert."""

    def __init__(self, model: Any, deterministic: bool = True):
        self.model = model
        self.deterministic = deterministic

    def act(self, obs: np.ndarray, infos: dict[str, Any] | None = None) -> np.ndarray:
        actions, _ = self.model.predict(obs, deterministic=self.deterministic)
        return np.asarray(actions)

    def reset(self, seed: int | None = None) -> None:
        pass


class ExpertActor:
    """The other direction: an expert wearing the learner's interface, e.g. to evaluate it
    with :func:`protege.evaluate` exactly as a policy would be."""

    def __init__(self, expert: Any):
        self.expert = expert

    def act(self, obs: np.ndarray, deterministic: bool = True, generator: Any = None) -> np.ndarray:
        return self.expert.act(obs, None)

    def reset(self, mask: np.ndarray | None = None) -> None:
        pass
