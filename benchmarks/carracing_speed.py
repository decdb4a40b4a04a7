"""CarRacing throughput: gymnasium's CarRacing-v3 against protege's ``carracing`` task.

Measures env steps per second, single process and in a 2-worker AsyncVectorEnv, for
gymnasium's CarRacing-v3 (``gym.make``) and protege's task (fast renderer, bit-identical
frames; also with ``fast_render=False`` to show the privileged-info wrapper's own cost). Every
variant steps the same seeded random actions (steer U(-1,1), gas U(0,1), brake U(0,0.3)) with
auto-reset, after a warm-up. The variants take turns (``--blocks`` turns of
``--seconds / --blocks`` each), so on a loaded machine a change in load hits them alike; the
speed-up is the median over turns of each turn's ratio. Then it runs the expert on 20
seeded tracks and prints the mean ± std score. Prints a Markdown table, the speed-ups, the
machine and the command.

Usage:
    SDL_VIDEODRIVER=dummy .venv/bin/python benchmarks/carracing_speed.py [--seconds 8]
        [--blocks 8] [--episodes 20] [--no-score] [--no-async]
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


class Single:
    """One env in this process, stepped in timed blocks (so variants can take turns)."""

    def __init__(self, make: Callable[[], gym.Env]) -> None:
        self.env = make()
        self.rng = np.random.default_rng(0)
        self.env.reset(seed=0)
        self.block(WARMUP_STEPS, 1e9)

    def block(self, n_max: int, seconds: float) -> tuple[int, float, float]:
        """Steps until ``n_max`` steps or ``seconds``: (steps, wall s, CPU s of this process)."""
        t0, c0 = time.perf_counter(), time.process_time()
        n = 0
        while n < n_max and time.perf_counter() - t0 < seconds:
            _, _, term, trunc, _ = self.env.step(_actions(1, self.rng)[0])
            n += 1
            if term or trunc:
                self.env.reset()
        return n, time.perf_counter() - t0, time.process_time() - c0

    def close(self) -> None:
        self.env.close()


class Async:
    """``n_envs`` envs in an AsyncVectorEnv (one process each), stepped in timed blocks."""

    def __init__(self, make: Callable[[], gym.Env], n_envs: int = 2) -> None:
        self.n_envs = n_envs
        self.env = gym.vector.AsyncVectorEnv(
            [make] * n_envs, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP
        )
        self.rng = np.random.default_rng(0)
        self.env.reset(seed=0)
        for _ in range(WARMUP_STEPS):
            self.env.step(_actions(n_envs, self.rng))

    def block(self, n_max: int, seconds: float) -> tuple[int, float, float]:
        t0 = time.perf_counter()
        n = 0
        while n < n_max and time.perf_counter() - t0 < seconds:
            self.env.step(_actions(self.n_envs, self.rng))
            n += self.n_envs
        return n, time.perf_counter() - t0, float("nan")  # the workers' CPU is not measured

    def close(self) -> None:
        self.env.close()


def interleaved(
    variants: dict[str, Callable[[], Single | Async]], seconds: float, blocks: int
) -> dict[str, tuple[list[float], list[float]]]:
    """Steps/s (wall, CPU) of each variant in ``blocks`` turns of ``seconds / blocks`` each,
    the variants taking turns, so a change in the machine's load hits all of them alike."""
    runners = {name: make() for name, make in variants.items()}
    rates: dict[str, tuple[list[float], list[float]]] = {k: ([], []) for k in runners}
    try:
        for _ in range(blocks):
            for name, runner in runners.items():
                n, wall, cpu = runner.block(10**9, seconds / blocks)
                rates[name][0].append(n / wall)
                rates[name][1].append(n / cpu if cpu == cpu else float("nan"))
    finally:
        for runner in runners.values():
            runner.close()
    return rates


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
    parser.add_argument("--seconds", type=float, default=8.0, help="timing per variant")
    parser.add_argument("--blocks", type=int, default=8, help="turns the variants take")
    parser.add_argument("--episodes", type=int, default=20, help="expert episodes (seeds 0..)")
    parser.add_argument("--no-score", action="store_true", help="skip the expert's score")
    parser.add_argument("--no-async", action="store_true", help="skip the AsyncVectorEnv rows")
    args = parser.parse_args()

    raw1 = "gymnasium CarRacing-v3, 1 process"
    slow1 = "protege carracing (fast_render=False), 1 process"
    fast1 = "protege carracing (fast render), 1 process"
    raw2 = "gymnasium CarRacing-v3, AsyncVectorEnv ×2"
    fast2 = "protege carracing (fast render), AsyncVectorEnv ×2"
    load_before = os.getloadavg()
    rates = interleaved(
        {raw1: lambda: Single(_raw), slow1: lambda: Single(_slow), fast1: lambda: Single(_fast)},
        args.seconds,
        args.blocks,
    )
    if not args.no_async:
        rates.update(
            interleaved(
                {raw2: lambda: Async(_raw), fast2: lambda: Async(_fast)},
                args.seconds,
                args.blocks,
            )
        )
    load_after = os.getloadavg()

    def med(xs: list[float]) -> float:
        return float(np.median(xs))

    print("| env | steps/s (wall clock) | steps per CPU-second |")
    print("|---|---:|---:|")
    for name, (wall, cpu) in rates.items():
        c = "—" if np.isnan(med(cpu)) else f"{med(cpu):.1f}"
        print(f"| {name} | {med(wall):.1f} | {c} |")
    print()
    # The ratio of each turn's pair (same moment, same load), then the median over turns.
    ratio_wall = med([f / r for f, r in zip(rates[fast1][0], rates[raw1][0], strict=True)])
    ratio_cpu = med([f / r for f, r in zip(rates[fast1][1], rates[raw1][1], strict=True)])
    line = (
        f"Speed-up of protege's carracing over gymnasium's, 1 process (median over "
        f"{args.blocks} turns of the per-turn ratio): {ratio_wall:.2f}× in wall-clock steps/s, "
        f"{ratio_cpu:.2f}× per CPU-second"
    )
    if not args.no_async:
        ratio2 = med([f / r for f, r in zip(rates[fast2][0], rates[raw2][0], strict=True)])
        line += f"; {ratio2:.2f}× in AsyncVectorEnv ×2"
    print(line + ".")

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
