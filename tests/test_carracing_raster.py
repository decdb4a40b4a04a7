"""The compiled polygon kernels against pygame's gfxdraw: byte for byte on a 1000×800 surface."""

from __future__ import annotations

import numpy as np
import pygame
import pytest
from pygame import gfxdraw

from protege.tasks import carracing_raster as raster

pytestmark = pytest.mark.skipif(not raster.AVAILABLE, reason="numba is not installed")

W, H = 1000, 800


def _polygon(rng: np.random.Generator, kind: int, n: int) -> np.ndarray:
    """``n`` integer vertices of one of six kinds of polygon (``kind`` mod 6)."""
    kind %= 6
    if kind == 0:  # small, near or in the view
        pts = rng.uniform(-50, [W + 50, H + 50]) + rng.normal(0, 20, (n, 2))
    elif kind == 1:  # large, concave or self-crossing, far past the edges
        pts = rng.uniform(-600, [W + 600, H + 600], (n, 2))
    elif kind == 2:  # tiny: a few pixels, often repeated points
        pts = rng.uniform(0, [W, H]) + rng.integers(-2, 3, (n, 2))
    elif kind == 3:  # across an edge or a corner of the window
        x = rng.choice([0.0, W - 1.0, rng.uniform(0, W)])
        y = rng.choice([0.0, H - 1.0, rng.uniform(0, H)])
        pts = np.array([x, y]) + rng.normal(0, 30, (n, 2))
    elif kind == 4:  # degenerate: all points on one segment, maybe a repeated vertex
        a = rng.uniform(0, [W, H])
        b = a + rng.normal(0, 40, 2)
        pts = a + rng.uniform(0, 1, n)[:, None] * (b - a)
        if rng.uniform() < 0.5:
            pts[1] = pts[0]
    else:  # road-tile-like quadrilaterals, axis-aligned ones among them
        pts = rng.uniform(-100, [W + 100, H + 100]) + rng.normal(0, 60, (n, 2))
        if rng.uniform() < 0.3:
            x0, y0 = pts[0]
            x1, y1 = pts[1]
            pts = np.array([(x0, y0), (x1, y0), (x1, y1), (x0, y1)] * n)[:n]
    return np.trunc(pts).astype(np.int64)


def _surfaces(rng: np.random.Generator) -> tuple[pygame.Surface, pygame.Surface]:
    """Two window-sized surfaces with the same random background."""
    background = rng.integers(0, 2**24, (W, H), dtype=np.uint32)
    surfs = (pygame.Surface((W, H)), pygame.Surface((W, H)))
    for surf in surfs:
        pygame.surfarray.pixels2d(surf)[:] = background
    return surfs


def _bytes(surf: pygame.Surface) -> bytes:
    return bytes(surf.get_buffer())


def _scene(
    rng: np.random.Generator, count: int, n: int, opaque: bool
) -> tuple[np.ndarray, np.ndarray]:
    verts = np.stack([_polygon(rng, k, n) for k in range(count)])
    rgba = rng.integers(0, 256, (count, 4))
    if opaque:
        rgba[:, 3] = 255
    return verts, rgba


def _sdl_gfx_blend(dst: np.ndarray, color: np.ndarray, alpha: int) -> np.ndarray:
    """SDL_gfx's 32-bit blend, literally: per channel (mask m, shift s) in wrapping unsigned
    32-bit arithmetic ``(d_m + ((((c_m − d_m) >> s)·a >> 8) << s)) & m``, OR-ed (no alpha
    channel)."""
    u32 = np.uint64(0xFFFFFFFF)
    dst, color, a = dst.astype(np.uint64), color.astype(np.uint64), np.uint64(alpha)
    out = np.zeros_like(dst)
    for shift in (16, 8, 0):
        s, m = np.uint64(shift), np.uint64(0xFF << shift)
        d, c = dst & m, color & m
        step = ((((c - d) & u32) >> s) * a & u32) >> np.uint64(8)
        out |= (d + ((step << s) & u32)) & m
    return out


def test_blend_is_sdl_gfx_unsigned_channel_arithmetic() -> None:
    """Every (destination, colour) byte pair in every channel, every alpha 0–254, and a set
    top byte (which the blend clears)."""
    from numba import njit

    @njit
    def blend_all(dst: np.ndarray, color: np.ndarray, alpha: int) -> np.ndarray:
        out = np.empty_like(dst)
        for i in range(dst.size):
            out[i] = raster._blend(dst[i], color[i], alpha)
        return out

    d, c = (v.ravel().astype(np.int64) for v in np.meshgrid(np.arange(256), np.arange(256)))
    # each channel sees every (d, c) pair: the three channels are bijections of d and c
    dst = 0xAB000000 | (d << 16) | ((255 - d) << 8) | (d ^ 0x5A)
    color = (c << 16) | ((c ^ 0x33) << 8) | (255 - c)
    for alpha in range(255):
        want = _sdl_gfx_blend(dst, color, alpha)
        assert np.array_equal(blend_all(dst, color, alpha), want.astype(np.int64)), alpha


