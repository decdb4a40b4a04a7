"""One Meta-World (v3) environment as protege needs it: seeded per episode, goal shown or
hidden, state, camera pixels or camera and proprioception, and the privileged state an expert
reads in ``info``.

Meta-World's own entry points don't fit protege's seeding promise: ``Meta-World/MT1`` draws
each reset from 50 configurations fixed when it is made, and ignores ``reset(seed=...)``.
:class:`MetaWorldEnv` makes the task's configuration (object and goal positions, Meta-World's
``rand_vec``) a function of the seed given to ``reset``: Meta-World's environment draws it from
its own generator, which ``reset(seed=s)`` re-seeds with ``s`` (``reset()`` continues the
stream, as gymnasium's envs do). Same seed, same episode; different seeds, different
configurations, from Meta-World's whole configuration space rather than 50 of them.

Observations (``observation=``):

* ``"state"``: Meta-World's 39 numbers (hand xyz, gripper opening, object positions and
  quaternions padded to 14, the previous frame's 18, the goal xyz), as float32. With
  ``hidden_goal`` the last three are 0 (as in ``Meta-World/goal_hidden``).
* ``"pixels"``: the ``camera`` image, ``size``×``size``×3 uint8, the right way up.
* ``"camera+state"``: a ``spaces.Dict`` of two parts (see :mod:`protege.data.obs`): the
  ``camera`` image under the camera's name, as ``"pixels"``, and ``"state"``, the arm's
  proprioception: hand xyz and gripper opening, this frame's and the previous frame's
  (8 float32 numbers, :data:`PROPRIO`). Neither the object nor the goal is in it: the camera
  must show them.

``info`` always carries the privileged state an expert may read and the learner never sees:
``info["state"]`` (the full 39 numbers, goal included) and ``info["goal"]`` (the goal xyz), and
Meta-World's ``info["success"]`` with ``info["episode_success"]`` (1.0 once the task has
succeeded in this episode).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from protege.errors import ConfigError
from protege.tasks import mujoco_render

OBS_DIM = 39
GOAL = slice(36, 39)
"""Where the goal sits in Meta-World's observation."""
MAX_PATH_LENGTH = 500
"""Meta-World's own episode limit: its ``step`` refuses to go further."""
PROPRIO = np.r_[0:4, 18:22]
"""Where the arm's proprioception sits in Meta-World's observation: hand xyz and gripper
opening, then the previous frame's."""
OBSERVATIONS = ("state", "pixels", "camera+state")
VIEWS: dict[str, dict[str, Any]] = {
    "workspace": {
        "lookat": (0.0, 0.75, 0.12),
        "distance": 0.8,
        "azimuth": -60.0,
        "elevation": -40.0,
    },
}
"""protege's own cameras, named like the model's (free cameras: ``lookat``, ``distance``,
``azimuth``, ``elevation``). ``workspace`` looks at the table from 0.8 m, where the block and the
goal of pick-place (and of push and reach) lie: at 84×84 the block is ~5 pixels across,
against ~2-3 in Meta-World's ``corner`` camera, which shows the whole table and the arm."""


