"""The road layer of :class:`protege.tasks.carracing_env.CarRacingEnv`'s fast renderer.

:func:`render_road` draws what gymnasium's ``CarRacing._render_road`` draws (background,
grass patches, road and kerb polygons), pixel for pixel, with far fewer Python calls:

* every polygon near the view is transformed in one numpy expression with the same IEEE
  double arithmetic as gymnasium's ``_draw_colored_polygon`` (``(c·x − s·y)·zoom + tx``,
  the rotation coefficients from pygame's own ``Vector2.rotate_rad``);
* the candidates near the view come from a per-cell cache once the zoom has settled (the
  polygons whose centre lies within the window's half-diagonal plus their radius of any
  point of a 10-unit cell), so the distance test over all ~700–800 polygons runs once per
  cell instead of once per frame;
* gymnasium's own culling test is kept exactly, and polygons whose bounding box misses the
  visible rows by more than 3 px (they would draw nothing) are skipped;
* the vertices go to gfxdraw as the integers gfxdraw itself truncates them to, so the
  scan-line fill can run on a subsurface that starts at the first visible row: an integer
  shift of every vertex shifts gfxdraw's spans exactly, and rows above the subsurface are
  clipped before any pixel is written (the frame never shows them). The anti-aliased
  outlines, whose clipping moves their end points, are drawn on the whole window;
* the background polygon, when it covers the window with a 4-pixel margin, is a fill.

With numba installed (a dependency; :data:`COMPILED`), everything after the candidate
lookup is one compiled call, :func:`protege.tasks.carracing_raster.draw_view`: the
background fill, the same transform and culling, and, polygon by polygon, gfxdraw's
outline and scan-line fill re-implemented with SDL_gfx's integer arithmetic (the same bytes;
``tests/test_carracing_raster.py``). Without numba the numpy transform and the gfxdraw calls
below draw the layer, as do frames whose colours or vertices the kernels do not take.

The road's tile colours (changed in place by gymnasium's contact listener when a wheel
touches a tile) are rebound to rows of one array, so reading them is one numpy index.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pygame
from gymnasium.envs.box2d import car_racing as _cr
from pygame import gfxdraw

from protege.tasks import carracing_raster as raster

_VIEW_RADIUS = math.hypot(_cr.WINDOW_W / 2, _cr.WINDOW_H / 2)
"""Half the window's diagonal, px."""
_SCREEN_MARGIN = 4.0
_COVER_RADIUS = math.hypot(_cr.WINDOW_W / 2 + _SCREEN_MARGIN, _cr.WINDOW_H / 2 + _SCREEN_MARGIN)
_CULL_MARGIN = 3.0
_SCREEN_CORNERS = (
    (-_SCREEN_MARGIN, -_SCREEN_MARGIN),
    (_cr.WINDOW_W + _SCREEN_MARGIN, -_SCREEN_MARGIN),
    (_cr.WINDOW_W + _SCREEN_MARGIN, _cr.WINDOW_H + _SCREEN_MARGIN),
    (-_SCREEN_MARGIN, _cr.WINDOW_H + _SCREEN_MARGIN),
)
FIELD = [(_cr.PLAYFIELD, _cr.PLAYFIELD), (_cr.PLAYFIELD, -_cr.PLAYFIELD)]
FIELD += [(-_cr.PLAYFIELD, -_cr.PLAYFIELD), (-_cr.PLAYFIELD, _cr.PLAYFIELD)]
"""gymnasium's background polygon, in its order."""
COMPILED = raster.AVAILABLE
"""Draw the road layer's polygons with :mod:`protege.tasks.carracing_raster` (one compiled
call) instead of two gfxdraw calls per polygon; False without numba (or to test gfxdraw's
path)."""
_ZOOM = _cr.ZOOM * _cr.SCALE
"""The zoom after the first second's zoom-in."""
_CELL = 10.0
"""Side of a candidate-cache cell, world units."""
_GYM_LOW = -_cr.MAX_SHAPE_DIM
_GYM_HIGH = np.array([_cr.WINDOW_W + _cr.MAX_SHAPE_DIM, _cr.WINDOW_H + _cr.MAX_SHAPE_DIM])
"""gymnasium's culling box: a polygon is drawn if one vertex lies in it (bounds included)."""
_BOTH = np.frombuffer(np.array([True, True]).tobytes(), dtype=np.uint16)[0]
"""Two True flags (one vertex's x and y) read as one uint16."""


