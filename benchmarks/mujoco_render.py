"""Frames per second of collecting with camera images from MuJoCo on a CPU: protege's fast
render settings against each env's default render.

For Meta-World pick-place (corner camera) and Fetch push, at each image size, a collection
loop: env step + the scripted expert + one camera frame per step. "fast" renders through
protege's shared renderer (:mod:`protege.tasks.mujoco_render`: no shadows, reflections or
multisampling); "default" through the env's own ``render()`` (gymnasium's MuJoCo renderer with
the model's settings: Meta-World asks for a 4096² shadow map and 4× multisampling). Blocks of
the two alternate (``--repeats`` each, every block in a fresh process with one renderer) so
that the load of a shared machine hits both alike; medians are reported, with the step +
expert loop alone (no frames) as the ceiling. The first frame of every block is checked not
to be blank (and is not timed: it makes the renderer).

    .venv/bin/python benchmarks/mujoco_render.py [--steps 200] [--default-steps 40]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from protege.tasks import mujoco_render

mujoco_render.ensure_gl_backend()  # before anything imports mujoco

from protege import tasks  # noqa: E402
from protege.tasks.mujoco_render import is_blank  # noqa: E402
from store_load import machine  # noqa: E402


def metaworld_default(size: int) -> tuple[Any, Callable[[], np.ndarray]]:
    """Meta-World's own env with its default render (what ``Meta-World/MT1`` gives)."""
    from protege.tasks.metaworld_env import _env_class

    cls = _env_class("pick-place")
    env = cls(render_mode="rgb_array", camera_name="corner", width=size, height=size)
    # protege's set-up of the goal and the configurations, so the expert acts the same
    env._partially_observable = False
    del env.sawyer_observation_space
    env._set_task_called = True
    env._freeze_rand_vec = False
    env.seeded_rand_vec = True
    return env, env.render


def loop(
    step_env: Any, render: Callable[[], np.ndarray] | None, expert: Any, steps: int, pick: Any
) -> float:
    """Steps per second of step + expert (+ a frame) for ``steps`` steps, resetting as needed."""
    obs, info = step_env.reset(seed=0)
    if render is not None and is_blank(render()):  # also makes the renderer: not timed
        raise RuntimeError("a blank frame")
    t0 = time.perf_counter()
    for t in range(steps):
        action = expert.act(
            pick(obs, info)[None],
            {k: v[None] for k, v in info.items() if isinstance(v, np.ndarray)},
        )[0]
        obs, _, terminated, truncated, info = step_env.step(action)
        if render is not None:
            render()
        if terminated or truncated:
            obs, info = step_env.reset(seed=t)
    return steps / (time.perf_counter() - t0)


def worker(name: str, variant: str, size: int, steps: int) -> float:
    """Steps/s of one block, in this process (which makes exactly one renderer)."""
    task = tasks.make(name)
    expert = task.make_expert()
    if variant == "default" and name.startswith("metaworld/"):
        from protege.experts.metaworld import MetaWorldExpert

        env, render = metaworld_default(size)
        expert = MetaWorldExpert("pick-place")
    elif variant == "default":
        import gymnasium as gym

        task.make_env().close()  # imports gymnasium-robotics, which registers FetchPush-v4
        env = gym.make("FetchPush-v4", render_mode="rgb_array", width=size, height=size)
        render = env.render
    else:
        env = task.make_env(render_mode="rgb_array")
        env.unwrapped.render_size = size
        render = env.render if variant == "fast" else None
    parts = ("observation", "achieved_goal", "desired_goal")

    def pick(obs: Any, info: dict[str, Any]) -> np.ndarray:
        if isinstance(obs, dict):
            return np.concatenate([obs[k] for k in parts])
        return np.asarray(obs, np.float64)

    try:
        return loop(env, render, expert, steps, pick)
    finally:
        env.close()


def bench(name: str, size: int, steps: int, default_steps: int, repeats: int) -> dict[str, float]:
    """Median steps/s per variant; blocks alternate, each in a fresh process (a second
    renderer in one process returned blank frames in trials: never two here)."""
    rows: dict[str, list[float]] = {"no frames": [], "fast": [], "default": []}
    for _ in range(repeats):
        for variant in rows:
            n = default_steps if variant == "default" else steps
            cmd = [sys.executable, __file__, "--worker", name, variant, str(size), str(n)]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            rows[variant].append(float(out.strip().splitlines()[-1]))
    return {k: float(np.median(v)) for k, v in rows.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument(
        "--default-steps", type=int, default=40, help="steps per block with the default render"
    )
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--sizes", type=int, nargs="+", default=[84, 128])
    ap.add_argument("--tasks", nargs="+", default=["metaworld/pick-place", "fetch/push"])
    ap.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.worker:
        name, variant, size, steps = args.worker
        print(worker(name, variant, int(size), int(steps)))
        return
    print(f"machine: {machine()}; MUJOCO_GL={os.environ.get('MUJOCO_GL')}; load {os.getloadavg()}")
    print(
        f"steps/s of step + expert + one frame, medians of {args.repeats} alternating blocks "
        f"of {args.steps} steps ({args.default_steps} with the default render; shared, loaded "
        "machine)"
    )
    print("| task | image | no frames | fast render | default render | fast / default |")
    print("|---|---|---:|---:|---:|---:|")
    for name in args.tasks:
        for size in args.sizes:
            r = bench(name, size, args.steps, args.default_steps, args.repeats)
            print(
                f"| {name} | {size}×{size} | {r['no frames']:.0f} | {r['fast']:.0f} | "
                f"{r['default']:.1f} | {r['fast'] / r['default']:.1f}× |",
                flush=True,
            )


if __name__ == "__main__":
    main()
