"""People at teleop windows as a fleet's supervisors: a window per person, a robot per window.

Fleet-DAgger's setting with real people (:class:`protege.rollout.fleet.Fleet` with
``people=``): the allocator gives a free person the waiting robot of highest priority; that
person's window then shows that robot (its rendered frame, live) and says what it needs. The
person presses SPACE to take over (the robot waits until then: the context switch is theirs),
drives it with the task's keys (:func:`protege.teleop.controls.controls_for`), each step they
drive being a label the driver appends to the store with the episode, and presses ENTER to
hand back; they are then free for the next robot. A robot that failed waits for a person, who
resets it with SPACE. ESC or closing any window ends the run (every finished episode is
stored; the ones in flight are dropped and re-run by ``--resume``).

**Why a process per person.** pygame (SDL) opens one display window per process, and a
person needs their own window, keys and focus. So each person's window is a small process
(:mod:`protege.teleop.station`), a terminal that draws what it is sent and reports the keys;
everything else (robots, learner, allocation, labels, the store) stays in the driver, which
alone writes the store as in every run. The windows exchange JSON lines over pipes (frames
as raw bytes), so they can be on the driver's display or, through ``DISPLAY``, another one.

**Time.** Each fleet step is one tick of a fixed-rate clock at ``1 / step_seconds`` Hz
(:class:`~protege.teleop.clock.FixedRateClock`): frames go out, the tick waits until due, the
keys come back, and the step is taken on the state the people have just seen. Supervisor time
is counted in ticks × ``step_seconds`` (as for simulated supervisors), so a machine too slow
for the rate under-counts it.

:class:`ScriptedStation` stands in for a window in tests: keys come from a script.

Example:
    >>> desk = Desk.for_task(task, [WindowStation("protege fleet - 1"),
    ...                             WindowStation("protege fleet - 2")], fps=10)
    >>> Fleet(robots, gate, expert, FleetConfig(supervisors=2), task.success,
    ...       task.spaces[1], people=desk).run(range(16), seed_of, rng)
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any, Protocol

import gymnasium as gym
import numpy as np

from protege.errors import ConfigError
from protege.rollout.fleet import FAILED, RESET, SWITCH, TELEOP, Fleet
from protege.teleop.clock import FixedRateClock
from protege.teleop.controls import Controls, DiscreteControls, controls_for

if TYPE_CHECKING:
    from protege.tasks.base import Task

__all__ = ["Desk", "DeskStep", "Pressed", "ScriptedStation", "Station", "View", "WindowStation"]


@dataclass
class View:
    """What one window shows at a tick."""

    heading: str
    status: str = ""
    lines: list[str] = field(default_factory=list)
    human: bool = False
    """Orange frame (the person drives) rather than green."""
    frame: np.ndarray | None = None
    """H×W×3 uint8, or None: ``obs``' numbers are shown."""
    obs: list[float] = field(default_factory=list)
    robot: int | None = None
    """The robot shown (None: the person is free)."""


@dataclass
class Pressed:
    """A window's keys at a poll: held now (press order), pressed since the last poll."""

    held: list[str] = field(default_factory=list)
    tapped: list[str] = field(default_factory=list)
    closed: bool = False


class Station(Protocol):
    """One person's window."""

    def show(self, view: View) -> None: ...

    def poll(self) -> Pressed: ...

    def close(self) -> None: ...


