"""A plugin task for benchmarks/fleet_workers.py: ``slow-pole``, CartPole whose every env step
also waits 2 ms (``time.sleep``), a stand-in for a slow simulator or a real robot's control
period (latency, not CPU: on this shared 2-core machine a CPU-bound stand-in would measure
the other jobs as much as the workers). Load it with ``--plugin benchmarks/slow_pole.py``;
Ray workers load it too (the plugins this process loaded)."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import gymnasium as gym

from protege import tasks

DELAY = 0.002
"""Seconds each env step waits."""


class Slow(gym.Wrapper):
    """Waits :data:`DELAY` before each step."""

    def step(self, action: Any) -> Any:
        time.sleep(DELAY)
        return self.env.step(action)


def make_env(render_mode: str | None = None, **kwargs: Any) -> gym.Env:
    return Slow(gym.make("CartPole-v1", render_mode=render_mode, **kwargs))


tasks.register(dataclasses.replace(tasks.make("cartpole"), name="slow-pole", env_id=make_env))