def _row_low(first_row: int) -> np.ndarray:
    """Lower bounds of (max x, max y, max −x, max −y) over a polygon's vertices for its
    bounding box to come within _CULL_MARGIN px of the window below ``first_row``."""
    m = _CULL_MARGIN
    return np.array([-m, first_row - m, -(_cr.WINDOW_W - 1 + m), -(_cr.WINDOW_H - 1 + m)])


_ROW_LOW: dict[int, np.ndarray] = {}


def _grass_polygons() -> np.ndarray:
    """Gymnasium's 400 grass patches as a ``(400, 4, 2)`` array, built with its expressions."""
    g = _cr.GRASS_DIM
    grass = []
    for x in range(-20, 20, 2):
        for y in range(-20, 20, 2):
            grass.append(
                [
                    (g * x + g, g * y + 0),
                    (g * x + 0, g * y + 0),
                    (g * x + 0, g * y + g),
                    (g * x + g, g * y + g),
                ]
            )
    return np.array(grass, dtype=np.float64)


GRASS = _grass_polygons()


def _color_ints(color: Any) -> tuple[int, int, int] | None:
    """``color`` as gfxdraw reads it (three numbers in 0–255, truncated), else None."""
    values = [float(v) for v in color]
    if len(values) == 3 and all(0.0 <= v <= 255.0 for v in values):
        return int(values[0]), int(values[1]), int(values[2])
    return None


def fill_color(color: Any) -> tuple[int, int, int] | None:
    """``color`` as integers if it is three whole numbers (what a fill can paint), else None."""
    values = [float(v) for v in color]
    if len(values) == 3 and all(v.is_integer() for v in values):
        return int(values[0]), int(values[1]), int(values[2])
    return None


def covers_screen(c: float, s: float, zoom: float, tx: float, ty: float) -> bool:
    """Whether the playfield square, on screen, contains the window plus a 4-pixel margin.

    The margin dwarfs the sub-pixel differences between this float test and gfxdraw's
    integer rasterisation, so when it holds every window pixel is inside the filled polygon.
    """
    # Quick sufficient test: the disc around the window's centre that holds the window and
    # its margin lies inside the square (the view is a rotation, a zoom and a shift).
    sx, sy = _cr.WINDOW_W / 2 - tx, _cr.WINDOW_H / 2 - ty
    cx, cy = (c * sx + s * sy) / zoom, (c * sy - s * sx) / zoom
    if max(abs(cx), abs(cy)) + _COVER_RADIUS / zoom < _cr.PLAYFIELD:
        return True
    pts = [((c * x - s * y) * zoom + tx, (s * x + c * y) * zoom + ty) for x, y in FIELD]
    signs = set()
    for i, (x0, y0) in enumerate(pts):
        x1, y1 = pts[(i + 1) % len(pts)]
        for px, py in _SCREEN_CORNERS:
            signs.add((x1 - x0) * (py - y0) - (y1 - y0) * (px - x0) > 0)
            if len(signs) > 1:
                return False
    return True


