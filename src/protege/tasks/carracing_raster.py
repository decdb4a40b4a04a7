"""pygame's ``gfxdraw.aapolygon`` and ``gfxdraw.filled_polygon``, compiled, for many polygons.

:func:`draw_polygons` draws a list of polygons into a 32-bit ``XRGB8888`` pixel buffer the
way the CarRacing road layer does (for each polygon in turn: its anti-aliased outline, then
its scan-line fill), giving the same bytes as those two gfxdraw calls of pygame-ce 2.5
(its vendored SDL_gfx), in one compiled call instead of two Python calls per polygon;
:func:`draw_view` also fills the background and transforms and culls the polygons first.

The kernels follow SDL_gfx's integer arithmetic step for step:

* **fill** — for each row from the lowest to the highest vertex, every non-horizontal edge
  that spans the row (upper end included, lower end excluded, except on the last row where
  edges ending there count) gives a 16.16 fixed-point crossing
  ``(65536·(y − y1) / (y2 − y1))·(x2 − x1) + 65536·x1`` (integer division); the crossings
  are sorted and paired, each pair's span runs from the first crossing plus one unit to the
  second minus one unit, each rounded half up to a pixel (the two ends swapped if they
  cross), clipped to the clip rectangle;
* **outline** — one Wu line per edge (the closing edge last), each first clipped by
  Cohen–Sutherland with SDL_gfx's single-precision slope and truncations (which may swap
  the end points), then: vertical and horizontal lines as solid runs (end included), a
  single point as a pixel, otherwise the first (clipped) point as a solid pixel and, between
  the two ends (ends excluded), two pixels per step weighted by the top 8 bits of a 32-bit
  error accumulator (its step a 16.16 slope shifted up 16 bits, wrapping; a carry moves the
  pair), each blended with alpha ``alpha·weight >> 8``;
* **blend** (alpha below 255) — per channel ``⌊(d·(256 − a) + c·a) / 256⌋``, what SDL_gfx's
  wrapping unsigned arithmetic on each masked channel amounts to; the unused top byte ends
  up 0. Alpha 255 stores the colour.

Coordinates must lie within ±16,383 (no 32-bit intermediate of SDL_gfx can overflow),
colours are 0–255 integers (RGBA). numba compiles the kernels once and caches them on disk
(``cache=True``); without numba, :data:`AVAILABLE` is False and callers use gfxdraw.
"""

from __future__ import annotations

from typing import Any

import numpy as np

njit: Any
try:
    from numba import njit
except ImportError:  # pragma: no cover - numba is a dependency; render_road falls back
    njit = None

AVAILABLE = njit is not None
"""Whether the compiled kernels can be used (numba importable)."""

COORD_LIMIT = 16383
"""Largest coordinate magnitude the kernels accept (no SDL_gfx intermediate overflows)."""

_U32 = 0xFFFFFFFF


def _jit(fn: Any) -> Any:
    return njit(cache=True, nogil=True)(fn) if AVAILABLE else fn


def _jit_inline(fn: Any) -> Any:
    """A small helper compiled into its callers (numba-level inlining)."""
    return njit(cache=True, nogil=True, inline="always")(fn) if AVAILABLE else fn


@_jit_inline
def _blend(dst: int, color: int, alpha: int) -> int:
    """SDL_gfx's 32-bit blend of ``color`` (XRGB) over ``dst`` with ``alpha`` (0–254):
    its wrapping unsigned ``d + ((c − d)·a >> 8)`` on each masked channel is
    ``⌊(d·(256 − a) + c·a) / 256⌋`` (tested for every d, c, a); red and blue go together in
    two 16-bit lanes that cannot carry into each other. The top byte becomes 0."""
    d = np.int64(dst)
    keep = 256 - alpha
    rb = (((d & 0xFF00FF) * keep + (color & 0xFF00FF) * alpha) >> 8) & 0xFF00FF
    g = (((d & 0xFF00) * keep + (color & 0xFF00) * alpha) >> 8) & 0xFF00
    return int(rb | g)


@_jit_inline
def _put(pix: Any, x: int, y: int, color: int, alpha: int, clip: Any) -> None:
    """One pixel, solid (alpha 255) or blended, if inside the clip rectangle."""
    if clip[0] <= x <= clip[2] and clip[1] <= y <= clip[3]:
        if alpha == 255:
            pix[y, x] = color
        else:
            pix[y, x] = _blend(pix[y, x], color, alpha)


