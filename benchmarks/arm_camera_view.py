"""How large pick-place's goal and block are in each camera's 84×84 frame.

For seeds 0..N-1 of ``metaworld/pick-place-camera`` (Meta-World's ``corner`` camera) and
``metaworld/pick-place-camera-workspace`` (protege's ``workspace`` camera), the first frame of
the episode: how many pixels show the goal (saturated blue: the goal marker is the only blue
thing in the scene), and the frames side by side in a PNG to look at (the block, dark red on
the wood, has no colour of its own to count).

    .venv/bin/python benchmarks/arm_camera_view.py [--seeds 5] [--png results/arm_camera_view.png]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from protege import tasks

TASKS = {
    "metaworld/pick-place-camera": "corner",
    "metaworld/pick-place-camera-workspace": "workspace",
}


def blue(frame: np.ndarray) -> int:
    f = frame.astype(int)
    return int(((f[..., 2] > 120) & (f[..., 0] < 80) & (f[..., 1] < 80)).sum())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument(
        "--png", type=Path, default=Path(__file__).parent / "results" / "arm_camera_view.png"
    )
    args = ap.parse_args()
    rows = []
    print("| camera | goal pixels per seed | mean |")
    print("|---|---|---:|")
    for name, part in TASKS.items():
        env = tasks.make(name).make_env()
        counts, frames = [], []
        try:
            for seed in range(args.seeds):
                obs, _ = env.reset(seed=seed)
                counts.append(blue(obs[part]))
                frames.append(obs[part])
        finally:
            env.close()
        rows.append(np.concatenate(frames, axis=1))
        print(f"| {part} | {' / '.join(map(str, counts))} | {np.mean(counts):.1f} |")
    from PIL import Image

    args.png.parent.mkdir(parents=True, exist_ok=True)
    img = np.concatenate(rows, axis=0)
    Image.fromarray(img).resize((img.shape[1] * 2, img.shape[0] * 2), Image.NEAREST).save(args.png)
    print(f"frames (top: corner, bottom: workspace; seeds 0..{args.seeds - 1}): {args.png}")


if __name__ == "__main__":
    main()
