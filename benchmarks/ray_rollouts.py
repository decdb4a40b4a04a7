"""Rollouts on Ray workers against one process (issue 17, part 5): overhead and throughput.

Expert collection (``protege.rollout.collect.collect``, every episode appended durably to a
store by this process) on an expensive env, with the task's horizon cut to ``--horizon``
steps so a repeat takes seconds: CarRacing from pixels (96×96×3, ~70–85 env steps/s on one
core of this machine; the default), or MuJoCo with a camera, ``--task
metaworld/pick-place-camera`` (a dict observation of the 84×84 corner camera and 8
proprioceptive numbers, rendered offscreen by protege's one renderer per process, the
scripted expert reading the simulator; episodes end on success). Four set-ups, run
interleaved ``--repeats`` times, odd repeats in reverse order (a shared machine's speed
drifts over minutes):

- ``local 1``: one process, a one-env vector env (``--n-envs 1``);
- ``ray 1``: the same episodes on one Ray worker (``--workers 1 --n-envs 1``): the overhead
  of shipping each episode (pixels) to the driver, which writes the store;
- ``local 2``: one process, a two-env vector env (``--n-envs 2``);
- ``ray 2``: the same episodes on two workers (``--workers 2 --n-envs 2``).

Every Ray run is checked to store the local run's episodes (same seed): the same number of
episodes and, per episode, the same CRC32 of every field (observations, camera frames
included; actions, rewards, ...) in the store's index, and the same returns. The
local Ray (127.0.0.1 only) and its actors are started once, before the timed runs; their
start-up is reported apart. Wall time covers collection and the store's appends. On a
loaded machine wall time depends on the share of the cores each set-up's processes get
(a Ray run has more busy processes), so the CPU seconds of the processes involved are
reported too: for a Ray run, the driver, the workers and the local Ray's own processes;
and, to tell where an overhead comes from, the driver's own CPU seconds (receiving and
storing the episodes) and the seconds the rollout loop spent in env steps (on the workers).
``--niced`` adds a fifth set-up, ``ray 1 niced``: one worker reniced by +15 as Ray runs its
workers by default (protege's local Ray runs them at the driver's priority, see
:func:`protege.rollout.ray_workers.start_local`). ``--in-task`` adds ``in ray task``: the
local run's collection inside one Ray task, to tell the cost of running on a Ray worker's
process from the cost of protege's streaming.

    PYTHONPATH=src .venv/bin/python benchmarks/ray_rollouts.py [--repeats 6] [--horizon 100]
        [--task carracing] [--episodes 4] [--scratch /dev/shm] [--niced] [--in-task]
        [--json out.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _tree(pid: int) -> list[int]:
    """``pid`` and every process below it (the local Ray's GCS, raylet, agents, workers)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(stat.parent.name))
    out, todo = [pid], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def cpu_of(pids: list[int]) -> float:
    """CPU seconds of ``pids`` together: work done, whatever share of a loaded machine the
    processes got (wall time depends on that share, CPU time much less)."""
    return sum(_cpu_seconds(p) for p in pids)


def collect_here(task: Any, out: Path, episodes: int, seed: int) -> Any:
    """``collect`` in one process (one env) and its result: run as a Ray task, the whole
    rollout happens on a Ray worker, without protege's streaming (``--in-task``)."""
    import torch

    from protege.rollout.collect import collect

    torch.set_num_threads(1)
    return collect(task, out, episodes, n_envs=1, seed=seed)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", default="carracing")
    p.add_argument("--horizon", type=int, default=200)
    p.add_argument("--episodes", type=int, default=4)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--scratch",
        type=Path,
        default=None,
        help="where the stores go (default: a temp dir on disk; /dev/shm takes the cost of "
        "fsync out of the comparison)",
    )
    p.add_argument(
        "--niced",
        action="store_true",
        help="add 'ray 1 niced': one worker reniced by +15, as Ray's default worker_niceness "
        "runs workers (protege's local Ray runs them at the driver's priority)",
    )
    p.add_argument(
        "--in-task",
        action="store_true",
        help="add 'in ray task': the local run's collection inside one Ray task on a worker "
        "(the worker's process, without protege's streaming; it writes the store itself)",
    )
    p.add_argument("--json", type=Path)
    args = p.parse_args()

    import ray
    import torch

    from protege import tasks
    from protege.data.store import Store
    from protege.rollout.collect import collect
    from protege.rollout.ray_workers import RayWorkers, start_local

    torch.set_num_threads(1)
    task = dataclasses.replace(tasks.make(args.task), horizon=args.horizon)
    t0 = time.perf_counter()
    # logical CPUs: a 1-worker and a 2-worker pool (and the niced one) side by side
    temp = start_local(3 + args.niced + args.in_task)
    ray_start = time.perf_counter() - t0
    t0 = time.perf_counter()
    pools = {"1": RayWorkers(1), "2": RayWorkers(2)}
    setups = [("local 1", 1, None), ("ray 1", 1, "1"), ("local 2", 2, None), ("ray 2", 2, "2")]
    if args.niced:
        pools["1 niced"] = RayWorkers(1)
        for pid in pools["1 niced"].pids:
            os.setpriority(os.PRIO_PROCESS, pid, min(19, os.getpriority(os.PRIO_PROCESS, pid) + 15))
        setups.insert(2, ("ray 1 niced", 1, "1 niced"))
    in_task = ray.remote(num_cpus=1)(collect_here)
    if args.in_task:
        setups.insert(2, ("in ray task", 1, "task"))
    actors_start = time.perf_counter() - t0
    print(f"ray start {ray_start:.1f} s, actors ready {actors_start:.1f} s", flush=True)
    load_start = os.getloadavg()
    runs: dict[str, list[dict]] = {name: [] for name, _, _ in setups}
    scratch = Path(tempfile.mkdtemp(prefix="ray-bench-", dir=args.scratch))
    try:
        warm = dataclasses.replace(task, horizon=10)  # first env, imports, on every process
        for _name, n_envs, w in setups:
            if w == "task":
                ray.get(in_task.remote(warm, scratch / "warm-task", 1, 0))
                continue
            collect(warm, scratch / f"warm-{_name}", n_envs, n_envs=n_envs, seed=0,
                    workers=pools[w] if w else None)  # fmt: skip
        for rep in range(args.repeats):
            returns = {}
            # ABBA: even repeats in the listed order, odd ones reversed, so a drift of the
            # machine's load over a repeat weighs on every set-up alike.
            for name, n_envs, w in setups if rep % 2 == 0 else setups[::-1]:
                out = scratch / f"{rep}-{name.replace(' ', '')}"
                # Local runs: this process; Ray runs: this process, the local Ray's own
                # processes (GCS, raylet, agents) and every worker (idle ones poll too).
                pids = [os.getpid()] if w is None else _tree(os.getpid())
                cpu0, driver0 = cpu_of(pids), time.process_time()
                t = time.perf_counter()
                if w == "task":
                    r = ray.get(in_task.remote(task, out, args.episodes, args.seed + rep))
                else:
                    r = collect(
                        task,
                        out,
                        args.episodes,
                        n_envs=n_envs,
                        seed=args.seed + rep,
                        workers=pools[w] if w else None,
                    )
                wall = time.perf_counter() - t
                cpu = cpu_of(pids) - cpu0
                driver = time.process_time() - driver0
                steps = sum(r.lengths)
                with Store.open(out) as stored:  # per episode, the CRC32 of every field
                    crcs = [(e.length, e.crc, e.seed, e.episode_return) for e in stored.index]
                shutil.rmtree(out)
                ref = returns.setdefault(n_envs, (r.returns, crcs))
                if r.returns != ref[0]:
                    raise SystemExit(f"{name}: returns differ from the local run's")
                if crcs != ref[1] or len(crcs) != args.episodes:
                    raise SystemExit(f"{name}: stored episodes differ from the local run's")
                # env_s: the seconds the rollout loop spent in env steps (on the workers for
                # a Ray run); driver_cpu_s: this process's CPU (receiving and storing).
                row = {
                    "wall_s": wall,
                    "cpu_s": cpu,
                    "driver_cpu_s": driver,
                    "env_s": r.env_seconds,
                    "steps": steps,
                    "steps_per_s": steps / wall,
                }
                runs[name].append(row)
                rate = steps / wall
                print(
                    f"repeat {rep} {name:8s} {wall:6.2f} s  {rate:6.1f} steps/s  cpu {cpu:6.2f} s"
                    f"  driver cpu {driver:5.2f} s  env {r.env_seconds:6.2f} s",
                    flush=True,
                )
    finally:
        for pool in pools.values():
            pool.close()
        ray.shutdown()
        shutil.rmtree(temp, ignore_errors=True)
        shutil.rmtree(scratch, ignore_errors=True)

    def ratios(a: str, b: str, key: str = "wall_s") -> dict[str, Any]:
        each = [x[key] / y[key] for x, y in zip(runs[a], runs[b], strict=True)]
        return {"median": statistics.median(each), "each": each}

    summary = {
        name: {
            "median_wall_s": statistics.median(r["wall_s"] for r in rows),
            "median_steps_per_s": statistics.median(r["steps_per_s"] for r in rows),
            "median_cpu_s": statistics.median(r["cpu_s"] for r in rows),
            "median_driver_cpu_s": statistics.median(r["driver_cpu_s"] for r in rows),
            "median_env_s": statistics.median(r["env_s"] for r in rows),
        }
        for name, rows in runs.items()
    }
    paired = {
        "ray 1 / local 1 (wall)": ratios("ray 1", "local 1"),
        "ray 2 / local 2 (wall)": ratios("ray 2", "local 2"),
        "ray 1 / ray 2 (wall)": ratios("ray 1", "ray 2"),
        "ray 1 / local 1 (cpu)": ratios("ray 1", "local 1", "cpu_s"),
        "ray 2 / local 2 (cpu)": ratios("ray 2", "local 2", "cpu_s"),
        "ray 1 / local 1 (env s)": ratios("ray 1", "local 1", "env_s"),
    }
    if args.niced:
        paired["ray 1 niced / local 1 (wall)"] = ratios("ray 1 niced", "local 1")
        paired["ray 1 niced / local 1 (cpu)"] = ratios("ray 1 niced", "local 1", "cpu_s")
        paired["ray 1 niced / local 1 (env s)"] = ratios("ray 1 niced", "local 1", "env_s")
    if args.in_task:
        paired["in ray task / local 1 (wall)"] = ratios("in ray task", "local 1")
        paired["in ray task / local 1 (env s)"] = ratios("in ray task", "local 1", "env_s")
        paired["ray 1 / in ray task (wall)"] = ratios("ray 1", "in ray task")
    print(json.dumps({"summary": summary, "paired_ratios": paired}, indent=2))
    if args.json:
        record = {
            "args": vars(args) | {"json": str(args.json)},
            "python": sys.version.split()[0],
            "ray_start_s": ray_start,
            "actors_start_s": actors_start,
            "load_average_start": load_start,
            "load_average": os.getloadavg(),
            "runs": runs,
            "summary": summary,
            "paired_ratios": paired,
        }
        args.json.write_text(json.dumps(record, indent=2, default=str))


if __name__ == "__main__":
    main()
