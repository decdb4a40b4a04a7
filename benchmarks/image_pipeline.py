"""Learning from pixels on CarRacing: is the CPU trainer fed, and what does each stage cost?

Measures, on this machine:

* **dataset size**: bytes on disk per frame of a store of real CarRacing frames (expert
  driving), scaled to 100,000 frames; with ``--build-100k`` also a real 100,000-frame store
  (the collected episodes appended again and again), its size, the time ``transitions()``
  takes to open it (CRC checks included) and the process's resident memory after opening it
  and after training on it;
* **decompression**: frames/s of one thread gathering random rows;
* **training** steps/s at batch 64 through ``bc.fit``, with the real loader (lazy frames
  decompressed per batch in the prefetch thread) against the same ``bc.fit`` on random frames
  already in memory as one uint8 array; for the Nature CNN (32-64-64) and the demo's narrower
  CNN (16-32-32), ``torch.set_num_threads`` 1 and 2; images/s = samples/s × n_obs_steps;
* **inference**: ``policy.act`` milliseconds per call and per frame at 1 and 8 sub-envs;
* **collection**: env steps/s of ``protege.collect`` (expert, every frame compressed into a
  store) with 1, 2 and 4 sub-envs in a SyncVectorEnv and 2 in an AsyncVectorEnv, against the
  raw env (gymnasium's CarRacing-v3 and protege's task, one env, random actions).

Prints Markdown tables, the machine and the command.

Usage:
    SDL_VIDEODRIVER=dummy .venv/bin/python benchmarks/image_pipeline.py [--steps 60]
        [--episodes 4] [--build-100k] [--quick]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")

import gymnasium as gym
import numpy as np
import torch

from protege import tasks
from protege.algos import bc
from protege.data.store import Store, Transitions
from protege.policies import Policy, PolicyConfig
from protege.rollout.collect import collect
from protege.rollout.gates import ExpertGate
from protege.rollout.loop import rollout
from protege.rollout.observers import StoreEpisodes

NATURE = {"channels": [32, 64, 64]}
NARROW = {"channels": [16, 32, 32]}
BATCH = 64


def memory_mb() -> dict[str, float]:
    """This process's resident memory, MB: ``anon`` (private: arrays, tensors, the heap),
    ``file`` (pages of memory-mapped files, e.g. the frames a batch read; the kernel can drop
    them) and ``peak`` (VmHWM, the high-water mark of both)."""
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("RssAnon", "RssFile", "VmHWM"):
                out[{"RssAnon": "anon", "RssFile": "file", "VmHWM": "peak"}[key]] = (
                    int(value.split()[0]) / 1e3
                )
    return out


def fmt_memory(m: dict[str, float]) -> str:
    return f"{m['anon']:,.0f} MB private + {m['file']:,.0f} MB file-backed"


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.iterdir() if f.is_file())


# ------------------------------------------------------------------------------ collection
def bench_raw_env(make: Any, seconds: float) -> float:
    """Steps/s of one env stepping random actions (auto-reset), after a short warm-up."""
    env = make()
    rng = np.random.default_rng(0)
    env.reset(seed=0)
    for _ in range(30):
        env.step(env.action_space.sample())
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        a = np.array([rng.uniform(-1, 1), rng.uniform(0, 1), rng.uniform(0, 0.3)], np.float32)
        _, _, term, trunc, _ = env.step(a)
        n += 1
        if term or trunc:
            env.reset()
    dt = time.perf_counter() - t0
    env.close()
    return n / dt


def bench_collect(task: Any, n_envs: int, asynchronous: bool, episodes: int, out: Path) -> float:
    """Env steps/s of expert collection into a fresh image store (compression included)."""
    shutil.rmtree(out, ignore_errors=True)
    obs_space, act_space = task.spaces
    store = Store.create(out, obs_space, act_space, task=task.name)
    expert = task.make_expert()
    env = task.make_vec_env(n_envs, asynchronous=asynchronous)
    try:
        t0 = time.perf_counter()
        record = StoreEpisodes(store)
        r = rollout(env, episodes, gate=ExpertGate(), seed=0, expert=expert, observers=[record])
        dt = time.perf_counter() - t0
    finally:
        env.close()
        store.close()
    return sum(r.lengths) / dt


# -------------------------------------------------------------------------------- training
def make_policy(space: tuple[gym.Space, gym.Space], encoder_kwargs: dict[str, Any], k: int):
    obs_space, act_space = space
    cfg = PolicyConfig.for_spaces(
        obs_space,
        act_space,
        hidden_sizes=(256,),
        n_obs_steps=k,
        random_shift=4,
        encoder_kwargs=encoder_kwargs,
    )
    return Policy(cfg, seed=0)


def bench_train(
    data: Transitions, space: Any, encoder_kwargs: dict[str, Any], k: int, steps: int
) -> float:
    """Training samples/s of ``bc.fit`` (batch 64, no validation) on ``data``."""
    policy = make_policy(space, encoder_kwargs, k)
    cfg = bc.BCConfig(steps=steps, batch_size=BATCH, val_fraction=0.0, progress=False)
    # A few steps first so one-off costs (allocator, thread start) are not timed.
    bc.fit(policy, data, dataclasses.replace(cfg, steps=3))
    result = bc.fit(policy, data, cfg)
    return result.samples_per_s


def bench_pair(
    lazy: Transitions,
    memory: Transitions,
    space: Any,
    encoder_kwargs: dict[str, Any],
    k: int,
    steps: int,
    reps: int,
) -> tuple[float, float]:
    """Median samples/s of the real loader and of in-memory frames, measured in alternating
    blocks (loader, memory, loader, ...) so that load from other processes on a shared
    machine falls on both alike."""
    a, b = [], []
    for _ in range(reps):
        a.append(bench_train(lazy, space, encoder_kwargs, k, steps))
        b.append(bench_train(memory, space, encoder_kwargs, k, steps))
    return float(np.median(a)), float(np.median(b))


def loader_ms(data: Transitions, space: Any, k: int, n: int = 40) -> float:
    """Milliseconds to gather and decompress one batch in the calling thread (no prefetch):
    what the loader would add to a step if nothing ran in parallel."""
    policy = make_policy(space, NARROW, k)
    samples = bc._Samples(policy, data, np.arange(len(data.episode_lengths)))
    gen = torch.Generator().manual_seed(0)
    rows = [torch.randint(len(samples), (BATCH,), generator=gen) for _ in range(n)]
    t0 = time.perf_counter()
    for r in rows:
        samples.batch(r)
    return (time.perf_counter() - t0) / n * 1e3


def random_in_memory(data: Transitions, n: int) -> Transitions:
    """``n`` steps of random uint8 frames in one array, with ``data``'s labels."""
    rng = np.random.default_rng(0)
    shape = data.obs.shape[1:]
    n = min(n, len(data))
    return Transitions(
        obs=rng.integers(0, 256, (n, *shape), dtype=np.uint8),
        actions=np.asarray(data.actions[:n]),
        executed=np.asarray(data.executed[:n]),
        rewards=np.asarray(data.rewards[:n]),
        actor=np.asarray(data.actor[:n]),
        labeled=np.asarray(data.labeled[:n]),
        episode_starts=np.array([0], np.int64),
        episode_lengths=np.array([n], np.int64),
        rounds=np.zeros(1, np.int64),
    )


