"""The person at the keyboard (HG-DAgger's human supervisor), without a display.

SDL's dummy video driver (set in conftest) gives a real pygame event queue with no window on
screen. Key presses are injected as pygame events; a scripted learner posts them from its
``act`` (which the rollout loop calls just before the gate decides), so "the person pressed
SPACE at step k" is exact and the tests can check labels step by step.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import pygame
import pytest

from protege import tasks
from protege.data.episode import EXPERT, LEARNER
from protege.data.store import Store
from protege.errors import ConfigError
from protege.experts.base import Expert
from protege.rollout.gates import ExpertGate, LazyExpert, StepView
from protege.rollout.loop import rollout
from protege.rollout.observers import StoreEpisodes
from protege.tasks.base import Task
from protege.teleop.clock import FixedRateClock
from protege.teleop.controls import (
    BoxControls,
    DiscreteControls,
    PadState,
    controls_for,
    default_controls,
)
from protege.teleop.log import log_path
from protege.teleop.session import teleop
from protege.teleop.supervisor import HumanSupervisor, TeleopQuit

FAST = 1000.0  # Hz: for tests where the rate does not matter
SAME_STEP = gym.vector.AutoresetMode.SAME_STEP


def lane(horizon: int) -> Task:
    """The lane task (never terminates: episodes are exactly ``horizon`` steps), shortened."""
    t = tasks.make("lane")
    return dataclasses.replace(t, horizon=horizon, env_kwargs={**t.env_kwargs, "horizon": horizon})


def key(kind: int, name: str) -> None:
    pygame.event.post(pygame.event.Event(kind, key=pygame.key.key_code(name), mod=0))


def down(name: str) -> None:
    key(pygame.KEYDOWN, name)


def up(name: str) -> None:
    key(pygame.KEYUP, name)


class ScriptedLearner:
    """A learner that proposes ``action`` and plays a script of key events: ``script[k]`` runs
    just before the gate decides global step k (counted over all episodes)."""

    def __init__(self, action: Any, script: dict[int, Callable[[], None]] | None = None):
        self.action = np.asarray(action)
        self.script = script or {}
        self.k = 0

    def episodes_started(self, mask: np.ndarray | None = None) -> None:
        pass

    def act(self, obs: np.ndarray, deterministic: bool = True, generator: Any = None) -> np.ndarray:
        if self.k in self.script:
            self.script[self.k]()
        self.k += 1
        return np.repeat(self.action[None], len(obs), axis=0)


def press(*names: str) -> Callable[[], None]:
    return lambda: [down(n) for n in names] and None


def release(*names: str) -> Callable[[], None]:
    return lambda: [up(n) for n in names] and None


def stored(path: Any) -> Any:
    return Store.open(path).transitions()


def log_lines(path: Any) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log_path(path).read_text().splitlines()]


# --------------------------------------------------------------------------- mappings
def test_builtin_mappings() -> None:
    d2 = gym.spaces.Discrete(2)
    cart = controls_for(tasks.make("cartpole"), d2)
    assert isinstance(cart, DiscreteControls)
    assert cart.action(["left"], None, None) == 0
    assert cart.action(["right"], None, None) == 1
    assert cart.action([], None, last=1) == 1  # no push-free action: the last push repeats

    lander = controls_for(tasks.make("lunarlander"), gym.spaces.Discrete(4))
    assert isinstance(lander, DiscreteControls)
    assert [lander.action([k], None, None) for k in ("up", "left", "right")] == [2, 1, 3]
    assert lander.action([], None, None) == 0  # no key: engines off
    assert lander.action(["up", "left"], None, None) == 1  # the key pressed last wins

    car = controls_for(tasks.make("carracing"), gym.spaces.Box(-1, 1, (3,)))
    assert isinstance(car, BoxControls)
    np.testing.assert_allclose(car.action(["left", "up"], None, 3), [-1, 1, 0])
    np.testing.assert_allclose(car.action(["down"], None, 3), [0, 0, 0.8])
    np.testing.assert_allclose(car.action([], None, 3), [0, 0, 0])
    np.testing.assert_allclose(car.action(["left", "right"], None, 3), [1, 0, 0])

    cd = controls_for(tasks.make("carracing-discrete"), gym.spaces.Discrete(5))
    assert isinstance(cd, DiscreteControls)
    assert [cd.action([k], None, None) for k in ("left", "right", "up", "down")] == [2, 1, 3, 4]
    pend = controls_for(tasks.make("pendulum"), gym.spaces.Box(-2, 2, (1,)))
    assert isinstance(pend, BoxControls)
    np.testing.assert_allclose(pend.action(["left"], None, 1), [-2])
    mc = controls_for(tasks.make("mountaincar-continuous"), gym.spaces.Box(-1, 1, (1,)))
    assert isinstance(mc, BoxControls)
    np.testing.assert_allclose(mc.action(["right"], None, 1), [1])
    llc = controls_for(tasks.make("lunarlander-continuous"), gym.spaces.Box(-1, 1, (2,)))
    assert isinstance(llc, BoxControls)
    np.testing.assert_allclose(llc.action(["up", "left"], None, 2), [1, -1])
    ln = controls_for(tasks.make("lane"), gym.spaces.Discrete(3))
    assert isinstance(ln, DiscreteControls)
    assert [ln.action(k, None, None) for k in (["left"], [], ["right"])] == [0, 1, 2]


def test_default_mappings_and_gamepad() -> None:
    d4 = default_controls(gym.spaces.Discrete(4))
    assert isinstance(d4, DiscreteControls)
    assert d4.action(["2"], None, None) == 2 and d4.action([], None, None) == 0
    box = default_controls(gym.spaces.Box(np.float32([-3, 0]), np.float32([3, 5])))
    assert isinstance(box, BoxControls)
    np.testing.assert_allclose(box.action(["left", "up"], None, 2), [-3, 5])
    np.testing.assert_allclose(box.action([], None, 2), [0, 0])
    # The gamepad: sticks and triggers override keys, the d-pad acts as the arrows.
    car = controls_for(tasks.make("carracing"), gym.spaces.Box(-1, 1, (3,)))
    assert isinstance(car, BoxControls)
    axes = (0.5, 0.0, 0.0, 0.0, -1.0, 1.0)  # stick half right, LT at rest, RT fully pressed
    np.testing.assert_allclose(car.action([], PadState(axes=axes), 3), [0.5, 1, 0])
    np.testing.assert_allclose(car.action(["left"], PadState(axes=(0.05,)), 3), [-1, 0, 0])
    lander = controls_for(tasks.make("lunarlander"), gym.spaces.Discrete(4))
    assert isinstance(lander, DiscreteControls)
    assert lander.action([], PadState(hat=(0, 1)), None) == 2
    assert lander.action([], PadState(axes=(-0.9, 0.0)), None) == 1


def test_a_task_without_keys_gets_the_default_ones() -> None:
    """A task of one's own need not bring keys; its keys may depend on its action space."""
    plain = Task(name="test-plain", env_id="CartPole-v1", expert_factory=lambda: None, horizon=5)
    d4, d3 = gym.spaces.Discrete(4), gym.spaces.Discrete(3)
    assert plain.controls is None and controls_for(plain, d4) == default_controls(d4)
    assert controls_for(None, d4) == default_controls(d4)
    sized = dataclasses.replace(plain, controls=default_controls)  # a function of the space
    assert controls_for(sized, d3) == default_controls(d3)
    # A supervisor named after no registered task gets the defaults too.
    assert HumanSupervisor(d4, task_name="test-unregistered").controls == default_controls(d4)


