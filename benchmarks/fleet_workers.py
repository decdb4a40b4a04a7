"""A fleet's robots on Ray workers against the local fleet (issue 17, part 3 on Ray).

benchmarks/fleet.py's fixed learner (a weak CartPole ThriftyDAgger learner, its gate
calibrated at α_h = 0.01) drives a fleet of N = 8 robots with K = 2 simulated supervisors
(priority allocation) for ``--steps`` fleet steps (:func:`protege.algos.fleet.simulate`),
three ways, interleaved ``--repeats`` times (odd repeats in reverse order):

- ``local``: every robot's env in this process (:class:`~protege.rollout.fleet.LocalRobots`);
- ``ray 1`` / ``ray 2``: the robots' envs and the expert on 1 / 2 Ray workers
  (:class:`~protege.rollout.fleet_shards.ShardedRobots`), the learner, the allocation and the
  bookkeeping here; one call per worker per fleet step.

Each on two tasks: ``cartpole`` (an env step costs ~10 µs: what the round trips cost) and
``slow-pole`` (benchmarks/slow_pole.py: each env step also waits 2 ms, a slow simulator or a
robot's control period: what the workers buy). Every Ray run must give the local run's
numbers (FleetResult) and steps (a digest of every step's observations and actions); the
script fails otherwise. The local Ray (127.0.0.1 only) and each set of actors start before
the timed runs; their start-up is reported apart.

    cd benchmarks && PYTHONPATH=../src ../.venv/bin/python fleet_workers.py \\
        [--steps 400] [--repeats 3] [--json ../benchmarks/results/fleet_workers.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import torch

from fleet import BASE, train_learner
from protege import tasks
from protege.algos import fleet
from protege.rollout.observers import Observer, Step
from protege.rollout.ray_workers import RayWorkers, start_local
from store_load import machine

HERE = Path(__file__).resolve().parent


class Digest(Observer):
    """A hash of every step's observations, actions, labels and rewards."""

    def __init__(self) -> None:
        self.h = hashlib.sha256()

    def on_step(self, step: Step) -> None:
        for a in (step.obs, step.active, step.executed, step.expert_action, step.reward):
            self.h.update(np.ascontiguousarray(a).tobytes())


def run(task: Any, gate: Any, config: Any, steps: int, workers: Any) -> tuple[float, dict, str]:
    """One timed fleet run: wall seconds, its numbers, its steps' digest."""
    digest = Digest()
    t0 = time.perf_counter()
    result = fleet.simulate(task, gate, config, steps, 0, workers=workers, observers=[digest])
    return time.perf_counter() - t0, result.to_dict(), digest.h.hexdigest()


def same(a: tuple[dict, str], b: tuple[dict, str]) -> bool:
    """The same numbers (NaN equal to NaN: no supervisor time, no successes) and steps."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=400, help="fleet steps per run")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--robots", type=int, default=8)
    ap.add_argument("--supervisors", type=int, default=2)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "fleet" / "workers")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    tasks.load_plugins([str(HERE / "slow_pole.py")])  # the workers load it too
    print(f"machine: {machine()}, torch {torch.__version__}, 1 thread; shared, loaded machine")
    pole = tasks.make("cartpole")
    learner = train_learner(pole, args.out / "learner", 500, 100, seed=0)
    gate = fleet.calibrated_gate(pole, learner, BASE, episodes=16, seed=50_000)
    config = dataclasses.replace(BASE, robots=args.robots, supervisors=args.supervisors)

    t0 = time.perf_counter()
    temp = start_local(2)
    startup = {"ray": time.perf_counter() - t0}
    rows: list[dict[str, Any]] = []
    try:
        for task_name in ("cartpole", "slow-pole"):
            task = tasks.make(task_name)
            reference: tuple[dict, str] | None = None
            setups = ["local", "ray 1", "ray 2"]
            for rep in range(args.repeats):
                for name in setups if rep % 2 == 0 else setups[::-1]:
                    n = 0 if name == "local" else int(name.split()[1])
                    t1 = time.perf_counter()
                    workers = RayWorkers(n) if n else None
                    startup[f"actors {n}"] = time.perf_counter() - t1
                    try:
                        wall, numbers, digest = run(task, gate, config, args.steps, workers)
                    finally:
                        if workers is not None:
                            workers.close()
                    if reference is None:
                        reference = (numbers, digest)
                    alike = same((numbers, digest), reference)
                    rows.append(
                        {
                            "task": task_name,
                            "setup": name,
                            "repeat": rep,
                            "wall_seconds": wall,
                            "same": alike,
                            **numbers,
                        }
                    )
                    print(
                        f"{task_name:9s} {name:6s} repeat {rep}: {wall:6.2f} s "
                        f"({args.steps / wall:6.0f} fleet steps/s), successes "
                        f"{numbers['successes']:.0f}, labels {numbers['labels']:.0f}, "
                        f"supervisor-s {numbers['supervisor_seconds']:.1f}, "
                        f"idle {numbers['idle_fraction']:.1%}, same as local: {alike}",
                        flush=True,
                    )
                    if not alike:
                        raise SystemExit(f"{task_name} {name}: other numbers than the local run")
    finally:
        import ray

        ray.shutdown()
        shutil.rmtree(temp, ignore_errors=True)

    print(
        f"\nstart-up: local Ray {startup['ray']:.1f} s; actors (last) "
        f"1: {startup['actors 1']:.1f} s, 2: {startup['actors 2']:.1f} s"
    )
    print(
        f"\nN = {args.robots}, K = {args.supervisors}, {args.steps} fleet steps, "
        f"median of {args.repeats}"
    )
    print("| task | robots on | wall s | fleet steps/s | vs local | same numbers |")
    print("|---|---|---:|---:|---:|---|")
    for task_name in ("cartpole", "slow-pole"):
        local = statistics.median(
            r["wall_seconds"] for r in rows if (r["task"], r["setup"]) == (task_name, "local")
        )
        for name in ("local", "ray 1", "ray 2"):
            mine = [r for r in rows if (r["task"], r["setup"]) == (task_name, name)]
            wall = statistics.median(r["wall_seconds"] for r in mine)
            print(
                f"| {task_name} | {name} | {wall:.2f} | {args.steps / wall:.0f} | "
                f"{wall / local:.2f}× | {all(r['same'] for r in mine)} |"
            )
    if args.json:
        raw = {
            "machine": machine(),
            "args": {k: str(v) for k, v in vars(args).items()},
            "startup": startup,
            "rows": rows,
        }
        args.json.write_text(json.dumps(raw, indent=1, default=float))


if __name__ == "__main__":
    main()
