"""Scripted, queryable experts for the classic gymnasium control tasks.

Each expert is a closed-form control law of the observation alone, so it can label *any* state
a learner reaches (the property DAgger needs). All are batched: ``act`` takes ``(N, obs_dim)``
and returns ``(N,)`` int64 actions for Discrete action spaces or ``(N, act_dim)`` float32 for
Box ones. None keeps state, so ``begin_run`` is a no-op.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _as_batch(obs: np.ndarray, obs_dim: int) -> np.ndarray:
    """``obs`` as a float64 ``(N, obs_dim)`` array; anything else is a caller bug."""
    arr = np.asarray(obs, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != obs_dim:
        raise ValueError(f"expected observations of shape (N, {obs_dim}), got {arr.shape}")
    return arr


class CartPoleExpert:
    """Linear state feedback for CartPole: push right iff ``k · (x, ẋ, θ, θ̇) > 0``.

    The pole falls toward positive θ, so the cart must move under it: the θ and θ̇ terms
    (dominant) balance the pole; the small x and ẋ terms lean the pole back toward the centre,
    so the cart does not drift off the track over the 500-step horizon.
    """

    gains = np.array([0.5, 1.0, 10.0, 2.0])

    def act(self, obs: np.ndarray, infos: dict[str, Any] | None = None) -> np.ndarray:
        s = _as_batch(obs, 4)
        return (s @ self.gains > 0.0).astype(np.int64)

    def begin_run(self, seed: int | None = None) -> None:
        """Stateless: nothing to reset."""


class PendulumExpert:
    """Energy-pumping swing-up plus a linear stabiliser near the top, for Pendulum-v1.

    With θ = 0 upright, Pendulum-v1 obeys θ̈ = 15 sin θ + 3u (g=10, m=l=1). The normalised
    energy ``E = ½θ̇² + 15(cos θ − 1)`` is 0 exactly at rest upright and changes as
    ``dE/dt = 3uθ̇``. Far from the top the expert pumps energy toward 0 with
    ``u = −k_E · E · θ̇`` (saturated at the torque limit); within ``|θ| < θ_lin`` and at low
    speed it switches to the linear law ``u = −K_θ θ − K_ω θ̇`` (stable for ``3K_θ > 15``).
    Torque is clipped to [−2, 2].
    """

    max_torque = 2.0
    k_energy = 1.0
    k_theta = 10.0
    k_omega = 2.0
    theta_lin = 0.6

    def act(self, obs: np.ndarray, infos: dict[str, Any] | None = None) -> np.ndarray:
        s = _as_batch(obs, 3)
        cos_t, sin_t, omega = s[:, 0], s[:, 1], s[:, 2]
        theta = np.arctan2(sin_t, cos_t)
        energy = 0.5 * omega**2 + 15.0 * (cos_t - 1.0)
        u_swing = -self.k_energy * energy * omega
        u_lin = -self.k_theta * theta - self.k_omega * omega
        near = np.abs(theta) < self.theta_lin
        u = np.where(near, u_lin, u_swing)
        u = np.clip(u, -self.max_torque, self.max_torque)
        return u[:, None].astype(np.float32)

    def begin_run(self, seed: int | None = None) -> None:
        """Stateless: nothing to reset."""


class MountainCarContinuousExpert:
    """Energy pumping for MountainCarContinuous-v0: push in the direction of the velocity.

    The car obeys ``v' = v + 0.0015u − 0.0025 cos 3x``, so ``u = p · sign(v)`` adds energy every
    step. At ``v = 0`` (the start, or a turning point) it pushes downhill, toward the valley
    floor at ``x = −π/6``, which is where gravity is about to move it anyway; close to the flag
    (``x > 0.31``, where the engine beats gravity) it pushes straight for the goal. The
    magnitude ``p = 0.5`` rather than 1: the cost is ``0.1u²`` per step while the energy gained
    per swing is only linear in ``p``, so half throttle reaches the flag after one more swing
    at about half the fuel cost (return ≈ 96 instead of ≈ 91).
    """

    power = 0.5
    valley_x = -np.pi / 6
    direct_x = 0.31

    def direction(self, obs: np.ndarray) -> np.ndarray:
        """Which way to push at each observation: +1 (right) or −1 (left), float64 ``(N,)``."""
        s = _as_batch(obs, 2)
        x, v = s[:, 0], s[:, 1]
        at_rest = np.where((x > self.direct_x) | (x < self.valley_x), 1.0, -1.0)
        return np.where(v > 0.0, 1.0, np.where(v < 0.0, -1.0, at_rest))

    def act(self, obs: np.ndarray, infos: dict[str, Any] | None = None) -> np.ndarray:
        return (self.power * self.direction(obs))[:, None].astype(np.float32)

    def begin_run(self, seed: int | None = None) -> None:
        """Stateless: nothing to reset."""


class MountainCarExpert(MountainCarContinuousExpert):
    """The same energy pumping for the discrete MountainCar-v0 (actions: 0 push left, 1 no
    push, 2 push right): full push in the direction of the velocity (there is no half
    throttle, and every step costs −1 whatever the action), so it never idles. Return ≈ −114
    over seeds 0–19 (−86 to −176 by start; the 200-step limit is −200)."""

    def act(self, obs: np.ndarray, infos: dict[str, Any] | None = None) -> np.ndarray:
        return (1.0 + self.direction(obs)).astype(np.int64)


class LunarLanderExpert:
    """Gymnasium's LunarLander heuristic (a PD law), vectorised, with one robustness fix.

    Target angle ``a* = clip(0.5x + ẋ, ±0.4)`` leans the lander toward the pad; target height
    ``h* = 0.55|x|``. Then ``angle_todo = 0.5(a* − θ) − θ̇`` and
    ``hover_todo = 0.5(h* − y) − 0.5ẏ``; once a leg touches, ``angle_todo = 0`` and
    ``hover_todo = −0.5ẏ`` (only brake the fall). Continuous: ``(20·hover_todo − 1,
    −20·angle_todo)`` clipped to [−1, 1]; discrete: main engine if ``hover_todo`` dominates and
    exceeds 0.05, else the side engine that reduces ``|angle_todo| > 0.05``, else nothing.

    The fix (``robust=True``): the original often touches down while still sliding sideways
    (|ẋ| ≈ 0.5–0.8 after overshooting the pad) and then tips over, since it stops steering on
    contact. Raising the height target by ``0.7 · max(|ẋ| − 0.2, 0)`` makes it hover until the
    sideways speed is killed. Over seeds 300–899 this lifts the discrete mean return from ≈243
    (91% of episodes ≥ 200) to ≈267 (98.5%) and leaves the continuous one at ≈282.
    ``robust=False`` reproduces ``gymnasium.envs.box2d.lunar_lander.heuristic`` exactly.

    ``deadband`` (discrete only; gymnasium's 0.05): the size of ``angle_todo`` and
    ``hover_todo`` below which no engine fires. A narrower band (0.02, the ``lunarlander-wind``
    task's pilot) corrects sooner and tighter: it holds the lander on a narrower path and
    copes with gusts better (seeds 1000–1029 in wind 5, turbulence 0.5: 97% of episodes
    ≥ 200 against 87%).
    """

    hover_vx_gain = 0.7
    hover_vx_deadband = 0.2

    def __init__(self, continuous: bool = False, robust: bool = True, deadband: float = 0.05):
        self.continuous = continuous
        self.robust = robust
        self.deadband = float(deadband)

    def act(self, obs: np.ndarray, infos: dict[str, Any] | None = None) -> np.ndarray:
        # float32 throughout, like gymnasium's heuristic on a float32 observation row.
        s = _as_batch(obs, 8).astype(np.float32)
        x, y, vx, vy, angle, angle_v = (s[:, i] for i in range(6))
        contact = (s[:, 6] != 0) | (s[:, 7] != 0)

        angle_targ = np.clip(x * 0.5 + vx * 1.0, -0.4, 0.4)
        hover_targ = 0.55 * np.abs(x)
        if self.robust:
            excess = np.maximum(np.abs(vx) - self.hover_vx_deadband, 0.0)
            hover_targ = hover_targ + self.hover_vx_gain * excess
        angle_todo = (angle_targ - angle) * 0.5 - angle_v * 1.0
        hover_todo = (hover_targ - y) * 0.5 - vy * 0.5
        angle_todo = np.where(contact, 0.0, angle_todo)
        hover_todo = np.where(contact, -vy * 0.5, hover_todo)

        if self.continuous:
            a = np.stack([hover_todo * 20 - 1, -angle_todo * 20], axis=1)
            return np.clip(a, -1, 1).astype(np.float32)
        d = np.float32(self.deadband)
        a = np.zeros(len(s), dtype=np.int64)
        a = np.where(angle_todo > d, 1, a)
        a = np.where(angle_todo < -d, 3, a)
        a = np.where((hover_todo > np.abs(angle_todo)) & (hover_todo > d), 2, a)
        return a.astype(np.int64)

    def begin_run(self, seed: int | None = None) -> None:
        """Stateless: nothing to reset."""
