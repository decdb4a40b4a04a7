"""Faster replicas of gymnasium CarRacing's per-step Python, with the same results bit for bit.

Used by :class:`protege.tasks.carracing_env.CarRacingEnv` with ``fast_render=True``:

* :func:`car_gas` is ``Car.gas`` without ``np.clip`` on one number.
* :func:`car_step` is ``gymnasium.envs.box2d.car_dynamics.Car.step`` (gymnasium 1.4) line for
  line, in plain Python floats instead of numpy scalars (``np.sign``, ``np.sqrt`` and
  ``np.square`` on one number, and arithmetic on ``np.float64``). Every operation is the
  same IEEE double operation in the same order, and Box2D receives the same values.
* :class:`CarPainter` draws the car as ``Car.draw`` does (same ``pygame.draw`` calls, same
  order, same points), with Box2D's float32 body transform done in one numpy float32
  expression (``(c·x − s·y) + p``, as ``b2Mul``) and the view transform in one float64
  expression (as ``_draw_colored_polygon``), instead of ~50 ``Vector2`` objects a frame.
* :func:`draw_indicators` is ``CarRacing._render_indicators`` without numpy scalars; its
  polygons are axis-aligned rectangles, which pygame's scan-line fill paints as whole
  truncated rows and columns, so they are fills (the black strip too).

``tests/test_carracing.py`` compares frames, rewards and terminations with gymnasium's.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pygame
from gymnasium.envs.box2d import car_dynamics as _cd

_GRASS_FRICTION = _cd.FRICTION_LIMIT * 0.6
_FORCE_SCALE = 205000 * _cd.SIZE * _cd.SIZE  # the same constant gymnasium multiplies by
_WHITE_X = _cd.WHEEL_W * _cd.SIZE


def _sign(x: float) -> float:
    """``np.sign`` of one float: ±1, 0.0 for ±0, NaN for NaN."""
    if x > 0:
        return 1.0
    if x < 0:
        return -1.0
    return 0.0 if x == 0 else x


def car_gas(car: Any, gas: float) -> None:
    """``Car.gas(gas)``: ``np.clip(gas, 0, 1)`` (NaN and −0 stay as they are), then the rear
    wheels' gas rises by at most 0.1 a step (and drops at once)."""
    gas = 0.0 if gas < 0 else (1.0 if gas > 1 else float(gas))
    for w in car.wheels[2:4]:
        diff = gas - w.gas
        if diff > 0.1:
            diff = 0.1  # throttle rises by ≤ 0.1 a step; a drop applies at once
        w.gas += diff


def car_step(car: Any, dt: float) -> None:
    """``Car.step(dt)`` of gymnasium 1.4, the same arithmetic on plain floats."""
    for w in car.wheels:
        # steering: the joint's motor turns the wheel toward its target angle
        joint = w.joint
        angle = joint.angle
        joint.motorSpeed = _sign(w.steer - angle) * min(50.0 * abs(w.steer - angle), 3.0)

        # grip: the best road tile under the wheel, else grass
        grass = True
        friction_limit = _GRASS_FRICTION
        for tile in w.tiles:
            friction_limit = max(friction_limit, _cd.FRICTION_LIMIT * tile.road_friction)
            grass = False

        # wheel frame and its velocity components
        forw = w.GetWorldVector((0, 1))
        side = w.GetWorldVector((1, 0))
        v = w.linearVelocity
        fx, fy, sx, sy, vx, vy = forw.x, forw.y, side.x, side.y, v.x, v.y
        vf = fx * vx + fy * vy
        vs = sx * vx + sy * vy

        gas = w.gas
        w.omega += dt * _cd.ENGINE_POWER * gas / _cd.WHEEL_MOMENT_OF_INERTIA / (abs(w.omega) + 5.0)
        car.fuel_spent += dt * _cd.ENGINE_POWER * gas

        brake = w.brake
        if brake >= 0.9:
            w.omega = 0
        elif brake > 0:
            omega = w.omega
            val = 15 * brake  # rad/s of wheel speed removed per step at full brake
            if abs(val) > abs(omega):
                val = abs(omega)  # never brakes past standstill
            w.omega = omega + -_sign(omega) * val
        w.phase += w.omega * dt

        vr = w.omega * w.wheel_rad
        f_force = -vf + vr  # along the slip between the rim and the ground
        p_force = -vs
        f_force *= _FORCE_SCALE
        p_force *= _FORCE_SCALE
        force = math.sqrt(f_force * f_force + p_force * p_force)

        # skid marks where the slip force exceeds twice the grip
        if abs(force) > 2.0 * friction_limit:
            if (
                w.skid_particle
                and w.skid_particle.grass == grass
                and len(w.skid_particle.poly) < 30
            ):
                w.skid_particle.poly.append((w.position[0], w.position[1]))
            elif w.skid_start is None:
                w.skid_start = w.position
            else:
                w.skid_particle = car._create_particle(w.skid_start, w.position, grass)
                w.skid_start = None
        else:
            w.skid_start = None
            w.skid_particle = None

        if abs(force) > friction_limit:
            f_force /= force
            p_force /= force
            force = friction_limit  # the force saturates at the grip limit
            f_force *= force
            p_force *= force

        w.omega -= dt * f_force * w.wheel_rad / _cd.WHEEL_MOMENT_OF_INERTIA

        w.ApplyForceToCenter((p_force * sx + f_force * fx, p_force * sy + f_force * fy), True)


