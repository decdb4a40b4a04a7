"""Fleet mode with two people at two real X windows, each on an X display of their own (two
Xvfb servers, keys sent with xdotool): each window is its own process
(:mod:`protege.teleop.station`), opened by ``Desk.open(..., displays=...)`` as
``--people --displays`` does. The allocator gives each person a robot; both people take over
with SPACE at the same time, drive with the arrow keys and hand back with ENTER; a robot
nobody has taken over waits; ESC ends the run. tests/test_fleet_people.py checks the same
desk with scripted keys.

Needs Xvfb and xdotool (``make system-deps``); skipped, saying so, without (failed under
``PROTEGE_REQUIRE_DISPLAY``).
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

from protege import tasks
from protege.configs.fleet import FleetConfig
from protege.experts.adapters import CallableExpert
from protege.rollout.fleet import Fleet
from protege.rollout.gates_interactive import ThriftyGate
from protege.teleop.desk import Desk
from test_fleet_people import FirstStepNovelty, Robots, Steps
from test_teleop_display import teleop_window, xdotool, xvfb, xvfb_display

pytestmark = pytest.mark.display
__all__ = ["xvfb"]  # the fixture


class Rendered(Robots):
    """The fake robots with a frame each: robot i's frame is grey level 40·(i+1)."""

    def render(self, i: int) -> np.ndarray:
        return np.full((60, 90, 3), 40 * (i + 1), np.uint8)


def focus(display: str, pid: int) -> None:
    """Focus the window of process ``pid`` (looked up again if SDL replaced it: a window is
    re-made when the first frame resizes it)."""
    for _ in range(20):
        wid, _ = teleop_window(display, pid)
        try:
            xdotool(display, "windowfocus", "--sync", wid)
            xdotool(display, "mousemove", "--window", wid, "20", "20")
            return
        except RuntimeError:
            time.sleep(0.1)
    raise AssertionError(f"no window of process {pid} took the focus")


def test_two_people_at_their_own_displays_supervise_a_fleet_at_once(xvfb: str) -> None:
    t0 = time.perf_counter()
    with xvfb_display() as second:
        displays = (xvfb, second)
        env = {**os.environ, "SDL_VIDEODRIVER": "x11"}
        cartpole = tasks.make("cartpole")  # its keys: Left/Right push the cart
        desk = Desk.open(cartpole, 2, fps=30, displays=displays, env=env)
        stations: list[Any] = desk.stations
        robots, seen = Rendered(3), Steps()
        gate = ThriftyGate(FirstStepNovelty(), None, novelty_threshold=0.05)
        cfg = FleetConfig(robots=3, supervisors=2, wait="pause", people=True, displays=displays)
        never = CallableExpert(lambda obs: pytest.fail("a fleet with people asked the expert"))
        space = gym.spaces.Discrete(2)
        fleet = Fleet(robots, gate, never, cfg, lambda o: True, space, people=desk)
        out: dict[str, Any] = {}

        def run() -> None:
            try:
                rng = np.random.default_rng(0)
                res = fleet.run(range(3), lambda e: e, rng, observers=[seen], max_steps=3000)
                out["res"] = res
            except BaseException as exc:
                out["error"] = exc

        driver = threading.Thread(target=run, daemon=True)
        driver.start()
        try:
            # Robots 2 and 1 ask the most: person 1 (first display) gets robot 2, person 2
            # robot 1. Both look, then take over at once, each on their own keyboard.
            names = [teleop_window(d, s.pid)[1] for d, s in zip(displays, stations, strict=True)]
            assert all("protege fleet - supervisor" in n and "cartpole" in n for n in names)
            time.sleep(0.3)  # the first frames are drawn (the windows take their size)
            for d, s in zip(displays, stations, strict=True):
                focus(d, s.pid)
            time.sleep(0.2)  # looking: the robots wait
            for d in displays:
                xdotool(d, "keydown", "Right", "key", "space")  # take over, pushing right
            time.sleep(0.4)  # both drive
            xdotool(displays[0], "key", "Return", "keyup", "Right")  # person 1 hands back
            time.sleep(0.3)  # person 2 still drives; person 1 now has robot 0, which waits
            xdotool(displays[1], "key", "Return", "keyup", "Right")
            time.sleep(0.1)
            xdotool(displays[1], "key", "Escape")  # person 2 ends the run
            driver.join(15)
        finally:
            desk.close()
    assert not driver.is_alive() and "error" not in out, out.get("error")
    res = out["res"]
    assert desk.quit_requested and res.visits == 3
    labels = np.array([s.decision.label for s in seen.steps])
    executed = np.array([s.executed for s in seen.steps])
    driven = {i: np.flatnonzero(labels[:, i]) for i in (2, 1)}
    for i, idx in driven.items():  # one stretch each, pushing right
        assert len(idx) >= 2 and idx[-1] - idx[0] + 1 == len(idx), (i, idx)
        assert (executed[idx, i] == 1).all()
    # Both people drove at the same time, and person 2 longer.
    assert len(np.intersect1d(driven[2], driven[1])) >= 2
    assert driven[1][-1] > driven[2][-1]
    # Robot 0 was given to person 1, never taken over, and waited throughout (paused).
    assert not labels[:, 0].any()
    assert not np.array([s.active[0] for s in seen.steps]).any()
    assert all(s.proc.poll() is not None for s in stations)  # the windows' processes ended
    assert time.perf_counter() - t0 < 25
