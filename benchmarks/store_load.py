"""How long loading 1,000,000 LunarLander transitions from a protege store takes.

Writes 4,000 episodes of 250 steps of LunarLander-shaped data (8-D float32 observations,
Discrete(4) actions) with ``Store.extend`` (every episode fsynced), then times ``Store.open``
+ ``transitions()`` (every field read, every episode's CRC32 checked, NaN scan) several times.
Target (issue 2): under 2 s.

    .venv/bin/python benchmarks/store_load.py [--transitions 1000000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--transitions", type=int, default=1_000_000)
    ap.add_argument("--episode-length", type=int, default=250)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    t_len = args.episode_length
    n_eps = args.transitions // t_len
    obs_space = gym.spaces.Box(-np.inf, np.inf, (8,), np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "store"
        t0 = time.perf_counter()
        with Store.create(path, obs_space, gym.spaces.Discrete(4), task="lunarlander") as store:
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
    print(f"machine: {machine()}; seed {args.seed}")
    print(
        f"wrote {n_eps} episodes / {n_eps * t_len:,} transitions ({size_mb:.0f} MiB) "
        f"in {write_s:.1f} s, each episode fsynced"
    )
    print(
        f"load (open + transitions, CRC-checked): best {min(times):.3f} s, "
        f"median {np.median(times):.3f} s over {args.repeats} runs (target < 2 s)"
    )


if __name__ == "__main__":
    main()
