"""CarRacing from pixels, with privileged state in ``info`` and a faster, bit-identical renderer.

The learner sees gymnasium's CarRacing-v3 observation unchanged: a 96×96×3 uint8 top-down
frame. The expert (:class:`protege.experts.driving.CarRacingExpert`) needs the car's pose and
the track ahead, which are not in the frame in a usable form, so :class:`CarRacingEnv` puts
them in ``info`` after every ``reset`` and ``step`` (never in the observation). Every value is
a fixed-shape numpy array or scalar, so a gymnasium vector env batches each key into one
``(N, ...)`` array (plus its ``_key`` mask). The keys, in :data:`INFO_KEYS`:

================== ============= =========================================================
key                shape, dtype  meaning
================== ============= =========================================================
``car_pos``        (2,) float64  hull centre (x, y) in world units
``car_heading``    () float64    world angle of the car's forward axis, rad in (-π, π]
``car_velocity``   (2,) float64  hull linear velocity (world frame), units/s
``car_speed``      () float64    ``|car_velocity|``
``car_yaw_rate``   () float64    hull angular velocity, rad/s (positive = turning left)
``steer_angle``    () float64    front-wheel joint angle, rad (positive = left), in ±0.4
``track_index``    () int64      index of the nearest centreline point (tracked along
                                 the lap, so it does not jump across nearby track parts)
``track_ahead``    (K, 2) f64    the K = :data:`TRACK_AHEAD` centreline points from
                                 ``track_index`` on, in driving order (world x, y)
``track_offset``   () float64    signed distance from the centreline (positive = left)
``tiles_visited``  () int64      road tiles touched so far
``track_tiles``    () int64      number of tiles of this track
================== ============= =========================================================

Centreline points are ``TRACK_DETAIL_STEP`` = 3.5 units apart, so ``track_ahead`` covers about
112 units, enough to brake for the next curve from top speed.

**Fast renderer.** Gymnasium renders every frame by transforming each of the ~700–800 road,
border and grass polygons with Python ``Vector2`` calls before culling almost all of them:
75 % of a step. With ``fast_render=True`` (the default) :class:`CarRacingEnv` instead

* draws the road layer with :func:`protege.tasks.carracing_road.render_road`: the polygons
  near the view (from a per-cell cache of candidates) transformed in a few numpy calls with
  the same IEEE double arithmetic as gymnasium (rotation coefficients from pygame's own
  ``Vector2.rotate_rad``), culled with gymnasium's own test plus a bounding-box test
  against the visible rows (gymnasium also draws polygons up to ~380 px off-screen, to no
  effect), and drawn in gymnasium's order and colours as the integers gfxdraw truncates
  them to: with numba, by one compiled call that re-implements gfxdraw's anti-aliased
  outline and scan-line fill with SDL_gfx's integer arithmetic (the same bytes,
  :mod:`protege.tasks.carracing_raster`), else by the same two gfxdraw calls as gymnasium;
  the scan-line fills and the background fill skip the 100 window rows the indicator strip
  hides;
* fills the window with the background colour when the background polygon covers it with a
  4-px margin, instead of scan-converting a ~10,000-px-high polygon (0.9 ms);
* replaces, on its own car, ``Car.step``, ``Car.gas`` and ``Car.draw`` by exact replicas in
  plain floats and numpy (:mod:`protege.tasks.carracing_fast`), and draws the indicators
  without numpy scalars;
* reuses its window surfaces, and makes the frame without flipping the 1000×800 window:
  ``smoothscale`` shrinks rows first, each on its own, so the road layer's rows are shrunk
  unflipped and then put in reverse order, the indicator strip's rows (drawn where
  gymnasium draws them) after them, and a column-only ``smoothscale`` finishes (see
  ``CarRacingEnv._frame``);
* loads the score font once and reuses the score text surface while the text is unchanged.

None of these can change a pixel, and every frame is **bit-identical** to gymnasium's: the
observations and ``rgb_array`` renders of gymnasium's CarRacing and of this env, stepped with
the same seeds and actions (expert driving, random driving, off the playfield, discrete,
domain-randomised), have been compared frame by frame with zero differing pixels, and
``tests/test_carracing.py`` checks it on every run, with the rewards, terminations and the
car's state. ``fast_render=False`` uses gymnasium's renderer and car unchanged.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import gymnasium as gym
import numpy as np
import pygame
from gymnasium.envs.box2d import car_racing as _cr
from gymnasium.envs.box2d.car_racing import CarRacing
from gymnasium.utils import EzPickle

from protege.tasks.carracing_fast import CarPainter, car_gas, car_step, draw_indicators
from protege.tasks.carracing_road import render_road

TRACK_AHEAD = 32
"""Number of centreline points in ``info["track_ahead"]``."""

INFO_KEYS: tuple[str, ...] = (
    "car_pos",
    "car_heading",
    "car_velocity",
    "car_speed",
    "car_yaw_rate",
    "steer_angle",
    "track_index",
    "track_ahead",
    "track_offset",
    "tiles_visited",
    "track_tiles",
)
"""The privileged keys every ``info`` of :class:`CarRacingEnv` carries."""

_LOCAL_BACK = 8
_LOCAL_FORWARD = 40
_LOCAL_SPAN = _LOCAL_BACK + _LOCAL_FORWARD + 1
_RELOCATE_DIST = 2.0 * _cr.TRACK_WIDTH


_STRIP_ROW = round(_cr.WINDOW_H - _cr.WINDOW_H * 5 / 40)
"""First window row of the indicators' black strip (700)."""
_STRIP_MAX_BAR = (_cr.WINDOW_H - _STRIP_ROW) / (_cr.WINDOW_H / 40) - 1 - 1 / 20


