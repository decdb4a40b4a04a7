"""A person as expert and as supervisor: the human half of HG-DAgger.

HG-DAgger (Kelly, Sidrane, Driggs-Campbell & Kochenderfer, ICRA 2019, "HG-DAgger: Interactive
Imitation Learning with Human Experts") lets the novice drive while a person watches; the person
takes full control when they judge the novice unsafe and hands control back once it has
recovered. Only the steps the person controls are labeled. :class:`HumanSupervisor` is that
person at the keyboard (or gamepad), in a pygame window that shows the running env.

It is both things the rollout loop (:func:`protege.rollout.loop.rollout`) needs:

* a **Gate** (``begin_episode(env_index)``, ``decide(step)``): the person is in control,
  and the step is labeled, exactly on the steps the takeover key (default SPACE) is held, or
  the toggle key (default T) has switched control to them. With no learner (pure
  demonstration) the person drives, and labels, every step. Nothing is labeled while the
  person is not in control, so a released keyboard never produces no-op labels.
* an **Expert** (``act(obs_N, infos)``): the action of the current key (and gamepad) state,
  through the task's key mapping (:func:`protege.teleop.controls.controls_for`).

**Loop discipline** (``../shared/references/interactive-il.md`` §3). Each step is one tick of a
fixed-rate clock (:class:`~protege.teleop.clock.FixedRateClock`, ``fps``, default 20 Hz): the
window (:class:`~protege.teleop.window.TeleopWindow`) shows the current frame with the learner's
*proposed* action for it, the tick sleeps until its deadline while that frame is on screen, then
the input queue is drained (never waited on) and the decision is taken for the state the person
has just seen. If the env is slower than ``fps`` the loop simply runs at the env's rate. A
person can pause (P): the loop then waits, and the paused time is not counted.

**What is counted** (:class:`HumanCounts`): steps, labels, human-controlled steps,
interventions (by the rule every method uses, :func:`protege.rollout.loop.count_interventions`:
maximal runs of human-controlled steps in an episode in which the learner also drove; a run
from the episode's first step counts once the learner has driven) and time:

* ``attention_seconds``: wall time the person was in control. Each tick is charged the wall
  time since the previous tick (the time its frame was on screen and the decision was made),
  capped at ``max_gap`` so a stall (training between rounds, a slow reset) is not charged
  (see :mod:`protege.teleop.clock`).
  In pure demonstration the person is in control throughout, so this is the session time.
* ``session_seconds``: wall time the window was live and unpaused (the person watching),
  charged the same way whoever was in control. In HG-DAgger the person must watch all the
  time, so this is the cost of supervision; ``attention_seconds`` is the cost of the labels.

**Quitting** (ESC or closing the window) ends cleanly. If the env was wrapped with
:meth:`HumanSupervisor.wrap` the episode in flight is truncated at the current step, so the
loop appends it to the store like any other episode, and the next decision raises
:class:`TeleopQuit`. Otherwise :class:`TeleopQuit` is raised at once (the in-flight episode is
lost; every finished one is already in the store).

**Per-step log.** Per episode the supervisor keeps (:class:`EpisodeLog`) who was in control,
the learner's proposed action and the person's action at every step (both, even when only one
was executed), the takeover segment id, and wall-clock timestamps and tick durations: what
RLIF, PVP and HIL-SERL log, and what the store's own fields do not hold.

Example:
    >>> sup = HumanSupervisor.for_task("lunarlander", fps=20)
    >>> env = gym.vector.SyncVectorEnv([lambda: sup.wrap(task.make_env("rgb_array"))])
    >>> rollout(env, 5, gate=sup, expert=sup, learner=policy, seed=0,
    ...         observers=[StoreEpisodes(store)])
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np

from protege.data.obs import as_numpy, n_rows, take
from protege.errors import ConfigError
from protege.rollout.gates import Decision, Gate, StepView
from protege.rollout.loop import count_interventions
from protege.teleop.clock import FixedRateClock
from protege.teleop.controls import Controls, DiscreteControls, PadState, controls_for
from protege.teleop.log import EpisodeLog, HumanCounts
from protege.teleop.window import (
    EnvView,
    TeleopWindow,
    frame_of,
    key_name,
    open_gamepad,
    read_gamepad,
)

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
import pygame

if TYPE_CHECKING:
    from protege.tasks.base import Task

__all__ = ["HumanSupervisor", "TeleopQuit"]


class TeleopQuit(Exception):
    """The person pressed the quit key or closed the window."""


class HumanSupervisor(Gate):
    """A person at the keyboard (and gamepad) as HG-DAgger's supervisor and as the expert.

    Args:
        action_space: the env's (single) action space.
        controls: the key mapping (default: the registered task ``task_name``'s, see
            :func:`~protege.teleop.controls.controls_for`).
        task_name: shown in the title and used to look up the controls.
        fps: the fixed control rate in Hz.
        takeover_key: held, it gives control to the person; released, back to the learner.
        toggle_key: pressed once, it gives control to the person until pressed again (None:
            no toggle). Explicit toggles suit long takeovers (the Thrifty repo's HG-DAgger
            uses 'Z').
        implicit_takeover: also take over whenever a mapped action key (or the gamepad) is
            pressed (PVP's keyboard mode, HIL-SERL's SpaceMouse). Off by default: for tasks
            with a meaningful "no key" action a person could not take over to command it.
        pause_key: toggles a pause (the loop waits; the paused time is not counted).
        quit_keys: end the session (closing the window does too).
        gamepad: use the first gamepad found, if any (pygame.joystick; skipped if none).
        pad_takeover_buttons: gamepad buttons that act as the takeover key (held).
        title: the window title (the task name is appended).
        scale: frame magnification (default: the longer side becomes about 640 px).
        max_gap: the most wall time one tick is charged (default ``max(4/fps, 0.5)`` s).
    """

    def __init__(
        self,
        action_space: gym.Space,
        controls: Controls | None = None,
        *,
        task_name: str | None = None,
        fps: float = 20.0,
        takeover_key: str = "space",
        toggle_key: str | None = "t",
        implicit_takeover: bool = False,
        pause_key: str | None = "p",
        quit_keys: Sequence[str] = ("escape",),
        gamepad: bool = True,
        pad_takeover_buttons: Sequence[int] = (0, 5),
        title: str = "protege teleop",
        scale: float | None = None,
        max_gap: float | None = None,
    ):
        if not isinstance(action_space, gym.spaces.Discrete | gym.spaces.Box):
            raise ConfigError(f"a person can drive Discrete or Box actions, not {action_space!r}")
        self.clock = FixedRateClock(fps, max_gap)
        """Deadlines and the wall time charged to each step."""
        self.action_space = action_space
        self.discrete = isinstance(action_space, gym.spaces.Discrete)
        self.controls: Controls = controls or controls_for(_registered(task_name), action_space)
        if self.discrete != isinstance(self.controls, DiscreteControls):
            raise ConfigError(f"{type(self.controls).__name__} do not fit {action_space!r}")
        self.task_name = task_name
        self.fps = self.clock.fps
        self.takeover_key = key_name(takeover_key)
        self.toggle_key = key_name(toggle_key) if toggle_key else None
        self.pause_key = key_name(pause_key) if pause_key else None
        self.quit_keys = {key_name(k) for k in quit_keys}
        self.implicit_takeover = implicit_takeover
        self.use_gamepad = gamepad
        self.pad_takeover_buttons = tuple(pad_takeover_buttons)
        self.title = f"{title} - {task_name}" if task_name else title
        self.window = TeleopWindow(self.title, scale)
        for k in self.controls.keys:
            key_name(str(k))  # unknown names fail here, not in the middle of a session
        self._n = int(action_space.n) if isinstance(action_space, gym.spaces.Discrete) else 0
        if isinstance(action_space, gym.spaces.Box):
            self._low = np.broadcast_to(action_space.low, action_space.shape).astype(np.float64)
            self._high = np.broadcast_to(action_space.high, action_space.shape).astype(np.float64)

        self.counts = HumanCounts()
        """Totals over the whole session (every tick, stored or not)."""
        self.episode = EpisodeLog(index=0)
        """The episode in progress (the one just finished, until the next ``begin_episode``)."""
        self.last_episode: EpisodeLog | None = None
        """The episode before :attr:`episode`."""
        self.quit_requested = False
        self.paused = False
        self.in_control = False
        """Whether the person controlled the last decided step."""
        self.frame: np.ndarray | None = None
        """The latest frame from the wrapped env (see :meth:`wrap`)."""

        self._held: dict[str, None] = {}  # keys held, in press order
        self._tapped: dict[str, None] = {}  # keys pressed since the last decision
        self._toggled = False
        self._pad: Any = None
        self._pad_state: PadState | None = None
        self._last_discrete: int | None = None
        self._human_action: np.ndarray | int = self._compute_action()
        self._fresh = False  # decide() ticked this step; act() must not tick again
        self._wrapped = False
        self._prev_in_control = False
        self._segment_id = -1

    @classmethod
    def for_task(cls, task: Task | str, **kwargs: Any) -> HumanSupervisor:
        """A supervisor with the task's own controls (``kwargs`` as for the class)."""
        from protege import tasks

        t = tasks.make(task) if isinstance(task, str) else task
        _, act_space = t.spaces
        kwargs.setdefault("task_name", t.name)
        if kwargs.get("controls") is None:
            kwargs["controls"] = controls_for(t, act_space)
        return cls(act_space, **kwargs)

    # ----------------------------------------------------------------------------- gate
    def begin_episode(self, env_index: int = 0) -> None:
        """A new episode starts (the gate hook): the finished one becomes :attr:`last_episode`
        (an episode with no steps yet is not restarted)."""
        if len(self.episode):
            self.last_episode = self.episode
            self.episode = EpisodeLog(index=self.episode.index + 1)
        self._prev_in_control = False

    def decide(self, step: StepView) -> Decision:
        """The person controls (and labels) this step iff they hold the takeover key (or have
        toggled control); with no learner they control every step."""
        n = n_rows(step.obs)
        if n != 1:
            raise ConfigError(f"a person supervises one env at a time; this vector env has {n}")
        learner = None if step.learner_action is None else np.asarray(step.learner_action)[0]
        active = bool(step.expert.active[0]) if len(step.expert.active) else True
        in_control = self._tick(take(step.obs, 0), learner, demo=learner is None) and active
        self._fresh = True
        flag = np.array([in_control])
        return Decision(expert_acts=flag, label=flag.copy())

    def episode_extras(self, env_index: int = 0) -> dict[str, float]:
        """What the episode just finished cost the person, stored with it (the gate hook
        :func:`protege.algos.engine.run` reads before ``begin_episode``):
        ``attention_seconds`` (in control) and ``session_seconds`` (watching)."""
        c = self.episode.counts
        return {"attention_seconds": c.attention_seconds, "session_seconds": c.session_seconds}

    def poll(self) -> bool:
        """Drain the input queue now (never waits) and say whether the person asked to quit.

        A round loop asks between episodes and before training, so an ESC pressed while the
        learner was trained or evaluated ends the run before another episode starts."""
        if pygame.display.get_init():
            self._poll()
        return self.quit_requested

    # --------------------------------------------------------------------------- expert
    def begin_run(self, seed: int | None = None) -> None:
        """A run starts (the expert hook): as at a new episode, an episode in progress is
        closed; a person takes no seed."""
        self.begin_episode()

    def act(self, obs: np.ndarray, infos: dict[str, Any] | None = None) -> np.ndarray:
        """The person's action (current key state) for each row of ``obs``.

        Called after :meth:`decide` it returns that step's action. Called alone (the person as
        the expert under another gate, e.g. ``ExpertGate`` for demonstrations), each call is one
        tick of the control loop in which the person drives and labels.
        """
        n = n_rows(obs)
        if not self._fresh:
            if n != 1:
                raise ConfigError(f"a person drives one env at a time; asked about {n} at once")
            self._tick(take(as_numpy(obs), 0), None, demo=True)
        self._fresh = False
        if self.discrete:
            return np.full(n, int(self._human_action), np.int64)
        row = np.asarray(self._human_action, self.action_space.dtype)
        return np.repeat(row[None], n, axis=0)

    # ------------------------------------------------------------------------------ env
    def wrap(self, env: gym.Env) -> gym.Env:
        """Wrap a single env so the window shows its frames (when its ``render_mode`` is
        ``"rgb_array"``; otherwise image observations, or the numbers) and so a quit truncates
        the episode in flight, which the rollout loop then stores."""
        self._wrapped = True
        return EnvView(env, self)

    def make_env(self, task: Task) -> gym.Env:
        """``task``'s env rendering ``rgb_array`` frames (if it can), wrapped by :meth:`wrap`."""
        try:
            env = task.make_env(render_mode="rgb_array")
        except (TypeError, ValueError, gym.error.Error):
            env = task.make_env()
        return self.wrap(env)

    def set_frame(self, frame: Any) -> None:
        """Show ``frame`` (H×W×3 uint8) from the next tick on."""
        if isinstance(frame, list | tuple):
            frame = frame[0] if frame else None
        self.frame = None if frame is None else np.asarray(frame)

    # ------------------------------------------------------------------------- the tick
    def _tick(self, obs: np.ndarray, learner: np.ndarray | None, demo: bool) -> bool:
        if self.quit_requested:
            raise TeleopQuit("the person quit")
        self.open()
        self._poll()
        self._human_action = self._compute_action()
        self._draw(obs, learner, demo or self._takeover_active())
        self._wait()
        now = self.clock.now()
        self._poll()
        if self.quit_requested and not self._wrapped:
            raise TeleopQuit("the person quit")
        in_control = demo or self._takeover_active()
        self._human_action = self._compute_action()
        if self.discrete and in_control:
            self._last_discrete = int(self._human_action)
        self._tapped.clear()
        dt = self.clock.charge(now)
        self._record(now, dt, learner, in_control, demo)
        return in_control

    def _record(
        self, now: float, dt: float, learner: np.ndarray | None, in_control: bool, demo: bool
    ) -> None:
        """Count the step just decided and append it to the episode's log."""
        if in_control and not self._prev_in_control and not demo:
            self._segment_id += 1
        ep = self.episode
        ep.in_control.append(bool(in_control))
        ep.t0_unix = self.clock.t0_unix
        interventions = 0 if demo else count_interventions(np.array(ep.in_control, bool))
        new_interventions = interventions - ep.counts.interventions
        for c in (self.counts, ep.counts):
            c.steps += 1
            c.session_seconds += dt
            if in_control:
                c.labels += 1
                c.human_steps += 1
                c.attention_seconds += dt
            c.interventions += new_interventions
        ep.learner_actions.append(None if learner is None else _jsonable(learner))
        ep.human_actions.append(_jsonable(self._human_action))
        ep.segment.append(self._segment_id if in_control and not demo else -1)
        ep.t_wall.append(round(self.clock.since_start(now), 4))
        ep.dt.append(round(dt, 4))
        if self.quit_requested:
            ep.quit = True
        self._prev_in_control = in_control
        self.in_control = in_control

    def _wait(self) -> None:
        """Sleep until the tick's deadline (input queues up meanwhile), then, while paused,
        keep the window alive until the person resumes or quits."""
        self.clock.sleep_until_due()
        self._poll()
        if not self.paused:
            return
        while self.paused and not self.quit_requested:
            pause = f"PAUSED - {str(self.pause_key).upper()} to resume"
            self.window.banner(pause, height=30, text_top=30)
            time.sleep(self.clock.period)
            self._poll()
        self.clock.restart()  # the pause is not charged

    def _takeover_active(self) -> bool:
        if self._toggled:
            return True
        if self.takeover_key in self._held or self.takeover_key in self._tapped:
            return True
        pad = self._pad_state
        if pad is not None and any(pad.button(b) for b in self.pad_takeover_buttons):
            return True
        return self.implicit_takeover and self.controls.engaged(self._pressed(), pad)

    def _pressed(self) -> list[str]:
        """Keys held now or tapped since the last decision, in press order."""
        return list(dict.fromkeys([*self._held, *self._tapped]))

    def _compute_action(self) -> np.ndarray | int:
        pressed, pad = self._pressed(), self._pad_state
        if isinstance(self.controls, DiscreteControls):
            a = self.controls.action(pressed, pad, self._last_discrete)
            if not 0 <= a < self._n:
                raise ConfigError(f"controls mapped a key to action {a}, outside the space")
            return a
        dim = int(np.prod(self.action_space.shape or (1,)))
        value = self.controls.action(pressed, pad, dim)
        value = value.reshape(self._low.shape)
        return np.clip(value, self._low, self._high)

    # ---------------------------------------------------------------------------- input
    def open(self) -> None:
        """Open the window (and the gamepad) if it is not open. Called by every tick, so a
        window closed by an env's ``close()`` (pygame.quit) comes back."""
        if self.window.is_open():
            return
        self.window.open()
        self._held.clear()  # keys held across a re-open are not reported again
        self._pad = open_gamepad() if self.use_gamepad else None

    def notice(self, text: str) -> None:
        """Show ``text`` over the last frame and drain the input queue once: call it between
        rollouts (e.g. "training round 3...") so the window stays responsive and says why
        nothing moves. A quit pressed meanwhile is honoured at the next tick; keys held
        through the wait must be pressed again, and a toggled takeover is off (no takeover
        carries over a pause in play)."""
        self.open()
        self._poll()
        self._held.clear()
        self._tapped.clear()
        self._toggled = False
        self.window.banner(text, height=34, text_top=32)
        self.clock.restart()  # the wait is not charged

    def close(self) -> None:
        """Close the window."""
        self.window.close()

    def _poll(self) -> None:
        for ev in pygame.event.get():
            if ev.type == pygame.QUIT:
                self.quit_requested = True
            elif ev.type == pygame.KEYDOWN:
                name = pygame.key.name(ev.key)
                if name in self.quit_keys:
                    self.quit_requested = True
                elif name == self.pause_key:
                    self.paused = not self.paused
                elif name == self.toggle_key:
                    self._toggled = not self._toggled
                self._held.pop(name, None)
                self._held[name] = None
                self._tapped[name] = None
            elif ev.type == pygame.KEYUP:
                self._held.pop(pygame.key.name(ev.key), None)
            elif ev.type == pygame.WINDOWFOCUSLOST:
                # A key released in another window never reports KEYUP here: forget them all,
                # rather than keep the person "in control" and record labels they never gave.
                self._held.clear()
            elif ev.type == pygame.JOYDEVICEADDED and self.use_gamepad and self._pad is None:
                try:
                    self._pad = pygame.joystick.Joystick(ev.device_index)
                except pygame.error:
                    self._pad = None
            elif ev.type == pygame.JOYDEVICEREMOVED:
                self._pad = None
        self._pad_state = None if self._pad is None else read_gamepad(self._pad)
        if self._pad is not None and self._pad_state is None:
            self._pad = None  # it has gone

    # -------------------------------------------------------------------------- drawing
    def _draw(self, obs: np.ndarray, learner: np.ndarray | None, human: bool) -> None:
        demo = learner is None
        who = "HUMAN" + (" (demonstrating)" if demo else "") if human else "LEARNER"
        c, fmt = self.counts, self.controls.format
        keys = [] if demo else [f"hold {self.takeover_key.upper()}: take over"]
        if self.toggle_key and not demo:
            keys.append(f"{self.toggle_key.upper()}: toggle")
        if self.pause_key:
            keys.append(f"{self.pause_key.upper()}: pause")
        keys.append(f"{'/'.join(k.upper() for k in sorted(self.quit_keys))}: quit")
        lines = [
            f"learner proposes: {'-' if demo else fmt(learner)}",
            f"human:  {fmt(self._human_action)}",
            f"episode {self.episode.index + 1}  step {len(self.episode) + 1}  labels {c.labels}"
            f"  takeovers {c.interventions}  attention {c.attention_seconds:.1f} s",
            "   ".join(keys),
            self.controls.describe(),
        ]
        self.window.draw(
            frame_of(self.frame, obs),
            obs,
            human=human,
            heading=f"driving: {who}",
            status=f"{self.clock.rate:4.1f} Hz / {self.fps:g}",
            lines=lines,
        )


def _registered(name: str | None) -> Task | None:
    """The registered task called ``name``, or None (no name, or no such task)."""
    if name is None:
        return None
    from protege import tasks

    try:
        return tasks.make(name)
    except tasks.UnknownTaskError:
        return None


def _jsonable(a: Any) -> Any:
    arr = np.asarray(a)
    if arr.ndim == 0:
        return arr.item()
    return [round(float(v), 5) for v in arr.reshape(-1)]
