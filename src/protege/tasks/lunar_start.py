"""LunarLander with a gentler random start (the initial push scaled by ``push``) and,
optionally, noisy sensors for the learner while the expert flies on the clean state.

gymnasium's LunarLander-v3 pushes the lander at reset with a random force of up to
``INITIAL_RANDOM`` = 1000 on each axis (drawn from the env's seeded generator), which is
what makes its episodes differ in flight (the terrain only differs away from the pad).
:func:`make_lunar_lander` scales that bound for the duration of one reset, so ``push=0.2``
draws the same random numbers as the stock env but pushes with a fifth of the force:
a near-deterministic start whose demonstrations all follow nearly the same path. ``push=1``
is the stock env (tested). The bound is gymnasium's module constant, set for the reset's
duration: two of these envs must not reset at the same moment in threads of one process
(vector envs reset their sub-envs one after another, or in processes of their own).

``sensor_noise=σ`` adds Gaussian noise of standard deviation σ (observation units) to the
lander's position, velocity, attitude and spin (not the leg contacts) in every observation,
from a generator of its own (seeded by ``reset(seed=...)``, so the env's own random draws are
the stock env's); the clean state is in ``info["clean_obs"]``. :class:`CleanStatePilot` is the
calm pilot flying on it: a teacher with the true state, a learner with noisy sensors.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.envs.box2d import lunar_lander

from protege.errors import ConfigError
from protege.experts.classic import LunarLanderExpert


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


class NoisySensors(gym.Wrapper):
    """Observations with Gaussian noise σ = ``noise`` on the first six numbers (position,
    velocity, attitude, spin); the clean observation in ``info["clean_obs"]``."""

    def __init__(self, env: gym.Env, noise: float) -> None:
        super().__init__(env)
        self.noise = float(noise)
        self._rng = np.random.default_rng()

    def _read(self, obs: np.ndarray, info: dict[str, Any]) -> tuple[np.ndarray, dict[str, Any]]:
        clean = np.asarray(obs, np.float32)
        noisy = clean.copy()
        noisy[:6] += self._rng.normal(0.0, self.noise, 6).astype(np.float32)
        return noisy, {**info, "clean_obs": clean}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        if seed is not None:
            self._rng = np.random.default_rng([seed, 7])  # apart from the env's own draws
        return self._read(*self.env.reset(seed=seed, options=options))

    def step(self, action: Any):
        obs, reward, terminated, truncated, info = self.env.step(action)
        obs, info = self._read(obs, info)
        return obs, reward, terminated, truncated, info


class CleanStatePilot(LunarLanderExpert):
    """The calm lander pilot (:class:`~protege.experts.classic.LunarLanderExpert`) flying on
    ``infos["clean_obs"]`` (the true state :class:`NoisySensors` passes on) when the env
    gives it, on the observation otherwise."""

    def act(self, obs: np.ndarray, infos: dict[str, Any] | None = None) -> np.ndarray:
        clean = (infos or {}).get("clean_obs")
        return super().act(obs if clean is None else np.asarray(clean).reshape(-1, 8), infos)


def make_lunar_lander(
    render_mode: str | None = None, push: float = 1.0, sensor_noise: float = 0.0, **kwargs: Any
) -> gym.Env:
    """LunarLander-v3 (``kwargs`` as gymnasium's: ``continuous``, ``enable_wind``, ...) with
    the reset's random push scaled by ``push`` (0: none, 1: the stock env's) and, when
    ``sensor_noise`` > 0, noisy observations (:class:`NoisySensors`)."""
    if push < 0:
        raise ConfigError(f"LunarLander's start push must be ≥ 0, got push={push}")
    if sensor_noise < 0:
        raise ConfigError(
            f"LunarLander's sensor noise must be ≥ 0, got sensor_noise={sensor_noise}"
        )
    env: gym.Env = _ScaledPushLander(push=push, render_mode=render_mode, **kwargs)
    env = gym.wrappers.OrderEnforcing(gym.wrappers.PassiveEnvChecker(env))
    return NoisySensors(env, sensor_noise) if sensor_noise > 0 else env
