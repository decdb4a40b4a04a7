"""Keyboard and gamepad controls: how a person's keys become a task's actions.

A task's controls map pygame key names (and gamepad axes and buttons) to actions:
:class:`DiscreteControls` for a Discrete action space (a key per action, a no-op when no key
is held), :class:`BoxControls` for a Box (keys add values to action dimensions; gamepad axes
set them). A task carries its own (:attr:`protege.tasks.base.Task.controls`);
:func:`controls_for` is what the teleop window uses (the task's mapping, else
:func:`default_controls` for its action space). The window itself is
:class:`protege.teleop.supervisor.HumanSupervisor`. This module imports no pygame, so task
modules can build their mappings with it.

Example:
    >>> tasks.register(Task("my-arm", make_arm, ArmExpert, horizon=200,
    ...                     controls=BoxControls({"left": {0: -1.0}, "right": {0: 1.0}})))
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np

from protege.errors import ConfigError

if TYPE_CHECKING:
    from protege.tasks.base import Task

__all__ = [
    "BoxControls",
    "Controls",
    "ControlsFactory",
    "DiscreteControls",
    "PadAxis",
    "PadState",
    "controls_for",
    "default_controls",
]


# ------------------------------------------------------------------------------ devices
@dataclass(frozen=True)
class PadState:
    """One reading of a gamepad: axes in [−1, 1], buttons, and the d-pad (hat) as (x, y)."""

    axes: tuple[float, ...] = ()
    buttons: tuple[bool, ...] = ()
    hat: tuple[int, int] = (0, 0)

    def button(self, i: int) -> bool:
        return 0 <= i < len(self.buttons) and bool(self.buttons[i])

    def axis(self, i: int) -> float | None:
        return float(self.axes[i]) if 0 <= i < len(self.axes) else None

    def hat_keys(self) -> list[str]:
        """The d-pad as arrow-key names."""
        x, y = self.hat
        out = []
        if x < 0:
            out.append("left")
        if x > 0:
            out.append("right")
        if y > 0:
            out.append("up")
        if y < 0:
            out.append("down")
        return out

    def stick_keys(self, dead: float = 0.5) -> list[str]:
        """The left stick (axes 0 and 1; y points down) as arrow-key names."""
        out = []
        x, y = self.axis(0), self.axis(1)
        if x is not None and x < -dead:
            out.append("left")
        if x is not None and x > dead:
            out.append("right")
        if y is not None and y < -dead:
            out.append("up")
        if y is not None and y > dead:
            out.append("down")
        return out


@dataclass(frozen=True)
class PadAxis:
    """A gamepad axis driving one action dimension.

    A stick (``trigger=False``) maps −1..1 linearly onto ``low..high`` (its rest, 0, onto the
    midpoint); a trigger (``trigger=True``, SDL reports −1 at rest) maps rest..pressed onto
    ``low..high``. Readings within ``dead`` of rest are ignored (the keys decide).
    """

    axis: int
    low: float
    high: float
    trigger: bool = False
    dead: float = 0.15

    def value(self, pad: PadState) -> float | None:
        v = pad.axis(self.axis)
        if v is None:
            return None
        if self.trigger:
            t = (v + 1.0) / 2.0
            return self.low + t * (self.high - self.low) if t > self.dead else None
        if abs(v) <= self.dead:
            return None
        return (self.low + self.high) / 2.0 + v * (self.high - self.low) / 2.0


# ----------------------------------------------------------------------------- controls
@dataclass(frozen=True)
class DiscreteControls:
    """Keys → action indices for a ``Discrete`` action space.

    ``keys`` maps pygame key names (``"left"``, ``"up"``, ``"space"``, ``"a"``, ``"1"``...) to
    actions; when several mapped keys are held, the one pressed last wins. With no mapped key
    held the action is ``noop``, or, with ``noop=None`` (tasks without a do-nothing action,
    like CartPole), the last action the person chose (``initial`` before any). The gamepad's
    d-pad and left stick act as the arrow keys.
    """

    keys: Mapping[str, int]
    noop: int | None = 0
    names: Sequence[str] = ()
    """Action names for the overlay (optional)."""
    initial: int = 0
    help: str = ""

    def action(self, held: Sequence[str], pad: PadState | None, last: int | None) -> int:
        names = list(held)
        if pad is not None:
            names += pad.hat_keys() + pad.stick_keys()
        chosen = [self.keys[k] for k in names if k in self.keys]
        if chosen:
            return int(chosen[-1])
        if self.noop is not None:
            return int(self.noop)
        return int(self.initial if last is None else last)

    def engaged(self, held: Sequence[str], pad: PadState | None) -> bool:
        """Whether the person is pressing any mapped input (for implicit takeover)."""
        names = list(held) + ([*pad.hat_keys(), *pad.stick_keys()] if pad is not None else [])
        return any(k in self.keys for k in names)

    def format(self, action: Any) -> str:
        a = int(np.asarray(action).reshape(-1)[0])
        return f"{a} {self.names[a]}" if 0 <= a < len(self.names) else str(a)

    def describe(self) -> str:
        if self.help:
            return self.help
        return "  ".join(f"{k}:{self.format(a)}" for k, a in self.keys.items())


@dataclass(frozen=True)
class BoxControls:
    """Keys → values of action dimensions for a ``Box`` action space.

    ``keys`` maps a key name to ``{dimension: value}``; a held key sets those dimensions (the
    key pressed last wins a dimension several keys set), the others stay at ``rest`` (zeros by
    default). ``pad_axes`` maps a dimension to a :class:`PadAxis`, whose reading overrides the
    keys when deflected; the d-pad acts as the arrow keys. Actions are clipped to the space.
    """

    keys: Mapping[str, Mapping[int, float]]
    rest: Sequence[float] | None = None
    pad_axes: Mapping[int, PadAxis] = field(default_factory=dict)
    names: Sequence[str] = ()
    """Dimension names for the overlay (optional)."""
    help: str = ""

    def action(self, held: Sequence[str], pad: PadState | None, dim: int) -> np.ndarray:
        value = np.zeros(dim, np.float64) if self.rest is None else np.array(self.rest, float)
        names = list(held) + (pad.hat_keys() if pad is not None else [])
        for k in names:
            for d, v in self.keys.get(k, {}).items():
                value[d] = v
        if pad is not None:
            for d, ax in self.pad_axes.items():
                deflected = ax.value(pad)
                if deflected is not None:
                    value[d] = deflected
        return value

    def engaged(self, held: Sequence[str], pad: PadState | None) -> bool:
        if any(k in self.keys for k in held):
            return True
        if pad is None:
            return False
        return bool(pad.hat_keys()) or any(
            ax.value(pad) is not None for ax in self.pad_axes.values()
        )

    def format(self, action: Any) -> str:
        a = np.asarray(action, np.float64).reshape(-1)
        if len(self.names) == len(a):
            return " ".join(f"{n} {v:+.2f}" for n, v in zip(self.names, a, strict=True))
        return "[" + " ".join(f"{v:+.2f}" for v in a) + "]"

    def describe(self) -> str:
        if self.help:
            return self.help
        return "  ".join(
            f"{k}:" + ",".join(f"a{d}={v:+g}" for d, v in m.items()) for k, m in self.keys.items()
        )


Controls = DiscreteControls | BoxControls
ControlsFactory = Callable[[gym.Space], Controls]


def controls_for(task: Task | None, action_space: gym.Space) -> Controls:
    """The keys of ``task`` (its :attr:`~protege.tasks.base.Task.controls`, called with
    ``action_space`` if it is a function), or :func:`default_controls` for ``action_space``
    when the task has none or there is no task."""
    own = None if task is None else task.controls
    if own is None:
        return default_controls(action_space)
    if isinstance(own, DiscreteControls | BoxControls):
        return own
    return own(action_space)


_PAIRS = [
    ("left", "right"),
    ("down", "up"),
    ("a", "d"),
    ("s", "w"),
    ("j", "l"),
    ("k", "i"),
    ("z", "x"),
    ("c", "v"),
]


def default_controls(action_space: gym.Space) -> Controls:
    """A mapping for any Discrete or Box action space.

    * ``Discrete(2)``: left/right arrows → 0/1, the last choice held otherwise.
    * ``Discrete(n)``: number keys 0–9 → actions 0–9, no key → 0.
    * ``Box``: one key pair per dimension, low/high of the space (left/right, down/up, a/d,
      s/w, j/l, k/i, z/x, c/v); at rest 0 clipped into the bounds; left stick → dims 0 and 1.
    """
    if isinstance(action_space, gym.spaces.Discrete):
        n = int(action_space.n)
        if n == 2:
            return DiscreteControls(
                {"left": 0, "right": 1}, noop=None, help="Left/Right: action 0/1"
            )
        if n > 10:
            raise ConfigError(f"no default keys for Discrete({n}); give the task controls=...")
        digits = {str(i): i for i in range(n)}
        return DiscreteControls(digits, noop=0, help=f"0-{n - 1}: action; no key: 0")
    if isinstance(action_space, gym.spaces.Box):
        low = np.broadcast_to(action_space.low, action_space.shape).reshape(-1).astype(float)
        high = np.broadcast_to(action_space.high, action_space.shape).reshape(-1).astype(float)
        dim = len(low)
        if dim > len(_PAIRS):
            raise ConfigError(f"no default keys for a {dim}-D Box; give the task controls=...")
        keys: dict[str, dict[int, float]] = {}
        for d in range(dim):
            lo_key, hi_key = _PAIRS[d]
            keys[lo_key] = {d: _finite(low[d], -1.0)}
            keys[hi_key] = {d: _finite(high[d], 1.0)}
        rest = np.clip(np.zeros(dim), low, high).tolist()
        axes = {
            d: PadAxis(d, _finite(low[d], -1.0), _finite(high[d], 1.0)) for d in range(min(dim, 2))
        }
        if dim == 2:  # stick y points down; up should raise dimension 1
            axes[1] = PadAxis(1, _finite(high[1], 1.0), _finite(low[1], -1.0))
        pairs = ", ".join(f"{a}/{b}: a{d} low/high" for d, (a, b) in enumerate(_PAIRS[:dim]))
        return BoxControls(keys, rest=rest, pad_axes=axes, help=pairs)
    raise ConfigError(f"no keyboard controls for action space {action_space!r}")


def _finite(v: float, fallback: float) -> float:
    return float(v) if np.isfinite(v) else fallback
