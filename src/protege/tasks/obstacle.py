"""The obstacle course: demonstrators who disagree, and why an L2 policy drives into the wall.

A point vehicle in the plane starts at ``x = 0`` with a random lateral offset
``y ~ U[−start_spread, start_spread]`` (0.1) and drives toward a goal gate at ``x = 1``
(``|y| ≤ 0.1``); a round obstacle of radius ``r`` = 0.15 sits at ``(0.5, 0)``, right in the way.

**Observation.** The position ``(x, y)`` as float32 ``Box(2)`` (goal and obstacle are fixed).

**Action.** A velocity command ``Box([-1, 1]², float32)``: the vehicle moves by
``max_speed · a`` per step (``max_speed`` = 0.03) with ``‖a‖`` capped at 1 and the forward
component raised to at least ``min_forward`` = 0.5 — it cannot stop, wait or back up, so it
must pick a side before it reaches the obstacle (steering at most 60° off the x axis).
Positions stay inside the arena ``x ∈ [−0.2, 1.2]``, ``y ∈ [−0.6, 0.6]``.

**Episode.** Terminates when the vehicle touches the obstacle (reward −1) or reaches
``x ≥ 1``: through the gate is success (reward +1), beside it a miss (reward 0). It needs
34–67 steps; the 100-step horizon never binds. Success = through the gate without touching the
obstacle.

**Privileged side.** At reset the env draws the side the demonstrator will pass on:
``info["side"]`` = +1 (left, y > 0) with probability ``left_prob`` = 0.6, else −1 (right).
It is in every ``info``, never in the observation. ``info["passed"]`` is the side on which the
vehicle crossed the obstacle's centre line ``x = 0.5`` (+1, −1, or 0 before that), so the
final info says which way an episode went; ``info["crashed"]`` and ``info["reached"]`` say how
it ended.

**Expert.** :class:`ObstacleExpert`, batched and queryable at any state: it drives straight
ahead (``a = (1, 0)``) until ``x ≥ swerve_x`` = 0.2, then steers for the point beside the
obstacle on the episode's side, ``(0.5, ±0.25)``, then for the centre of the gate. Whenever
the straight line to its target would pass within ``r + 0.05`` of the obstacle's centre it
follows the tangent to that circle on its side instead (inside that circle it moves outward
along it), never steering harder than ``min_forward`` allows. It drives straight only inside
the start corridor, and keeps the episode's side unless that side can no longer be reached
without touching the obstacle (a learner's state, never its own): so it acts sensibly at any
state a learner reaches. Because every demonstration goes straight first and the
start offsets overlap, the states just past ``x = 0.2`` carry both "left" and "right" labels:
the conditional action distribution there is bimodal (60/40), and its mean — what an L2
policy learns — points at the obstacle.

What this does to a learner is measured in ``benchmarks/obstacle.py``: closed-loop, re-planning
every step, an L2 policy escapes (the 60/40 imbalance and its own feedback pull it to one side);
executing chunks of actions open loop, as ACT and Diffusion Policy do, it drives the averaged
manoeuvre into the obstacle, while the multimodal heads sample one side's whole manoeuvre.

Registered as the task ``obstacle`` (horizon 100). Module: ``protege.tasks.obstacle``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from protege.tasks import register
from protege.tasks.base import EpisodeOutcome, Task

HORIZON = 100
LEFT, RIGHT = 1, -1


@dataclass(frozen=True)
class Course:
    """Geometry of the course (all lengths in arena units)."""

    goal: tuple[float, float] = (1.0, 0.0)
    goal_half_width: float = 0.1
    """The goal is a gate: the segment x = goal_x, |y − goal_y| ≤ goal_half_width."""
    obstacle: tuple[float, float] = (0.5, 0.0)
    obstacle_radius: float = 0.15
    max_speed: float = 0.03
    min_forward: float = 0.5
    """The forward (+x) component of a command is raised to at least this: the vehicle cannot
    stop, wait or back up, so it must decide which way to go before it reaches the obstacle."""
    start_spread: float = 0.1
    low: tuple[float, float] = (-0.2, -0.6)
    high: tuple[float, float] = (1.2, 0.6)


COURSE = Course()


def clip_command(action_NA: np.ndarray, min_forward: float = 0.0) -> np.ndarray:
    """Clip each component to [−1, 1], cap the norm at 1, raise the x component to
    ``min_forward``."""
    a = np.clip(np.asarray(action_NA, np.float64), -1.0, 1.0)
    a = a / np.maximum(np.linalg.norm(a, axis=-1, keepdims=True), 1.0)
    a[..., 0] = np.maximum(a[..., 0], min_forward)
    return a


class ObstacleCourse(gym.Env[np.ndarray, np.ndarray]):
    """The course of the module docstring as a ``gymnasium.Env``.

    Args:
        left_prob: probability that an episode's demonstrator passes on the left.
        course: the geometry.
        render_mode: ``None`` or ``"rgb_array"``.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 20}  # noqa: RUF012

    def __init__(
        self,
        left_prob: float = 0.6,
        course: Course = COURSE,
        render_mode: str | None = None,
    ) -> None:
        if not 0.0 <= left_prob <= 1.0:
            raise ValueError(f"ObstacleCourse: left_prob must be in [0, 1], got {left_prob}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"ObstacleCourse: unsupported render_mode {render_mode!r}")
        self.left_prob = float(left_prob)
        self.course = course
        self.render_mode = render_mode
        self.observation_space = gym.spaces.Box(
            np.array(course.low, np.float32), np.array(course.high, np.float32), dtype=np.float32
        )
        self.action_space = gym.spaces.Box(-1.0, 1.0, (2,), dtype=np.float32)
        self._pos = np.zeros(2)
        self._side = LEFT
        self._passed = 0
        self._trail: list[np.ndarray] = []

    def _info(self, crashed: bool = False, reached: bool = False) -> dict[str, Any]:
        return {
            "side": self._side,
            "passed": self._passed,
            "crashed": crashed,
            "reached": reached,
        }

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """New episode. ``options`` may fix ``side`` (+1/−1) and ``position`` ((x, y))."""
        super().reset(seed=seed)
        options = options or {}
        c = self.course
        self._side = LEFT if self.np_random.random() < self.left_prob else RIGHT
        y0 = self.np_random.uniform(-c.start_spread, c.start_spread)
        self._pos = np.array([0.0, y0])
        if "side" in options:
            self._side = LEFT if int(options["side"]) > 0 else RIGHT
        if "position" in options:
            self._pos = np.asarray(options["position"], np.float64).copy()
        self._passed = 0
        self._trail = [self._pos.copy()]
        return self._pos.astype(np.float32), self._info()

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        c = self.course
        a = clip_command(np.asarray(action, np.float64).reshape(2), c.min_forward)
        prev = self._pos
        pos = np.clip(prev + c.max_speed * a, c.low, c.high)
        # Touching the obstacle anywhere along the step (not only at its end) is a crash.
        crashed = bool(segment_distance(prev, pos, np.array(c.obstacle)) < c.obstacle_radius)
        if self._passed == 0 and prev[0] < c.obstacle[0] <= pos[0]:
            self._passed = LEFT if pos[1] >= c.obstacle[1] else RIGHT
        finished = not crashed and pos[0] >= c.goal[0]
        reached = finished and abs(pos[1] - c.goal[1]) <= c.goal_half_width
        self._pos = pos
        self._trail.append(pos.copy())
        reward = 1.0 if reached else -1.0 if crashed else 0.0
        info = self._info(crashed, reached)
        return pos.astype(np.float32), reward, crashed or finished, False, info

    def render(self) -> np.ndarray | None:
        if self.render_mode is None:
            return None
        c, size = self.course, 200
        img = np.full((size, size, 3), 245, np.uint8)
        ys, xs = np.mgrid[0:size, 0:size]
        wx = c.low[0] + (xs + 0.5) / size * (c.high[0] - c.low[0])
        wy = c.high[1] - (ys + 0.5) / size * (c.high[1] - c.low[1])
        img[np.hypot(wx - c.obstacle[0], wy - c.obstacle[1]) < c.obstacle_radius] = (200, 60, 60)
        gate = (np.abs(wx - c.goal[0]) < 0.01) & (np.abs(wy - c.goal[1]) <= c.goal_half_width)
        img[gate] = (60, 170, 60)
        for p in self._trail:
            col = int((p[0] - c.low[0]) / (c.high[0] - c.low[0]) * size)
            row = int((c.high[1] - p[1]) / (c.high[1] - c.low[1]) * size)
            img[max(row - 1, 0) : row + 2, max(col - 1, 0) : col + 2] = (40, 80, 200)
        return img


def segment_distance(p: np.ndarray, q: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Distance from the point(s) ``c`` to the segment(s) ``p → q`` (broadcast over rows)."""
    pq = q - p
    denom = np.maximum((pq * pq).sum(-1), 1e-12)
    s = np.clip(((c - p) * pq).sum(-1) / denom, 0.0, 1.0)
    return np.linalg.norm(p + s[..., None] * pq - c, axis=-1)


class ObstacleExpert:
    """The scripted demonstrator: straight, then around the obstacle on the episode's side.

    Batched and stateless: ``act(obs (N, 2), infos)`` reads ``infos["side"]`` (N,) — the
    privileged side the env drew for each episode — and returns ``(N, 2)`` float32 commands
    of norm 1. Queryable at any state (see the module docstring).

    Args:
        swerve_x: where it stops driving straight and starts steering around.
        pass_margin: its waypoint passes the obstacle at ``r + pass_margin`` from the centre.
        avoid_margin: it never lets its straight path come closer than ``r + avoid_margin``.
    """

    def __init__(
        self,
        course: Course = COURSE,
        swerve_x: float = 0.2,
        pass_margin: float = 0.1,
        avoid_margin: float = 0.05,
    ) -> None:
        self.course = course
        self.swerve_x = swerve_x
        self.pass_margin = pass_margin
        self.avoid_margin = avoid_margin

    def begin_run(self, seed: int | None = None) -> None:
        """Stateless: nothing to reset."""

    def act(self, obs: np.ndarray, infos: dict[str, Any] | None = None) -> np.ndarray:
        p = np.asarray(obs, np.float64).reshape(-1, 2)
        if not infos or "side" not in infos:
            raise ValueError(
                "ObstacleExpert needs infos['side'] (the privileged side each episode's "
                "demonstrator passes on, drawn by the env at reset)"
            )
        side = np.where(np.asarray(infos["side"]).reshape(-1) > 0, LEFT, RIGHT)
        c = self.course
        center = np.array(c.obstacle)
        before = p[:, 0] < center[0]
        # Keep the episode's side unless it can no longer be reached without touching the
        # obstacle (only a learner's state can be like that); past it, go toward the goal
        # around whichever side the vehicle is on.
        side = np.where(self._reachable(p, side) | ~self._reachable(p, -side), side, -side)
        around = np.where(before, side, np.where(p[:, 1] >= center[1], LEFT, RIGHT))
        waypoint = center + np.stack(
            [np.zeros(len(p)), side * (c.obstacle_radius + self.pass_margin)], -1
        )
        target = np.where(before[:, None], waypoint, np.array(c.goal))
        d = steer(p, target, center, c.obstacle_radius + self.avoid_margin, around)
        # The vehicle cannot go slower forward than min_forward: steer as hard as it allows.
        slow = d[:, 0] < c.min_forward
        d[slow] = self._hardest(np.sign(d[slow, 1]))
        # Straight ahead first, as long as the vehicle is where demonstrations start.
        straight = (p[:, 0] < self.swerve_x) & (np.abs(p[:, 1] - center[1]) <= c.start_spread)
        d[straight] = (1.0, 0.0)
        return d.astype(np.float32)

    def _hardest(self, side_N: np.ndarray) -> np.ndarray:
        """The command that turns hardest toward ``side`` (+1 left) at full speed."""
        f = self.course.min_forward
        return np.stack([np.full(len(side_N), f), side_N * np.sqrt(1 - f**2)], -1)

    def _reachable(self, p_N2: np.ndarray, side_N: np.ndarray) -> np.ndarray:
        """Whether turning hardest toward ``side`` clears the obstacle (or it is behind)."""
        c = self.course
        ahead = p_N2 + 2.0 * self._hardest(side_N)
        clear = segment_distance(p_N2, ahead, np.array(c.obstacle)) >= c.obstacle_radius
        return clear | (p_N2[:, 0] >= c.obstacle[0])


def steer(
    p_N2: np.ndarray, target_N2: np.ndarray, center: np.ndarray, radius: float, side_N: np.ndarray
) -> np.ndarray:
    """Unit directions toward ``target`` that go around the circle (center, radius) on
    ``side`` (+1: with the circle on the right, i.e. above it when driving in +x)."""
    to_c = center - p_N2
    dist = np.maximum(np.linalg.norm(to_c, axis=-1), 1e-9)
    u = to_c / dist[:, None]
    # Inside the circle: move outward and around.
    out = -u
    tangent = side_N[:, None] * np.stack([out[:, 1], -out[:, 0]], -1)
    inside = out + tangent
    # Outside, but the straight path cuts the circle: follow the tangent line on `side`.
    alpha = np.arcsin(np.clip(radius / dist, -1.0, 1.0)) * side_N
    cos, sin = np.cos(alpha), np.sin(alpha)
    along = np.stack([cos * u[:, 0] - sin * u[:, 1], sin * u[:, 0] + cos * u[:, 1]], -1)
    direct = target_N2 - p_N2
    blocked = segment_distance(p_N2, target_N2, center) < radius
    d = np.where((dist < radius)[:, None], inside, np.where(blocked[:, None], along, direct))
    return d / np.maximum(np.linalg.norm(d, axis=-1, keepdims=True), 1e-9)


def make_obstacle_course(render_mode: str | None = None, **kwargs: Any) -> ObstacleCourse:
    """Env factory for the ``obstacle`` task (``Task.env_id``)."""
    return ObstacleCourse(render_mode=render_mode, **kwargs)


def obstacle_success(outcome: EpisodeOutcome) -> bool:
    """Reached the goal without touching the obstacle."""
    info = outcome.final_info
    return bool(info.get("reached", False)) and not bool(info.get("crashed", False))


OBSTACLE = register(
    Task(
        name="obstacle",
        env_id=make_obstacle_course,
        expert_factory=ObstacleExpert,
        horizon=HORIZON,
        success=obstacle_success,
        expert_return=1.0,
        description=(
            "Obstacle course: a point vehicle drives from x=0 to the goal (1, 0) around a "
            "round obstacle at (0.5, 0); 2-D velocity command; the scripted expert passes "
            "left in 60% of episodes and right in 40% (privileged info['side']). An L2 "
            "policy averages the two and crashes; multimodal heads do not."
        ),
    )
)
"""The registered ``obstacle`` task."""
