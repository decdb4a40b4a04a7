"""LunarLander with a gentler random start: the initial push scaled by ``push``.

gymnasium's LunarLander-v3 pushes the lander at reset with a random force of up to
``INITIAL_RANDOM`` = 1000 on each axis (drawn from the env's seeded generator), which is
what makes its episodes differ in flight (the terrain only differs away from the pad).
:func:`make_lunar_lander` scales that bound for the duration of one reset, so ``push=0.2``
draws the same random numbers as the stock env but pushes with a fifth of the force:
a near-deterministic start whose demonstrations all follow nearly the same path. ``push=1``
is the stock env (tested). The bound is gymnasium's module constant, set for the reset's
duration: two of these envs must not reset at the same moment in threads of one process
(vector envs reset their sub-envs one after another, or in processes of their own).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
from gymnasium.envs.box2d import lunar_lander

from protege.errors import ConfigError


class _ScaledPushLander(lunar_lander.LunarLander):
    """LunarLander whose reset pushes with ``push`` × the stock random force."""

    def __init__(self, push: float = 1.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.push = float(push)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        stock = lunar_lander.INITIAL_RANDOM
        lunar_lander.INITIAL_RANDOM = stock * self.push
        try:
            return super().reset(seed=seed, options=options)
        finally:
            lunar_lander.INITIAL_RANDOM = stock


def make_lunar_lander(render_mode: str | None = None, push: float = 1.0, **kwargs: Any) -> gym.Env:
    """LunarLander-v3 (``kwargs`` as gymnasium's: ``continuous``, ``enable_wind``, ...) with
    the reset's random push scaled by ``push`` (0: none, 1: the stock env's)."""
    if push < 0:
        raise ConfigError(f"LunarLander's start push must be ≥ 0, got push={push}")
    env = _ScaledPushLander(push=push, render_mode=render_mode, **kwargs)
    return gym.wrappers.OrderEnforcing(gym.wrappers.PassiveEnvChecker(env))
