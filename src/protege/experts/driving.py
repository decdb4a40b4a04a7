"""A geometric driving expert for protege's ``carracing`` tasks.

:class:`CarRacingExpert` never looks at the pixels. It reads the privileged state that
:class:`protege.tasks.carracing_env.CarRacingEnv` puts in ``info`` (batched by a vector env into
``(N, ...)`` arrays): the car's pose and speed and the next centreline points. It is stateless
(a pure function of ``infos``), so it can label any state a learner reaches, and it acts on
all N sub-envs at once with numpy.

Steering is pure pursuit: aim the rear axle at the centreline point a speed-dependent
look-ahead distance away and turn the front wheels by ``atan(2 L sin α / d)``. Speed control
looks along the same centreline: each upcoming point allows ``sqrt(a_lat / κ)`` given the
curvature κ there, and the speed the car may have *now* is the least, over the points ahead,
of what still lets it brake down to that point's allowance (``sqrt(v² + 2 a_brake s)``).
Gas then closes the gap to this target (eased off while the wheels are turned, and cut while
the car slides, since it is rear-wheel drive and spins under power), the brake opens past it.

States a learner may reach are handled too: the pursuit target is measured along the
centreline from the car's projection, so far off the road it still lies ahead; a target behind
the car (spun round, wrong way) gets full lock toward it; and far off the line or pointing away
from it the target speed drops to a crawl until the car is back. (Tuned over seeds 0-19: mean
918.7 ± 7.9, every track ≥ 900; with 40 random actions forced in mid-lap, 872 ± 45.)

For the Discrete(5) variant (noop, right, left, gas, brake) the same continuous command is
quantised: steer (1/2) while the front wheels are more than a dead band off the wanted angle,
otherwise brake (4), gas (3) or coast (0) by the speed error.
"""

from __future__ import annotations

from typing import Any

import numpy as np

REAR_AXLE = 1.64
"""Distance from the hull centre back to the rear axle (82 × 0.02 in gymnasium's car)."""
WHEELBASE = 3.24
"""Front to rear axle (162 × 0.02)."""
MAX_WHEEL_ANGLE = 0.4
"""Front-wheel joint limit of gymnasium's car, rad."""

NOOP, RIGHT, LEFT, GAS, BRAKE = 0, 1, 2, 3, 4
"""gymnasium's Discrete(5) CarRacing actions."""

CONTINUOUS_LATERAL_ACCEL = 90.0
"""Default for the curve speed plan with continuous actions. Over seeds 0-19: 85 → 918.0,
90 → 918.7, 95 → 919.4 mean score, but 100 → 880 and 120 → 852 as the car starts to slide off
on some tracks; 90 keeps a margin from that cliff."""
DISCRETE_LATERAL_ACCEL = 160.0
"""Default with discrete actions: gas is only 0.2 and cannot overlap steering, so the car is
slower everywhere and braking for curves less often pays (tuned over 20 tracks: 140 → 873,
160 → 883, 190 → 886 but with a worse worst track)."""


def _get(infos: dict[str, Any], key: str) -> np.ndarray:
    if key not in infos:
        raise KeyError(
            f"CarRacingExpert needs info[{key!r}]: use protege's carracing tasks "
            "(protege.tasks.carracing_env.CarRacingEnv), which put the car and track state in info"
        )
    return np.asarray(infos[key], dtype=np.float64)


