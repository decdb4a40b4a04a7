"""Frames per second of collecting with camera images from MuJoCo on a CPU: protege's fast
render settings against each env's default render.

For Meta-World pick-place (corner camera) and Fetch push, at each image size, a collection
loop: env step + the scripted expert + one camera frame per step. "fast" renders through
protege's shared renderer (:mod:`protege.tasks.mujoco_render`: no shadows, reflections or
multisampling); "default" through the env's own ``render()`` (gymnasium's MuJoCo renderer with
the model's settings: Meta-World asks for a 4096² shadow map and 4× multisampling). Blocks of
the two alternate (``--repeats`` each) so that the load of a shared machine hits both alike;
medians are reported, with the step + expert loop alone (no frames) as the ceiling. Every
frame is checked not to be blank.

    .venv/bin/python benchmarks/mujoco_render.py [--steps 200] [--default-steps 40]
"""

from __future__ import annotations

import argparse
import os
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


def bench(name: str, size: int, steps: int, default_steps: int, repeats: int) -> dict[str, float]:
    if name == "metaworld/pick-place":
        task = tasks.make(name)
        ours = task.make_env(render_mode="rgb_array")
        ours.unwrapped.render_size = size
        default_env, default_render = metaworld_default(size)
        from protege.experts.metaworld import MetaWorldExpert

        expert = MetaWorldExpert("pick-place")

        def pick(obs: np.ndarray, info: dict[str, Any]) -> np.ndarray:
            return np.asarray(obs, np.float64)

        fast_env, fast_render = ours, ours.render
        default_step = default_env
    else:
        task = tasks.make(name)
        ours = task.make_env(render_mode="rgb_array")
        ours.unwrapped.render_size = size
        fast_env, fast_render = ours, ours.render
        import gymnasium as gym

        raw = gym.make("FetchPush-v4", render_mode="rgb_array", width=size, height=size)
        parts = ("observation", "achieved_goal", "desired_goal")

        def pick(obs: Any, info: dict[str, Any]) -> np.ndarray:
            if isinstance(obs, dict):
                return np.concatenate([obs[k] for k in parts])
            return np.asarray(obs)

        default_step, default_render = raw, raw.render
        expert = task.make_expert()
    rows: dict[str, list[float]] = {"no frames": [], "fast": [], "default": []}
    for _ in range(repeats):
        rows["no frames"].append(loop(fast_env, None, expert, steps, pick))
        rows["fast"].append(loop(fast_env, fast_render, expert, steps, pick))
        rows["default"].append(loop(default_step, default_render, expert, default_steps, pick))
    fast_env.close()
    default_step.close()
    return {k: float(np.median(v)) for k, v in rows.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument(
        "--default-steps", type=int, default=40, help="steps per block with the default render"
    )
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--sizes", type=int, nargs="+", default=[84, 128])
    args = ap.parse_args()
    torch.set_num_threads(1)
    print(f"machine: {machine()}; MUJOCO_GL={os.environ.get('MUJOCO_GL')}; load {os.getloadavg()}")
    print(
        f"steps/s of step + expert + one frame, medians of {args.repeats} alternating blocks "
        f"of {args.steps} steps (shared, loaded machine)"
    )
    print("| task | image | no frames | fast render | default render | fast / default |")
    print("|---|---|---:|---:|---:|---:|")
    for name in ("metaworld/pick-place", "fetch/push"):
        for size in args.sizes:
            r = bench(name, size, args.steps, args.default_steps, args.repeats)
            print(
                f"| {name} | {size}×{size} | {r['no frames']:.0f} | {r['fast']:.0f} | "
                f"{r['default']:.1f} | {r['fast'] / r['default']:.1f}× |",
                flush=True,
            )


if __name__ == "__main__":
    main()
