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

import contextlib
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

from fakes import FirstStepNovelty
from protege import tasks
from protege.configs.fleet import FleetConfig
from protege.data.store import Store
from protege.experts.adapters import CallableExpert
from protege.rollout.fleet import Fleet
from protege.rollout.gates_interactive import ThriftyGate
from protege.teleop.desk import Desk
from test_fleet_people import Robots, Steps
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
        gate = ThriftyGate(FirstStepNovelty(discrepancy=0.0), None, novelty_threshold=0.05)
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


@pytest.mark.slow
def test_the_cli_runs_fleet_dagger_with_a_person_at_a_window(xvfb: str, tmp_path: Path) -> None:
    """``protege dagger --method fleet --people``: round 0 the expert's demonstrations, then a
    fleet round where a person (xdotool: SPACE with Right, then ENTER, over and over) takes
    over or resets whatever robot their window shows; every label is stored and the run
    reports the supervisor time."""
    out = tmp_path / "run"
    flags = "--task cartpole --method fleet --people --supervisors 1 --robots 2 --rounds 1"
    flags += " --episodes-per-round 2 --initial-demos 1 --eval-episodes 2 --steps 100"
    flags += " --members 2 --q-steps 50 --step-seconds 0.02 --seed 0"
    env = {**os.environ, "DISPLAY": xvfb, "SDL_VIDEODRIVER": "x11"}
    cmd = [sys.executable, "-m", "protege.cli", "dagger", *flags.split(), "--out", str(out)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while proc.poll() is None and time.monotonic() < deadline:
            for pid in _children(proc.pid):
                with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                    wid = xdotool(xvfb, "search", "--pid", str(pid), timeout=2).split()[0]
                    xdotool(xvfb, "windowfocus", wid, "keydown", "Right", "key", "space")
                    time.sleep(0.3)
                    xdotool(xvfb, "key", "Return", "keyup", "Right")
            time.sleep(0.2)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, stderr
    assert "supervisor time" in stdout and "return on human effort" in stdout
    store = Store.open(out / "store")
    people = [e for e in store.index if e.round == 1]
    assert sorted(e.episode for e in people) == [0, 1]
    assert sum(e.labels for e in people) > 0  # the person's steps, labeled
    data = store.transitions()
    mine = data.labeled.astype(bool) & (np.repeat(data.rounds, data.episode_lengths) == 1)
    assert (data.actions[mine] == 1).all()  # pushed right, as the person did


def _children(pid: int) -> list[int]:
    """The window processes of the CLI run ``pid``."""
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    return [int(p) for p in found.stdout.split()]