def bench_decompress(data: Transitions, n: int = 4096) -> float:
    rows = np.random.default_rng(0).integers(0, len(data), n)
    t0 = time.perf_counter()
    for chunk in np.array_split(rows, max(1, n // BATCH)):
        data.obs.take(chunk)
    return n / (time.perf_counter() - t0)


def bench_inference(space: Any, encoder_kwargs: dict[str, Any], k: int, n_envs: int) -> float:
    """Milliseconds per ``policy.act`` call with ``n_envs`` sub-envs."""
    policy = make_policy(space, encoder_kwargs, k)
    policy.eval()
    obs = np.random.default_rng(0).integers(0, 256, (n_envs, 96, 96, 3), dtype=np.uint8)
    policy.episodes_started()
    for _ in range(10):
        policy.act(obs)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < 2.0:
        policy.act(obs)
        n += 1
    return (time.perf_counter() - t0) / n * 1e3


# ------------------------------------------------------------------------------------ main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40, help="timed training steps per block")
    parser.add_argument("--reps", type=int, default=3, help="alternating blocks per side")
    parser.add_argument("--episodes", type=int, default=4, help="expert episodes to collect")
    parser.add_argument("--seconds", type=float, default=8.0, help="raw-env timing window")
    parser.add_argument("--build-100k", action="store_true", help="also write 100,000 frames")
    parser.add_argument("--quick", action="store_true", help="fewer rows (a smoke run)")
    parser.add_argument("--dir", default=None, help="scratch directory (default: a temp dir)")
    args = parser.parse_args()
    scratch = Path(args.dir or tempfile.mkdtemp(prefix="protege-image-bench-"))
    scratch.mkdir(parents=True, exist_ok=True)
    task = tasks.make("carracing")
    space = task.spaces
    load_before = os.getloadavg()
    torch.set_num_threads(1)

    # Collection (also makes the dataset the other rows use).
    collect_rows: list[tuple[str, float]] = []
    raw = bench_raw_env(lambda: gym.make("CarRacing-v3"), args.seconds)
    collect_rows.append(("gymnasium CarRacing-v3, 1 env, random actions (raw env)", raw))
    fast = bench_raw_env(task.make_env, args.seconds)
    collect_rows.append(("protege carracing, 1 env, random actions (raw env)", fast))
    print(f"  raw env {raw:.0f}, protege env {fast:.0f} steps/s", file=sys.stderr, flush=True)
    layouts = [(1, False), (2, False), (4, False), (2, True)]
    if args.quick:
        layouts = [(2, False)]
    for n_envs, asynchronous in layouts:
        episodes = max(n_envs, args.episodes if n_envs == 4 else n_envs)
        sps = bench_collect(task, n_envs, asynchronous, episodes, scratch / "collect")
        kind = "AsyncVectorEnv" if asynchronous else "SyncVectorEnv"
        collect_rows.append((f"protege.collect, expert, {kind} ×{n_envs}, into a store", sps))
        print(f"  collect {kind} ×{n_envs}: {sps:.0f} steps/s", file=sys.stderr, flush=True)

    demos = scratch / "demos"
    shutil.rmtree(demos, ignore_errors=True)
    collect(task, demos, args.episodes, n_envs=min(4, args.episodes), seed=1)
    store = Store.open(demos)
    data = store.transitions()
    frames = store.n_transitions + len(store)  # T+1 observations per episode
    obs_bytes = (demos / "obs.bin").stat().st_size + (demos / "obs.idx").stat().st_size
    per_frame = obs_bytes / frames
    raw_frame = int(np.prod(space[0].shape))

    size_rows = [
        (
            f"{len(store)} expert episodes, {frames:,} frames (obs.bin + obs.idx)",
            f"{obs_bytes / 1e6:.1f} MB",
            f"{per_frame:,.0f} B",
            f"{per_frame * 1e5 / 1e6:,.0f} MB",
            f"{raw_frame / per_frame:.1f}×",
        )
    ]
    whole = dir_bytes(demos)
    size_rows.append(
        (
            "the whole store directory (incl. meta.json, actions, index)",
            f"{whole / 1e6:.1f} MB",
            f"{whole / frames:,.0f} B",
            f"{whole / frames * 1e5 / 1e6:,.0f} MB",
            f"{raw_frame / (whole / frames):.1f}×",
        )
    )
    decomp = bench_decompress(data)
    print(f"  {per_frame:.0f} B/frame; decompress {decomp:.0f} frames/s", file=sys.stderr)

    big_rows: list[tuple[str, str]] = []
    if args.build_100k:
        big = scratch / "big"
        shutil.rmtree(big, ignore_errors=True)
        eps = list(store.episodes())
        t0 = time.perf_counter()
        with Store.create(big, *space, task=task.name) as w:
            n = 0
            while n < 100_000:
                ep = eps[len(w) % len(eps)]
                w.append(ep)
                n += len(ep.obs)
        write_s = time.perf_counter() - t0
        del eps
        m0 = memory_mb()
        t0 = time.perf_counter()
        big_data = Store.open(big).transitions()
        open_s = time.perf_counter() - t0
        m1 = memory_mb()
        sps = bench_train(big_data, space, NARROW, 1, 5 * args.steps)
        m2 = memory_mb()
        big_rows = [
            ("frames written", f"{n:,} ({len(big_data):,} training steps)"),
            ("on disk, whole store", f"{dir_bytes(big) / 1e6:,.0f} MB"),
            ("raw uint8 size of the same frames", f"{n * raw_frame / 1e6:,.0f} MB"),
            ("append time (compress + fsync)", f"{write_s:.0f} s ({n / write_s:,.0f} frames/s)"),
            ("`transitions()` (reads offsets, CRC-checks every byte)", f"{open_s:.2f} s"),
            ("resident memory before opening", fmt_memory(m0)),
            ("resident memory after `transitions()`", fmt_memory(m1)),
            (
                f"resident memory after {5 * args.steps} training steps on it",
                f"{fmt_memory(m2)} (process peak {m2['peak']:,.0f} MB)",
            ),
            ("training on it (16-32-32 CNN, 1 thread)", f"{sps / BATCH:.1f} steps/s"),
        ]
        del big_data
        shutil.rmtree(big, ignore_errors=True)

    # Training and inference.
    train_rows = []
    memory = random_in_memory(data, 4096)
    nets = [("Nature CNN 32-64-64", NATURE), ("narrow CNN 16-32-32", NARROW)]
    configs = [(name, kw, k, th) for name, kw in nets for k in (1, 2) for th in (1, 2)]
    if args.quick:
        configs = [(nets[1][0], NARROW, 1, 1)]
    batch_ms = {k: loader_ms(data, space, k) for k in (1, 2)}
    for name, kw, k, threads in configs:
        torch.set_num_threads(threads)
        loader, mem = bench_pair(data, memory, space, kw, k, args.steps, args.reps)
        train_rows.append((name, k, threads, loader, mem))
        print(
            f"  {name} K={k} threads={threads}: loader {loader / BATCH:.2f}, "
            f"memory {mem / BATCH:.2f} steps/s",
            file=sys.stderr,
            flush=True,
        )
    torch.set_num_threads(1)
    infer_rows = []
    for name, kw in nets:
        for k in (1, 2):
            for n_envs in (1, 8):
                ms = bench_inference(space, kw, k, n_envs)
                infer_rows.append((name, k, n_envs, ms))
    load_after = os.getloadavg()

    # ------------------------------------------------------------------------ report
    print("### Dataset size (real CarRacing frames, expert driving, zlib level 6)\n")
    print("| data | size | per frame | per 100,000 frames | vs raw uint8 |")
    print("|---|---:|---:|---:|---:|")
    for row in size_rows:
        print("| " + " | ".join(row) + " |")
    print(f"\nRaw frame: {raw_frame:,} B. Decompression (one thread, random rows in batches of ")
    print(f"{BATCH}): {decomp:,.0f} frames/s.\n")
    if big_rows:
        print("### A 100,000-frame store\n")
        print("| | |\n|---|---:|")
        for key, value in big_rows:
            print(f"| {key} | {value} |")
        print()
    print(f"### Training (bc.fit, batch {BATCH}, random shift 4, MSE head)\n")
    print(
        "| encoder | n_obs_steps | torch threads | real loader steps/s | in-memory random "
        "frames steps/s | loader / in-memory | images/s (loader) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, k, threads, loader, mem in train_rows:
        print(
            f"| {name} | {k} | {threads} | {loader / BATCH:.2f} | {mem / BATCH:.2f} | "
            f"{loader / mem:.0%} | {loader * k:,.0f} |"
        )
    print(
        f"\nMedians of {args.reps} alternating blocks of {args.steps} steps per side. Gathering "
        f"and decompressing one batch in the training thread (no prefetch) takes "
        f"{batch_ms[1]:.1f} ms with n_obs_steps 1 and {batch_ms[2]:.1f} ms with 2: the most "
        "the loader can add to a step when no core is free for the prefetch thread."
    )
    print("\n### Inference (policy.act, eval mode, 1 torch thread)\n")
    print("| encoder | n_obs_steps | sub-envs | ms per call | ms per frame |")
    print("|---|---:|---:|---:|---:|")
    for name, k, n_envs, ms in infer_rows:
        print(f"| {name} | {k} | {n_envs} | {ms:.2f} | {ms / n_envs:.2f} |")
    print("\n### Env steps/s during collection\n")
    print("| what | env steps/s | vs raw gymnasium env |")
    print("|---|---:|---:|")
    for name, sps in collect_rows:
        print(f"| {name} | {sps:.1f} | {sps / raw:.2f}× |")
    print()
    print(
        f"Machine: nproc {len(os.sched_getaffinity(0))} ({os.cpu_count()} CPUs), {cpu_model()}; "
        f"Python {platform.python_version()}, torch {torch.__version__}, gymnasium "
        f"{gym.__version__}; load average {load_before[0]:.2f} before, {load_after[0]:.2f} "
        "after (the machine is shared)."
    )
    cmd = " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv])
    print(f"Command: SDL_VIDEODRIVER=dummy {cmd}")
    if args.dir is None:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