def test_the_key_mappings_import_no_pygame() -> None:
    """Task modules build their keys with protege.teleop.controls: it must not start pygame."""
    code = "import sys, protege.teleop.controls; print('pygame' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"


def test_the_clock_charges_wall_time_capped_and_not_across_a_restart() -> None:
    clock = FixedRateClock(10.0, max_gap=0.5)
    assert clock.charge(100.0) == pytest.approx(0.1)  # the first tick: one period
    assert clock.charge(100.25) == pytest.approx(0.25)
    assert clock.charge(102.0) == 0.5  # a stall is charged at most max_gap
    clock.restart()  # a pause: the time until the next tick is not charged
    assert clock.charge(200.0) == pytest.approx(0.1)
    assert clock.since_start(200.0) == pytest.approx(100.0)
    with pytest.raises(ConfigError, match="fps must be > 0"):
        FixedRateClock(0.0)


def test_bad_configuration_is_refused() -> None:
    with pytest.raises(ConfigError, match="unknown key name"):
        HumanSupervisor(gym.spaces.Discrete(2), takeover_key="no-such-key")
    with pytest.raises(ConfigError, match="do not fit"):
        HumanSupervisor(
            gym.spaces.Discrete(3), controls_for(tasks.make("carracing"), gym.spaces.Box(-1, 1))
        )
    with pytest.raises(ConfigError, match="already registered"):  # a task's keys are its own
        cartpole = tasks.make("cartpole")
        tasks.register(
            dataclasses.replace(cartpole, controls=default_controls(gym.spaces.Discrete(2)))
        )
    sup = HumanSupervisor(gym.spaces.Discrete(2), fps=FAST)
    obs = np.zeros((2, 4), np.float32)
    lazy = LazyExpert(None)
    lazy.begin_step(obs, {}, np.zeros(2, np.int64))
    with pytest.raises(ConfigError, match="one env at a time"):
        sup.decide(StepView(obs, {}, np.zeros(2, np.int64), lazy, np.zeros(2, np.int64)))
    with pytest.raises(ConfigError, match="one env at a time"):
        sup.act(obs)  # as a plain expert, too
    sup.close()


