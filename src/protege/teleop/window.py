"""The teleop window: pygame drawing and layout, the gamepad, and the env view feeding frames.

:class:`TeleopWindow` shows the running env (its rendered frame, an image observation as it
is, or else the observation's numbers) with a coloured border saying who drives (orange: the
person, green: the learner) and a text panel below. The first frame sets the window's size
(the longer side about 640 px). :class:`EnvView` wraps an env so its frames reach the
supervisor and a quit truncates the episode in flight. :func:`key_name` checks pygame key
names; :func:`open_gamepad` and :func:`read_gamepad` reach the first gamepad.

Example:
    >>> window = TeleopWindow("protege teleop - lane")
    >>> window.open()
    >>> window.draw(frame, human=True, heading="driving: HUMAN", status="20.0 Hz / 20",
    ...             lines=["human:  1 straight"])
"""

from __future__ import annotations

import os
import warnings
from typing import Any, Protocol

import gymnasium as gym
import numpy as np

from protege.errors import ConfigError
from protege.teleop.controls import PadState

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
import pygame

__all__ = [
    "EnvView",
    "TeleopWindow",
    "frame_of",
    "key_name",
    "open_gamepad",
    "read_gamepad",
]

PANEL = 162
"""Height of the text panel under the frame (pixels)."""
NO_FRAME = (640, 260)
"""The frame area's size before any frame was shown."""
GREEN = (40, 170, 80)
ORANGE = (235, 130, 20)
GREY = (120, 120, 120)
_TEXT = (230, 230, 230)
_BACKGROUND = (20, 20, 24)


