"""Meta-World's 50 manipulation tasks, registered as ``metaworld/<name>``.

Each task is a :class:`~protege.tasks.metaworld_env.MetaWorldEnv` (seeded per episode, see
there) with Meta-World's scripted policy as the expert
(:class:`~protege.experts.metaworld.MetaWorldExpert`), a 150-step horizon (the scripted
policies finish pick-place, push, reach, drawer-open and button-press well within it), the
episode ending at the first success, and success = ``info["success"]`` reached in the episode.
Registering imports neither Meta-World nor MuJoCo; the first env made does.

Variants, for every task:

* ``metaworld/<name>``: the 39-number state, goal included.
* ``metaworld/<name>-hidden``: the goal zeroed in the learner's observation; the expert reads
  the true goal from the simulator (privileged). The scripted policy fails without it.

and for the five headline tasks (:data:`HEADLINE_TASKS`):

* ``metaworld/<name>-pixels``: the ``corner`` camera at 84×84 only (the expert privileged).
* ``metaworld/<name>-camera``: camera + proprioception, a dict observation of the ``corner``
  camera at 84×84 and the arm's 8 numbers (hand xyz and gripper, now and one frame before),
  no object or goal position: the camera must show them (the expert privileged).

and for pick-place, push and reach (:data:`WORKSPACE_TASKS`):

* ``metaworld/<name>-camera-workspace``: camera + proprioception as ``-camera``, through
  protege's ``workspace`` camera (84×84, closer to the table: the block is about twice as
  wide in the frame as in the ``corner`` camera's; see
  :data:`~protege.tasks.metaworld_env.VIEWS`).

:func:`metaworld_task` builds any other combination (camera, image size, horizon...).
"""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np

from protege.errors import ConfigError
from protege.experts.base import Expert
from protege.tasks import register
from protege.tasks.base import EpisodeOutcome, Task
from protege.tasks.metaworld_env import MAX_PATH_LENGTH, make_metaworld_env
from protege.tasks.metaworld_names import HEADLINE_TASKS, METAWORLD_TASKS, WORKSPACE_TASKS

HORIZON = 150


def metaworld_success(outcome: EpisodeOutcome) -> bool:
    """Meta-World's ``info["success"]`` was 1 at some step of the episode."""
    info = outcome.final_info
    value = info.get("episode_success", info.get("success", 0.0))
    return bool(float(np.asarray(value)) > 0)


def _expert(env_name: str, privileged: bool) -> Expert:
    from protege.experts.metaworld import MetaWorldExpert

    return MetaWorldExpert(env_name, privileged=privileged)


def metaworld_task(
    env_name: str,
    *,
    hidden_goal: bool = False,
    observation: str = "state",
    camera: str = "corner",
    size: int = 84,
    horizon: int = HORIZON,
    terminate_on_success: bool = True,
    fast_render: bool = True,
    name: str | None = None,
) -> Task:
    """A protege task of Meta-World task ``env_name`` (e.g. ``"pick-place"``), not registered.

    The expert reads the simulator's state from ``info`` (privileged) whenever the observation
    lacks the goal or is pixels. ``name`` defaults to ``metaworld/<env_name>`` with the
    variant's suffix (and ``-<camera>`` for a camera other than ``corner``).
    """
    if env_name not in METAWORLD_TASKS:
        raise ConfigError(f"Meta-World task {env_name!r}: choose from {list(METAWORLD_TASKS)}")
    if not 1 <= horizon <= MAX_PATH_LENGTH:
        raise ConfigError(f"horizon {horizon}: Meta-World episodes last 1 to 500 steps")
    privileged = hidden_goal or observation != "state"
    suffix = "-hidden" if hidden_goal else ""
    suffix += {"state": "", "camera+state": "-camera"}.get(observation, f"-{observation}")
    if observation != "state" and camera != "corner":
        suffix += f"-{camera}"
    kwargs: dict[str, Any] = {
        "env_name": env_name,
        "hidden_goal": hidden_goal,
        "observation": observation,
        "camera": camera,
        "size": size,
        "terminate_on_success": terminate_on_success,
        "fast_render": fast_render,
    }
    shown = "the goal hidden from the learner, " if hidden_goal else ""
    seen = {
        "state": "the 39-number state",
        "pixels": f"{camera} camera {size}×{size}",
        "camera+state": f"{camera} camera {size}×{size} + hand xyz and gripper (now, before)",
    }.get(observation, observation)
    return Task(
        name=name or f"metaworld/{env_name}{suffix}",
        env_id=make_metaworld_env,
        expert_factory=partial(_expert, env_name, privileged),
        horizon=horizon,
        success=metaworld_success,
        env_kwargs=kwargs,
        description=(
            f"Meta-World {env_name} (Sawyer arm, MuJoCo): {seen}, {shown}4 actions (hand "
            f"xyz, grip); Meta-World's scripted policy as expert"
            f"{' (privileged: reads the simulator state)' if privileged else ''}; "
            f"success = info['success']; horizon {horizon}"
        ),
    )


for _name in METAWORLD_TASKS:
    register(metaworld_task(_name))
    register(metaworld_task(_name, hidden_goal=True))
for _name in HEADLINE_TASKS:
    register(metaworld_task(_name, observation="pixels"))
    register(metaworld_task(_name, observation="camera+state"))
for _name in WORKSPACE_TASKS:
    register(metaworld_task(_name, observation="camera+state", camera="workspace"))

__all__ = ["HORIZON", "metaworld_success", "metaworld_task"]