# ------------------------------------------------------------------- events → actions
def test_key_events_give_the_mapped_actions() -> None:
    assert isinstance(HumanSupervisor(gym.spaces.Discrete(2)), Expert)
    sup = HumanSupervisor.for_task("lunarlander", fps=FAST)
    sup.open()
    obs = np.zeros((1, 8), np.float32)
    assert sup.act(obs).tolist() == [0]
    down("up")
    assert sup.act(obs).tolist() == [2]
    down("left")  # pressed last: wins while held
    assert sup.act(obs).tolist() == [1]
    up("left")
    assert sup.act(obs).tolist() == [2]
    up("up")
    assert sup.act(obs).tolist() == [0]
    down("right")
    up("right")  # a tap shorter than a tick still counts for that tick
    assert sup.act(obs).tolist() == [3]
    assert sup.act(obs).tolist() == [0]
    sup.close()

    car = HumanSupervisor.for_task("carracing", fps=FAST)
    car.open()
    frame = np.zeros((1, 96, 96, 3), np.uint8)  # image observations are shown as they are
    down("right")
    down("up")
    a = car.act(frame)
    assert a.dtype == np.float32 and a.shape == (1, 3)
    np.testing.assert_allclose(a, [[1, 1, 0]])
    up("up")
    down("down")
    np.testing.assert_allclose(car.act(frame), [[1, 0, 0.8]])
    car.close()


def test_gamepad_takeover_and_axes() -> None:
    class FakePad:
        def __init__(self) -> None:
            self.axes = [0.0] * 6
            self.buttons = [False] * 8

        def get_numaxes(self) -> int:
            return len(self.axes)

        def get_axis(self, i: int) -> float:
            return self.axes[i]

        def get_numbuttons(self) -> int:
            return len(self.buttons)

        def get_button(self, i: int) -> bool:
            return self.buttons[i]

        def get_numhats(self) -> int:
            return 0

    sup = HumanSupervisor.for_task("carracing", fps=FAST)
    sup.open()
    pad = FakePad()
    sup._pad = pad  # what open() finds when a gamepad is plugged in
    pad.axes[0], pad.axes[4], pad.axes[5] = -0.5, -1.0, 0.0  # steer half left, RT half
    np.testing.assert_allclose(sup.act(np.zeros((1, 96, 96, 3), np.uint8)), [[-0.5, 0.5, 0.0]])
    assert not sup._takeover_active()
    pad.buttons[0] = True
    sup._poll()
    assert sup._takeover_active()
    sup.close()