class TeleopWindow:
    """The pygame window: a frame (or the observation's numbers) above a text panel.

    Args:
        title: the window title.
        scale: frame magnification (default: the longer side becomes about 640 px).
    """

    def __init__(self, title: str, scale: float | None = None):
        self.title = title
        self.scale = scale
        self._screen: Any = None
        self._fonts: tuple[Any, Any] | None = None
        self._frame_rect: tuple[int, int, int, int] | None = None
        self._placeholder = True  # the window is sized for no frame yet

    def is_open(self) -> bool:
        """Whether this window is the display's surface now (an env's ``close()`` calling
        ``pygame.quit`` closes it behind its back)."""
        surface = pygame.display.get_surface() if pygame.display.get_init() else None
        return surface is not None and surface is self._screen

    def open(self) -> None:
        """(Re)open the window, sized for no frame until the first one is drawn."""
        os.environ.setdefault("SDL_VIDEO_X11_WMCLASS", "protege-teleop")
        pygame.display.init()
        pygame.font.init()
        self._screen = None
        self._layout(NO_FRAME)
        self._fonts = (pygame.font.Font(None, 36), pygame.font.Font(None, 22))

    def close(self) -> None:
        """Close the window."""
        if pygame.display.get_init():
            pygame.display.quit()
        self._screen = None

    def draw(
        self,
        image: np.ndarray | None,
        obs: np.ndarray,
        *,
        human: bool,
        heading: str,
        status: str,
        lines: list[str],
    ) -> None:
        """Show ``image`` (or, if None, the numbers of ``obs``) framed in the colour of who
        drives, ``heading`` and ``status`` under it, then ``lines``."""
        if image is not None and self._placeholder:
            self._layout(self._frame_size(image))  # the first frame sets the window size
        screen = self._screen
        assert screen is not None and self._frame_rect is not None and self._fonts is not None
        big, small = self._fonts
        screen.fill(_BACKGROUND)
        x, y, fw, fh = self._frame_rect
        if image is not None:
            screen.blit(pygame.transform.scale(_surface(image), (fw, fh)), (x, y))
        else:
            self._draw_numbers(obs, x, y)
        colour = ORANGE if human else GREEN
        pygame.draw.rect(screen, colour, (x, y, fw, fh), 4)
        top = fh + 6
        screen.blit(big.render(heading, True, colour), (10, top))
        screen.blit(small.render(status, True, GREY), (screen.get_width() - 110, top + 6))
        for i, text in enumerate(lines):
            screen.blit(small.render(text, True, _TEXT), (10, top + 36 + 22 * i))
        pygame.display.flip()

    def banner(self, text: str, height: int, text_top: int) -> None:
        """Write ``text`` in orange on a strip over the bottom ``height`` pixels, ``text_top``
        pixels above the bottom edge (a notice between rounds, the pause)."""
        screen = self._screen
        if screen is None or self._fonts is None:
            return
        label = self._fonts[0].render(text, True, ORANGE)
        screen.fill(_BACKGROUND, (0, screen.get_height() - height, screen.get_width(), height))
        screen.blit(label, (10, screen.get_height() - text_top))
        pygame.display.flip()

    def _frame_size(self, image: np.ndarray | None) -> tuple[int, int]:
        if image is None:
            return NO_FRAME
        h, w = image.shape[:2]
        s = self.scale or float(np.clip(640 / max(h, w), 1.0, 8.0))
        return (round(w * s), round(h * s))

    def _layout(self, size: tuple[int, int]) -> None:
        fw, fh = size
        width = max(fw, 680)
        # The title first, so the window never appears under SDL's default name.
        pygame.display.set_caption(self.title)
        self._screen = pygame.display.set_mode((width, fh + PANEL))
        self._frame_rect = ((width - fw) // 2, 0, fw, fh)
        self._placeholder = size == NO_FRAME

    def _draw_numbers(self, obs: Any, x: int, y: int) -> None:
        assert self._screen is not None and self._fonts is not None
        small = self._fonts[1]
        if isinstance(obs, dict):  # observation parts: the vector parts' numbers
            vectors = [
                np.asarray(v, np.float64).reshape(-1) for v in obs.values() if np.ndim(v) < 2
            ]
            obs = np.concatenate(vectors) if vectors else np.zeros(0)
        values = np.asarray(obs, np.float64).reshape(-1)[:48]
        text = " ".join(f"{v:+.3f}" for v in values)
        words, lines, cur = text.split(" "), [], ""
        for w in words:
            if len(cur) + len(w) > 70:
                lines.append(cur)
                cur = ""
            cur = f"{cur} {w}".strip()
        lines.append(cur)
        self._screen.blit(small.render("observation:", True, GREY), (x + 12, y + 12))
        for i, line in enumerate(lines[:9]):
            self._screen.blit(small.render(line, True, _TEXT), (x + 12, y + 36 + 22 * i))


def frame_of(frame: np.ndarray | None, obs: Any) -> np.ndarray | None:
    """What the window shows: the env's rendered ``frame`` (H×W×3), else an image
    observation (uint8, H×W or H×W×1/3; of observation parts, the first image part), else
    None (the numbers are shown)."""
    if frame is not None and frame.ndim == 3:
        return frame
    if isinstance(obs, dict):
        images = [v for v in obs.values() if frame_of(None, v) is not None]
        return np.asarray(images[0]) if images else None
    if obs is not None:
        o = np.asarray(obs)
        if o.dtype == np.uint8 and (o.ndim == 2 or (o.ndim == 3 and o.shape[-1] in (1, 3))):
            return o
    return None


# ---------------------------------------------------------------------------- gamepad
def open_gamepad() -> Any:
    """The first gamepad plugged in (a ``pygame.joystick.Joystick``), or None."""
    try:
        pygame.joystick.init()
        if pygame.joystick.get_count() > 0:
            return pygame.joystick.Joystick(0)
    except pygame.error:
        return None
    return None


def read_gamepad(pad: Any) -> PadState | None:
    """One reading of ``pad``: its axes, buttons and d-pad; None if it has gone."""
    try:
        axes = tuple(float(pad.get_axis(i)) for i in range(pad.get_numaxes()))
        buttons = tuple(bool(pad.get_button(i)) for i in range(pad.get_numbuttons()))
        hat = tuple(pad.get_hat(0)) if pad.get_numhats() else (0, 0)
    except pygame.error:
        return None
    return PadState(axes, buttons, (int(hat[0]), int(hat[1])))


# --------------------------------------------------------------------------- env view
class FrameSink(Protocol):
    """What :class:`EnvView` feeds: the supervisor."""

    quit_requested: bool

    def set_frame(self, frame: Any) -> None: ...


class EnvView(gym.Wrapper):
    """Hands the env's frames to the supervisor and truncates the episode when it quits."""

    def __init__(self, env: gym.Env, supervisor: FrameSink):
        super().__init__(env)
        self.supervisor = supervisor

    def reset(self, **kwargs: Any) -> Any:
        out = self.env.reset(**kwargs)
        self.supervisor.set_frame(self._render())
        return out

    def step(self, action: Any) -> Any:
        obs, reward, terminated, truncated, info = self.env.step(action)
        if self.supervisor.quit_requested and not (terminated or truncated):
            truncated = True
            info = {**info, "teleop_quit": True}
        self.supervisor.set_frame(self._render())
        return obs, reward, terminated, truncated, info

    def close(self) -> None:
        """Close the env but not the supervisor's window: gymnasium's pygame-drawn envs call
        ``pygame.display.quit()`` and ``pygame.quit()`` in ``close()`` even when they only
        rendered off-screen, and a run that makes an env per batch of episodes (DAgger) would
        otherwise close and reopen the window, and forget the keys held, every batch."""
        quit_display, quit_all = pygame.display.quit, pygame.quit
        pygame.display.quit = pygame.quit = _no_op
        try:
            self.env.close()
        finally:
            pygame.display.quit, pygame.quit = quit_display, quit_all

    def _render(self) -> Any:
        return self.env.render() if self.env.render_mode == "rgb_array" else None


def _no_op() -> None:
    pass


# ---------------------------------------------------------------------------- helpers
def key_name(name: str) -> str:
    """pygame's canonical name for a key name ("Space" → "space"); ConfigError if unknown."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "pygame.init() has not been called": not needed
            return str(pygame.key.name(pygame.key.key_code(name)))
    except ValueError:
        raise ConfigError(f"unknown key name {name!r} (use pygame's key names)") from None


def _surface(img: np.ndarray) -> Any:
    img = np.asarray(img)
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    elif img.shape[-1] == 1:
        img = np.repeat(img, 3, axis=2)
    img = np.ascontiguousarray(img, np.uint8)
    return pygame.image.frombuffer(img.tobytes(), (img.shape[1], img.shape[0]), "RGB")