class WindowStation:
    """A window in its own process (:mod:`protege.teleop.station`) titled ``title``;
    ``env``: that process's environment (default this one's: ``DISPLAY`` picks the screen)."""

    def __init__(self, title: str, env: Mapping[str, str] | None = None, wait: bool = True):
        self.title = title
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "protege.teleop.station", title],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=None if env is None else dict(env),
        )
        self.closed = False
        if wait:
            self.wait_ready()

    @classmethod
    def open_many(
        cls, titles: Sequence[str], envs: Sequence[Mapping[str, str] | None]
    ) -> list[Any]:
        """A window per title (``envs[k]``: window k's process environment), their processes
        started at once (each takes a second to import pygame); all closed if one cannot
        open."""
        stations = [cls(t, e, wait=False) for t, e in zip(titles, envs, strict=True)]
        try:
            for station in stations:
                station.wait_ready()
        except BaseException:
            for station in stations:
                station.close()
            raise
        return stations

    def wait_ready(self) -> None:
        """Wait until the window is open; ConfigError if it cannot open (no display)."""
        first = self._read()
        if not first.get("ready"):
            self.close()
            why = first.get("error", "the window process ended")
            raise ConfigError(f"cannot open the window {self.title!r}: {why} (needs a display)")

    @property
    def pid(self) -> int:
        return int(self.proc.pid)

    def show(self, view: View) -> None:
        frame = None if view.frame is None else np.ascontiguousarray(view.frame, np.uint8)
        head = {
            "op": "show",
            "heading": view.heading,
            "status": view.status,
            "lines": view.lines,
            "human": view.human,
            "obs": view.obs,
            "shape": None if frame is None else list(frame.shape),
        }
        self._send(json.dumps(head).encode() + b"\n" + (b"" if frame is None else frame.tobytes()))

    def poll(self) -> Pressed:
        if not self._send(b'{"op": "poll"}\n'):
            return Pressed(closed=True)
        answer = self._read()
        if not answer:
            return Pressed(closed=True)
        return Pressed(list(answer["held"]), list(answer["tapped"]), bool(answer["closed"]))

    def close(self) -> None:
        """Close the window and wait for its process (killed after 5 s)."""
        self._send(b'{"op": "close"}\n')
        self.closed = True
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError, ValueError):  # a pipe to a process gone
                    pipe.close()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def _send(self, data: bytes) -> bool:
        pipe = self.proc.stdin
        if self.closed or pipe is None:
            return False
        try:
            pipe.write(data)
            pipe.flush()
        except (BrokenPipeError, ValueError):
            self.closed = True
            return False
        return True

    def _read(self) -> dict[str, Any]:
        """The next JSON line ({} once the process has gone); other output is skipped."""
        pipe: IO[bytes] | None = self.proc.stdout
        while pipe is not None:
            line = pipe.readline()
            if not line:
                return {}
            if line.startswith(b"{"):
                return dict(json.loads(line))
        return {}


class ScriptedStation:
    """A window stand-in for tests: ``script(tick, view)`` gives the keys pressed at each
    poll (held for that tick only); the views shown are kept in :attr:`views`."""

    def __init__(self, script: Callable[[int, View], Sequence[str]]):
        self.script, self.ticks = script, 0
        self.views: list[View] = []

    def show(self, view: View) -> None:
        self.views.append(view)

    def poll(self) -> Pressed:
        keys = list(self.script(self.ticks, self.views[-1]))
        self.ticks += 1
        return Pressed(keys, keys, "<close>" in keys)

    def close(self) -> None:
        pass


@dataclass
class DeskStep:
    """What the people did at one tick (see :class:`protege.rollout.fleet.PeopleStep`)."""

    go: np.ndarray
    back: np.ndarray
    actions: np.ndarray
    quit: bool