# --------------------------------------------------------------------------- gating
def test_takeover_labels_exactly_the_held_steps(tmp_path: Any) -> None:
    """Held SPACE at global steps 5–14 and 33–37 (episodes of 25 steps): those steps, and only
    those, are labeled, executed by the person and counted; the rest is the learner's."""
    script = {
        2: press("right"),
        5: press("space"),
        15: release("space"),
        33: press("space"),
        38: release("space", "right"),
    }
    learner = ScriptedLearner(0, script)  # the learner always steers left (action 0)
    store = tmp_path / "hg"
    summary = teleop(lane(25), store, episodes=2, policy=learner, fps=FAST)

    held = np.zeros(50, bool)
    held[5:15] = held[33:38] = True
    d = stored(store)
    assert len(d) == 50 and d.rounds.tolist() == [1, 1]
    np.testing.assert_array_equal(d.labeled, held)
    np.testing.assert_array_equal(d.actor, np.where(held, EXPERT, LEARNER))
    assert (d.actions[held] == 2).all() and (d.executed[held] == 2).all()  # right = steer +1
    assert (d.executed[~held] == 0).all()  # the learner's own action

    assert summary.mode == "intervene" and not summary.quit
    assert summary.episodes == 2 and summary.steps == 50
    assert summary.labels == summary.human_steps == 15 and summary.learner_steps == 35
    assert summary.interventions == 2
    lines = log_lines(store)
    assert [x["store_index"] for x in lines] == [0, 1]
    np.testing.assert_array_equal(np.concatenate([x["in_control"] for x in lines]), held)
    assert [x["counts"]["interventions"] for x in lines] == [1, 1]
    # Both actions are logged at every step, whoever drove.
    assert np.concatenate([x["learner_actions"] for x in lines]).tolist() == [0] * 50
    human = np.concatenate([x["human_actions"] for x in lines])
    assert (human[held] == 2).all() and (human[:2] == 1).all()  # no key yet: straight
    segments = np.concatenate([x["segment"] for x in lines])
    assert sorted(set(segments[held].tolist())) == [0, 1] and (segments[~held] == -1).all()


def test_successive_sessions_are_successive_rounds(tmp_path: Any) -> None:
    """A demonstration is round 0; each intervention session on the same store is the next
    round (or the one asked for); every episode stores what it cost the person."""
    store = tmp_path / "s"
    sup = HumanSupervisor.for_task("lane", fps=FAST)
    sup.open()
    down("right")
    assert teleop(lane(6), store, episodes=1, supervisor=sup).round == 0
    sessions = [
        teleop(lane(6), store, episodes=2, policy=ScriptedLearner(1, script), fps=FAST)
        for script in ({1: press("space"), 3: release("space")}, {5: press("space")})
    ]
    assert [s.round for s in sessions] == [1, 2]
    last = teleop(lane(6), store, episodes=1, policy=ScriptedLearner(1), fps=FAST, round=7)
    index = Store.open(store).index
    assert [e.round for e in index] == [0, 1, 1, 2, 2, 7] and last.round == 7
    assert [x["round"] for x in log_lines(store)] == [0, 1, 1, 2, 2, 7]
    # Session 2 takes over at the first episode's last step and holds SPACE through the
    # second, which is then all the person's: no intervention, nobody was taken over from.
    assert [e.extras["interventions"] for e in index] == [0, 1, 0, 1, 0, 0]
    assert [s.interventions for s in sessions] == [1, 1]
    attention = [e.extras["attention_seconds"] for e in index]
    assert [a > 0 for a in attention] == [True, True, False, True, True, False]
    for e, x in zip(index, log_lines(store), strict=True):
        spent = sum(dt for dt, human in zip(x["dt"], x["in_control"], strict=True) if human)
        assert e.extras["attention_seconds"] == pytest.approx(spent, abs=1e-3)


def test_toggle_key_and_focus_loss(tmp_path: Any) -> None:
    script = {
        3: press("t"),
        4: release("t"),
        8: press("t"),  # toggled back: the learner drives from step 8
        12: press("space"),
        15: lambda: pygame.event.post(pygame.event.Event(pygame.WINDOWFOCUSLOST)),
    }
    summary = teleop(
        lane(20), tmp_path / "s", episodes=1, policy=ScriptedLearner(1, script), fps=FAST
    )
    held = np.zeros(20, bool)
    held[3:8] = held[12:15] = True  # focus lost: SPACE's release would never be reported
    np.testing.assert_array_equal(stored(tmp_path / "s").labeled, held)
    assert summary.interventions == 2 and summary.labels == 8


def test_demonstration_labels_every_step(tmp_path: Any) -> None:
    sup = HumanSupervisor.for_task("lane", fps=FAST)
    sup.open()
    down("right")  # held throughout
    summary = teleop(lane(12), tmp_path / "demo", episodes=2, supervisor=sup)
    d = stored(tmp_path / "demo")
    assert len(d) == 24 and d.labeled.all() and (d.actor == EXPERT).all()
    assert (d.actions == 2).all() and d.rounds.tolist() == [0, 0]
    assert summary.mode == "demonstrate" and summary.labels == summary.human_steps == 24
    assert summary.interventions == 0 and summary.learner_steps == 0
    assert summary.attention_seconds == pytest.approx(summary.session_seconds)
    assert [x["learner_actions"] for x in log_lines(tmp_path / "demo")] == [[None] * 12] * 2


