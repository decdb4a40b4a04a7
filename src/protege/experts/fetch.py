"""Scripted experts for gymnasium-robotics' Fetch pick-and-place and push.

No expert ships with Fetch, so protege writes its own: stateless functions of the
observation (the gripper, the block, the fingers and the goal), so they label any state a
learner reaches. They read the dict observation of protege's Fetch tasks
(:mod:`protege.tasks.fetch`: ``observation`` (25), ``achieved_goal`` (3), ``desired_goal``
(3)), or those parts flattened in that order (31 numbers). Actions are (dx, dy, dz, fingers)
in [-1, 1]: a displacement of the gripper (±1 is 5 cm per step) and +1 opens the fingers, −1
closes them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

PARTS = ("observation", "achieved_goal", "desired_goal")
"""Fetch's observation parts, in the order of the flat form."""
OBS_DIM = 31
GAIN = 10.0
"""Action per metre of error: 1 cm off → 0.1 (5 mm per step), saturating at 10 cm."""
OPEN, CLOSE = 1.0, -1.0


def parse(obs: np.ndarray | Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The parts of a batch of Fetch observations, each (N, k): dicts of ``observation``,
    ``achieved_goal`` and ``desired_goal`` (each (N, k)), or those flattened, (N, 31)."""
    if isinstance(obs, Mapping):
        missing = [k for k in PARTS if k not in obs]
        if missing:
            raise ValueError(f"Fetch observations lack the parts {missing}; got {list(obs)}")
        obs = np.concatenate([np.asarray(obs[k], np.float64) for k in PARTS], axis=-1)
    o = np.asarray(obs, np.float64)
    if o.ndim != 2 or o.shape[1] != OBS_DIM:
        raise ValueError(f"expected observations of shape (N, {OBS_DIM}), got {o.shape}")
    return {
        "grip": o[:, 0:3],
        "block": o[:, 3:6],
        "fingers": o[:, 9:11].sum(axis=1),
        "goal": o[:, 28:31],
    }


def _action(grip: np.ndarray, target: np.ndarray, fingers: np.ndarray) -> np.ndarray:
    move = np.clip(GAIN * (target - grip), -1.0, 1.0)
    return np.concatenate([move, fingers[:, None]], axis=1).astype(np.float32)


class FetchPickPlaceExpert:
    """Hover over the block, descend with the fingers open, close them, carry it to the goal.

    Which phase is a function of the state alone: the block is *held* when it sits between
    the fingers (within 2 cm of the gripper) and they are closed on it (opening < 6 cm);
    else the gripper goes to 8 cm above the block until it is within 1 cm of it sideways,
    then down to it, and closes the fingers once there.
    """

    name = "protege's scripted Fetch pick-and-place expert"
    hover = 0.08
    aligned = 0.01
    reach = 0.01

    def act(
        self, obs: np.ndarray | Mapping[str, Any], infos: dict[str, Any] | None = None
    ) -> np.ndarray:
        p = parse(obs)
        grip, block, goal = p["grip"], p["block"], p["goal"]
        rel = block - grip
        side = np.linalg.norm(rel[:, :2], axis=1)
        held = (np.linalg.norm(rel, axis=1) < 0.02) & (p["fingers"] < 0.06)
        low = np.abs(rel[:, 2]) < self.reach
        above = block + np.array([0.0, 0.0, self.hover])
        target = np.where((side > self.aligned)[:, None], above, block)
        target = np.where(held[:, None], goal - rel, target)  # move the block, not the hand
        fingers = np.where(held | ((side <= self.aligned) & low), CLOSE, OPEN)
        return _action(grip, target, fingers)

    def begin_run(self, seed: int | None = None) -> None:
        """Stateless: nothing to reset."""


class FetchPushExpert:
    """Rise, get behind the block on the line from the goal through it, push it along.

    *Behind* is 6 cm back from the block's centre on that line, at the block's height. Away
    from it (more than 1.5 cm off the line or not behind), the gripper moves there at 7 cm
    above the table first and then descends; there, it pushes toward the point that puts
    the block on the goal. The fingers stay closed: a blunt pusher.
    """

    name = "protege's scripted Fetch push expert"
    behind = 0.06
    rise = 0.07
    line = 0.015

    def act(
        self, obs: np.ndarray | Mapping[str, Any], infos: dict[str, Any] | None = None
    ) -> np.ndarray:
        p = parse(obs)
        grip, block, goal = p["grip"], p["block"], p["goal"]
        to_goal = goal[:, :2] - block[:, :2]
        dist = np.linalg.norm(to_goal, axis=1, keepdims=True)
        d = to_goal / np.maximum(dist, 1e-6)
        start = block[:, :2] - self.behind * d
        off = grip[:, :2] - start
        along = np.sum(off * d, axis=1)
        lateral = np.abs(off[:, 0] * d[:, 1] - off[:, 1] * d[:, 0])
        low = np.abs(grip[:, 2] - block[:, 2]) < 0.02
        in_place = (lateral < self.line) & (along > -0.03) & (along < self.behind - 0.025)
        pushing = in_place & low
        near_start = np.linalg.norm(off, axis=1) < 0.02
        z_high = block[:, 2:3] + self.rise
        go_start = np.where(
            near_start[:, None],
            np.concatenate([start, block[:, 2:3]], axis=1),
            np.concatenate([start, z_high], axis=1),
        )
        push_to = goal[:, :2] - (self.behind - 0.02) * d
        push = np.concatenate([push_to, block[:, 2:3]], axis=1)
        target = np.where(pushing[:, None], push, go_start)
        # Rising from low next to the block: go up first, so the hand clears the block.
        climb = ~pushing & ~near_start & (grip[:, 2:3] < z_high - 0.02).ravel()
        target = np.where(climb[:, None], np.concatenate([grip[:, :2], z_high], axis=1), target)
        fingers = np.full(len(grip), CLOSE)
        return _action(grip, target, fingers)

    def begin_run(self, seed: int | None = None) -> None:
        """Stateless: nothing to reset."""
