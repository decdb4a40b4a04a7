"""Dataset export and import: LeRobot (PNG in parquet, H.264, AV1) and robomimic, timed.

The frames are real renderings: CarRacing episodes (96×96 RGB) collected with protege's
expert (``--episodes`` episodes of ``--steps`` steps, seed 0), given a random 7-d state part
as well. They are written in each format with protege's writers, then read back. Reported per
format: seconds to write and to read, frames per second of each, bytes on disk (and as a share
of the raw frames), and the pixel error of the frames read back (mean and max absolute
difference; 0 for the lossless formats). Formats run in turn, ``--repeats`` times; medians.

    .venv/bin/python benchmarks/interop_io.py [--episodes 4] [--steps 200] [--repeats 3]

Writes benchmarks/results/interop_io.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import protege
from protege.data.episode import Episode
from protege.data.external import ExternalDataset, with_obs
from protege.data.lerobot_io import read_lerobot
from protege.data.lerobot_write import write_lerobot
from protege.data.robomimic_io import read_robomimic, write_robomimic
from protege.data.store import Store
from store_load import machine

FORMATS = ("lerobot-png", "lerobot-h264", "lerobot-av1", "robomimic")


def episodes(n: int, steps: int, where: Path, seed: int = 0) -> list[Episode]:
    """CarRacing expert episodes as camera + state episodes."""
    task = dataclasses.replace(protege.tasks.make("carracing"), horizon=steps)
    protege.collect(task, where, episodes=n, n_envs=1, seed=seed)
    rng = np.random.default_rng(seed)
    out = []
    for ep in Store.open(where).episodes():
        t = len(ep)
        state = rng.normal(size=(t + 1, 7)).astype(np.float32)
        out.append(with_obs(ep, {"state": state, "front": np.asarray(ep.obs)}))
    return out


def disk_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def run(fmt: str, data: ExternalDataset, where: Path) -> dict[str, float]:
    out = where / fmt
    t0 = time.perf_counter()
    if fmt == "robomimic":
        write_robomimic(data, out.with_suffix(".hdf5"))
        out = out.with_suffix(".hdf5")
    else:
        codec = fmt.split("-")[1]
        write_lerobot(data, out, video=None if codec == "png" else codec)
    t1 = time.perf_counter()
    back = read_robomimic(out) if fmt == "robomimic" else read_lerobot(out)
    error_sum, error_max, pixels = 0.0, 0, 0
    for a, b in zip(data.episodes, back.episodes, strict=True):
        t = len(a)
        diff = np.abs(a.obs["front"][:t].astype(np.int16) - b.obs["front"][:t])
        error_sum += float(diff.sum())
        error_max = max(error_max, int(diff.max()))
        pixels += diff.size
    t2 = time.perf_counter()
    size = disk_bytes(out)
    shutil.rmtree(out) if out.is_dir() else out.unlink()
    return {
        "write_s": t1 - t0,
        "read_s": t2 - t1,
        "bytes": size,
        "pixel_error_mean": error_sum / pixels,
        "pixel_error_max": error_max,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--episodes", type=int, default=4)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "interop_io.json"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        data = ExternalDataset(episodes(args.episodes, args.steps, Path(tmp) / "store"), fps=50)
    frames = sum(len(ep) for ep in data.episodes)
    raw = sum(ep.obs["front"][: len(ep)].nbytes for ep in data.episodes)
    runs: dict[str, list[dict[str, float]]] = {fmt: [] for fmt in FORMATS}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeats):
            for fmt in FORMATS:
                runs[fmt].append(run(fmt, data, Path(tmp)))
    results = {}
    for fmt, rs in runs.items():
        med = {k: float(np.median([r[k] for r in rs])) for k in rs[0]}
        med["write_frames_per_s"] = frames / med["write_s"]
        med["read_frames_per_s"] = frames / med["read_s"]
        med["bytes_vs_raw_frames"] = med["bytes"] / raw
        results[fmt] = med
        print(
            f"{fmt:13s} write {med['write_s']:6.2f} s ({med['write_frames_per_s']:6.0f} frames/s)"
            f"  read {med['read_s']:6.2f} s ({med['read_frames_per_s']:6.0f} frames/s)"
            f"  {med['bytes'] / 2**20:7.2f} MB ({100 * med['bytes_vs_raw_frames']:5.1f}% of raw)"
            f"  pixel error mean {med['pixel_error_mean']:.2f} max {med['pixel_error_max']:.0f}"
        )
    Path(args.out).write_text(
        json.dumps(
            {"args": vars(args), "frames": frames, "machine": machine(), "results": results},
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