class CarPainter:
    """Draws one ``Car`` exactly as ``Car.draw`` does, with its transforms in numpy.

    The fixtures' local vertices are read once (Box2D stores them as float32), followed by
    four slots per wheel for its white stripe; each frame reads the five bodies' float32
    transforms and computes every vertex at once, in a handful of numpy calls.
    """

    def __init__(self, car: Any) -> None:
        self.car = car
        self.bodies = list(car.drawlist)
        lx: list[float] = []
        ly: list[float] = []
        body: list[int] = []
        # (first point, number of points, colour, body); then (..., white stripe's first
        # point or -1, the wheel's index in self.wheels)
        polys: list[tuple[int, int, list[int], int]] = []
        wheels: list[int] = []
        for b, obj in enumerate(self.bodies):
            color = [int(c * 255) for c in obj.color]
            for f in obj.fixtures:
                verts = f.shape.vertices
                polys.append((len(lx), len(verts), color, b))
                for x, y in verts:
                    lx.append(x)
                    ly.append(y)
                    body.append(b)
            if "phase" in obj.__dict__:
                wheels.append(b)
        self.white_first = len(lx)
        self.wheels = [self.bodies[b] for b in wheels]
        white_at = {}
        for b in wheels:
            white_at[b] = len(lx)
            lx += [-_WHITE_X, +_WHITE_X, +_WHITE_X, -_WHITE_X]
            ly += [0.0] * 4
            body += [b] * 4
        self.polys = [
            (first, n, color, white_at.get(b, -1), wheels.index(b) if b in wheels else -1)
            for first, n, color, b in polys
        ]
        self.lx = np.array(lx, dtype=np.float32)[:, None]
        self.ly = np.array(ly, dtype=np.float32)[:, None]
        self.body = np.array(body, dtype=np.intp)

    def draw(
        self,
        surface: pygame.Surface,
        zoom: float,
        translation: tuple[float, float],
        angle: float,
        draw_particles: bool = True,
    ) -> None:
        """``Car.draw(surface, zoom, translation, angle, draw_particles)``."""
        car = self.car
        if draw_particles:
            for p in car.particles:
                rotated = [pygame.math.Vector2(c).rotate_rad(angle) for c in p.poly]
                poly = [
                    (c[0] * zoom + translation[0], c[1] * zoom + translation[1]) for c in rotated
                ]
                pygame.draw.lines(surface, color=p.color, points=poly, width=2, closed=False)

        # Box2D's float32 transform per body, as (c, s, -s, c, x, y): b2Mul(T, v) is
        # ((c·vx − s·vy) + x, (s·vx + c·vy) + y) in float32, and a + (−b) is a − b exactly.
        xf = []
        for b in self.bodies:
            t = b.transform
            q, p = t.q, t.position
            xf.append((q.c, q.s, -q.s, q.c, p.x, p.y))
        tf = np.array(xf, dtype=np.float32)[self.body]

        # The white stripes' local y (Car.draw's expressions, rounded to float32 by Box2D).
        shown = []
        white_y = []
        for w in self.wheels:
            a1, a2 = w.phase, w.phase + 1.2  # radians
            s1, s2 = math.sin(a1), math.sin(a2)
            c1, c2 = math.cos(a1), math.cos(a2)
            shown.append(not (s1 > 0 and s2 > 0))
            if s1 > 0:
                c1 = _sign(c1)
            if s2 > 0:
                c2 = _sign(c2)
            y1 = +_cd.WHEEL_R * c1 * _cd.SIZE
            y2 = +_cd.WHEEL_R * c2 * _cd.SIZE
            white_y += [y1, y1, y2, y2]
        self.ly[self.white_first :, 0] = white_y
        world = (tf[:, 0:2] * self.lx + tf[:, 2:4] * self.ly) + tf[:, 4:6]
        # the view: Vector2.rotate_rad's (cos·x − sin·y, sin·x + cos·y), zoom, shift (double)
        unit = pygame.math.Vector2(1.0, 0.0).rotate_rad(angle)
        rc, rs = unit[0], unit[1]
        w64 = world.astype(np.float64)
        coef = np.array(((rc, rs), (-rs, rc), translation))
        view = w64[:, 0:1] * coef[0]
        view += w64[:, 1:2] * coef[1]
        view *= zoom
        view += coef[2]
        pts = view.tolist()

        for first, n, color, white, wheel in self.polys:
            pygame.draw.polygon(surface, color=color, points=pts[first : first + n])
            if white >= 0 and shown[wheel]:
                pygame.draw.polygon(surface, color=_cd.WHEEL_WHITE, points=pts[white : white + 4])


