"""The evaluation episodes both sides of ``offline_dial.py`` run: one gymnasium env, reset with
seeds ``seed, seed + 1, ...``, a policy acting on one observation at a time. Imported by
protege's side and by ``d3rlpy_run.py`` in the d3rlpy venv (numpy and gymnasium only), so the
two score their policies on the very same episodes."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np


def run_episodes(
    act: Callable[[np.ndarray], Any],
    env_id: str,
    env_kwargs: dict[str, Any],
    horizon: int,
    seeds: Sequence[int],
) -> list[float]:
    """The return of ``act`` (one observation → one action) on each seeded episode."""
    env = gym.make(env_id, max_episode_steps=horizon, **env_kwargs)
    returns = []
    try:
        for seed in seeds:
            obs, _ = env.reset(seed=int(seed))
            total, done = 0.0, False
            while not done:
                obs, reward, terminated, truncated, _ = env.step(act(obs))
                total += float(reward)
                done = terminated or truncated
            returns.append(total)
    finally:
        env.close()
    return returns


def env_spec(text: str) -> tuple[str, dict[str, Any], int]:
    """``env_id|{"continuous": true}|1000`` → (env id, kwargs, horizon)."""
    env_id, kwargs, horizon = text.split("|")
    return env_id, json.loads(kwargs), int(horizon)
