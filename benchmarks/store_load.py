"""How long loading 1,000,000 LunarLander transitions from a protege store takes.

Writes 4,000 episodes of 250 steps of LunarLander-shaped data (8-D float32 observations,
Discrete(4) actions) with ``Store.extend`` (every episode fsynced), then times ``Store.open``
+ ``transitions()`` (every field read, every episode's CRC32 checked, NaN scan) several times.
Target (issue 2): under 2 s.

With ``--groups G ...`` it also measures appends per second (issue 17, part 5: the driver's
store writes): ``--group-episodes`` such episodes appended to a new store committed one at a
time (G = 1: ``Store.append``, every episode's files and index line fsynced) or in groups of
G (``Store.append_group``: one fsync per file per group, as the Ray driver commits the
episodes that arrived together). The sizes run in ``--blocks`` alternating blocks (odd blocks
in reverse order), on the working disk and on ``/dev/shm`` (where fsync costs almost nothing:
the encoding and writing alone); medians per size and the ratio to G = 1 within each block.
``--no-load`` skips the load test.

    .venv/bin/python benchmarks/store_load.py [--transitions 1000000] [--repeats 5]
    .venv/bin/python benchmarks/store_load.py --no-load --groups 1 8 64 [--blocks 5]
        [--group-episodes 256] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from protege.data.episode import Episode
from protege.data.store import Store


def machine() -> str:
    cpu = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        ),
        platform.processor(),
    )
    return f"{os.cpu_count()} cores, {cpu}"


def lunar_episodes(n: int, t_len: int, seed: int) -> list[Episode]:
    """``n`` episodes of ``t_len`` steps of LunarLander-shaped noise."""
    rng = np.random.default_rng(seed)
    return [
        Episode(
            obs=rng.normal(size=(t_len + 1, 8)).astype(np.float32),
            actions=rng.integers(0, 4, t_len),
            rewards=rng.normal(size=t_len).astype(np.float32),
        )
        for _ in range(n)
    ]


OBS = gym.spaces.Box(-np.inf, np.inf, (8,), np.float32)


def load_test(args: argparse.Namespace) -> None:
    t_len = args.episode_length
    n_eps = args.transitions // t_len
    rng = np.random.default_rng(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "store"
        t0 = time.perf_counter()
        with Store.create(path, OBS, gym.spaces.Discrete(4), task="lunarlander") as store:
            for _ in range(n_eps):
                store.append(
                    Episode(
                        obs=rng.normal(size=(t_len + 1, 8)).astype(np.float32),
                        actions=rng.integers(0, 4, t_len),
                        rewards=rng.normal(size=t_len).astype(np.float32),
                    )
                )
        write_s = time.perf_counter() - t0
        size_mb = sum(f.stat().st_size for f in path.iterdir()) / 2**20
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            data = Store.open(path).transitions()
            times.append(time.perf_counter() - t0)
            assert len(data) == n_eps * t_len
    print(
        f"wrote {n_eps} episodes / {n_eps * t_len:,} transitions ({size_mb:.0f} MiB) "
        f"in {write_s:.1f} s, each episode fsynced"
    )
    print(
        f"load (open + transitions, CRC-checked): best {min(times):.3f} s, "
        f"median {np.median(times):.3f} s over {args.repeats} runs (target < 2 s)"
    )


def append_rate(episodes: list[Episode], group: int, where: Path | None) -> float:
    """Episodes per second appended to a new store in ``where``, committed in groups of
    ``group`` (1: one ``Store.append`` per episode)."""
    with (
        tempfile.TemporaryDirectory(dir=where) as tmp,
        Store.create(Path(tmp) / "s", OBS, gym.spaces.Discrete(4)) as store,
    ):
        t0 = time.perf_counter()
        if group == 1:
            for ep in episodes:
                store.append(ep)
        else:
            for i in range(0, len(episodes), group):
                store.append_group(episodes[i : i + group])
        seconds = time.perf_counter() - t0
        assert len(store) == len(episodes)
    return len(episodes) / seconds


def group_test(args: argparse.Namespace) -> dict[str, Any]:
    episodes = lunar_episodes(args.group_episodes, args.episode_length, args.seed)
    shm = Path("/dev/shm")
    places = {"disk": None, **({"tmpfs": shm} if shm.is_dir() else {})}
    rates: dict[str, dict[int, list[float]]] = {p: {g: [] for g in args.groups} for p in places}
    for block in range(args.blocks):
        order = args.groups if block % 2 == 0 else args.groups[::-1]
        for place, where in places.items():
            for g in order:
                rates[place][g].append(append_rate(episodes, g, where))
            line = ", ".join(f"G={g} {rates[place][g][-1]:,.0f}" for g in args.groups)
            print(f"block {block} {place}: episodes/s {line}", flush=True)
    base = min(args.groups)
    summary: dict[str, Any] = {}
    print(
        f"\nappends of {args.group_episodes} episodes of {args.episode_length} steps, "
        f"{args.blocks} blocks (medians; ratio: per block, to G={base})"
    )
    print("| where | group size | episodes/s | steps/s | ratio to G=1 |")
    print("|---|---:|---:|---:|---:|")
    for place in places:
        for g in args.groups:
            each = rates[place][g]
            ratio = [x / y for x, y in zip(each, rates[place][base], strict=True)]
            row = {
                "episodes_per_s": statistics.median(each),
                "steps_per_s": statistics.median(each) * args.episode_length,
                "ratio_to_1": statistics.median(ratio),
                "each": each,
            }
            summary[f"{place} G={g}"] = row
            print(
                f"| {place} | {g} | {row['episodes_per_s']:,.0f} | {row['steps_per_s']:,.0f} | "
                f"{row['ratio_to_1']:.2f} |"
            )
    return summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--transitions", type=int, default=1_000_000)
    ap.add_argument("--episode-length", type=int, default=250)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-load", action="store_true", help="skip the load test")
    ap.add_argument("--groups", type=int, nargs="*", default=[], help="group sizes (1 first)")
    ap.add_argument("--group-episodes", type=int, default=256)
    ap.add_argument("--blocks", type=int, default=5)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    print(f"machine: {machine()}; seed {args.seed}; load average {os.getloadavg()}")
    if not args.no_load:
        load_test(args)
    if args.groups:
        summary = group_test(args)
        if args.json:
            record = {
                "args": vars(args) | {"json": str(args.json)},
                "machine": machine(),
                "load_average_end": os.getloadavg(),
                "summary": summary,
            }
            args.json.write_text(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
