"""CarRacing throughput: gymnasium's CarRacing-v3 against protege's ``carracing`` task.

Measures env steps per second, single process and in a 2-worker AsyncVectorEnv, for
gymnasium's CarRacing-v3 (``gym.make``) and protege's task (fast renderer, bit-identical
frames; also with ``fast_render=False`` to show the privileged-info wrapper's own cost). Every
variant steps the same seeded random actions (steer U(-1,1), gas U(0,1), brake U(0,0.3)) with
auto-reset, after a warm-up, over a fixed wall-clock window. Then it runs the expert on 20
seeded tracks and prints the mean ± std score. Prints a Markdown table, the speed-ups, the
machine and the command.

Usage:
    SDL_VIDEODRIVER=dummy .venv/bin/python benchmarks/carracing_speed.py [--seconds 8]
        [--episodes 20] [--no-score]
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
import time
from collections.abc import Callable

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")

import gymnasium as gym
import numpy as np

import protege.tasks.carracing as carracing
from protege.tasks.carracing_env import make_carracing_env

WARMUP_STEPS = 60


def _actions(n: int, rng: np.random.Generator) -> np.ndarray:
    a = np.empty((n, 3), dtype=np.float32)
    a[:, 0] = rng.uniform(-1, 1, n)
    a[:, 1] = rng.uniform(0, 1, n)
    a[:, 2] = rng.uniform(0, 0.3, n)
    return a


def bench_single(make: Callable[[], gym.Env], seconds: float) -> tuple[float, float]:
    """Env steps per wall-clock second and per CPU second of one env in this process."""
    env = make()
    rng = np.random.default_rng(0)
    env.reset(seed=0)

    def run(n_max: int, t_max: float) -> tuple[int, float, float]:
        t0, c0 = time.perf_counter(), time.process_time()
        n = 0
        while n < n_max and time.perf_counter() - t0 < t_max:
            _, _, term, trunc, _ = env.step(_actions(1, rng)[0])
            n += 1
            if term or trunc:
                env.reset()
        return n, time.perf_counter() - t0, time.process_time() - c0

    run(WARMUP_STEPS, 1e9)
    n, dt, cpu = run(10**9, seconds)
    env.close()
    return n / dt, n / cpu


def bench_async(
    make: Callable[[], gym.Env], seconds: float, n_envs: int = 2
) -> tuple[float, float]:
    """Total env steps/s of ``n_envs`` envs in an AsyncVectorEnv (one process each)."""
    env = gym.vector.AsyncVectorEnv(
        [make] * n_envs, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP
    )
    rng = np.random.default_rng(0)
    env.reset(seed=0)
    for _ in range(WARMUP_STEPS):
        env.step(_actions(n_envs, rng))
    t0 = time.perf_counter()
    n = 0
    while time.perf_counter() - t0 < seconds:
        env.step(_actions(n_envs, rng))
        n += n_envs
    dt = time.perf_counter() - t0
    env.close()
    return n / dt, float("nan")  # the workers' CPU time is not measured


def expert_scores(n_episodes: int) -> np.ndarray:
    """Returns of the expert on seeds 0..n-1, two tracks at a time in a 2-worker async env."""
    task = carracing.CARRACING
    expert = task.make_expert()
    returns: list[float] = []
    env = task.make_vec_env(2, asynchronous=True)
    try:
        for first in range(0, n_episodes, 2):
            seeds = [first, first + 1]
            obs, infos = env.reset(seed=seeds)
            ret = np.zeros(2)
            done = np.zeros(2, dtype=bool)
            while not done.all():
                obs, rew, term, trunc, infos = env.step(expert.act(obs, infos))
                ret += np.where(done, 0.0, rew)
                done |= term | trunc
            returns.extend(ret[: min(2, n_episodes - first)].tolist())
    finally:
        env.close()
    return np.array(returns)


def _raw() -> gym.Env:
    return gym.make("CarRacing-v3")


def _fast() -> gym.Env:
    return carracing.CARRACING.make_env()


def _slow() -> gym.Env:
    return make_carracing_env(fast_render=False)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="timing window per row")
    parser.add_argument("--episodes", type=int, default=20, help="expert episodes (seeds 0..)")
    parser.add_argument("--no-score", action="store_true", help="skip the expert's score")
    args = parser.parse_args()

    raw1 = "gymnasium CarRacing-v3, 1 process"
    slow1 = "protege carracing (fast_render=False), 1 process"
    fast1 = "protege carracing (fast render), 1 process"
    raw2 = "gymnasium CarRacing-v3, AsyncVectorEnv ×2"
    fast2 = "protege carracing (fast render), AsyncVectorEnv ×2"
    variants: list[tuple[str, Callable[[], tuple[float, float]]]] = [
        (raw1, lambda: bench_single(_raw, args.seconds)),
        (slow1, lambda: bench_single(_slow, args.seconds)),
        (fast1, lambda: bench_single(_fast, args.seconds)),
        (raw2, lambda: bench_async(_raw, args.seconds)),
        (fast2, lambda: bench_async(_fast, args.seconds)),
    ]
    wall_of: dict[str, float] = {}
    cpu_of: dict[str, float] = {}
    load_before = os.getloadavg()
    for name, fn in variants:
        wall_of[name], cpu_of[name] = fn()
        print(f"  {name}: {wall_of[name]:.1f} steps/s", file=sys.stderr, flush=True)
    load_after = os.getloadavg()

    print("| env | steps/s (wall clock) | steps per CPU-second |")
    print("|---|---:|---:|")
    for name, _ in variants:
        cpu = "—" if np.isnan(cpu_of[name]) else f"{cpu_of[name]:.1f}"
        print(f"| {name} | {wall_of[name]:.1f} | {cpu} |")
    print()
    print(
        f"Speed-up of protege's carracing over gymnasium's: "
        f"{wall_of[fast1] / wall_of[raw1]:.2f}× single process "
        f"({cpu_of[fast1] / cpu_of[raw1]:.2f}× per CPU-second), "
        f"{wall_of[fast2] / wall_of[raw2]:.2f}× in AsyncVectorEnv ×2."
    )

    if not args.no_score:
        t0 = time.perf_counter()
        scores = expert_scores(args.episodes)
        dt = time.perf_counter() - t0
        print(
            f"Expert (CarRacingExpert, continuous) over {len(scores)} seeded tracks "
            f"(seeds 0..{len(scores) - 1}): {scores.mean():.1f} ± {scores.std():.1f} "
            f"(min {scores.min():.1f}, max {scores.max():.1f}; {dt:.0f} s)"
        )
        print("Scores: " + ", ".join(f"{s:.1f}" for s in scores))

    print()
    print(
        f"Machine: {os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0))}), "
        f"{_cpu_model()}; Python {platform.python_version()}, gymnasium {gym.__version__}; "
        f"load average {load_before[0]:.2f} before, {load_after[0]:.2f} after the timings."
    )
    cmd = " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv])
    print(f"Command: SDL_VIDEODRIVER=dummy {cmd}")


if __name__ == "__main__":
    main()
