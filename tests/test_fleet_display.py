"""Fleet mode with two people at two real X windows (Xvfb + xdotool): each window is its own
process (:mod:`protege.teleop.station`); the allocator gives each person a robot, the person
takes over with SPACE, drives with the arrow keys and hands back with ENTER, while the other
person's robot waits; ESC ends the run. tests/test_fleet_people.py checks the same desk with
scripted keys.

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

from protege.configs.fleet import FleetConfig
from protege.experts.adapters import CallableExpert
from protege.rollout.fleet import Fleet
from protege.rollout.gates_interactive import ThriftyGate
from protege.teleop.desk import Desk, WindowStation
from test_fleet_people import PUSH, FirstStepNovelty, Robots, Steps
from test_teleop_display import teleop_window, xdotool, xvfb

pytestmark = pytest.mark.display
__all__ = ["xvfb"]  # the fixture


class Rendered(Robots):
    """The fake robots with a frame each: robot i's frame is grey level 40·(i+1)."""

    def render(self, i: int) -> np.ndarray:
        return np.full((60, 90, 3), 40 * (i + 1), np.uint8)


def focus(display: str, pid: int) -> str:
    """Focus the window of process ``pid`` (looked up again if SDL replaced it: a window is
    re-made when the first frame resizes it) and return its id."""
    for _ in range(20):
        wid, _ = teleop_window(display, pid)
        try:
            xdotool(display, "windowfocus", "--sync", wid)
            xdotool(display, "mousemove", "--window", wid, "20", "20")
            return wid
        except RuntimeError:
            time.sleep(0.1)
    raise AssertionError(f"no window of process {pid} took the focus")


def test_two_people_at_two_windows_supervise_a_fleet(xvfb: str) -> None:
    t0 = time.perf_counter()
    env = {**os.environ, "DISPLAY": xvfb, "SDL_VIDEODRIVER": "x11"}
    stations = WindowStation.open_many(
        [f"protege fleet - supervisor {k + 1}/2" for k in (0, 1)], [env, env]
    )
    desk = Desk(stations, PUSH, gym.spaces.Discrete(2), fps=30)
    robots, seen = Rendered(3), Steps()
    gate = ThriftyGate(FirstStepNovelty(), None, novelty_threshold=0.05)
    cfg = FleetConfig(robots=3, supervisors=2, wait="pause", step_seconds=1 / 30)
    never = CallableExpert(lambda obs: pytest.fail("a fleet with people asked the expert"))
    fleet = Fleet(robots, gate, never, cfg, lambda o: True, gym.spaces.Discrete(2), people=desk)
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            rng = np.random.default_rng(0)
            out["res"] = fleet.run(range(3), lambda e: e, rng, observers=[seen], max_steps=3000)
        except BaseException as exc:
            out["error"] = exc

    driver = threading.Thread(target=run, daemon=True)
    driver.start()
    try:
        # Robots 2 and 1 ask the most: person 1 gets robot 2, person 2 gets robot 1.
        windows = [teleop_window(xvfb, s.pid) for s in stations]
        assert all("protege fleet - supervisor" in name for _, name in windows)
        time.sleep(0.3)  # the first frames are drawn (the windows take their size)
        for station, key in zip(stations, ("Right", "Right"), strict=True):
            focus(xvfb, station.pid)
            time.sleep(0.15)  # looking: the robot waits
            xdotool(xvfb, "keydown", key, "key", "space")  # take over, pushing right
            time.sleep(0.35)
            xdotool(xvfb, "key", "Return", "keyup", key)  # hand back
            time.sleep(0.1)
        # Person 1 is free again and gets robot 0, the last that asked; they quit instead.
        focus(xvfb, stations[0].pid)
        time.sleep(0.1)
        xdotool(xvfb, "key", "Escape")
        driver.join(15)
    finally:
        desk.close()
    assert not driver.is_alive() and "error" not in out, out.get("error")
    res = out["res"]
    assert desk.quit_requested and res.visits == 3
    labels = np.array([s.decision.label for s in seen.steps])
    executed = np.array([s.executed for s in seen.steps])
    # Each of robots 2 and 1 was driven once, for one stretch, pushing right; robot 0 never.
    for i in (2, 1):
        idx = np.flatnonzero(labels[:, i])
        assert len(idx) >= 2 and idx[-1] - idx[0] + 1 == len(idx), (i, idx)
        assert (executed[idx, i] == 1).all()
    assert not labels[:, 0].any()
    # Robot 1 waited (did not move) all the while person 1 drove robot 2 and looked at it.
    first_2, first_1 = np.flatnonzero(labels[:, 2])[0], np.flatnonzero(labels[:, 1])[0]
    assert first_1 > np.flatnonzero(labels[:, 2])[-1] > first_2
    moved_1 = np.array([s.active[1] for s in seen.steps])
    assert not moved_1[:first_1].any()
    assert all(s.proc.poll() is not None for s in stations)  # the windows' processes ended
    assert time.perf_counter() - t0 < 20