class CarRacingEnv(CarRacing):
    """Gymnasium's CarRacing-v3 with privileged state in ``info`` and an optional fast renderer.

    Args:
        render_mode: as for CarRacing-v3 (``None``, ``"rgb_array"``, ``"human"``, ...).
        continuous: Box(3) actions (steer, gas, brake) if True, else Discrete(5).
        fast_render: use the vectorised, bit-identical road renderer (see module docstring).
        lap_complete_percent: passed to CarRacing.
        domain_randomize: passed to CarRacing.
        verbose: passed to CarRacing.
    """

    def __init__(
        self,
        render_mode: str | None = None,
        continuous: bool = True,
        fast_render: bool = True,
        lap_complete_percent: float = 0.95,
        domain_randomize: bool = False,
        verbose: bool = False,
    ) -> None:
        super().__init__(
            render_mode=render_mode,
            verbose=verbose,
            lap_complete_percent=lap_complete_percent,
            domain_randomize=domain_randomize,
            continuous=continuous,
        )
        EzPickle.__init__(
            self,
            render_mode,
            continuous,
            fast_render,
            lap_complete_percent,
            domain_randomize,
            verbose,
        )
        self.fast_render = fast_render
        self._centre = np.zeros((0, 2))
        self._track_idx = 0
        self._road_index: Any = None
        self._font: pygame.font.Font | None = None
        self._text_cache: tuple[str, pygame.Surface] | None = None
        self._canvas: pygame.Surface | None = None
        self._overlay: pygame.Surface | None = None
        self._columns: dict[int, tuple[pygame.Surface, pygame.Surface, pygame.Surface]] = {}
        self._fast_car: Any = None
        self._centre_list: list[tuple[float, float]] = []
        self._centre_ext = np.zeros((0, 2))
        self._centre_x = np.zeros(0)
        self._centre_y = np.zeros(0)
        self._near_idx = np.zeros(0, dtype=np.intp)

    # ------------------------------------------------------------------ gym API

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        # Forget the old track's centreline: _privileged_info rebuilds it for the new track.
        self._centre = np.zeros((0, 2))
        obs, _ = super().reset(seed=seed, options=options)
        return obs, self._privileged_info()

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self.fast_render and self.car is not None and self._fast_car is not self.car:
            # gymnasium's step calls car.step and car.draw: the same, faster (carracing_fast)
            car: Any = self.car
            car.step = functools.partial(car_step, car)
            car.gas = functools.partial(car_gas, car)
            car.draw = CarPainter(car).draw
            self._fast_car = car
        obs, reward, terminated, truncated, info = super().step(action)
        if action is not None:
            info.update(self._privileged_info())
        return obs, float(reward), terminated, truncated, info

    # ---------------------------------------------------------- privileged state

    def _privileged_info(self) -> dict[str, Any]:
        assert self.car is not None
        n = len(self.track)
        if len(self._centre) != n:
            self._centre = np.array([(t[2], t[3]) for t in self.track], dtype=np.float64)
            self._centre_list = [(float(x), float(y)) for x, y in self._centre]
            # the centreline from each index on, without a modulo: rows i .. i+K-1 of this
            self._centre_ext = np.take(self._centre, np.arange(n + TRACK_AHEAD) % n, axis=0)
            self._centre_x = self._centre[:, 0].copy()
            self._centre_y = self._centre[:, 1].copy()
            # entry i is the index of centreline point i - _LOCAL_BACK (modulo n)
            self._near_idx = np.arange(-_LOCAL_BACK, n + _LOCAL_FORWARD + 1) % n
            self._track_idx = 0
        hull = self.car.hull
        p, v = hull.position, hull.linearVelocity
        px, py, vx, vy = p.x, p.y, v.x, v.y
        heading = math.remainder(hull.angle + math.pi / 2, 2 * math.pi)
        idx = self._nearest_index(px, py)
        # Signed offset from the centreline segment idx -> idx+1 (positive = left of travel).
        x0, y0 = self._centre_list[idx]
        x1, y1 = self._centre_list[(idx + 1) % n]
        seg0, seg1 = x1 - x0, y1 - y0
        seg_len = float(np.hypot(seg0, seg1)) or 1.0
        offset = (seg0 * (py - y0) - seg1 * (px - x0)) / seg_len
        return {
            "car_pos": np.array([px, py], dtype=np.float64),
            "car_heading": np.float64(heading),
            "car_velocity": np.array([vx, vy], dtype=np.float64),
            "car_speed": np.hypot(vx, vy),  # a numpy float64
            "car_yaw_rate": np.float64(hull.angularVelocity),
            "steer_angle": np.float64(self.car.wheels[0].joint.angle),
            "track_index": np.int64(idx),
            "track_ahead": self._centre_ext[idx : idx + TRACK_AHEAD].copy(),
            "track_offset": np.float64(offset),
            "tiles_visited": np.int64(self.tile_visited_count),
            "track_tiles": np.int64(n),
        }

    def _nearest_index(self, px: float, py: float) -> int:
        """Nearest centreline point, searched near the last one first (then globally).

        The local search covers the points ``_track_idx - _LOCAL_BACK`` to ``_track_idx +
        _LOCAL_FORWARD`` (modulo the track's length), the first of equal distances winning,
        as ``argmin``; if its best point is farther than ``_RELOCATE_DIST`` the whole track
        is searched. Both read one array of squared distances, ``dx·dx + dy·dy``.
        """
        d2 = self._centre_x - px
        d2 *= d2
        dy = self._centre_y - py
        dy *= dy
        d2 += dy
        local = d2.take(self._near_idx[self._track_idx : self._track_idx + _LOCAL_SPAN])
        k = int(local.argmin())
        if local[k] <= _RELOCATE_DIST**2:  # false for NaN: then the global search decides
            self._track_idx = (self._track_idx - _LOCAL_BACK + k) % len(d2)
        else:
            self._track_idx = int(d2.argmin())
        return self._track_idx

    # ------------------------------------------------------------- fast render

    def _render(self, mode: str) -> Any:
        """Gymnasium's ``CarRacing._render`` with the road drawn by :meth:`_render_road_fast`.

        Line for line the same as gymnasium 1.4's method otherwise, except that the score
        font is loaded once and the score text surface is reused while the text is unchanged,
        and that frames (``state_pixels``, ``rgb_array``) are assembled by ``_frame``
        without flipping the 1000×800 window.
        """
        if not self.fast_render:
            return super()._render(mode)
        assert mode in self.metadata["render_modes"]

        pygame.font.init()
        if self.screen is None and mode == "human":
            pygame.display.init()
            self.screen = pygame.display.set_mode((_cr.WINDOW_W, _cr.WINDOW_H))
        if self.clock is None:
            self.clock = pygame.time.Clock()  # type: ignore[assignment]

        if "t" not in self.__dict__:
            return None  # reset() not called yet

        framed = mode != "human" and self._indicators_fit_strip()
        if framed:
            if self._canvas is None:
                self._canvas = pygame.Surface((_cr.WINDOW_W, _cr.WINDOW_H))
                self._overlay = pygame.Surface((_cr.WINDOW_W, _cr.WINDOW_H))
            surf = self._canvas
        else:
            surf = pygame.Surface((_cr.WINDOW_W, _cr.WINDOW_H))
        self.surf = surf  # type: ignore[assignment]

        assert self.car is not None
        angle = -self.car.hull.angle
        zoom = 0.1 * _cr.SCALE * max(1 - self.t, 0) + _cr.ZOOM * _cr.SCALE * min(self.t, 1)
        scroll_x = -(self.car.hull.position[0]) * zoom
        scroll_y = -(self.car.hull.position[1]) * zoom
        trans_v = pygame.math.Vector2((scroll_x, scroll_y)).rotate_rad(angle)
        trans = (_cr.WINDOW_W / 2 + trans_v[0], _cr.WINDOW_H / 4 + trans_v[1])

        # Window rows the frame never shows (canvas rows above the strip's mirror image).
        hidden = _cr.WINDOW_H - _STRIP_ROW if framed else 0
        self._render_road_fast(surf, zoom, trans, angle, first_row=hidden)
        self.car.draw(
            surf,
            zoom,
            trans,
            angle,
            mode not in ["state_pixels_list", "state_pixels"],
        )

        if framed:
            assert self._overlay is not None
            surf = self._overlay  # the strip is drawn at its place in an unflipped window
        else:
            surf = pygame.transform.flip(surf, False, True)
        self.surf = surf  # type: ignore[assignment]

        bars = draw_indicators(surf, self.car, _cr.WINDOW_W, _cr.WINDOW_H)

        text = self._score_text(f"{self.reward:04.0f}")
        text_rect = text.get_rect()
        text_rect.center = (60, _cr.WINDOW_H - _cr.WINDOW_H * 2.5 / 40.0)
        surf.blit(text, text_rect)
        # the strip's rows that may not be black: the bars' and the score's
        strip_rows = (min(bars[0], text_rect.top), max(bars[1], text_rect.bottom - 1))

        if mode == "human":
            pygame.event.pump()
            self.clock.tick(self.metadata["render_fps"])  # type: ignore[attr-defined]
            assert self.screen is not None
            self.screen.fill(0)
            self.screen.blit(surf, (0, 0))
            pygame.display.flip()
            return None
        size = (_cr.VIDEO_W, _cr.VIDEO_H) if mode == "rgb_array" else (_cr.STATE_W, _cr.STATE_H)
        if framed:
            return self._frame(size, strip_rows)
        return self._create_image_array(surf, size)

    def _indicators_fit_strip(self) -> bool:
        """Whether every indicator bar stays inside the black strip (rows 700–799 of the frame).

        The speed and wheel bars grow up by 20 px per unit of their value and leave the strip
        above 4; then :meth:`_render` takes gymnasium's flip path (1 px of margin).
        """
        assert self.car is not None
        vx, vy = self.car.hull.linearVelocity
        values = [0.02 * math.sqrt(vx * vx + vy * vy)]
        values.extend(0.01 * w.omega for w in self.car.wheels)
        return max(values) < _STRIP_MAX_BAR

    def _frame(
        self, size: tuple[int, int], strip_rows: tuple[int, int] | None = None
    ) -> np.ndarray:
        """The ``size`` frame gymnasium would downscale from the flipped window, bit for bit.

        pygame's ``smoothscale`` shrinks every row in x into 8-bit pixels, then the columns
        in y. Rows are independent in the x pass, so the x pass of the flipped window is the
        x pass of the unflipped road layer with its rows reversed (window rows 0–699 are
        canvas rows 799–100) and of the indicator strip (rows 700–799, which its black
        polygon covers entirely); a y-only ``smoothscale`` of that finishes the frame. Strip
        rows outside ``strip_rows`` (first, last) are black, and the x pass of a black row
        is zero: those are filled with zeros instead of shrunk.
        """
        assert self._canvas is not None and self._overlay is not None
        w, h = size
        top, rest = _STRIP_ROW, _cr.WINDOW_H - _STRIP_ROW
        if w not in self._columns:
            road_x = pygame.Surface((w, top), 0, self._canvas)
            cols = pygame.Surface((w, _cr.WINDOW_H), 0, self._canvas)
            out = pygame.Surface((w, h), 0, self._canvas)
            self._columns[w] = (road_x, cols, out)
        road_x, cols, out = self._columns[w]
        road = self._canvas.subsurface((0, rest, _cr.WINDOW_W, top))
        pygame.transform.smoothscale(road, (w, top), road_x)
        # rows reversed, as (row, column) views: whole rows are copied
        rows = pygame.surfarray.pixels2d(cols).T
        rows[:top] = pygame.surfarray.pixels2d(road_x).T[::-1]
        del rows
        first, last = strip_rows if strip_rows is not None else (top, _cr.WINDOW_H - 1)
        first, last = max(first, top), min(last, _cr.WINDOW_H - 1)
        if first > last:
            cols.fill(0, (0, top, w, rest))
        else:
            n = last - first + 1
            strip = self._overlay.subsurface((0, first, _cr.WINDOW_W, n))
            pygame.transform.smoothscale(strip, (w, n), cols.subsurface((0, first, w, n)))
            if first > top:
                cols.fill(0, (0, top, w, first - top))
            if last < _cr.WINDOW_H - 1:
                cols.fill(0, (0, last + 1, w, _cr.WINDOW_H - 1 - last))
        pygame.transform.smoothscale(cols, (w, h), out)
        rgb = np.frombuffer(pygame.image.tobytes(out, "RGB"), dtype=np.uint8)
        return rgb.reshape(h, w, 3).copy()

    def _score_text(self, text: str) -> pygame.Surface:
        if self._text_cache is not None and self._text_cache[0] == text:
            return self._text_cache[1]
        if self._font is None:
            self._font = pygame.font.Font(pygame.font.get_default_font(), 42)
        surf = self._font.render(text, True, (255, 255, 255), (0, 0, 0))
        self._text_cache = (text, surf)
        return surf

    def _render_road_fast(
        self,
        surf: pygame.Surface,
        zoom: float,
        translation: tuple[float, float],
        angle: float,
        first_row: int = 0,
    ) -> None:
        """Draw background, grass and road exactly as ``CarRacing._render_road`` does
        (:func:`protege.tasks.carracing_road.render_road`); window rows above ``first_row``
        (which nobody sees) may be left undrawn."""
        render_road(self, surf, zoom, translation, angle, first_row)


def make_carracing_env(
    render_mode: str | None = None,
    continuous: bool = True,
    fast_render: bool = True,
    lap_complete_percent: float = 0.95,
    domain_randomize: bool = False,
) -> gym.Env:
    """A :class:`CarRacingEnv` (the ``env_id`` of the carracing tasks,
    :mod:`protege.tasks.carracing`; Task adds the TimeLimit)."""
    return CarRacingEnv(
        render_mode=render_mode,
        continuous=continuous,
        fast_render=fast_render,
        lap_complete_percent=lap_complete_percent,
        domain_randomize=domain_randomize,
    )


__all__ = ["INFO_KEYS", "TRACK_AHEAD", "CarRacingEnv", "make_carracing_env"]