class CarRacingExpert:
    """Pure-pursuit steering with curvature-aware speed control, for CarRacing.

    Args:
        discrete: return Discrete(5) actions (int64, shape (N,)) instead of continuous
            ``(N, 3)`` float32 (steer, gas, brake).
        lookahead_gain: pure-pursuit look-ahead distance per unit of speed: the look-ahead
            is ``clip(lookahead_min + lookahead_gain · speed, ., lookahead_max)`` (world units).
        lookahead_min: the shortest look-ahead distance.
        lookahead_max: the longest look-ahead distance.
        lateral_accel: the lateral acceleration the speed plan allows in curves (units/s²);
            default :data:`CONTINUOUS_LATERAL_ACCEL` or :data:`DISCRETE_LATERAL_ACCEL`.
        brake_accel: the deceleration the speed plan assumes when braking for a curve.
        max_speed: speed cap on straights (units/s).

    Example:
        >>> task = protege.tasks.make("carracing")
        >>> env = task.make_vec_env(2)
        >>> obs, infos = env.reset(seed=0)
        >>> actions = task.make_expert().act(obs, infos)
    """

    def __init__(
        self,
        discrete: bool = False,
        lookahead_gain: float = 0.12,
        lookahead_min: float = 6.0,
        lookahead_max: float = 16.0,
        lateral_accel: float | None = None,
        brake_accel: float = 70.0,
        max_speed: float = 120.0,
        gas_gain: float = 0.15,
        brake_gain: float = 0.1,
        steer_gain: float = 1.0,
        curvature_window: int = 3,
        recover_angle: float = 1.0,
        recover_offset: float = 8.0,
        recover_speed: float = 25.0,
        gas_steer_cut: float = 0.5,
        max_slip: float = 0.35,
        steer_deadband: float = 0.05,
    ) -> None:
        self.discrete = discrete
        self.lookahead_gain = lookahead_gain
        self.lookahead_min = lookahead_min
        self.lookahead_max = lookahead_max
        if lateral_accel is None:
            lateral_accel = DISCRETE_LATERAL_ACCEL if discrete else CONTINUOUS_LATERAL_ACCEL
        self.lateral_accel = lateral_accel
        self.brake_accel = brake_accel
        self.max_speed = max_speed
        self.gas_gain = gas_gain
        self.brake_gain = brake_gain
        self.steer_gain = steer_gain
        self.curvature_window = curvature_window
        self.recover_angle = recover_angle
        self.recover_offset = recover_offset
        self.recover_speed = recover_speed
        self.gas_steer_cut = gas_steer_cut
        self.max_slip = max_slip
        self.steer_deadband = steer_deadband

    def begin_run(self, seed: int | None = None) -> None:
        """Stateless: nothing to reset."""

    # ------------------------------------------------------------------ control

    def act(self, obs: np.ndarray, infos: dict[str, Any] | None = None) -> np.ndarray:
        """Actions for the N sub-envs whose privileged state is in ``infos``.

        ``obs`` is only used for N when a key is missing; the pixels are never read.
        """
        if infos is None:
            raise ValueError("CarRacingExpert acts from privileged state: pass the env's infos")
        pos = _get(infos, "car_pos").reshape(-1, 2)
        n = pos.shape[0]
        heading = _get(infos, "car_heading").reshape(n)
        speed = _get(infos, "car_speed").reshape(n)
        ahead = _get(infos, "track_ahead").reshape(n, -1, 2)
        velocity = _get(infos, "car_velocity").reshape(n, 2)

        wheel_angle, target_speed = self.plan(pos, heading, speed, ahead)
        # Slip angle between where the car points and where it goes; a sliding rear-wheel-drive
        # car must not be given gas (it would spin), so gas is cut until the tyres grip again.
        v_fwd = velocity[:, 0] * np.cos(heading) + velocity[:, 1] * np.sin(heading)
        v_side = -velocity[:, 0] * np.sin(heading) + velocity[:, 1] * np.cos(heading)
        sliding = (speed > 5.0) & (np.abs(np.arctan2(v_side, v_fwd)) > self.max_slip)
        if self.discrete:
            steer_now = _get(infos, "steer_angle").reshape(n)
            return self._discrete(wheel_angle, steer_now, speed, target_speed, sliding)
        return self._continuous(wheel_angle, speed, target_speed, sliding)

    def plan(
        self, pos: np.ndarray, heading: np.ndarray, speed: np.ndarray, ahead: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """The wanted front-wheel angle (rad, positive = left) and target speed, per env."""
        cos_h, sin_h = np.cos(heading), np.sin(heading)
        rear = pos - REAR_AXLE * np.stack([cos_h, sin_h], axis=-1)

        # Pure pursuit: the target is the centreline point the look-ahead distance along the
        # line from the car's projection onto it (measured along the line, not from the car,
        # so that far off the line the target still lies ahead rather than abeam).
        look = np.clip(
            self.lookahead_min + self.lookahead_gain * speed,
            self.lookahead_min,
            self.lookahead_max,
        )
        seg = np.diff(ahead, axis=1)  # (N, K-1, 2)
        seg_len = np.maximum(np.hypot(seg[..., 0], seg[..., 1]), 1e-6)
        arc = np.concatenate([np.zeros((len(pos), 1)), np.cumsum(seg_len, axis=1)], axis=1)
        rel0 = pos - ahead[:, 0]
        along0 = np.sum(rel0 * seg[:, 0], axis=1) / seg_len[:, 0]
        offset = (seg[:, 0, 0] * rel0[:, 1] - seg[:, 0, 1] * rel0[:, 0]) / seg_len[:, 0]
        goal = np.clip(along0 + look, 0.0, arc[:, -1])
        rows = np.arange(len(pos))
        j = np.clip(
            np.array([np.searchsorted(a, g) for a, g in zip(arc, goal, strict=True)]),
            1,
            arc.shape[1] - 1,
        )
        frac = ((goal - arc[rows, j - 1]) / seg_len[rows, j - 1])[:, None]
        point = ahead[rows, j - 1] + frac * seg[rows, j - 1]
        rel_t = point - rear
        fwd_t = rel_t[:, 0] * cos_h + rel_t[:, 1] * sin_h
        lat_t = -rel_t[:, 0] * sin_h + rel_t[:, 1] * cos_h
        alpha = np.arctan2(lat_t, fwd_t)
        d = np.maximum(np.hypot(fwd_t, lat_t), 1e-3)
        wheel_angle = np.arctan(2.0 * WHEELBASE * np.sin(alpha) / d)
        # Target behind the car (spun round, or driving the wrong way): full lock toward it.
        behind = np.abs(alpha) > np.pi / 2
        wheel_angle = np.where(behind, np.sign(alpha) * MAX_WHEEL_ANGLE, wheel_angle)

        # Speed plan from the curvature of the centreline ahead.
        seg_dir = np.arctan2(seg[..., 1], seg[..., 0])
        turn = np.abs(np.angle(np.exp(1j * np.diff(seg_dir, axis=1))))  # (N, K-2)
        w = max(1, self.curvature_window)
        if w > 1 and turn.shape[1] >= w:
            kernel = np.ones(w) / w
            turn = np.stack([np.convolve(t, kernel, mode="same") for t in turn])
        kappa = turn / seg_len[:, 1:]
        v_curve = np.sqrt(self.lateral_accel / np.maximum(kappa, 1e-6))
        # Distance from the car to each curvature sample (point i+1 of the centreline).
        s = np.maximum(arc[:, 1:-1] - along0[:, None], 0.0)
        v_now = np.sqrt(v_curve**2 + 2.0 * self.brake_accel * s)
        target = np.minimum(v_now.min(axis=1), self.max_speed)
        # Far off the line or pointing away from it: recover slowly first.
        lost = (np.abs(alpha) > self.recover_angle) | (np.abs(offset) > self.recover_offset)
        target = np.where(lost, np.minimum(target, self.recover_speed), target)
        return wheel_angle, target

    def _continuous(
        self,
        wheel_angle: np.ndarray,
        speed: np.ndarray,
        target: np.ndarray,
        sliding: np.ndarray,
    ) -> np.ndarray:
        steer = np.clip(-self.steer_gain * wheel_angle / MAX_WHEEL_ANGLE, -1.0, 1.0)
        err = target - speed
        gas = np.clip(self.gas_gain * err, 0.0, 1.0)
        gas *= np.clip(1.0 - self.gas_steer_cut * np.abs(steer), 0.1, 1.0)
        gas = np.where(sliding, 0.0, gas)
        brake = np.clip(-self.brake_gain * err, 0.0, 0.8)
        brake = np.where(err < -2.0, brake, 0.0)
        return np.stack([steer, gas, brake], axis=-1).astype(np.float32)

    def _discrete(
        self,
        wheel_angle: np.ndarray,
        steer_now: np.ndarray,
        speed: np.ndarray,
        target: np.ndarray,
        sliding: np.ndarray,
    ) -> np.ndarray:
        want = np.clip(wheel_angle, -MAX_WHEEL_ANGLE, MAX_WHEEL_ANGLE)
        gap = want - steer_now
        err = target - speed
        act = np.full(len(want), NOOP, dtype=np.int64)
        act = np.where((err > 0.0) & ~sliding, GAS, act)
        act = np.where(err < -3.0, BRAKE, act)
        act = np.where(gap > self.steer_deadband, LEFT, act)
        act = np.where(gap < -self.steer_deadband, RIGHT, act)
        return act