@_jit
def _hline(pix: Any, x1: int, x2: int, y: int, color: int, alpha: int, clip: Any) -> None:
    """A horizontal run from x1 to x2 (either order, both included), clipped."""
    if x1 > x2:
        x1, x2 = x2, x1
    if x2 < clip[0] or x1 > clip[2] or y < clip[1] or y > clip[3]:
        return
    x1 = max(x1, clip[0])
    x2 = min(x2, clip[2])
    row = pix[y]
    if alpha == 255:
        row[x1 : x2 + 1] = color
    else:
        for x in range(x1, x2 + 1):
            row[x] = _blend(row[x], color, alpha)


@_jit
def _vline(pix: Any, x: int, y1: int, y2: int, color: int, alpha: int, clip: Any) -> None:
    """A vertical run from y1 to y2 (either order, both included), clipped."""
    if y1 > y2:
        y1, y2 = y2, y1
    for y in range(max(y1, clip[1]), min(y2, clip[3]) + 1):
        _put(pix, x, y, color, alpha, clip)


@_jit_inline
def _outcode(x: int, y: int, clip: Any) -> int:
    """Cohen–Sutherland's code: 1 left, 2 right, 8 above, 4 below the clip rectangle."""
    code = 1 if x < clip[0] else (2 if x > clip[2] else 0)
    return code | (8 if y < clip[1] else (4 if y > clip[3] else 0))


@_jit_inline
def _to_int16(v: int) -> int:
    return ((v + 32768) & 0xFFFF) - 32768


@_jit
def _clip_line(x1: int, y1: int, x2: int, y2: int, clip: Any) -> tuple[bool, int, int, int, int]:
    """Cohen–Sutherland as SDL_gfx: float32 slope, truncated moves, maybe swapped ends."""
    left, top, right, bottom = clip[0], clip[1], clip[2], clip[3]
    while True:
        c1 = _outcode(x1, y1, clip)
        c2 = _outcode(x2, y2, clip)
        if (c1 | c2) == 0:
            return True, x1, y1, x2, y2
        if (c1 & c2) != 0:
            return False, x1, y1, x2, y2
        if c1 == 0:  # move the outside point
            x1, x2 = x2, x1
            y1, y2 = y2, y1
            c1, c2 = c2, c1
        m = np.float32(y2 - y1) / np.float32(x2 - x1) if x2 != x1 else np.float32(1.0)
        if c1 & 1:
            y1 = _to_int16(y1 + _to_int16(int(np.float32(left - x1) * m)))
            x1 = left
        elif c1 & 2:
            y1 = _to_int16(y1 + _to_int16(int(np.float32(right - x1) * m)))
            x1 = right
        elif c1 & 4:
            if x2 != x1:
                x1 = _to_int16(x1 + _to_int16(int(np.float32(bottom - y1) / m)))
            y1 = bottom
        elif c1 & 8:
            if x2 != x1:
                x1 = _to_int16(x1 + _to_int16(int(np.float32(top - y1) / m)))
            y1 = top


