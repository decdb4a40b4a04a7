"""A degraded expert for data of known quality: the expert, but with probability ε at each
step a uniformly random action instead (``protege collect --mix``)."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from protege.errors import ConfigError
from protege.experts.base import Expert


class EpsilonExpert:
    """``expert`` taking a uniformly random action of ``action_space`` with probability
    ``epsilon`` at each step (ε = 1: a random policy, which never asks ``expert``).

    Its draws come from a generator seeded by :meth:`begin_run`, so a collection with the
    same seed gives the same episodes.

    Example:
        >>> noisy = EpsilonExpert(task.make_expert(), 0.3, env.action_space)
    """

    def __init__(self, expert: Expert, epsilon: float, action_space: gym.Space):
        if not 0.0 <= epsilon <= 1.0:
            raise ConfigError(f"epsilon must be in [0, 1], got {epsilon}")
        if isinstance(action_space, gym.spaces.Box) and not (
            np.isfinite(action_space.low).all() and np.isfinite(action_space.high).all()
        ):
            raise ConfigError(f"random actions need a bounded action space, not {action_space}")
        if not isinstance(action_space, (gym.spaces.Box, gym.spaces.Discrete)):
            raise ConfigError(f"random actions need a Box or Discrete space, not {action_space}")
        self.expert, self.epsilon, self.space = expert, float(epsilon), action_space
        self.name = f"the expert with ε = {epsilon:g}"
        self.rng = np.random.default_rng(0)

    def begin_run(self, seed: int | None = None) -> None:
        self.rng = np.random.default_rng(seed)
        if self.epsilon < 1.0:
            self.expert.begin_run(seed)

    def check_spaces(self, observation_space: gym.Space, action_space: gym.Space) -> None:
        check = getattr(self.expert, "check_spaces", None)
        if check is not None:
            check(observation_space, action_space)

    def random_actions(self, n: int) -> np.ndarray:
        """``n`` uniformly random actions of the space."""
        space = self.space
        if isinstance(space, gym.spaces.Discrete):
            return self.rng.integers(int(space.start), int(space.start + space.n), n)
        assert isinstance(space, gym.spaces.Box)
        draws = self.rng.uniform(space.low, space.high, (n, *space.shape))
        return draws.astype(space.dtype)

    def act(self, obs: np.ndarray, infos: dict[str, Any] | None = None) -> np.ndarray:
        n = len(obs)
        coin = self.rng.random(n) < self.epsilon
        noise = self.random_actions(n)
        if coin.all():
            return noise
        actions = np.asarray(self.expert.act(obs, infos)).copy()
        actions[coin] = noise[coin]
        return actions