def test_person_as_expert_under_another_gate() -> None:
    """The supervisor as a plain Expert (e.g. DAgger's round-0 ExpertGate): every ``act`` call
    is one tick in which the person drives."""
    task = lane(10)
    sup = HumanSupervisor.for_task(task, fps=FAST)
    env = gym.vector.SyncVectorEnv([lambda: sup.make_env(task)], autoreset_mode=SAME_STEP)
    try:
        r = rollout(env, 2, gate=ExpertGate(), expert=sup, seed=0)
    finally:
        env.close()
        sup.close()
    assert r.labels == 20 and sup.counts.labels == sup.counts.human_steps == 20
    assert sup.counts.steps == 20 and sup.counts.interventions == 0


# -------------------------------------------------------------------------- timing
def test_loop_never_waits_for_input() -> None:
    """No key is pressed: 40 steps at 40 Hz take about one second, and nothing is labeled."""
    task, fps, n = lane(40), 40.0, 40
    sup = HumanSupervisor.for_task(task, fps=fps)
    env = gym.vector.SyncVectorEnv([lambda: sup.make_env(task)], autoreset_mode=SAME_STEP)
    sup.open()
    t0 = time.perf_counter()
    try:
        r = rollout(env, 1, gate=sup, expert=sup, learner=ScriptedLearner(1), seed=0)
    finally:
        env.close()
    elapsed = time.perf_counter() - t0
    sup.close()
    assert r.labels == 0 and r.learner_steps == n and sup.counts.labels == 0
    # paced at fps, never held up: the upper bound only catches a wait (a loaded machine
    # makes ticks late, not early)
    assert (n - 1) / fps * 0.95 <= elapsed <= n / fps * 5, elapsed
    assert np.median(sup.last_episode.dt[1:]) == pytest.approx(1 / fps, rel=0.25)
    assert sup.counts.attention_seconds == 0.0
    assert sup.counts.session_seconds == pytest.approx(sum(sup.last_episode.dt), abs=1e-2)
    assert sup.counts.session_seconds >= (n - 1) / fps * 0.95


class TickClock:
    """A stand-in for the teleop clock's time: each decision comes exactly one period after
    the last, whatever the machine's load (``jump`` adds time that passes outside the loop)."""

    def __init__(self, fps: float):
        self.period, self.t = 1.0 / fps, 0.0

    def now(self) -> float:
        self.t += self.period
        return self.t

    def jump(self, seconds: float) -> None:
        self.t += seconds


def test_attention_is_the_time_in_control(tmp_path: Any, monkeypatch: Any) -> None:
    monkeypatch.setattr(FixedRateClock, "now", staticmethod(TickClock(50).now))
    script = {10: press("space"), 30: release("space")}
    summary = teleop(
        lane(40), tmp_path / "s", episodes=1, policy=ScriptedLearner(1, script), fps=50
    )
    assert summary.human_steps == 20
    assert summary.attention_seconds == pytest.approx(20 / 50)
    assert summary.session_seconds == pytest.approx(40 / 50)


def test_pause_is_not_counted(tmp_path: Any, monkeypatch: Any) -> None:
    """P pauses the loop (the person asked for it); the paused time is charged to nobody."""
    clock = TickClock(50)
    monkeypatch.setattr(FixedRateClock, "now", staticmethod(clock.now))
    # the pause lasts 10 s on the loop's clock (0.5 s of real time): charged, it would add
    # max_gap (0.5 s) to the session
    resume = threading.Timer(0.5, lambda: (clock.jump(10.0), down("p"), up("p")))

    def pause() -> None:
        down("p")
        up("p")
        resume.start()

    script = {5: pause}
    t0 = time.perf_counter()
    summary = teleop(
        lane(20), tmp_path / "s", episodes=1, policy=ScriptedLearner(1, script), fps=50
    )
    elapsed = time.perf_counter() - t0
    resume.join()
    assert summary.steps == 20 and summary.labels == 0
    assert elapsed > 0.5  # the loop did wait for the second P
    assert summary.session_seconds == pytest.approx(20 / 50)


