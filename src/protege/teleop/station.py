"""One fleet supervisor's teleop window, in its own process (``python -m protege.teleop.station``).

pygame shows one display window per process, so each person supervising a fleet gets a
process of their own: this one. It is a terminal and nothing more: the driver
(:class:`protege.teleop.desk.WindowStation`) sends what to show and asks for the keys; the
fleet, its robots, the learner and the store stay in the driver. The messages are JSON lines
on stdin and stdout (a frame's bytes follow its line raw; no pickle):

* ``{"op": "show", "heading", "status", "lines", "human", "obs", "shape"}`` then
  ``prod(shape)`` bytes of an H×W×3 uint8 frame (``shape`` null: no frame, ``obs``' numbers
  are shown): draw it.
* ``{"op": "poll"}``: drain the input queue (never waits) and answer
  ``{"held": [...], "tapped": [...], "closed": bool}``: keys held now, in press order; keys
  pressed since the last poll (a tap shorter than a tick still counts); whether the window
  was closed.
* ``{"op": "close"}`` or end of input: close the window and exit.

Between messages (the driver training the learner) the window keeps handling its events, so
it stays responsive; the keys pressed meanwhile wait for the next poll. The first line
written is ``{"ready": true}`` once the window is open (or the error that
kept it shut, and exit status 1).
"""

from __future__ import annotations

import json
import os
import queue
import sys
import threading
from typing import Any, BinaryIO, TextIO

import numpy as np

from protege.teleop.window import TeleopWindow

os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
import pygame

HEADLESS = ("offscreen", "dummy")
"""SDL video drivers that show nothing: accepted only when asked for (``SDL_VIDEODRIVER``)."""


class Keys:
    """What the keyboard did since the last poll."""

    def __init__(self) -> None:
        self.held: dict[str, None] = {}
        self.tapped: dict[str, None] = {}
        self.closed = False

    def poll(self) -> None:
        """Drain pygame's event queue."""
        for ev in pygame.event.get():
            if ev.type == pygame.QUIT:
                self.closed = True
            elif ev.type == pygame.KEYDOWN:
                name = pygame.key.name(ev.key)
                self.held.pop(name, None)
                self.held[name] = None
                self.tapped[name] = None
            elif ev.type == pygame.KEYUP:
                self.held.pop(pygame.key.name(ev.key), None)
            elif ev.type == pygame.WINDOWFOCUSLOST:
                self.held.clear()  # a key released elsewhere never reports KEYUP here

    def answer(self) -> dict[str, Any]:
        """The reply to a poll; the taps are then forgotten."""
        out = {"held": list(self.held), "tapped": list(self.tapped), "closed": self.closed}
        self.tapped.clear()
        return out


def serve(title: str, inp: BinaryIO, out: TextIO) -> None:
    """Open the window titled ``title`` and answer the driver's messages until it closes."""
    window = TeleopWindow(title)
    try:
        window.open()
        driver = pygame.display.get_driver()
        if driver in HEADLESS and not os.environ.get("SDL_VIDEODRIVER"):
            # SDL falls back to an invisible window when there is no display: nobody could
            # see the robots or press a key, and the fleet would wait for ever.
            raise pygame.error(f"no display (SDL fell back to its {driver!r} driver)")
    except pygame.error as exc:
        out.write(json.dumps({"ready": False, "error": str(exc)}) + "\n")
        out.flush()
        raise SystemExit(1) from None
    keys = Keys()
    out.write(json.dumps({"ready": True}) + "\n")
    out.flush()
    messages: queue.Queue[tuple[dict[str, Any], bytes] | None] = queue.Queue()
    threading.Thread(target=_read, args=(inp, messages), daemon=True).start()
    while True:
        try:
            item = messages.get(timeout=0.05)
        except queue.Empty:
            # Nothing sent (the learner is training): keep the window responsive; the keys
            # pressed meanwhile stay queued for the next poll.
            pygame.event.pump()
            continue
        if item is None:
            break
        msg, raw = item
        if msg["op"] == "close":
            break
        if msg["op"] == "poll":
            keys.poll()
            out.write(json.dumps(keys.answer()) + "\n")
            out.flush()
            continue
        shape = msg.get("shape")
        frame = np.frombuffer(raw, np.uint8).reshape(shape) if shape else None
        obs = np.asarray(msg.get("obs") or [], np.float64)
        window.draw(
            frame,
            obs,
            human=bool(msg.get("human")),
            heading=str(msg.get("heading", "")),
            status=str(msg.get("status", "")),
            lines=[str(x) for x in msg.get("lines", [])],
        )
        keys.poll()
    window.close()


def _read(inp: BinaryIO, messages: queue.Queue[tuple[dict[str, Any], bytes] | None]) -> None:
    """Read the driver's messages (with their frames' bytes) into ``messages``; None at the
    end of input."""
    while True:
        line = inp.readline()
        if not line:
            break
        msg = json.loads(line)
        shape = msg.get("shape")
        messages.put((msg, inp.read(int(np.prod(shape))) if shape else b""))
    messages.put(None)


if __name__ == "__main__":
    serve(sys.argv[1] if len(sys.argv) > 1 else "protege fleet", sys.stdin.buffer, sys.stdout)