class RoadIndex:
    """The grass and road polygons of one track, as arrays, with the per-cell candidates."""

    def __init__(self, road_poly: list[Any], tiles: list[Any]) -> None:
        self.road_poly = road_poly
        road = [[(p[0], p[1]) for p in poly] for poly, _ in road_poly]
        verts = np.concatenate([GRASS, np.array(road, dtype=np.float64).reshape(-1, 4, 2)])
        self.n_grass = len(GRASS)
        self.verts = verts
        self.centres = verts.mean(axis=1)
        self.radii = np.sqrt(((verts - self.centres[:, None]) ** 2).sum(-1)).max(1)
        self.cells: dict[tuple[int, int], tuple[np.ndarray, np.ndarray, np.ndarray, int]] = {}
        # One array for all road colours; the tiles' own colour arrays become its rows, so
        # the contact listener's in-place recolouring (tile.color[:] = ...) is seen here.
        self.colors = np.array([np.asarray(c, dtype=np.float64) for _, c in road_poly])
        by_id = {id(t.color): t for t in tiles}
        for k, (poly, color) in enumerate(road_poly):
            tile = by_id.get(id(color))
            if tile is not None:
                tile.color = self.colors[k]
            if isinstance(color, np.ndarray):
                road_poly[k] = (poly, self.colors[k])

    def near(
        self, cx: float, cy: float, zoom: float
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        """The polygons that may reach the window centred at (cx, cy): their indices
        (ascending), their vertices' x and y as ``(m, 4, 1)`` arrays, and how many of them
        are grass patches (those come first).

        Conservative: a polygon whose centre is farther from the window's centre than the
        window's half-diagonal plus its own radius is off-screen; the exact tests follow.
        """
        if zoom != _ZOOM:  # the first second's zoom-in: test directly
            return self._candidates(self._within(cx, cy, zoom, 0.0))
        key = (math.floor(cx / _CELL), math.floor(cy / _CELL))
        cand = self.cells.get(key)
        if cand is None:
            mid_x, mid_y = (key[0] + 0.5) * _CELL, (key[1] + 0.5) * _CELL
            cand = self._candidates(self._within(mid_x, mid_y, zoom, _CELL * math.sqrt(0.5)))
            self.cells[key] = cand
        return cand

    def _candidates(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        verts = self.verts[ids]
        n_grass = int(np.searchsorted(ids, self.n_grass))
        return ids, verts[..., 0:1].copy(), verts[..., 1:2].copy(), n_grass

    def _within(self, cx: float, cy: float, zoom: float, slack: float) -> np.ndarray:
        reach = (_VIEW_RADIUS + _CULL_MARGIN + 1.0) / zoom + slack + self.radii
        dx, dy = self.centres[:, 0] - cx, self.centres[:, 1] - cy
        return np.flatnonzero(dx * dx + dy * dy <= reach * reach)


def draw_background(
    env: Any,
    surf: pygame.Surface,
    visible: pygame.Surface,
    zoom: float,
    translation: tuple[float, float],
    angle: float,
) -> None:
    """gymnasium's background polygon: a fill of ``visible`` when it covers the window."""
    unit = pygame.math.Vector2(1.0, 0.0).rotate_rad(angle)
    bg = fill_color(env.bg_color)
    if bg is not None and covers_screen(unit[0], unit[1], zoom, *translation):
        # The background polygon covers the whole window with margin, so filling it
        # (a single opaque colour, every pixel written) is what the 0.9 ms scan-line fill
        # of the ~10,000-pixel-high polygon amounts to; its anti-aliased outline lies
        # entirely off-screen.
        visible.fill(bg)
    else:
        # (gymnasium's helper draws into env.surf whatever surface it is passed; it draws
        # on a new, black window, and a reused canvas must start as one)
        assert surf is env.surf
        surf.fill((0, 0, 0))
        env._draw_colored_polygon(surf, FIELD, env.bg_color, zoom, translation, angle, clip=False)


def render_road(
    env: Any,
    surf: pygame.Surface,
    zoom: float,
    translation: tuple[float, float],
    angle: float,
    first_row: int = 0,
) -> None:
    """Draw background, grass and road into ``surf`` exactly as ``CarRacing._render_road``.

    Window rows above ``first_row`` may be left as they are (nobody sees them).
    """
    # Rotation coefficients exactly as pygame computes them (incl. its special-casing of
    # multiples of 90°): rotating (1, 0) gives (cos, sin).
    unit = pygame.math.Vector2(1.0, 0.0).rotate_rad(angle)
    c, s = unit[0], unit[1]
    tx, ty = translation
    width, height = surf.get_size()
    visible = surf.subsurface((0, first_row, width, height - first_row)) if first_row else surf

    index: RoadIndex | None = getattr(env, "_road_index", None)
    if (
        index is None
        or index.road_poly is not env.road_poly
        or len(index.colors) != len(env.road_poly)
    ):
        index = RoadIndex(env.road_poly, env.road)
        env._road_index = index

    sx, sy = _cr.WINDOW_W / 2 - tx, _cr.WINDOW_H / 2 - ty
    near, xs, ys, grass = index.near((c * sx + s * sy) / zoom, (c * sy - s * sx) / zoom, zoom)
    grass_rgb = _color_ints(env.grass_color)
    bg = _color_ints(env.bg_color)
    if COMPILED and grass_rgb is not None and bg is not None and raster.supports(surf):
        # One compiled call: the background, then the transform and culling below, then
        # for each polygon gfxdraw's outline and fill, the same bytes
        # (protege.tasks.carracing_raster). The background is a fill where the background
        # polygon covers the window, else, as gymnasium draws it, a black window and the
        # polygon (its fill visits only the visible rows). The fill also leaves the window
        # in the CPU's cache (SDL's SSE fill uses non-temporal stores, which bypass it),
        # where the polygons and smoothscale then find it.
        covers = covers_screen(c, s, zoom, tx, ty)
        row_low = _row_low(first_row)
        view = (c, s, zoom, tx, ty, _GYM_LOW, _GYM_HIGH[0], _GYM_HIGH[1])
        reach = (row_low[0], row_low[1], -row_low[2], -row_low[3])
        drawn = raster.draw_view(
            surf,
            xs,
            ys,
            near,
            index.n_grass,
            index.colors,
            grass_rgb,
            view,
            reach,
            first_row,
            bg if covers else (0, 0, 0),
            None if covers else (FIELD, bg),
        )
        if drawn >= 0:
            return
    draw_background(env, surf, visible, zoom, translation, angle)
    # (c·x − s·y, s·x + c·y)·zoom + (tx, ty) per vertex, as gymnasium: x·(c, s) + y·(−s, c)
    # is (c·x + (−s)·y, s·x + c·y), and a + (−b) is a − b exactly.
    coef = np.array(((c, s), (-s, c), (tx, ty)))
    pts = xs * coef[0]
    pts += ys * coef[1]
    pts *= zoom
    pts += coef[2]

    # Gymnasium's test (kept exactly: some vertex within MAX_SHAPE_DIM of the window) also
    # passes polygons up to ~380 px off-screen, which draw nothing. Skipping those whose
    # bounding box misses the visible rows by more than _CULL_MARGIN px (covering the
    # truncation to integer pixels and the anti-aliased outline's extra pixel) is invisible.
    inside = (pts >= _GYM_LOW) & (pts <= _GYM_HIGH)
    # a vertex is inside when both its coordinates are: its two flags, read as one uint16
    gymnasium_draws = (inside.view(np.uint16) == _BOTH).any(axis=1)[:, 0]
    # the bounding box reaches the visible rows: max(x), max(y), max(−x), max(−y) of the
    # vertices at least -m, first_row - m, -(W - 1 + m), -(H - 1 + m)
    bounds = np.concatenate((pts, -pts), axis=2).max(axis=1)
    low = _ROW_LOW.get(first_row)
    if low is None:
        low = _ROW_LOW[first_row] = _row_low(first_row)
    keep = np.flatnonzero(gymnasium_draws & (bounds >= low).all(axis=1))
    # gfxdraw truncates each coordinate to an integer (int(), toward zero): do it here.
    ints = pts[keep].astype(np.int64)
    n_grass = int(np.searchsorted(keep, grass))  # grass first, then road, as drawn
    road_colors = index.colors[near[keep[n_grass:]] - index.n_grass]
    whole = ints.tolist()
    shifted = (ints - (0, first_row)).tolist() if first_row else whole
    colors: list[Any] = [env.grass_color] * n_grass
    colors += road_colors.astype(np.int64).tolist()
    for poly, poly_visible, color in zip(whole, shifted, colors, strict=True):
        gfxdraw.aapolygon(surf, poly, color)
        gfxdraw.filled_polygon(visible, poly_visible, color)


__all__ = [
    "FIELD",
    "GRASS",
    "RoadIndex",
    "covers_screen",
    "draw_background",
    "fill_color",
    "render_road",
]