# ---------------------------------------------------------------------------- quitting
@pytest.mark.parametrize("how", ["escape", "window"])
def test_quit_keeps_everything_collected(tmp_path: Any, how: str) -> None:
    """ESC (or closing the window) at global step 13: episode 1 (10 steps) is stored whole,
    episode 2 is truncated after the step in flight and stored too; nothing else runs."""

    def quit_now() -> None:
        if how == "escape":
            down("escape")
        else:
            pygame.event.post(pygame.event.Event(pygame.QUIT))

    script = {11: press("space"), 13: quit_now}
    summary = teleop(
        lane(10), tmp_path / "q", episodes=5, policy=ScriptedLearner(0, script), fps=FAST
    )
    d = stored(tmp_path / "q")
    assert d.episode_lengths.tolist() == [10, 4]
    assert summary.quit and summary.episodes == 2 and summary.steps == 14
    assert summary.labels == 3 and d.labeled.sum() == 3
    episodes = list(Store.open(tmp_path / "q").episodes())
    assert episodes[1].truncated and not episodes[1].terminated
    assert [x["quit"] for x in log_lines(tmp_path / "q")] == [False, True]


def test_quit_without_the_wrapper_raises_at_once(tmp_path: Any) -> None:
    task = lane(10)
    sup = HumanSupervisor.for_task(task, fps=FAST)
    env = gym.vector.SyncVectorEnv([lambda: task.make_env()], autoreset_mode=SAME_STEP)
    store = Store.create(tmp_path / "s", *task.spaces)
    sup.open()
    with pytest.raises(TeleopQuit):
        rollout(
            env,
            5,
            gate=sup,
            expert=sup,
            learner=ScriptedLearner(1, {15: press("escape")}),
            seed=0,
            observers=[StoreEpisodes(store)],
        )
    env.close()
    sup.close()
    assert len(store) == 1  # the finished episode; the one in flight is lost


def test_window_comes_back_after_pygame_quit() -> None:
    """Gymnasium's classic-control envs call pygame.quit() in close(); DAgger makes and closes
    an env per batch. The window must come back and keep taking input."""
    sup = HumanSupervisor.for_task("lunarlander", fps=FAST)
    obs = np.zeros((1, 8), np.float32)
    sup.act(obs)
    pygame.quit()
    assert sup.act(obs).tolist() == [0]
    down("up")
    assert sup.act(obs).tolist() == [2]
    sup.close()


def test_closing_a_wrapped_env_keeps_the_window() -> None:
    """CartPole's close() calls pygame.quit() even after off-screen rendering; the wrapper
    keeps the person's window (and the keys they hold) across the env's close."""
    task = tasks.make("cartpole")
    sup = HumanSupervisor.for_task(task, fps=FAST)
    env = sup.make_env(task)
    env.reset(seed=0)
    obs = np.zeros((1, 4), np.float32)
    down("right")
    assert sup.act(obs).tolist() == [1]
    screen = pygame.display.get_surface()
    env.close()
    assert pygame.display.get_init() and pygame.display.get_surface() is screen
    assert sup.act(obs).tolist() == [1] and sup._held  # still held
    sup.close()


def test_notice_keeps_the_window_responsive() -> None:
    sup = HumanSupervisor.for_task("cartpole", fps=FAST)
    sup.notice("training round 1...")
    down("escape")
    sup.notice("training round 1...")  # a quit pressed between rollouts is kept
    assert sup.quit_requested
    with pytest.raises(TeleopQuit):
        sup.act(np.zeros((1, 4), np.float32))
    sup.close()


def test_implicit_takeover(tmp_path: Any) -> None:
    """With ``implicit_takeover`` any mapped key takes over (PVP's keyboard mode)."""
    script = {3: press("right"), 6: release("right"), 9: press("space"), 11: release("space")}
    summary = teleop(
        lane(15),
        tmp_path / "s",
        episodes=1,
        policy=ScriptedLearner(1, script),
        fps=FAST,
        implicit_takeover=True,
    )
    held = np.zeros(15, bool)
    held[3:6] = held[9:11] = True
    d = stored(tmp_path / "s")
    np.testing.assert_array_equal(d.labeled, held)
    assert d.actions[3:6].tolist() == [2, 2, 2] and d.actions[9:11].tolist() == [1, 1]
    assert summary.interventions == 2


def test_carracing_demonstration_with_the_arrow_keys(tmp_path: Any) -> None:
    """``protege teleop --task carracing``: a person drives with the arrows (UP = gas)."""
    t = tasks.make("carracing")
    task = dataclasses.replace(t, horizon=15)
    sup = HumanSupervisor.for_task(task, fps=FAST)
    sup.open()
    down("up")
    summary = teleop(task, tmp_path / "car", episodes=1, supervisor=sup)
    d = stored(tmp_path / "car")
    assert d.obs.shape == (15, 96, 96, 3) and d.obs.dtype == np.uint8
    np.testing.assert_allclose(d.actions, np.tile([0.0, 1.0, 0.0], (15, 1)))
    assert summary.labels == 15 and summary.mode == "demonstrate"


