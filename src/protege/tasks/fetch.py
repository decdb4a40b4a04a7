"""gymnasium-robotics' Fetch pick-and-place and push, registered as ``fetch/pick-place`` and
``fetch/push``, with protege's scripted experts (:mod:`protege.experts.fetch`).

Fetch observes a dict (``observation`` (25): gripper, block, fingers and velocities;
``achieved_goal`` (3): the block; ``desired_goal`` (3)), and so do protege's Fetch tasks: a
``spaces.Dict`` of those three float32 parts, in that order (:mod:`protege.data.obs`; a policy
on it gets the ``parts`` encoder). Episodes last 50 steps (Fetch's own limit) and never end
early; success is ``info["is_success"]`` at the last step (the block at the goal, within 5 cm),
Fetch's own measure. Registering imports neither gymnasium-robotics nor MuJoCo.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from typing import Any

import gymnasium as gym
import numpy as np

from protege.errors import ConfigError
from protege.experts.fetch import PARTS
from protege.tasks import mujoco_render, register
from protege.tasks.base import EpisodeOutcome, Task

HORIZON = 50
ENV_IDS = {"pick-place": "FetchPickAndPlace-v4", "push": "FetchPush-v4"}
CAMERA = {"distance": 1.4, "azimuth": 150.0, "elevation": -25.0, "lookat": [1.3, 0.75, 0.5]}
"""The free camera of ``render()``: the table, closer than gymnasium-robotics' default."""


class FetchEnv(gym.Env):
    """A Fetch task, its dict observation as float32 parts (``PARTS`` in order)."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 25}  # noqa: RUF012 (gymnasium declares it so)

    def __init__(
        self,
        task: str,
        render_mode: str | None = None,
        render_size: int = 240,
        fast_render: bool = True,
    ) -> None:
        if task not in ENV_IDS:
            raise ConfigError(f"Fetch task {task!r}: choose from {list(ENV_IDS)}")
        mujoco_render.ensure_gl_backend()
        try:
            # Its import prints (and may warn) about Adroit's reward versions: not ours.
            quiet = io.StringIO()
            with (
                warnings.catch_warnings(),
                contextlib.redirect_stdout(quiet),
                contextlib.redirect_stderr(quiet),
            ):
                warnings.simplefilter("ignore")
                import gymnasium_robotics
        except ImportError as exc:
            raise ConfigError(
                f"Fetch tasks need the 'arm' extra: pip install 'protege[arm]' ({exc})"
            ) from None
        gym.register_envs(gymnasium_robotics)
        self.task = task
        self.render_mode = render_mode
        self.render_size = int(render_size)
        self.fast_render = fast_render
        self._env: Any = gym.make(ENV_IDS[task]).unwrapped
        self.action_space = self._env.action_space
        spaces: Any = self._env.observation_space
        self.observation_space = gym.spaces.Dict(
            {
                k: gym.spaces.Box(
                    spaces[k].low.astype(np.float32),
                    spaces[k].high.astype(np.float32),
                    dtype=np.float32,
                )
                for k in PARTS
            }
        )

    @staticmethod
    def _observation(obs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Fetch's parts in ``PARTS`` order, as float32."""
        return {k: np.asarray(obs[k], np.float32) for k in PARTS}

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        super().reset(seed=seed)
        obs, info = self._env.reset(seed=seed, options=options)
        return self._observation(obs), {"is_success": 0.0, **info}

    def step(
        self, action: np.ndarray
    ) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self._env.step(action)
        info = {**info, "is_success": float(info.get("is_success", 0.0))}
        return self._observation(obs), float(reward), bool(terminated), bool(truncated), info

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        env = self._env
        env._render_callback()  # puts the goal marker at the goal
        size = self.render_size
        r = mujoco_render.renderer(f"fetch/{self.task}", env.model, size, size, self.fast_render)
        return r.render(env.model, env.data, CAMERA)

    def close(self) -> None:
        self._env.close()


def make_fetch_env(task: str, render_mode: str | None = None, **kwargs: Any) -> gym.Env:
    """A :class:`FetchEnv` (the factory protege's Fetch tasks register)."""
    return FetchEnv(task, render_mode=render_mode, **kwargs)


def fetch_success(outcome: EpisodeOutcome) -> bool:
    """``info["is_success"]`` at the last step: the block within 5 cm of the goal."""
    return bool(float(np.asarray(outcome.final_info.get("is_success", 0.0))) > 0)


def _pick_place_expert() -> Any:
    from protege.experts.fetch import FetchPickPlaceExpert

    return FetchPickPlaceExpert()


def _push_expert() -> Any:
    from protege.experts.fetch import FetchPushExpert

    return FetchPushExpert()


_DESCRIPTION = (
    "Fetch {what} (gymnasium-robotics, MuJoCo): a dict of observation (25), achieved_goal (3) "
    "and desired_goal (3); 4 actions (gripper dx dy dz, fingers); protege's scripted "
    "expert; success = info['is_success'] at step 50"
)

register(
    Task(
        name="fetch/pick-place",
        env_id=make_fetch_env,
        expert_factory=_pick_place_expert,
        horizon=HORIZON,
        success=fetch_success,
        env_kwargs={"task": "pick-place"},
        description=_DESCRIPTION.format(what="pick-and-place"),
    )
)
register(
    Task(
        name="fetch/push",
        env_id=make_fetch_env,
        expert_factory=_push_expert,
        horizon=HORIZON,
        success=fetch_success,
        env_kwargs={"task": "push"},
        description=_DESCRIPTION.format(what="push"),
    )
)

__all__ = ["FetchEnv", "fetch_success", "make_fetch_env"]