class Desk:
    """K people at K :class:`Station` windows supervising a fleet (the fleet's ``people``).

    Args:
        stations: one per person (supervisor k is ``stations[k]``).
        controls: the task's key mapping; ``action_space`` its (single) action space.
        fps: the clock's rate (a fleet step per tick).
        take_key: takes over the robot shown (or resets it if it failed).
        back_key: hands the robot back to its learner.
        quit_keys: end the run.
    """

    def __init__(
        self,
        stations: Sequence[Station],
        controls: Controls,
        action_space: gym.Space,
        fps: float,
        *,
        take_key: str = "space",
        back_key: str = "return",
        quit_keys: Sequence[str] = ("escape",),
    ):
        if not isinstance(action_space, gym.spaces.Discrete | gym.spaces.Box):
            raise ConfigError(f"a person can drive Discrete or Box actions, not {action_space!r}")
        self.stations = list(stations)
        self.count = len(self.stations)
        self.controls, self.action_space = controls, action_space
        self.clock = FixedRateClock(fps)
        self.take_key, self.back_key, self.quit_keys = take_key, back_key, set(quit_keys)
        self.quit_requested = False
        self._last: list[int | None] = [None] * self.count

    @classmethod
    def for_task(cls, task: Task, stations: Sequence[Station], fps: float) -> Desk:
        """A desk with ``task``'s own controls."""
        space = task.spaces[1]
        return cls(stations, controls_for(task, space), space, fps)

    @classmethod
    def open(
        cls,
        task: Task,
        people: int,
        fps: float,
        displays: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
    ) -> Desk:
        """``people`` windows for ``task`` (:class:`WindowStation`), titled "protege fleet -
        supervisor k/K - task", person k's on ``displays[k]`` (default: ``DISPLAY``);
        ``env``: the windows' processes' environment (default: this one's)."""
        titles = [
            f"protege fleet - supervisor {k + 1}/{people} - {task.name}" for k in range(people)
        ]
        base = dict(os.environ if env is None else env)
        envs = [{**base, "DISPLAY": d} for d in displays] if displays else [base] * people
        stations = WindowStation.open_many(titles, envs)
        return cls.for_task(task, stations, fps)

    def tick(self, fleet: Fleet, obs: Sequence[Any]) -> DeskStep:
        """Show each person their robot, wait for the tick, read their keys."""
        n = fleet.robots.num_robots
        robot: list[int | None] = [None] * self.count
        for i in map(int, np.flatnonzero(fleet.helper >= 0)):
            robot[int(fleet.helper[i])] = i
        for k, station in enumerate(self.stations):
            station.show(self._view(k, robot[k], fleet, obs))
        self.clock.sleep_until_due()
        go, back = np.zeros(n, bool), np.zeros(n, bool)
        space = self.action_space
        actions = np.zeros((n, *(space.shape or ())), space.dtype)
        for k, station in enumerate(self.stations):
            keys = station.poll()
            if keys.closed or self.quit_keys & set(keys.tapped):
                self.quit_requested = True
            mine = robot[k]
            if mine is None:
                continue
            actions[mine] = self._action(k, list(dict.fromkeys([*keys.held, *keys.tapped])))
            go[mine] = self.take_key in keys.tapped
            back[mine] = self.back_key in keys.tapped
        self.clock.charge(self.clock.now())
        return DeskStep(go, back, actions, self.quit_requested)

    def notice(self, text: str) -> None:
        """Show ``text`` on every window (between rounds: nothing moves meanwhile)."""
        for station in self.stations:
            station.show(View(text, lines=["the robots are stopped"]))
            if station.poll().closed:
                self.quit_requested = True
        self.clock.restart()

    def close(self) -> None:
        """Close every window."""
        for station in self.stations:
            station.close()

    def _action(self, k: int, pressed: list[str]) -> Any:
        c = self.controls
        if isinstance(c, DiscreteControls):
            a = c.action(pressed, None, self._last[k])
            self._last[k] = a
            return a
        space = self.action_space
        assert isinstance(space, gym.spaces.Box)
        value = c.action(pressed, None, int(np.prod(space.shape or (1,))))
        return np.clip(value.reshape(space.shape), space.low, space.high)

    def _view(self, k: int, i: int | None, fleet: Fleet, obs: Sequence[Any]) -> View:
        status = f"{self.clock.rate:4.1f} Hz / {self.clock.fps:g}"
        who = f"supervisor {k + 1} of {self.count}"
        if i is None:
            waiting = int(((fleet.mode == SWITCH) | (fleet.mode == FAILED)).sum())
            lines = [f"{who}: no robot for you now", f"{waiting} robots waiting for someone"]
            return View("free: watching for requests", status, lines)
        render = getattr(fleet.robots, "render", None)
        frame = render(i) if render is not None else None
        numbers = [] if frame is not None else _numbers(obs[i])
        mode, take, back = fleet.mode[i], self.take_key.upper(), self.back_key.upper()
        if mode == TELEOP:
            heading, human = f"driving robot {i}", True
            lines = [f"{back}: hand back to its learner", self.controls.describe()]
        elif mode in (FAILED, RESET):
            heading, human = f"robot {i} failed", False
            lines = [f"{take}: reset it (a new episode starts)"]
        else:
            heading, human = f"robot {i} asks for help", False
            lines = [f"{take}: take over (it waits for you)", self.controls.describe()]
        lines.append(f"{who}   {'/'.join(sorted(q.upper() for q in self.quit_keys))}: quit")
        return View(heading, status, lines, human, frame, numbers, i)


def _numbers(obs: Any) -> list[float]:
    if isinstance(obs, dict):
        obs = [v for v in obs.values() if np.ndim(v) < 2]
        obs = np.concatenate([np.ravel(v) for v in obs]) if obs else []
    return [round(float(v), 4) for v in np.ravel(np.asarray(obs, np.float64))[:48]]