@pytest.mark.parametrize("opaque", [True, False])
@pytest.mark.parametrize("part", ["fill", "outline"])
def test_each_part_matches_gfxdraw(part: str, opaque: bool) -> None:
    """The scan-line fill alone against ``gfxdraw.filled_polygon``, the anti-aliased outline
    alone against ``gfxdraw.aapolygon``."""
    fill = part == "fill"
    rng = np.random.default_rng((11 if fill else 21) + opaque)
    draw = gfxdraw.filled_polygon if fill else gfxdraw.aapolygon
    for trial in range(24):
        ref, out = _surfaces(rng)
        verts, rgba = _scene(rng, 30, 3 + trial % 4, opaque)
        for v, color in zip(verts.tolist(), rgba.tolist(), strict=True):
            draw(ref, v, color)
        raster.draw_polygons(out, verts, rgba, fill=fill, outline=not fill)
        assert _bytes(ref) == _bytes(out), (part, trial)


def test_outline_then_fill_with_clip_rect_and_fill_top_matches_gfxdraw() -> None:
    """The road layer's sequence (outline on the window, fill on a subsurface starting at
    ``fill_top`` with the vertices shifted up), and clip rectangles."""
    rng = np.random.default_rng(31)
    for trial in range(24):
        ref, out = _surfaces(rng)
        clip = None
        if trial % 3 == 0:
            clip = (int(rng.integers(-50, 300)), int(rng.integers(-50, 300)))
            clip += (int(rng.integers(1, 800)), int(rng.integers(1, 600)))
            ref.set_clip(clip)
            out.set_clip(clip)
        top = int(rng.integers(0, 400)) if trial % 2 else 0
        verts, rgba = _scene(rng, 30, 4, opaque=True)
        visible = ref.subsurface((0, top, W, H - top))
        for v, color in zip(verts.tolist(), rgba.tolist(), strict=True):
            gfxdraw.aapolygon(ref, v, color)
            if clip is None:  # (a subsurface has its own clip rectangle)
                gfxdraw.filled_polygon(visible, [(x, y - top) for x, y in v], color)
            else:
                gfxdraw.filled_polygon(ref, v, color)
        del visible
        raster.draw_polygons(out, verts, rgba, fill_top=top if clip is None else 0)
        assert _bytes(ref) == _bytes(out), trial


def test_support_checks_the_pixel_format() -> None:
    assert raster.supports(pygame.Surface((8, 8)))
    assert not raster.supports(pygame.Surface((8, 8), pygame.SRCALPHA))
    assert not raster.supports(pygame.Surface((8, 8), 0, 24))


def test_draw_view_background_fill_matches_a_subsurface_fill() -> None:
    """The fused background fill writes what pygame's fill of the visible rows writes, top
    byte included, and leaves the rows above alone; with no candidate polygon it is all."""
    rng = np.random.default_rng(41)
    empty = np.zeros((0, 4, 1))
    for top in (0, 1, 100, 799):
        ref, out = _surfaces(rng)
        color = tuple(int(v) for v in rng.integers(0, 256, 3))
        ref.subsurface((0, top, W, H - top)).fill(color)
        view = (1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0)
        ids = np.zeros(0, dtype=np.int64)
        road = np.zeros((1, 3))
        drawn = raster.draw_view(
            out, empty, empty, ids, 0, road, (0, 0, 0), view, (0, 0, 0, 0), top, color
        )
        assert drawn == 0
        assert _bytes(ref) == _bytes(out), top


def test_draw_view_refuses_what_gfxdraw_would_not_draw_and_draws_nothing() -> None:
    """A colour outside 0–255 or a vertex (of a polygon or of the background polygon) beyond
    the kernels' range: -1, no pixel written."""
    rng = np.random.default_rng(51)
    xs = np.array([0.0, 10.0, 10.0, 0.0]).reshape(1, 4, 1)
    ys = np.array([0.0, 0.0, 10.0, 10.0]).reshape(1, 4, 1)
    view = (1.0, 0.0, 1.0, 5.0, 5.0, -100.0, 1100.0, 900.0)
    reach = (-3.0, -3.0, 1002.0, 802.0)
    ids = np.array([1])  # a road polygon (ids from n_grass = 1 on)
    for road, scale in ((np.array([[1.0, 2.0, 256.5]]), 1.0), (np.ones((1, 3)), 1e5)):
        _, out = _surfaces(rng)
        before = _bytes(out)
        v = (1.0, 0.0, scale, *view[3:])
        drawn = raster.draw_view(out, xs, ys, ids, 1, road, (0, 0, 0), v, reach, 0, (9, 9, 9))
        assert drawn == -1 and _bytes(out) == before
    _, out = _surfaces(rng)
    before = _bytes(out)
    far = ([(0.0, 0.0), (2e4, 0.0), (2e4, 2e4), (0.0, 2e4)], (1, 2, 3))  # a background polygon
    args = (out, xs, ys, ids, 1, np.ones((1, 3)), (0, 0, 0), view, reach, 0, (0, 0, 0), far)
    assert raster.draw_view(*args) == -1 and _bytes(out) == before
    drawn = raster.draw_view(out, xs, ys, ids, 1, np.ones((1, 3)), (0, 0, 0), view, reach, 0)
    assert drawn == 1 and _bytes(out) != before  # (the same square, in range, is drawn)