class MetaWorldEnv(gym.Env):
    """A Meta-World v3 task (``env_name`` without ``-v3``, e.g. ``"pick-place"``).

    Args:
        hidden_goal: zero the goal in the observation (the expert reads ``info["state"]``).
        observation: ``"state"``, ``"pixels"`` or ``"camera+state"`` (see the module).
        camera: the camera of pixel observations and of ``render()``: Meta-World's
            (``corner``, ``corner2``, ``corner3``, ``topview``, ``behindGripper``,
            ``gripperPOV``) or one of protege's :data:`VIEWS` (``workspace``).
        size: side of pixel observations.
        render_size: side of ``render()`` frames (GIFs).
        terminate_on_success: end the episode at the first successful step.
        fast_render: no shadows, reflections or multisampling (``mujoco_render``).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 80}  # noqa: RUF012 (gymnasium declares it so)

    def __init__(
        self,
        env_name: str,
        *,
        hidden_goal: bool = False,
        observation: str = "state",
        camera: str = "corner",
        size: int = 84,
        render_size: int = 240,
        terminate_on_success: bool = True,
        fast_render: bool = True,
        render_mode: str | None = None,
    ) -> None:
        if observation not in OBSERVATIONS:
            raise ConfigError(f"observation {observation!r}: choose from {list(OBSERVATIONS)}")
        if render_mode not in (None, "rgb_array"):
            raise ConfigError(f"render_mode {render_mode!r}: Meta-World tasks render rgb_array")
        mujoco_render.ensure_gl_backend()
        env_cls = _env_class(env_name)
        self.env_name = env_name
        self.hidden_goal = hidden_goal
        self.observation = observation
        self.camera = camera
        self.size = int(size)
        self.render_size = int(render_size)
        self.terminate_on_success = terminate_on_success
        self.fast_render = fast_render
        self.render_mode = render_mode
        pool = _POOL.setdefault(env_name, [])
        env = pool.pop() if pool else _new_env(env_cls)
        self._env: Any = env
        self.action_space = env.action_space
        if camera not in VIEWS:
            try:
                mujoco_render.camera_id(env.model, camera)  # an unknown camera fails here
            except ConfigError as exc:
                raise ConfigError(f"{exc}, or protege's views {list(VIEWS)}") from None
        self.observation_space = self._observation_space()
        self._succeeded = False

    # ------------------------------------------------------------------------- spaces
    def _observation_space(self) -> gym.Space:
        pixels = gym.spaces.Box(0, 255, (self.size, self.size, 3), np.uint8)
        if self.observation == "pixels":
            return pixels
        space = self._env.sawyer_observation_space
        low = np.asarray(space.low, np.float32).copy()
        high = np.asarray(space.high, np.float32).copy()
        if self.observation == "camera+state":
            state = gym.spaces.Box(low[PROPRIO], high[PROPRIO], (len(PROPRIO),), np.float32)
            return gym.spaces.Dict({self.camera: pixels, "state": state})
        if self.hidden_goal:
            low[GOAL] = high[GOAL] = 0.0
        return gym.spaces.Box(low, high, (OBS_DIM,), np.float32)

    def _observation(self, state: np.ndarray) -> Any:
        """What the learner sees of Meta-World's full state (goal included)."""
        if self.observation == "pixels":
            return self.camera_frame(self.size)
        if self.observation == "camera+state":
            return {
                self.camera: self.camera_frame(self.size),
                "state": np.asarray(state, np.float32)[PROPRIO].copy(),
            }
        obs = np.asarray(state, np.float32).copy()
        if self.hidden_goal:
            obs[GOAL] = 0.0
        return obs

    # --------------------------------------------------------------------------- gym
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        super().reset(seed=seed)
        if seed is not None:
            self._env.seed(int(seed))
        state, _ = self._env.reset()
        self._succeeded = False
        return self._observation(state), self._info(state, 0.0)

    def step(self, action: np.ndarray) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        state, reward, _, truncated, info = self._env.step(np.asarray(action, np.float32))
        success = float(info.get("success", 0.0))
        self._succeeded = self._succeeded or success > 0
        terminated = bool(self.terminate_on_success and self._succeeded)
        return (
            self._observation(state),
            float(reward),
            terminated,
            bool(truncated),
            self._info(state, success),
        )

    def _info(self, state: np.ndarray, success: float) -> dict[str, Any]:
        return {
            "success": success,
            "episode_success": float(self._succeeded),
            "state": np.asarray(state, np.float64).copy(),
            "goal": np.asarray(self._env._target_pos, np.float64).copy(),
        }

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        return self.camera_frame(self.render_size)

    def camera_frame(self, size: int) -> np.ndarray:
        """The ``camera`` image, ``size``×``size``×3 uint8, upright.

        Meta-World's ``corner`` camera has its y axis pointing down: its image is upside
        down, and flipping the rows alone would mirror the scene. A camera whose up axis
        points below the horizon is turned by 180° (rows and columns), the view a camera at
        the same place looking the same way would have held upright. A view of
        :data:`VIEWS` is a free camera, always upright.
        """
        env = self._env
        model, data = env.model, env.data
        scene = f"metaworld/{self.env_name}"
        r = mujoco_render.renderer(scene, model, size, size, self.fast_render)
        if self.camera in VIEWS:
            return r.render(model, data, VIEWS[self.camera])
        frame = r.render(model, data, self.camera)
        cid = mujoco_render.camera_id(model, self.camera)
        up_z = float(np.asarray(data.cam_xmat[cid]).reshape(3, 3)[2, 1])  # world z of cam y
        return np.ascontiguousarray(frame[::-1, ::-1]) if up_z < 0 else frame

    def close(self) -> None:
        """Hand the Meta-World environment back to this process's pool (see
        ``_POOL``); the next env of the task reuses it."""
        if self._env is not None:
            _POOL.setdefault(self.env_name, []).append(self._env)
            self._env = None

    @property
    def mujoco_env(self) -> Any:
        """The Meta-World environment inside (privileged: experts and tests only)."""
        return self._env


_POOL: dict[str, list[Any]] = {}
"""Closed Meta-World environments by task, reused by the next :class:`MetaWorldEnv`.

Making one compiles its MuJoCo model from XML (~0.5 s), and protege makes envs often (every
evaluation, every GIF, ``Task.spaces``). Reuse is safe: ``reset`` sets the whole simulation
state, the configuration and the episode counters, and the seed decides the configuration."""


def _new_env(env_cls: Any) -> Any:
    env = env_cls()
    # The goal is always in Meta-World's observation (info["state"]); hidden_goal hides it from
    # ours. Configurations come from the env's own generator, seeded by reset(seed=...).
    env._partially_observable = False
    del env.sawyer_observation_space  # a cached property of the observability
    env._set_task_called = True
    env._freeze_rand_vec = False
    env.seeded_rand_vec = True
    return env


def _env_class(env_name: str) -> Any:
    from protege.tasks.metaworld_names import METAWORLD_TASKS

    if env_name not in METAWORLD_TASKS:
        raise ConfigError(
            f"Meta-World task {env_name!r}: no such task; choose from {list(METAWORLD_TASKS)}"
        )
    try:
        from metaworld.env_dict import ALL_V3_ENVIRONMENTS
    except ImportError as exc:
        raise ConfigError(
            f"Meta-World tasks need the 'arm' extra: pip install 'protege[arm]' ({exc})"
        ) from None
    return ALL_V3_ENVIRONMENTS[f"{env_name}-v3"]


def make_metaworld_env(env_name: str, render_mode: str | None = None, **kwargs: Any) -> gym.Env:
    """A :class:`MetaWorldEnv` (the factory protege's Meta-World tasks register)."""
    return MetaWorldEnv(env_name, render_mode=render_mode, **kwargs)
