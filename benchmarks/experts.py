"""Each built-in task's expert over 20 seeded episodes: mean ± std return, success, length.

The levels the tests assert (``tests/test_experts.py``, ``tests/test_carracing.py``) and the
README quotes. The experts are queryable controllers (scripted, never replayed).

    .venv/bin/python benchmarks/experts.py [--episodes 20] [--seed 0] [--tasks cartpole ...]
"""

from __future__ import annotations

import argparse
import time

import protege
from protege.rollout.evaluate import evaluate_expert
from store_load import machine

TASKS = [
    "cartpole",
    "lunarlander",
    "lunarlander-tight",
    "lunarlander-steady",
    "lunarlander-noisy-mild",
    "lunarlander-continuous",
    "pendulum",
    "mountaincar-continuous",
    "mountaincar",
    "obstacle",
    "carracing",
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--episodes", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tasks", nargs="+", default=TASKS)
    args = ap.parse_args()
    print(f"machine: {machine()}; seed {args.seed}; {args.episodes} episodes per task")
    print("| task | mean ± std return | min | success | mean length | seconds |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in args.tasks:
        task = protege.tasks.make(name)
        t0 = time.perf_counter()
        ev = evaluate_expert(task, episodes=args.episodes, n_envs=4, seed=args.seed)
        print(
            f"| `{name}` | {ev.mean_return:.1f} ± {ev.std_return:.1f} | {ev.returns.min():.1f} | "
            f"{ev.success_rate:.0%} | {ev.mean_length:.0f} | {time.perf_counter() - t0:.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