# ----------------------------------------------------------------------- own task
class Slider(gym.Env):
    """A point on a line pushed by a 1-D force; rendered as a bar."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 30}  # noqa: RUF012

    def __init__(self, render_mode: str | None = None):
        self.render_mode = render_mode
        self.observation_space = gym.spaces.Box(-10, 10, (2,), np.float32)
        self.action_space = gym.spaces.Box(-0.5, 0.5, (1,), np.float32)
        self.x = 0.0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> Any:
        super().reset(seed=seed)
        self.x = 0.0
        return np.array([self.x, 0.0], np.float32), {}

    def step(self, action: Any) -> Any:
        self.x = float(np.clip(self.x + float(np.asarray(action)[0]), -10, 10))
        return np.array([self.x, 0.0], np.float32), -abs(self.x), False, False, {}

    def render(self) -> np.ndarray:
        img = np.zeros((20, 100, 3), np.uint8)
        img[:, int((self.x + 10) * 4.95)] = 255
        return img


def test_own_task_with_registered_keys(tmp_path: Any) -> None:
    keys = BoxControls({"a": {0: -0.5}, "d": {0: 0.25}}, names=("force",), help="A/D: push")
    task = tasks.register(
        Task(
            name="test-slider", env_id=Slider, expert_factory=lambda: None, horizon=8, controls=keys
        ),
        overwrite=True,
    )
    sup = HumanSupervisor.for_task("test-slider", fps=FAST)
    sup.open()
    down("d")
    summary = teleop(task, tmp_path / "slider", episodes=1, supervisor=sup)
    d = stored(tmp_path / "slider")
    np.testing.assert_allclose(d.actions, np.full((8, 1), 0.25))
    assert summary.labels == 8
    (episode,) = Store.open(tmp_path / "slider").episodes()
    np.testing.assert_allclose(episode.obs[-1], [2.0, 0.0])


# ------------------------------------------------------------- HG-DAgger with a person
class ScriptedPerson(HumanSupervisor):
    """A person who follows a script: ``script[k]`` runs just before their k-th decision,
    counted over the whole run (demonstrations, every round, every episode)."""

    def __init__(
        self, action_space: gym.Space, script: dict[int, Callable[[], None]], **kw: Any
    ) -> None:
        super().__init__(action_space, **kw)
        self.script = script

    def _tick(self, obs: np.ndarray, learner: np.ndarray | None, demo: bool) -> bool:
        action = self.script.get(self.counts.steps)
        if action is not None:
            self.open()  # events are posted to the window's queue
            action()
        return super()._tick(obs, learner, demo)


H = 15  # lane episodes are exactly H steps
PERSON_FPS = 50.0


def person_config(**kw: Any) -> Any:
    from protege.algos.bc import BCConfig
    from protege.configs.interactive import DAggerConfig

    bc = BCConfig(steps=60, batch_size=32, val_fraction=0.0, progress=False)
    base: dict[str, Any] = dict(
        rounds=2, episodes_per_round=2, initial_demos=1, bc=bc, eval_episodes=2, eval_envs=2
    )
    return DAggerConfig(**{**base, **kw})


def run_person(tmp_path: Any, script: dict[int, Callable[[], None]], **kw: Any) -> Any:
    from protege.algos import engine, hg_dagger

    task = lane(H)
    person = ScriptedPerson.for_task(task, script=script, fps=PERSON_FPS)
    lines: list[str] = []
    result = hg_dagger.run_human(
        task,
        tmp_path / "store",
        person_config(),
        supervisor=person,
        make_policy=engine.policy_factory(task, hidden_sizes=(16,)),
        log=lines.append,
        **kw,
    )
    return result, person, lines


# Ticks 0-14 are the demonstration; round 1 is ticks 15-44, round 2 ticks 45-74 (two
# episodes each). The person holds SPACE (and Right) for those stretches.
TAKEOVERS = [(18, 23), (33, 36), (45, 48), (65, 70)]


def takeover_script() -> dict[int, Callable[[], None]]:
    script: dict[int, Callable[[], None]] = {0: press("left"), H: release("left")}
    for start, end in TAKEOVERS:
        script[start] = press("space", "right")
        script[end] = release("space", "right")
    return script


def test_person_supervises_hg_dagger_rounds_with_retraining(tmp_path: Any) -> None:
    from protege.algos.registry import load_learner

    result, person, lines = run_person(tmp_path, takeover_script())
    d = stored(tmp_path / "store")
    assert d.rounds.tolist() == [0, 1, 1, 2, 2] and len(d) == 5 * H
    held = np.zeros(5 * H, bool)
    held[:H] = True  # the demonstration: every step is the person's
    for start, end in TAKEOVERS:
        held[start:end] = True
    np.testing.assert_array_equal(d.labeled, held)
    np.testing.assert_array_equal(d.actor, np.where(held, EXPERT, LEARNER))
    assert (d.actions[:H] == 0).all()  # demonstrated with Left held
    assert (d.actions[H:][held[H:]] == 2).all() and (d.executed[H:][held[H:]] == 2).all()

    rows = result.rows
    assert [r.round for r in rows] == [0, 1, 2] and not result.stopped
    assert [r.labels for r in rows] == [15, 15 + 5 + 3, 15 + 8 + 3 + 5]
    assert [r.interventions for r in rows] == [0, 2, 4]  # round 2's first starts at step 0
    assert [r.expert_steps for r in rows] == [r.labels for r in rows]
    # Attention: the seconds the person was in control, step by step as logged.
    log = [json.loads(x) for x in log_path(tmp_path / "store").read_text().splitlines()]
    assert [(x["round"], x["episode"]) for x in log] == [(0, 0), (1, 0), (1, 1), (2, 0), (2, 1)]
    dt = np.concatenate([x["dt"] for x in log])
    in_control = np.concatenate([x["in_control"] for x in log]).astype(bool)
    np.testing.assert_array_equal(in_control, held)
    by_round = np.repeat(d.rounds, d.episode_lengths)
    for r in rows:
        spent = dt[in_control & (by_round <= r.round)].sum()
        assert r.attention_seconds == pytest.approx(spent, abs=1e-3)
    assert rows[-1].attention_seconds == pytest.approx(held.sum() / PERSON_FPS, rel=0.3)
    assert rows[-1].attention_seconds == pytest.approx(person.counts.attention_seconds)
    assert rows[1].attention_seconds > rows[0].attention_seconds > 0

    # Retrained between rounds: round r's learner is the one trained after round r − 1.
    learners = tmp_path / "store.run" / "learners"
    for r in (1, 2):
        steps = by_round == r
        proposed = np.concatenate([x["learner_actions"] for x in log if x["round"] == r])
        acted = load_learner(learners / f"round_{r - 1:03d}").act(d.obs[steps])
        np.testing.assert_array_equal(proposed, acted)
    assert (learners / "round_002").exists()
    assert any("round 2 episode 0" in line and "1 takeovers" in line for line in lines)


def test_person_quits_and_the_resumed_run_continues_where_it_stopped(tmp_path: Any) -> None:
    script = takeover_script()
    script[50] = press("escape")  # round 2, episode 0, step 5: cut short there
    first, _, _ = run_person(tmp_path, script)
    assert first.stopped and [r.round for r in first.rows] == [0, 1]
    index = Store.open(tmp_path / "store").index
    assert [(e.round, e.length, e.truncated) for e in index[3:]] == [(2, 6, True)]
    learners = tmp_path / "store.run" / "learners"
    assert sorted(p.name for p in learners.iterdir()) == ["round_000", "round_001"]
    before = {str(p.relative_to(learners)): p.stat().st_mtime_ns for p in learners.rglob("*")}

    # The person comes back: only round 2's missing episode is run, then round 2's learner.
    second, person, _ = run_person(tmp_path, {2: press("space"), 6: release("space")}, resume=True)
    assert not second.stopped and [r.round for r in second.rows] == [0, 1, 2]
    assert person.counts.steps == H
    index = Store.open(tmp_path / "store").index
    assert [(e.round, int(e.extras["episode"])) for e in index[3:]] == [(2, 0), (2, 1)]
    after = {str(p.relative_to(learners)): p.stat().st_mtime_ns for p in learners.rglob("*")}
    assert {name: after.get(name) for name in before} == before  # rounds 0, 1 not retrained
    assert second.rows[:2] == first.rows
    last = second.rows[-1]
    assert last.labels == 15 + 8 + 3 + 4 and last.interventions == 2 + 1 + 1
    assert last.attention_seconds > first.rows[-1].attention_seconds