@_jit
def _aaline(
    pix: Any, x1: int, y1: int, x2: int, y2: int, color: int, alpha: int, clip: Any
) -> None:
    """SDL_gfx's anti-aliased line without its end point, as aapolygon draws each edge."""
    ok, x1, y1, x2, y2 = _clip_line(x1, y1, x2, y2, clip)
    if not ok:
        return
    xx0, yy0, xx1, yy1 = x1, y1, x2, y2
    if yy0 > yy1:
        xx0, yy0, xx1, yy1 = xx1, yy1, xx0, yy0
    dx = xx1 - xx0
    dy = yy1 - yy0
    if dx == 0:
        if dy > 0:
            _vline(pix, x1, yy0, yy0 + dy, color, alpha, clip)
        else:
            _put(pix, x1, y1, color, alpha, clip)
        return
    if dy == 0:
        _hline(pix, xx0, xx0 + dx, y1, color, alpha, clip)
        return
    xdir = 1
    if dx < 0:
        xdir = -1
        dx = -dx
    _put(pix, x1, y1, color, alpha, clip)
    acc = 0
    if dy > dx:  # y-major: x moves by a fraction each row
        adj = (((dx << 16) // dy) << 16) & _U32
        x_next = xx0 + xdir
        for _ in range(dy - 1):
            before = acc
            acc = (acc + adj) & _U32
            if acc <= before:
                xx0 = x_next
                x_next += xdir
            yy0 += 1
            w = (acc >> 24) & 255
            _put(pix, xx0, yy0, color, (alpha * (255 - w)) >> 8, clip)
            _put(pix, x_next, yy0, color, (alpha * w) >> 8, clip)
    else:  # x-major: y moves by a fraction each column
        adj = (((dy << 16) // dx) << 16) & _U32
        y_next = yy0 + 1
        for _ in range(dx - 1):
            before = acc
            acc = (acc + adj) & _U32
            if acc <= before:
                yy0 = y_next
                y_next += 1
            xx0 += xdir
            w = (acc >> 24) & 255
            _put(pix, xx0, yy0, color, (alpha * (255 - w)) >> 8, clip)
            _put(pix, xx0, y_next, color, (alpha * w) >> 8, clip)


@_jit
def _aapolygon(pix: Any, v: Any, color: int, alpha: int, clip: Any) -> None:
    """``gfxdraw.aapolygon`` of the ``(n, 2)`` vertices: the edges in order, closing last."""
    n = v.shape[0]
    for i in range(1, n):
        _aaline(pix, v[i - 1, 0], v[i - 1, 1], v[i, 0], v[i, 1], color, alpha, clip)
    _aaline(pix, v[n - 1, 0], v[n - 1, 1], v[0, 0], v[0, 1], color, alpha, clip)


@_jit
def _filled_polygon(pix: Any, v: Any, color: int, alpha: int, clip: Any, crossings: Any) -> None:
    """``gfxdraw.filled_polygon`` of the ``(n, 2)`` vertices: SDL_gfx's scan-line fill (see
    the module's docstring)."""
    n, xs, ys = v.shape[0], v[:, 0], v[:, 1]
    miny, maxy = ys.min(), ys.max()
    # rows outside the clip rectangle paint nothing; each row is independent of the others
    for y in range(max(miny, clip[1]), min(maxy, clip[3]) + 1):
        count = 0
        for i in range(n):
            a = n - 1 if i == 0 else i - 1
            ya, yb = ys[a], ys[i]
            if ya < yb:
                xa, xb = xs[a], xs[i]
            elif ya > yb:
                ya, yb = yb, ya
                xa, xb = xs[i], xs[a]
            else:
                continue
            if (ya <= y < yb) or (y == maxy and ya < y <= yb):
                cross = ((65536 * (y - ya)) // (yb - ya)) * (xb - xa) + 65536 * xa
                # insertion keeps the crossings sorted (the order qsort gives)
                k = count
                while k > 0 and crossings[k - 1] > cross:
                    crossings[k] = crossings[k - 1]
                    k -= 1
                crossings[k] = cross
                count += 1
        for i in range(0, count - 1, 2):
            lo, hi = crossings[i] + 1, crossings[i + 1] - 1
            lo = (lo >> 16) + ((lo & 32768) >> 15)  # rounded half up
            hi = (hi >> 16) + ((hi & 32768) >> 15)
            _hline(pix, lo, hi, y, color, alpha, clip)


@_jit
def _draw_all(
    pix: Any, verts: Any, rgba: Any, outline: bool, fill: bool, line_clip: Any, fill_clip: Any
) -> None:
    crossings = np.empty(verts.shape[1] + 1, dtype=np.int64)
    # the clip rectangles as tuples: passed by value, where arrays would cost every call
    lc = (line_clip[0], line_clip[1], line_clip[2], line_clip[3])
    fc = (fill_clip[0], fill_clip[1], fill_clip[2], fill_clip[3])
    for p in range(verts.shape[0]):
        color = (rgba[p, 0] << 16) | (rgba[p, 1] << 8) | rgba[p, 2]
        alpha = rgba[p, 3]
        if outline:
            _aapolygon(pix, verts[p], color, alpha, lc)
        if fill:
            _filled_polygon(pix, verts[p], color, alpha, fc, crossings)


@_jit
def _view_polygons(
    xs: Any,
    ys: Any,
    ids: Any,
    n_grass: int,
    road_rgb: Any,
    grass: Any,
    view: Any,
    bounds: Any,
) -> tuple[Any, Any]:
    """The road layer's visible polygons and colours, as ``render_road``'s numpy path finds
    them (see there), or empty arrays with a colour of -1 if one cannot be drawn here."""
    c, s, zoom, tx, ty = view[0], view[1], view[2], view[3], view[4]
    gym_low, gym_high_x, gym_high_y = view[5], view[6], view[7]
    m, n = xs.shape[0], xs.shape[1]
    verts = np.empty((m, n, 2), dtype=np.int64)
    rgba = np.empty((m, 4), dtype=np.int64)
    px = np.empty(n)
    py = np.empty(n)
    kept = 0
    for p in range(m):
        drawn = False
        for i in range(n):
            x, y = xs[p, i, 0], ys[p, i, 0]
            # the same IEEE double operations in the same order as the numpy expression
            vx = x * c
            vx += y * -s
            vx *= zoom
            vx += tx
            vy = x * s
            vy += y * c
            vy *= zoom
            vy += ty
            px[i] = vx
            py[i] = vy
            if gym_low <= vx <= gym_high_x and gym_low <= vy <= gym_high_y:
                drawn = True
        if not drawn:
            continue
        if px.max() < bounds[0] or py.max() < bounds[1]:
            continue
        if px.min() > bounds[2] or py.min() > bounds[3]:
            continue
        for i in range(n):
            if not (abs(px[i]) < COORD_LIMIT + 1 and abs(py[i]) < COORD_LIMIT + 1):
                rgba[0, 0] = -1
                return verts[:0], rgba[:1]
            verts[kept, i, 0] = int(px[i])  # toward zero, as gfxdraw
            verts[kept, i, 1] = int(py[i])
        if ids[p] < n_grass:
            rgba[kept, 0], rgba[kept, 1], rgba[kept, 2] = grass[0], grass[1], grass[2]
        else:
            for k in range(3):
                v = road_rgb[ids[p] - n_grass, k]
                if not 0.0 <= v <= 255.0:
                    rgba[0, 0] = -1
                    return verts[:0], rgba[:1]
                rgba[kept, k] = int(v)
        rgba[kept, 3] = 255
        kept += 1
    return verts[:kept], rgba[:kept]


@_jit
def _draw_view(
    pix: Any,
    xs: Any,
    ys: Any,
    ids: Any,
    n_grass: int,
    road_rgb: Any,
    grass: Any,
    view: Any,
    bounds: Any,
    line_clip: Any,
    fill_clip: Any,
    background: int,
    background_top: int,
    width: int,
    field: Any,
    field_rgba: Any,
) -> int:
    verts, rgba = _view_polygons(xs, ys, ids, n_grass, road_rgb, grass, view, bounds)
    if len(verts) == 0 and len(rgba) == 1:
        return -1
    if background >= 0:
        for y in range(background_top, pix.shape[0]):
            pix[y, :width] = background
    _draw_all(pix, field, field_rgba, True, True, line_clip, fill_clip)
    _draw_all(pix, verts, rgba, True, True, line_clip, fill_clip)
    return len(verts)


def draw_view(
    surf: Any,
    xs: np.ndarray,
    ys: np.ndarray,
    ids: np.ndarray,
    n_grass: int,
    road_rgb: np.ndarray,
    grass_rgb: tuple[int, int, int],
    view: tuple[float, ...],
    bounds: tuple[float, float, float, float],
    fill_top: int,
    background: tuple[int, int, int] | None = None,
    field: tuple[list[tuple[float, float]], tuple[int, int, int]] | None = None,
) -> int:
    """CarRacing's road layer over the background, in one compiled call: transform, cull and
    draw (outline, then fill, each in turn) the candidate polygons.

    ``xs``, ``ys``: the candidates' vertex coordinates, ``(m, n, 1)`` float64, grass patches
    (``ids`` below ``n_grass``, coloured ``grass_rgb``) first, then road polygons (coloured by
    row ``ids − n_grass`` of ``road_rgb``); ``view``: ``(cos, sin, zoom, tx, ty, low,
    high_x, high_y)``: a vertex ``(x, y)`` lands at ``((cos·x − sin·y)·zoom + tx, (sin·x +
    cos·y)·zoom + ty)``, and a polygon is drawn if one vertex lies in the box from ``low`` to
    ``high_x``, ``high_y`` and its bounding box reaches ``bounds`` (max x ≥ ``bounds[0]``,
    max y ≥ ``bounds[1]``, min x ≤ ``bounds[2]``, min y ≤ ``bounds[3]``). The fills are
    clipped to the rows from ``fill_top`` on. If ``background`` (RGB, 0–255) is given, the
    rows from ``fill_top`` on are first filled with it, as ``surf.subsurface((0, fill_top,
    w, h − fill_top)).fill(background)`` does. ``field`` (world vertices, RGB) is a polygon
    drawn next, never culled (gymnasium's background polygon). Returns the number of
    polygons drawn, or -1 (nothing drawn, no fill either) if a vertex or a colour is out of
    range for the kernels; then the caller draws with pygame.
    """
    line_clip, fill_clip = _clips(surf, fill_top)
    field_verts = np.zeros((0 if field is None else 1, 4, 2), dtype=np.int64)
    field_rgba = np.full((len(field_verts), 4), 255, dtype=np.int64)
    if field is not None:
        c, s, zoom, tx, ty = view[:5]
        for i, (x, y) in enumerate(field[0]):  # the kernels' transform, in Python floats
            px, py = (x * c + y * -s) * zoom + tx, (x * s + y * c) * zoom + ty
            if not (abs(px) < COORD_LIMIT + 1 and abs(py) < COORD_LIMIT + 1):
                return -1
            field_verts[0, i] = int(px), int(py)
        field_rgba[0, :3] = field[1]
    pix, buf = pixel_view(surf)
    try:
        return int(
            _draw_view(
                pix,
                xs,
                ys,
                ids,
                n_grass,
                road_rgb,
                np.array(grass_rgb, dtype=np.int64),
                np.array(view, dtype=np.float64),
                np.array(bounds, dtype=np.float64),
                line_clip,
                fill_clip,
                -1 if background is None else _xrgb(background),
                fill_top,
                surf.get_width(),
                field_verts,
                field_rgba,
            )
        )
    finally:
        del pix, buf


def _clips(surf: Any, fill_top: int) -> tuple[np.ndarray, np.ndarray]:
    """The outlines' and the fills' clip rectangles (x0, y0, x1, y1, inclusive; an empty
    clip rectangle gives x1 < x0 or y1 < y0, where nothing is drawn)."""
    cx, cy, cw, ch = surf.get_clip()
    line_clip = np.array([cx, cy, cx + cw - 1, cy + ch - 1], dtype=np.int64)
    fill_clip = line_clip.copy()
    fill_clip[1] = max(cy, fill_top)
    return line_clip, fill_clip


def _xrgb(rgb: tuple[int, int, int]) -> int:
    """The pixel value of an RGB colour on an XRGB8888 surface (as SDL maps it)."""
    r, g, b = rgb
    return (r << 16) | (g << 8) | b


def pixel_view(surf: Any) -> tuple[np.ndarray, Any]:
    """A writable ``(height, pitch / 4)`` uint32 view of a 32-bit surface's pixels, and the
    buffer object that keeps the surface locked while it lives (delete both when done)."""
    buf = surf.get_buffer()
    pix = np.frombuffer(buf, dtype=np.uint32).reshape(surf.get_height(), surf.get_pitch() // 4)
    return pix, buf


def supports(surf: Any) -> bool:
    """Whether ``surf`` has the pixel format the kernels write (32-bit XRGB8888)."""
    return bool(
        AVAILABLE
        and surf.get_bitsize() == 32
        and surf.get_bytesize() == 4
        and tuple(surf.get_masks()) == (0xFF0000, 0xFF00, 0xFF, 0)
    )


def draw_polygons(
    surf: Any,
    verts: np.ndarray,
    rgba: np.ndarray,
    *,
    outline: bool = True,
    fill: bool = True,
    fill_top: int = 0,
) -> None:
    """For each polygon in turn, ``gfxdraw.aapolygon`` then ``gfxdraw.filled_polygon``.

    ``verts``: ``(m, n, 2)`` int64 vertices, C-contiguous, coordinates within
    ±:data:`COORD_LIMIT`; ``rgba``: ``(m, 4)`` int64 colours, C-contiguous. The outlines
    are clipped to ``surf``'s clip rectangle; the fills also to the rows from ``fill_top``
    on (the same pixels as filling a subsurface that starts at that row with the vertices
    shifted up). ``surf`` must pass :func:`supports`.
    """
    line_clip, fill_clip = _clips(surf, fill_top)
    pix, buf = pixel_view(surf)
    try:
        _draw_all(pix, verts, rgba, outline, fill, line_clip, fill_clip)
    finally:
        del pix, buf


__all__ = ["AVAILABLE", "COORD_LIMIT", "draw_polygons", "draw_view", "pixel_view", "supports"]
