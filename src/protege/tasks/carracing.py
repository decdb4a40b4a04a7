"""The CarRacing tasks: ``carracing`` (continuous steer/gas/brake) and ``carracing-discrete``.

Both drive :class:`~protege.tasks.carracing_env.CarRacingEnv` (gymnasium's CarRacing-v3 from
pixels, with privileged state in ``info`` and a faster, bit-identical renderer) with the
pure-pursuit expert of :mod:`protege.experts.driving`; they succeed when 95 % of the track's
tiles were visited, and carry their teleop keys (arrows or WASD, or a gamepad).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from protege.tasks import register
from protege.tasks.base import EpisodeOutcome, Task
from protege.tasks.carracing_env import make_carracing_env
from protege.teleop.controls import BoxControls, DiscreteControls, PadAxis

HORIZON = 1000
SUCCESS_TILE_FRACTION = 0.95


def carracing_success(outcome: EpisodeOutcome) -> bool:
    """At least 95 % of the track's tiles visited.

    That is gymnasium's own lap-completion threshold (``lap_complete_percent=0.95``), and it
    measures what the task is, driving the lap; the return mixes it with speed. Without the
    tile counts in ``final_info``, fall back to ``episode_return >= 850``: the least a lap of
    95 % of the tiles can score within the 1,000-step horizon (950 − 0.1·1000).
    """
    info = outcome.final_info
    if "tiles_visited" in info and "track_tiles" in info:
        tiles = float(np.asarray(info["track_tiles"]))
        return tiles > 0 and float(np.asarray(info["tiles_visited"])) >= (
            SUCCESS_TILE_FRACTION * tiles
        )
    return outcome.episode_return >= 850.0


def _continuous_expert() -> Any:
    from protege.experts.driving import CarRacingExpert

    return CarRacingExpert(discrete=False)


def _discrete_expert() -> Any:
    from protege.experts.driving import CarRacingExpert

    return CarRacingExpert(discrete=True)


_DESCRIPTION = (
    "CarRacing-v3 from pixels (96x96x3 uint8, {actions}); horizon 1000. The expert is a "
    "pure-pursuit driver with curvature-based speed control that reads privileged state "
    "(car pose, nearest centreline index, the next 32 centreline points) from info, never "
    "from the frame. Success: >= 95% of the tiles visited (gymnasium's lap-completion "
    "threshold). Rendering uses protege's vectorised road renderer, bit-identical to "
    "gymnasium's (env kwarg fast_render=False for gymnasium's own)."
)


_KEYS = BoxControls(
    {
        "left": {0: -1.0},
        "right": {0: 1.0},
        "up": {1: 1.0},
        "down": {2: 0.8},
        "a": {0: -1.0},
        "d": {0: 1.0},
        "w": {1: 1.0},
        "s": {2: 0.8},
    },
    rest=(0.0, 0.0, 0.0),
    pad_axes={
        0: PadAxis(0, -1.0, 1.0),
        1: PadAxis(5, 0.0, 1.0, trigger=True),
        2: PadAxis(4, 0.0, 0.8, trigger=True),
    },
    names=("steer", "gas", "brake"),
    help="Left/Right: steer  Up: gas  Down: brake  (pad: stick steers, RT gas, LT brake)",
)
_DISCRETE_KEYS = DiscreteControls(
    {"left": 2, "right": 1, "up": 3, "down": 4, "a": 2, "d": 1, "w": 3, "s": 4},
    noop=0,
    names=("noop", "right", "left", "gas", "brake"),
    help="Left/Right: steer  Up: gas  Down: brake  no key: coast",
)

CARRACING = register(
    Task(
        name="carracing",
        env_id=make_carracing_env,
        expert_factory=_continuous_expert,
        horizon=HORIZON,
        success=carracing_success,
        env_kwargs={"continuous": True, "fast_render": True},
        description=_DESCRIPTION.format(actions="continuous steer/gas/brake"),
        controls=_KEYS,
    )
)

CARRACING_DISCRETE = register(
    Task(
        name="carracing-discrete",
        env_id=make_carracing_env,
        expert_factory=_discrete_expert,
        horizon=HORIZON,
        success=carracing_success,
        env_kwargs={"continuous": False, "fast_render": True},
        description=_DESCRIPTION.format(
            actions="5 discrete actions: noop, right, left, gas, brake"
        ),
        controls=_DISCRETE_KEYS,
    )
)

__all__ = ["CARRACING", "CARRACING_DISCRETE", "HORIZON", "carracing_success"]
