"""GPU check: BC training samples/s on the GPU against the CPU, in the same run.

Two workloads, each trained with ``bc.fit`` as ``protege train`` trains:

- **cnn**: BC on camera frames the size of CarRacing's (96×96×3 uint8, zlib-compressed in a
  store and decompressed per batch, as a store of collected frames is), protege's default
  CNN encoder and an ``mse`` head, 3-D actions;
- **diffusion**: a diffusion head (chunks of 8 two-D actions) on 32-D state vectors.

The frames and states are synthetic (smooth seeded patterns; the actions a fixed function of
them), so the check needs no env and no download. Every device this machine has runs each
workload ``--repeats`` times, the devices interleaved within each repeat; reported are the
median samples/s (batches × batch size / seconds of gradient steps, after a warm-up run) and
the ratio of each device to the CPU at fp32. On CUDA both fp32 and ``--precision bf16`` run;
on the CPU fp32 and bf16 too. Without CUDA only the CPU half runs, and the output and the JSON
say that no GPU was present.

    .venv/bin/python benchmarks/gpu_check.py [--repeats 3] [--json FILE]

(default FILE: benchmarks/results/gpu_check.json).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from protege import BCConfig, Policy, PolicyConfig, Store
from protege.algos import bc
from protege.data.episode import Episode
from store_load import machine

FRAME = gym.spaces.Box(0, 255, (96, 96, 3), np.uint8)
STATE = gym.spaces.Box(-np.inf, np.inf, (32,), np.float32)
CAR_ACT = gym.spaces.Box(-1.0, 1.0, (3,), np.float32)
ARM_ACT = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)


def frame_store(path: Path, episodes: int, steps: int, seed: int) -> Store:
    """Smooth 96×96×3 frames (a moving colour gradient per episode), actions from their
    mean colours."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:96, 0:96].astype(np.float32) / 95.0
    with Store.create(path, FRAME, CAR_ACT) as store:
        for _ in range(episodes):
            phase = rng.uniform(0, 2 * np.pi, 3)
            t = np.arange(steps + 1, dtype=np.float32)[:, None, None, None] / steps
            chan = np.sin(2 * np.pi * (xx[..., None] + yy[..., None] * 0.5 + t) + phase)
            frames = ((chan + 1) * 127.5).astype(np.uint8)
            means = frames[:-1].reshape(steps, -1, 3).mean(1) / 127.5 - 1
            acts = np.tanh(means @ rng.normal(size=(3, 3))).astype(np.float32)
            store.append(Episode(obs=frames, actions=acts, rewards=np.zeros(steps, np.float32)))
    return Store.open(path)


def state_store(path: Path, episodes: int, steps: int, seed: int) -> Store:
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(32, 2)).astype(np.float32) / 6
    with Store.create(path, STATE, ARM_ACT) as store:
        for _ in range(episodes):
            obs = np.cumsum(rng.normal(size=(steps + 1, 32)), 0).astype(np.float32) / 10
            acts = np.tanh(obs[:-1] @ w).astype(np.float32)
            store.append(Episode(obs=obs, actions=acts, rewards=np.zeros(steps, np.float32)))
    return Store.open(path)


WORKLOADS: dict[str, dict[str, Any]] = {
    "cnn": {
        "spaces": (FRAME, CAR_ACT),
        "policy": {"hidden_sizes": (256,), "random_shift": 4},
        "batch_size": 64,
    },
    "diffusion": {
        "spaces": (STATE, ARM_ACT),
        "policy": {
            "head": "diffusion",
            "chunk_size": 8,
            "hidden_sizes": (256, 256),
            "head_kwargs": {"hidden_dim": 256},
        },
        "batch_size": 256,
    },
}


def samples_per_s(
    name: str, store: Store, device: str, precision: str, steps: int, seed: int
) -> dict[str, Any]:
    work = WORKLOADS[name]
    policy = Policy(PolicyConfig.for_spaces(*work["spaces"], **work["policy"]), seed=seed)
    common = dict(
        batch_size=work["batch_size"],
        lr=1e-3,
        val_fraction=0.0,
        seed=seed,
        device=device,
        precision=precision,
        eval_every=10**9,
        lr_schedule="constant",
    )
    bc.fit(policy, store, BCConfig(steps=max(2, steps // 10), **common))  # warm-up
    t0 = time.perf_counter()
    result = bc.fit(policy, store, BCConfig(steps=steps, **common))
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    wall = time.perf_counter() - t0
    loss = result.history[-1]["train_loss"]
    assert np.isfinite(loss), (name, device, precision, loss)
    return {
        "samples_per_s": result.samples_per_s,
        "wall_s": wall,
        "final_train_loss": loss,
        "device": result.device,
        "param_device": str(next(policy.parameters()).device),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3, help="interleaved runs; medians reported")
    ap.add_argument("--cnn-steps", type=int, default=20)
    ap.add_argument("--diffusion-steps", type=int, default=50)
    ap.add_argument("--episodes", type=int, default=8)
    ap.add_argument("--episode-steps", type=int, default=100)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: 1)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=Path("benchmarks/results/gpu_check.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    cuda = torch.cuda.is_available()
    runs = [("cpu", "fp32"), ("cpu", "bf16")]
    if cuda:
        runs += [("cuda", "fp32"), ("cuda", "bf16")]
    gpu = torch.cuda.get_device_name(0) if cuda else None
    note = (
        f"GPU present: {gpu}"
        if cuda
        else f"no GPU was present (torch {torch.__version__}, torch.cuda.is_available() is "
        "False): only the CPU half ran"
    )
    print(note)
    steps = {"cnn": args.cnn_steps, "diffusion": args.diffusion_steps}
    samples: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        stores = {
            "cnn": frame_store(Path(tmp) / "frames", args.episodes, args.episode_steps, args.seed),
            "diffusion": state_store(
                Path(tmp) / "states", args.episodes, args.episode_steps, args.seed
            ),
        }
        for r in range(args.repeats):
            for name in WORKLOADS:
                for device, precision in runs:
                    row = samples_per_s(
                        name, stores[name], device, precision, steps[name], args.seed
                    )
                    samples.setdefault((name, device, precision), []).append(row)
                    rate, loss = row["samples_per_s"], row["final_train_loss"]
                    print(
                        f"repeat {r}: {name:9s} {device:4s} {precision}: "
                        f"{rate:10,.0f} samples/s (loss {loss:.4g})",
                        flush=True,
                    )
    results = []
    for (name, device, precision), rows in samples.items():
        median = statistics.median(r["samples_per_s"] for r in rows)
        base = statistics.median(r["samples_per_s"] for r in samples[(name, "cpu", "fp32")])
        results.append(
            {
                "workload": name,
                "device": device,
                "precision": precision,
                "batch_size": WORKLOADS[name]["batch_size"],
                "steps": steps[name],
                "median_samples_per_s": median,
                "vs_cpu_fp32": median / base,
                "runs": rows,
            }
        )
    print("\n| workload | device | precision | samples/s (median) | × CPU fp32 |")
    print("|---|---|---|---:|---:|")
    for row in results:
        print(
            f"| {row['workload']} | {row['device']} | {row['precision']} | "
            f"{row['median_samples_per_s']:,.0f} | {row['vs_cpu_fp32']:.2f} |"
        )
    out = {
        "benchmark": "gpu_check",
        "gpu_present": cuda,
        "gpu": gpu,
        "note": note,
        "torch": torch.__version__,
        "machine": machine(),
        "threads": args.threads,
        "repeats": args.repeats,
        "seed": args.seed,
        "results": results,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=2))
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
