"""DART on CarRacing from pixels: which noise helps, against clean demonstrations at equal labels.

The tutorial (``protege demo carracing``) found DART below BC (233 against 618). This script
separates the causes. One seed: expert laps and a BC policy as in the tutorial (its
defaults: 10 laps, 2,000 steps of a 16-32-32 CNN, one torch thread), then every arm runs the
same rounds from that BC policy (``rounds`` × ``episodes_per_round`` expert episodes, each
round ``round_steps`` more gradient steps on every label so far, warm-started):

* ``clean``: the expert drives without noise (BC with as many rounds, steps and about as
  many labels: the equal-label control);
* ``demo``: the tutorial's DART (variance 0.05 on steer, gas and brake in round 1, then the
  fitted covariance of all three);
* ``steer-fit``: noise on steering alone, fitted each round (variance ``--steer-noise`` in
  round 1);
* ``steer-alpha``: noise on steering alone, fitted and rescaled to the paper's α =
  ``--alpha`` (the expected squared steering error of the final policy).

``--errors`` reports, for runs already made, the BC policy's error covariance on each arm's
round-1 states (what DART's fit measures). ``--noisy-expert`` instead drives the expert
alone with noise of several sizes (no learning): what each noise does to the laps DART
records.

Every round's learner drives the same ``--eval-episodes`` fresh tracks (the engine's round
rows; round 0 is the shared BC policy). Prints one JSON line per arm (every round's labels,
return, noise variances) and a Markdown table.

    SDL_VIDEODRIVER=dummy nice -n 10 .venv/bin/python benchmarks/dart_carracing.py \\
        --seed 0 --arms clean demo steer-fit steer-alpha --out /tmp/dart-cr
    SDL_VIDEODRIVER=dummy nice -n 10 .venv/bin/python benchmarks/dart_carracing.py --noisy-expert
    .venv/bin/python benchmarks/dart_carracing.py --errors --arms clean steer-alpha --out ...
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")

import numpy as np
import torch
from gymnasium.envs.box2d.car_racing import TRACK_WIDTH

from protege import tasks
from protege.algos import bc, dart
from protege.algos.rounds import ordered
from protege.configs.demos import CarRacingDemoConfig
from protege.configs.methods import DARTConfig
from protege.data.obs import take
from protege.data.store import Store
from protege.demos.carracing import (
    _bc_config,
    _ContinueFromBC,
    _policy,
    _short_task,
    rounds_config,
)
from protege.policies import Policy
from protege.rollout.collect import collect

NOISE_SETTINGS: dict[str, list[float]] = {
    "none": [0.0, 0.0, 0.0],
    "steer, gas, brake 0.05 (the tutorial's round 1)": [0.05, 0.05, 0.05],
    "gas, brake 0.05": [0.0, 0.05, 0.05],
    "steer 0.05": [0.05, 0.0, 0.0],
    "steer 0.01": [0.01, 0.0, 0.0],
    "steer 0.005": [0.005, 0.0, 0.0],
}
"""Variances per action dimension (steer, gas, brake) of ``--noisy-expert``."""


def noisy_expert(seeds: list[int]) -> None:
    """The expert driving with i.i.d. Gaussian noise added to what it executes (clipped to
    the action box, as DART's gate does): return, lap length, share of steps off the road
    (|offset from the centreline| > the road's half-width) and share of clipped actions."""
    task = tasks.make("carracing")
    expert = task.make_expert()
    _, space = task.spaces
    env = task.make_vec_env(len(seeds))
    print("| noise variance | return | steps | steps off the road | clipped (steer, gas, brake) |")
    print("|---|---:|---:|---:|---|")
    try:
        for name, var in NOISE_SETTINGS.items():
            rng = np.random.default_rng(0)
            obs, infos = env.reset(seed=seeds)
            ret, steps, off = np.zeros(len(seeds)), np.zeros(len(seeds)), 0.0
            done = np.zeros(len(seeds), bool)
            clipped, total = np.zeros(3), 0
            while not done.all():
                clean = expert.act(obs, infos)
                noisy = clean + rng.standard_normal(clean.shape) * np.sqrt(var)
                executed = np.clip(noisy, space.low, space.high)
                clipped += (executed != noisy)[~done].sum(0)
                total += int((~done).sum())
                obs, r, term, trunc, infos = env.step(executed.astype(np.float32))
                live = ~done
                ret += np.where(live, r, 0.0)
                steps += live
                off += float((live & (np.abs(infos["track_offset"]) > TRACK_WIDTH)).sum())
                done |= term | trunc
            share = ", ".join(f"{c / total:.0%}" for c in clipped)
            print(
                f"| {name} | {ret.mean():.1f} ± {ret.std():.1f} | {steps.mean():.0f} | "
                f"{off / steps.sum():.1%} | {share} |",
                flush=True,
            )
    finally:
        env.close()


def error_report(out: Path, arms: list[str]) -> None:
    """The BC policy's error covariance (steer, gas, brake variances) on each arm's round-1
    states, which it was not trained on: what DART's fit (``dart.learner_error``) measures."""
    bc_policy = Policy.load(out / "bc")
    for name in arms:
        data = ordered(Store.open(out / name / "store"), min_round=1, max_round=1)
        if data is None:
            continue
        mask = data.labeled
        cov = dart.learner_error(bc_policy, take(data.obs, mask), data.actions[mask], False)
        print(
            f"{name}: {int(mask.sum())} round-1 states; BC's error variance (steer, gas, "
            f"brake) {np.round(np.diag(cov), 4).tolist()}, trace {np.trace(cov):.4f}"
        )


def arm_config(name: str, args: argparse.Namespace) -> DARTConfig:
    """The DART settings of one arm."""
    if name == "clean":
        return DARTConfig(initial_noise=0.0, fit_noise=False)
    if name == "demo":
        return DARTConfig(initial_noise=0.05)
    if name == "steer-fit":
        return DARTConfig(initial_noise=args.steer_noise, noise_dims=(0,))
    if name == "steer-alpha":
        return DARTConfig(initial_noise=args.alpha, noise_dims=(0,), final_error=args.alpha)
    if name == "steer-fixed":
        return DARTConfig(initial_noise=args.alpha, noise_dims=(0,), fit_noise=False)
    raise SystemExit(f"unknown arm {name!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--arms", nargs="+", default=["clean", "demo", "steer-fit"])
    parser.add_argument("--out", type=Path, default=Path("/tmp/dart-carracing"))
    parser.add_argument("--demos", type=int, default=10)
    parser.add_argument("--bc-steps", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--episodes-per-round", type=int, default=4)
    parser.add_argument("--round-steps", type=int, default=1000)
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--steer-noise", type=float, default=0.01)
    parser.add_argument("--alpha", type=float, default=0.005)
    parser.add_argument("--max-steps", type=int, default=None, help="cut episodes (smoke runs)")
    parser.add_argument(
        "--noisy-expert",
        action="store_true",
        help="only drive the expert with noise (no learning) on tracks 100-103 and print a table",
    )
    parser.add_argument(
        "--errors", action="store_true", help="only report BC's error on the arms' round 1"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.noisy_expert:
        noisy_expert([100, 101, 102, 103])
        return
    if args.errors:
        error_report(args.out / f"seed{args.seed}", args.arms)
        return

    cfg = CarRacingDemoConfig(
        seed=args.seed,
        demos=args.demos,
        bc_steps=args.bc_steps,
        rounds=args.rounds,
        episodes_per_round=args.episodes_per_round,
        round_steps=args.round_steps,
        eval_episodes=args.eval_episodes,
    )
    task = _short_task(tasks.make("carracing"), args.max_steps)
    out = args.out / f"seed{args.seed}"
    demos = out / "demos"
    bc_path = out / "bc"
    t0 = time.perf_counter()
    if not (bc_path / "config.json").exists():
        shutil.rmtree(out, ignore_errors=True)
        collect(task, demos, cfg.demos, n_envs=min(cfg.n_envs, cfg.demos), seed=cfg.seed)
        policy = _policy(task, cfg)
        bc.fit(policy, Store.open(demos), _bc_config(cfg, cfg.bc_steps))
        policy.save(bc_path)
    start = Policy.load(bc_path)
    print(f"[dart] demos + BC ready in {time.perf_counter() - t0:.0f} s", file=sys.stderr)

    for name in args.arms:
        t_arm = time.perf_counter()
        folder = out / name
        shutil.rmtree(folder, ignore_errors=True)
        shutil.copytree(demos, folder / "store", ignore=shutil.ignore_patterns(".lock"))
        dcfg = rounds_config(cfg)
        trainer = _ContinueFromBC(start, dcfg.bc)
        result = dart.run(
            task,
            folder / "store",
            dcfg,
            arm_config(name, args),
            trainer=trainer,
            method="dart",
            run_dir=folder / "run",
        )
        rows: list[dict[str, Any]] = [
            {
                "round": r.round,
                "labels": r.labels,
                "return": round(r.mean_return, 1),
                "std": round(r.std_return, 1),
                "success": r.success_rate,
                **{k: round(v, 5) for k, v in r.extras.items()},
            }
            for r in result.rows
        ]
        line = {"seed": args.seed, "arm": name, "seconds": round(time.perf_counter() - t_arm)}
        print(json.dumps({**line, "rows": rows}), flush=True)

    print(f"Command: {' '.join(sys.argv)}; load {os.getloadavg()[0]:.1f}", file=sys.stderr)


if __name__ == "__main__":
    main()
