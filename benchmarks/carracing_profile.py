"""Where a step of protege's ``carracing`` goes: microseconds per step of each part.

One env (the task's, fast renderer), seeded random driving (steer U(-1,1), gas U(0,1),
brake U(0,0.3), the actions of ``carracing_speed.py``) with auto-reset, after a warm-up.
Each part is timed inclusively with ``time.perf_counter_ns`` wrappers (no profiler), so the
parts nest as indented; C calls (pygame, Box2D) are marked. The wrappers add a little time;
the untimed steps/s of the same run is printed first.
The garbage collector's time during the timed steps (already inside whichever part
allocated) is printed after the table.

Usage:
    SDL_VIDEODRIVER=dummy .venv/bin/python benchmarks/carracing_profile.py [--steps 3000]
        [--seed 0] [--blocks 6] [--gfxdraw]

The road layer is one compiled call (``carracing_raster.draw_view``) when numba is
installed; ``--gfxdraw`` times the path without it (gfxdraw's calls per polygon).

The timed and untimed steps take turns (``--blocks`` each); the table is the timed steps.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import shlex
import sys
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")

import Box2D
import gymnasium as gym
import numpy as np
import pygame
from gymnasium.envs.box2d.car_racing import CarRacing

import protege.tasks.carracing as carracing
import protege.tasks.carracing_env as ce
import protege.tasks.carracing_road as crd

WARMUP_STEPS = 60
FALLBACK = "background polygon (gymnasium's, near the playfield's edge)"

# (label, indent, is C): the rows of the table, in this order
PARTS: list[tuple[str, int, bool]] = [
    ("physics: Car.gas (car_gas)", 1, False),
    ("physics: Car.step (car_step)", 1, False),
    ("physics: Box2D World.Step (+ contact listener)", 1, True),
    ("render (_render)", 1, False),
    ("background (draw_background; fused into draw_view when compiled)", 2, True),
    ("road: gfxdraw.filled_polygon", 2, True),
    ("road: gfxdraw.aapolygon", 2, True),
    ("road: compiled background fill, transform, culling, outlines, fills (draw_view)", 2, True),
    ("road: culling, transforms, Python (rest of render_road)", 2, False),
    ("car (CarPainter.draw)", 2, False),
    ("indicators (draw_indicators)", 2, False),
    ("pygame.draw.polygon (car + indicators)", 2, True),
    ("frame (_frame)", 2, False),
    ("smoothscale", 3, True),
    ("privileged info (_privileged_info)", 1, False),
]

RASTER = PARTS[7][0]
REST = PARTS[8][0]
COMPILED_POLYGONS = "polygons drawn by the compiled kernel"
COMPILED_FIELD = "background polygons drawn by the compiled kernel"


def _actions(n: int, rng: np.random.Generator) -> np.ndarray:
    a = np.empty((n, 3), dtype=np.float32)
    a[:, 0] = rng.uniform(-1, 1, n)
    a[:, 1] = rng.uniform(0, 1, n)
    a[:, 2] = rng.uniform(0, 0.3, n)
    return a


class Timers:
    def __init__(self) -> None:
        self.ns: dict[str, int] = {}
        self.calls: dict[str, int] = {}
        self.on = False

    def wrap(self, fn: Callable[..., Any], label: str) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            if not self.on:
                return fn(*args, **kwargs)
            t0 = time.perf_counter_ns()
            try:
                return fn(*args, **kwargs)
            finally:
                self.ns[label] = self.ns.get(label, 0) + time.perf_counter_ns() - t0
                self.calls[label] = self.calls.get(label, 0) + 1

        return timed


class GcTimes:
    """Time spent in the garbage collector while ``on``, per generation (a ``gc`` callback)."""

    def __init__(self) -> None:
        self.on = False
        self.ns = [0, 0, 0]
        self.count = [0, 0, 0]
        self._t0 = 0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._t0 = time.perf_counter_ns()
        elif self.on:
            g = info["generation"]
            self.ns[g] += time.perf_counter_ns() - self._t0
            self.count[g] += 1


def _install(t: Timers) -> None:
    ce.car_gas = t.wrap(ce.car_gas, PARTS[0][0])
    ce.car_step = t.wrap(ce.car_step, PARTS[1][0])
    Box2D.b2World.Step = t.wrap(Box2D.b2World.Step, PARTS[2][0])
    ce.CarRacingEnv._render = t.wrap(ce.CarRacingEnv._render, PARTS[3][0])  # type: ignore[method-assign]
    crd.draw_background = t.wrap(crd.draw_background, PARTS[4][0])

    class Gfx:
        filled_polygon = staticmethod(t.wrap(crd.gfxdraw.filled_polygon, PARTS[5][0]))
        aapolygon = staticmethod(t.wrap(crd.gfxdraw.aapolygon, PARTS[6][0]))

    crd.gfxdraw = Gfx  # type: ignore[assignment]
    draw_view = crd.raster.draw_view

    def counted(*args: Any) -> int:
        drawn = draw_view(*args)
        if t.on and drawn >= 0 and args[11] is not None:  # the background polygon, compiled
            t.calls[COMPILED_FIELD] = t.calls.get(COMPILED_FIELD, 0) + 1
        if t.on:
            t.calls[COMPILED_POLYGONS] = t.calls.get(COMPILED_POLYGONS, 0) + max(drawn, 0)
        return drawn

    crd.raster.draw_view = t.wrap(counted, RASTER)
    # gymnasium's own background polygon, drawn where the window is not inside the field
    CarRacing._draw_colored_polygon = t.wrap(  # type: ignore[method-assign]
        CarRacing._draw_colored_polygon, FALLBACK
    )
    ce.render_road = t.wrap(ce.render_road, "render_road")
    ce.CarPainter.draw = t.wrap(ce.CarPainter.draw, PARTS[9][0])  # type: ignore[method-assign]
    ce.draw_indicators = t.wrap(ce.draw_indicators, PARTS[10][0])
    pygame.draw.polygon = t.wrap(pygame.draw.polygon, PARTS[11][0])
    ce.CarRacingEnv._frame = t.wrap(ce.CarRacingEnv._frame, PARTS[12][0])  # type: ignore[method-assign]
    pygame.transform.smoothscale = t.wrap(pygame.transform.smoothscale, PARTS[13][0])
    ce.CarRacingEnv._privileged_info = t.wrap(  # type: ignore[method-assign]
        ce.CarRacingEnv._privileged_info, PARTS[14][0]
    )


def _run(env: gym.Env, actions: np.ndarray) -> tuple[float, float]:
    """Steps the actions: (wall s, CPU s)."""
    t0, c0 = time.perf_counter(), time.process_time()
    for a in actions:
        _, _, term, trunc, _ = env.step(a)
        if term or trunc:
            env.reset()
    return time.perf_counter() - t0, time.process_time() - c0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3000, help="timed steps (and untimed)")
    parser.add_argument("--seed", type=int, default=0, help="track and action seed")
    parser.add_argument("--blocks", type=int, default=6, help="untimed/timed turns")
    parser.add_argument(
        "--gfxdraw",
        action="store_true",
        help="draw the road with gfxdraw's per-polygon calls (the path without numba)",
    )
    args = parser.parse_args()

    if args.gfxdraw:
        crd.COMPILED = False
    timers = Timers()
    _install(timers)
    gc_times = GcTimes()
    env = carracing.CARRACING.make_env()
    rng = np.random.default_rng(args.seed)
    env.reset(seed=args.seed)
    _run(env, _actions(WARMUP_STEPS, rng))
    load_before = os.getloadavg()
    # Untimed and timed blocks take turns, so a change in the machine's load hits both.
    wall0 = cpu0 = wall = cpu = 0.0
    block = args.steps // args.blocks
    for _ in range(args.blocks):
        for timed in (False, True):
            timers.on = gc_times.on = timed
            w, c = _run(env, _actions(block, rng))
            if timed:
                wall, cpu = wall + w, cpu + c
            else:
                wall0, cpu0 = wall0 + w, cpu0 + c
    timers.on = gc_times.on = False
    steps = block * args.blocks
    n_objects = len(gc.get_objects())
    load_after = os.getloadavg()

    us = {k: v / steps / 1e3 for k, v in timers.ns.items()}
    us[REST] = us["render_road"] - sum(us.get(PARTS[k][0], 0.0) for k in (4, 5, 6, 7))
    step = wall / steps * 1e6
    print(
        f"{steps} steps untimed and {steps} timed, in {args.blocks} turns each. Untimed: "
        f"{steps / wall0:.1f} steps/s wall, {steps / cpu0:.1f} per CPU-second "
        f"({wall0 / steps * 1e6:.0f} µs a step); with the timers: {step:.0f} µs a step."
    )
    print()
    print("| part | µs per step | share |")
    print("|---|---:|---:|")
    c_total = 0.0
    for label, indent, is_c in PARTS:
        v = us.get(label, 0.0)
        name = "&nbsp;&nbsp;" * (indent - 1) + label + (" [C]" if is_c else "")
        print(f"| {name} | {v:.1f} | {100 * v / step:.1f}% |")
        if is_c:  # (no C part is nested in another)
            c_total += v
    print(f"| whole step (TimeLimit → env.step → gymnasium's step) | {step:.1f} | 100% |")
    print()
    fallback = timers.calls.get(FALLBACK, 0)
    print(
        f"Polygons a step: {timers.calls.get(PARTS[5][0], 0) / steps:.1f} filled "
        f"(+ {timers.calls.get(PARTS[6][0], 0) / steps:.1f} outlines) by gfxdraw, "
        f"{timers.calls.get(COMPILED_POLYGONS, 0) / steps:.1f} by the compiled kernel in "
        f"{timers.calls.get(RASTER, 0) / steps:.2f} calls; car + indicator "
        f"polygons {timers.calls.get(PARTS[11][0], 0) / steps:.1f}. gymnasium's background "
        f"polygon instead of a fill: {fallback} of {steps} steps "
        f"({100 * fallback / steps:.1f}%), {us.get(FALLBACK, 0.0):.1f} µs a step on average "
        f"({us.get(FALLBACK, 0.0) * steps / max(fallback, 1) / 1e3:.2f} ms each); drawn by "
        f"the compiled kernel instead: {timers.calls.get(COMPILED_FIELD, 0)} steps."
    )
    print()
    print(
        f"C calls marked [C] (pygame, Box2D; the fill as draw_background): {c_total:.0f} µs "
        f"({100 * c_total / step:.0f}%); everything else, Python and numpy: "
        f"{step - c_total:.0f} µs."
    )
    print()
    gc_us = sum(gc_times.ns) / steps / 1e3
    full = gc_times.ns[2] / max(gc_times.count[2], 1) / 1e6
    print(
        f"Garbage collection in the timed steps (inside whichever part allocated): "
        f"{gc_us:.1f} µs a step; collections of generation 0, 1, 2: "
        f"{', '.join(str(c) for c in gc_times.count)} (a full one {full:.1f} ms on "
        f"average); {n_objects} objects tracked at the end."
    )
    print()
    print(
        f"Machine: {os.cpu_count()} CPUs, {platform.processor() or platform.machine()}; "
        f"Python {platform.python_version()}, gymnasium {gym.__version__}, pygame "
        f"{pygame.version.ver}; load average {load_before[0]:.2f} before, "
        f"{load_after[0]:.2f} after; smoothscale backend "
        f"{pygame.transform.get_smoothscale_backend()}; CPU {cpu:.1f} s of {wall:.1f} s wall."
    )
    cmd = " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv])
    print(f"Command: SDL_VIDEODRIVER=dummy {cmd}")


if __name__ == "__main__":
    main()