def _bar(
    surf: pygame.Surface, color: tuple[int, int, int], xa: float, ya: float, xb: float, yb: float
) -> tuple[int, int]:
    """``pygame.draw.polygon`` of the rectangle (xa, ya), (xb, ya), (xb, yb), (xa, yb), as a fill.

    pygame truncates each coordinate to an int (toward zero); for an axis-aligned rectangle
    its scan-line fill then paints the truncated corners' rows and columns, inclusive (the
    vertical edges give every row, the bottom row included, one span from the left to the
    right column; a one-row polygon is one such span). Returns the rows (first, last).
    """
    # the sum is finite only if every corner coordinate is (an overflow only sends a finite
    # rectangle to pygame's own polygon call, which draws the same)
    if not math.isfinite(xa + ya + xb + yb):
        pygame.draw.polygon(surf, color, [(xa, ya), (xb, ya), (xb, yb), (xa, yb)])
        return 0, surf.get_height() - 1
    x0, x1 = int(xa), int(xb)
    if x0 > x1:
        x0, x1 = x1, x0
    y0, y1 = int(ya), int(yb)
    if y0 > y1:
        y0, y1 = y1, y0
    surf.fill(color, (x0, y0, x1 - x0 + 1, y1 - y0 + 1))
    return y0, y1


_WHITE = (255, 255, 255)
_BLUE = (0, 0, 255)
_VIOLET = (51, 0, 255)
_GREEN = (0, 255, 0)
_RED = (255, 0, 0)


def draw_indicators(surf: pygame.Surface, car: Any, width: int, height: int) -> tuple[int, int]:
    """``CarRacing._render_indicators(W, H)`` drawing into ``surf``.

    Returns the first and last row a bar may have painted (``(height, -1)`` if none did):
    the rest of the strip (rows ``height - 5h`` on) is black.
    """
    s = width / 40.0
    h = height / 40.0
    # gymnasium's black polygon (W, H), (W, H - 5h), (0, H - 5h), (0, H) covers whole rows
    top = round(height - 5 * h)
    assert top == height - 5 * h
    surf.fill((0, 0, 0), (0, top, width, height - top))
    first, last = height, -1
    # (value, bar length, colour, horizontal?, place): the speed, the four wheels' angular
    # speeds, the steering angle and the yaw rate, in gymnasium's drawing order
    v = car.hull.linearVelocity
    vx, vy = v.x, v.y
    true_speed = math.sqrt(vx * vx + vy * vy)
    wheels = car.wheels
    o0, o1, o2, o3 = wheels[0].omega, wheels[1].omega, wheels[2].omega, wheels[3].omega
    steer = wheels[0].joint.angle
    yaw = car.hull.angularVelocity
    bars = (
        (true_speed, 0.02 * true_speed, _WHITE, False, 5),
        (o0, 0.01 * o0, _BLUE, False, 7),
        (o1, 0.01 * o1, _BLUE, False, 8),
        (o2, 0.01 * o2, _VIOLET, False, 9),
        (o3, 0.01 * o3, _VIOLET, False, 10),
        (steer, -10.0 * steer, _GREEN, True, 20),
        (yaw, -0.8 * yaw, _RED, True, 30),
    )
    for value, val, color, horizontal, place in bars:
        if abs(value) > 1e-4:
            if horizontal:
                y0, y1 = _bar(
                    surf, color, (place + 0) * s, height - 4 * h, (place + val) * s, height - 2 * h
                )
            else:
                y0, y1 = _bar(
                    surf, color, place * s, height - (h + h * val), (place + 1) * s, height - h
                )
            if y0 < first:
                first = y0
            if y1 > last:
                last = y1
    return first, last


__all__ = ["CarPainter", "car_gas", "car_step", "draw_indicators"]
