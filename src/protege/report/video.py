"""GIFs of one rollout, small enough to embed in a report page.

Example:
    >>> record_gif(policy, protege.tasks.make("lunarlander"), "out/bc.gif", seed=0)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import imageio.v2 as imageio
import numpy as np

from protege.rollout.loop import Actor
from protege.tasks.base import Task


@dataclass(frozen=True)
class Clip:
    """What :func:`record_gif` wrote: the file and the episode it shows."""

    path: Path
    episode_return: float
    length: int
    frames: int


def record_gif(
    actor: Actor,
    task: Task,
    path: str | os.PathLike,
    seed: int = 0,
    every: int = 2,
    max_frames: int = 300,
    scale: int = 2,
    fps: int = 25,
) -> Clip:
    """Run one episode of ``actor`` on ``task`` (deterministic actions) and save it as a GIF.

    Keeps every ``every``-th frame, at most ``max_frames`` of them, each downsampled by
    ``scale`` in both directions; LunarLander's 600×400 frames become 300×200. The episode
    runs to its end even when the GIF stops early, so the return shown is the episode's.
    """
    # Rendering calls pygame.init(), which also opens audio; without a sound server SDL then
    # prints "XDG_RUNTIME_DIR is invalid" at exit. protege plays no sound.
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    env = task.make_env(render_mode="rgb_array")
    frames: list[Any] = []
    total, t = 0.0, 0
    try:
        obs, _ = env.reset(seed=seed)
        actor.episodes_started()
        done = False
        while not done:
            if t % every == 0 and len(frames) < max_frames:
                frames.append(_frame(env.render(), scale))
            batch = (
                {k: np.asarray(v)[None] for k, v in obs.items()}
                if isinstance(obs, dict)
                else np.asarray(obs)[None]
            )
            action = actor.act(batch)[0]
            obs, reward, terminated, truncated, _ = env.step(action)
            total += float(reward)
            t += 1
            done = bool(terminated or truncated)
        if len(frames) < max_frames:
            frames.append(_frame(env.render(), scale))
    finally:
        env.close()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # loop=0: repeat forever; duration is per frame in milliseconds.
    imageio.mimsave(path, frames, duration=1000 / fps, loop=0)
    return Clip(path=path, episode_return=total, length=t, frames=len(frames))


def _frame(rgb: object, scale: int) -> np.ndarray:
    frame = np.asarray(rgb, np.uint8)
    return np.ascontiguousarray(frame[::scale, ::scale])
