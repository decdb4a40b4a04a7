"""A person answering preference queries: two segments side by side in a pygame window.

:class:`PersonLabeler` is a :class:`~protege.rewards.oracle.Labeler`. For each query it shows
the left and right segment side by side, replayed in a loop at ``fps``: the task's own frames
when its env can be put into an observed state (CartPole, Pendulum: :func:`state_renderer`),
else each segment's observation numbers drawn as curves over its steps. The person answers
with a key:

==========================  ===============================
Left arrow, ``1``, ``a``    the left segment is better
Right arrow, ``2``, ``d``   the right segment is better
Up arrow, ``e``, ``=``      about the same ("equal")
Down arrow, ``s``, Space    can't tell ("skip": not used for training)
Escape, closing the window  stop (:class:`StopAsking`; the run resumes later)
==========================  ===============================

Keys are taken in the order they were pressed (none is dropped between two queries), and
the seconds from showing a pair to its answer are recorded with the answer.

Example:
    >>> labeler = PersonLabeler(state_renderer(task))
    >>> choice, seconds = labeler.ask(left, right, update=0, index=0)
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from protege.rewards.preference_data import Segment
from protege.teleop.window import _surface

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
import pygame

__all__ = ["KEYS", "PersonLabeler", "StopAsking", "state_renderer"]

KEYS = {
    "left": "left",
    "1": "left",
    "a": "left",
    "right": "right",
    "2": "right",
    "d": "right",
    "up": "equal",
    "e": "equal",
    "=": "equal",
    "down": "skip",
    "s": "skip",
    "space": "skip",
}
"""pygame key names → answers."""
PANE = (420, 300)
"""Each segment's pane (pixels)."""
_BACKGROUND = (20, 20, 24)
_TEXT = (230, 230, 230)
_COLOURS = [(80, 160, 255), (255, 140, 60), (90, 200, 120), (220, 90, 200), (230, 220, 80)]

Renderer = Callable[[np.ndarray], "np.ndarray | None"]


class StopAsking(KeyboardInterrupt):
    """The person pressed Escape or closed the window: stop asking (answers so far are kept)."""


def state_renderer(task: Any) -> Renderer | None:
    """A function drawing an observation as the task's env would (an RGB frame), for the
    classic-control envs whose state an observation determines (CartPole-v1, Pendulum-v1);
    None for others (the window then plots the observation numbers)."""
    env_id = getattr(task, "env_id", None)
    if env_id not in ("CartPole-v1", "Pendulum-v1"):
        return None
    import gymnasium as gym

    env = gym.make(env_id, render_mode="rgb_array")
    env.reset(seed=0)
    inner: Any = env.unwrapped

    def render(obs: np.ndarray) -> np.ndarray | None:
        o = np.asarray(obs, np.float64)
        if env_id == "CartPole-v1":
            inner.state = o.copy()
        else:
            inner.state = np.array([np.arctan2(o[1], o[0]), o[2]])
            inner.last_u = None
        return np.asarray(env.render())

    return render


class PersonLabeler:
    """Asks a person in a pygame window (see the module docstring).

    Args:
        render: draws one observation as a frame (:func:`state_renderer`); None: curves.
        fps: replay speed of the segments.
    """

    source = "human"

    def __init__(self, render: Renderer | None = None, fps: float = 20.0, title: str = ""):
        self.render = render
        self.fps = fps
        self.title = title or "protege preferences: which is better?"
        self._screen: Any = None
        self._fonts: tuple[Any, Any] | None = None
        self.answered = 0

    def open(self) -> None:
        os.environ.setdefault("SDL_VIDEO_X11_WMCLASS", "protege-preferences")
        pygame.display.init()
        pygame.font.init()
        pygame.display.set_caption(self.title)
        self._screen = pygame.display.set_mode((2 * PANE[0] + 30, PANE[1] + 110))
        self._fonts = (pygame.font.Font(None, 30), pygame.font.Font(None, 22))

    def close(self) -> None:
        if pygame.display.get_init():
            pygame.display.quit()
        self._screen = None

    def ask(self, left: Segment, right: Segment, update: int, index: int) -> tuple[str, float]:
        """Show the pair until a key answers it; (choice, seconds). Raises StopAsking."""
        if self._screen is None:
            self.open()
        views = [self._frames(left), self._frames(right)]
        t0 = time.perf_counter()
        clock = pygame.time.Clock()
        tick = 0
        while True:
            for event in pygame.event.get():
                if event.type == pygame.QUIT:
                    raise StopAsking
                if event.type == pygame.KEYDOWN:
                    name = pygame.key.name(event.key)
                    if name == "escape":
                        raise StopAsking
                    if name in KEYS:
                        self.answered += 1
                        return KEYS[name], time.perf_counter() - t0
            self._draw(views, (left, right), tick, f"update {update}, query {index + 1}")
            tick += 1
            clock.tick(self.fps)

    # ---------------------------------------------------------------------- drawing
    def _frames(self, seg: Segment) -> list[Any] | None:
        if self.render is None:
            return None
        frames = [self.render(o) for o in seg.obs]
        shown = [f for f in frames if f is not None]
        if len(shown) < len(frames):
            return None
        return [pygame.transform.smoothscale(_surface(f), PANE) for f in shown]

    def _draw(
        self, views: list[Any], segs: tuple[Segment, Segment], tick: int, status: str
    ) -> None:
        screen = self._screen
        assert screen is not None and self._fonts is not None
        big, small = self._fonts
        screen.fill(_BACKGROUND)
        for side, (view, seg) in enumerate(zip(views, segs, strict=True)):
            x = 10 + side * (PANE[0] + 10)
            step = tick % len(seg)
            if view is not None:
                screen.blit(view[step], (x, 40))
            else:
                self._curves(seg, x, 40, step)
            label = f"{'LEFT (1 / ←)' if side == 0 else 'RIGHT (2 / →)'}  step {step + 1}"
            label += f"/{len(seg)}" + ("  ends: fell" if bool(seg.done[-1]) else "")
            screen.blit(big.render(label, True, _TEXT), (x, 10))
        help_text = "←/1 left better   →/2 right better   ↑/E equal   ↓/S/space skip   Esc stop"
        screen.blit(small.render(help_text, True, _TEXT), (10, PANE[1] + 55))
        screen.blit(small.render(status, True, (120, 120, 120)), (10, PANE[1] + 80))
        pygame.display.flip()

    def _curves(self, seg: Segment, x: int, y: int, step: int) -> None:
        screen = self._screen
        w, h = PANE
        pygame.draw.rect(screen, (60, 60, 66), (x, y, w, h), 1)
        obs = np.asarray(seg.obs, np.float64).reshape(len(seg), -1)[:, : len(_COLOURS)]
        lo, hi = obs.min(), obs.max()
        span = hi - lo if hi > lo else 1.0
        n = max(len(seg) - 1, 1)
        for d in range(obs.shape[1]):
            pts = [
                (x + 5 + (w - 10) * t / n, y + h - 5 - (h - 10) * (v - lo) / span)
                for t, v in enumerate(obs[:, d])
            ]
            if len(pts) > 1:
                pygame.draw.lines(screen, _COLOURS[d], False, pts, 2)
        cursor = x + 5 + (w - 10) * step / n
        pygame.draw.line(screen, _TEXT, (cursor, y), (cursor, y + h), 1)
