"""Obstacle course: which output heads survive demonstrators who disagree (issue 4).

Collects scripted-expert demonstrations on the ``obstacle`` task (60% pass left, 40% right),
trains BC with every continuous head (mse, gaussian, mog, binned, diffusion, flow) on the same
encoder (MLP 256×256), the same budget (steps, batch, lr, seed) and min-max action scaling,
then rolls each out on seeded episodes, *sampling* its actions (mse's sample is its mean).

Two execution settings:

* ``chunk 8``: predict 8 actions, execute all 8 open loop, re-plan (ACT / Diffusion Policy);
* ``chunk 1``: predict and execute one action per step (closed loop).

Writes to ``--out``: ``results.md`` (the tables), ``results.json``, ``obstacle_chunks.png``
(200 sampled chunks from a state just before the obstacle, drawn as the paths they would
drive: the "100 denoising runs" picture) and ``obstacle_actions.png`` (200 sampled first
actions at that state, per head, for the chunk-1 policies). Also success against the number
of DDIM / Euler steps for the chunk-8 diffusion and flow policies.

    .venv/bin/python benchmarks/obstacle.py --out reports/obstacle --seed 0
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import tempfile
import time
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch

from protege.algos import bc
from protege.data.store import Store
from protege.policies import Policy, PolicyConfig
from protege.report.page import machine
from protege.rollout.collect import collect
from protege.rollout.evaluate import evaluate, evaluate_expert
from protege.tasks.base import EpisodeOutcome
from protege.tasks.obstacle import COURSE, LEFT, OBSTACLE, RIGHT, ObstacleExpert, clip_command

HEADS = ["mse", "gaussian", "mog", "binned", "diffusion", "flow"]
PROBE = np.array([0.24, 0.0], np.float32)
"""Where the chunk-8 policies plan their second chunk when they start on the centre line:
just past the point where demonstrators split, 0.11 before the obstacle's surface."""


class FinalInfos:
    """A success test that keeps each episode's final info (side passed, crash)."""

    def __init__(self) -> None:
        self.infos: list[dict[str, Any]] = []

    def __call__(self, outcome: EpisodeOutcome) -> bool:
        self.infos.append(outcome.final_info)
        return OBSTACLE.success(outcome)

    def summary(self) -> dict[str, float]:
        n = len(self.infos)
        passed = np.array([i.get("passed", 0) for i in self.infos])
        crashed = np.array([bool(i.get("crashed")) for i in self.infos])
        reached = np.array([bool(i.get("reached")) for i in self.infos])
        return {
            "episodes": n,
            "success": float(reached.mean()),
            "left": float(np.mean(reached & (passed == LEFT))),
            "right": float(np.mean(reached & (passed == RIGHT))),
            "crash": float(crashed.mean()),
            "missed": float(np.mean(~crashed & ~reached)),
        }


def wilson(p: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson interval of a binomial proportion."""
    denom = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, mid - half), min(1.0, mid + half)


def run_eval(policy: Any, episodes: int, seed: int, n_envs: int) -> dict[str, float]:
    record = FinalInfos()
    task = dataclasses.replace(OBSTACLE, success=record)
    evaluate(
        policy,
        task,
        episodes=episodes,
        n_envs=n_envs,
        seed=seed,
        deterministic=False,
        measure_disagreement=False,
    )
    return record.summary()


def train(head: str, chunk: int, data: Any, args: argparse.Namespace) -> tuple[Policy, float]:
    torch.manual_seed(args.seed)
    config = PolicyConfig.for_spaces(
        *OBSTACLE.spaces,
        head=head,
        hidden_sizes=(256, 256),
        action_norm="minmax",
        chunk_size=chunk,
        n_action_steps=chunk,
        head_kwargs={"action_norm": "minmax"} if head in ("binned", "diffusion") else {},
    )
    policy = Policy(config)
    t0 = time.perf_counter()
    bc.fit(
        policy,
        data,
        bc.BCConfig(
            steps=args.steps,
            batch_size=256,
            lr=args.lr,
            val_fraction=0.0,
            progress=False,
            seed=args.seed,
        ),
    )
    return policy, time.perf_counter() - t0


def chunk_paths(policy: Policy, n: int, seed: int) -> np.ndarray:
    """(n, H+1, 2) positions the sampled chunks at PROBE would drive through, open loop."""
    chunks = policy.predict_chunk(
        np.repeat(PROBE[None], n, 0),
        deterministic=False,
        generator=torch.Generator().manual_seed(seed),
    )
    steps = COURSE.max_speed * clip_command(chunks, COURSE.min_forward)
    return np.concatenate([np.repeat(PROBE[None, None], n, 0), PROBE + steps.cumsum(1)], 1)


def plot_chunks(policies: dict[str, Policy], demos: Any, path: Path, seed: int) -> None:
    fig, axes = plt.subplots(2, 3, figsize=(13, 7.5), sharex=True, sharey=True)
    starts = demos.episode_starts
    for ax, (head, policy) in zip(axes.flat, policies.items(), strict=True):
        for s, n in zip(starts[:60], demos.episode_lengths[:60], strict=True):
            ax.plot(demos.obs[s : s + n, 0], demos.obs[s : s + n, 1], c="0.85", lw=0.6)
        ax.add_patch(
            plt.Circle(COURSE.obstacle, COURSE.obstacle_radius, color="tab:red", alpha=0.5)
        )
        gx, gy = COURSE.goal
        ax.plot([gx, gx], [gy - COURSE.goal_half_width, gy + COURSE.goal_half_width], c="g", lw=3)
        paths = chunk_paths(policy, 200, seed)
        lat = paths[:, -1, 1] - PROBE[1]
        for p, d in zip(paths, lat, strict=True):
            color = "tab:blue" if d > 0.05 else "tab:orange" if d < -0.05 else "k"
            ax.plot(p[:, 0], p[:, 1], c=color, lw=0.7, alpha=0.35)
        ax.plot(*PROBE, "k*", ms=9)
        frac = [(lat > 0.05).mean(), (lat < -0.05).mean()]
        ax.set_title(
            f"{head}: {frac[0]:.0%} left, {frac[1]:.0%} right, {1 - sum(frac):.0%} between"
        )
        ax.set_xlim(-0.02, 1.05)
        ax.set_ylim(-0.45, 0.45)
        ax.set_aspect("equal")
    fig.suptitle(
        "200 sampled 8-step chunks at ★ (0.24, 0), driven open loop; grey: expert demonstrations"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_actions(policies: dict[str, Policy], path: Path, seed: int) -> None:
    fig, axes = plt.subplots(1, len(policies), figsize=(3.2 * len(policies), 3.4), sharey=True)
    probe = np.repeat(np.array([[0.21, 0.0]], np.float32), 200, 0)
    expert = ObstacleExpert().act(probe[:2], {"side": np.array([LEFT, RIGHT])})
    for ax, (head, policy) in zip(axes, policies.items(), strict=True):
        a = policy.predict_chunk(
            probe, deterministic=False, generator=torch.Generator().manual_seed(seed)
        )[:, 0]
        ax.scatter(a[:, 0], a[:, 1], s=8, alpha=0.5)
        ax.scatter(expert[:, 0], expert[:, 1], marker="x", s=60, c="r")
        ax.set_title(head)
        ax.set_xlabel("forward command")
        ax.set_xlim(-0.05, 1.05)
        ax.set_ylim(-1.05, 1.05)
    axes[0].set_ylabel("lateral command (+ = left)")
    fig.suptitle("200 sampled actions at (0.21, 0), chunk-1 policies; ×: the expert's two actions")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def fmt(p: float, n: int) -> str:
    lo, hi = wilson(p, n)
    return f"{p:.0%} [{lo:.0%}, {hi:.0%}]"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("reports/obstacle"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--demos", type=int, default=200)
    ap.add_argument("--steps", type=int, default=4000, help="BC gradient steps per head")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--episodes", type=int, default=100, help="evaluation episodes per row")
    ap.add_argument("--n-envs", type=int, default=25)
    ap.add_argument("--heads", nargs="+", default=HEADS)
    args = ap.parse_args()
    torch.set_num_threads(1)
    plt.switch_backend("Agg")
    args.out.mkdir(parents=True, exist_ok=True)
    eval_seed = args.seed + 1000
    print(f"machine: {machine()}", flush=True)

    results: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()}}
    with tempfile.TemporaryDirectory() as tmp:
        collect(OBSTACLE, Path(tmp) / "demos", episodes=args.demos, n_envs=10, seed=args.seed)
        data = Store.open(Path(tmp) / "demos").transitions()
    record = FinalInfos()
    evaluate_expert(
        dataclasses.replace(OBSTACLE, success=record),
        episodes=args.episodes,
        n_envs=args.n_envs,
        seed=eval_seed,
    )
    results["expert"] = record.summary()
    print("expert", results["expert"], flush=True)

    policies: dict[int, dict[str, Policy]] = {8: {}, 1: {}}
    for chunk in (8, 1):
        for head in args.heads:
            policy, seconds = train(head, chunk, data, args)
            row = run_eval(policy, args.episodes, eval_seed, args.n_envs)
            row["train_seconds"] = seconds
            results[f"chunk{chunk}/{head}"] = row
            policies[chunk][head] = policy
            print(f"chunk {chunk} {head}: {row}", flush=True)

    sweep: dict[str, dict[int, float]] = {}
    for head, attr, counts in (
        ("diffusion", "num_inference_steps", (1, 2, 5, 10, 100)),
        ("flow", "num_steps", (1, 2, 5, 10, 20)),
    ):
        if head not in policies[8]:
            continue
        policy = policies[8][head]
        default = getattr(policy.head, attr)
        sweep[head] = {}
        for k in counts:
            setattr(policy.head, attr, k)
            sweep[head][k] = run_eval(policy, args.episodes, eval_seed, args.n_envs)["success"]
            print(f"{head} {attr}={k}: success {sweep[head][k]:.2f}", flush=True)
        setattr(policy.head, attr, default)
    results["steps_sweep"] = sweep

    if set(HEADS) <= set(args.heads):
        plot_chunks(policies[8], data, args.out / "obstacle_chunks.png", args.seed)
        plot_actions(policies[1], args.out / "obstacle_actions.png", args.seed)

    n = args.episodes
    lines = [
        "# Obstacle course: heads against demonstrators who disagree",
        "",
        f"Machine: {machine()}. Seed {args.seed}: {args.demos} expert demonstrations, "
        f"BC {args.steps} steps × batch 256, lr {args.lr}, encoder MLP 256×256, min-max "
        f"action scaling; {n} evaluation episodes (seed {eval_seed}), actions sampled. "
        "Success with its 95% Wilson interval; left/right = successful episodes passing on "
        "that side; crash = touched the obstacle; missed = reached x = 1 outside the gate.",
        "",
    ]
    exp = results["expert"]
    for chunk, title in ((8, "chunks of 8, executed open loop"), (1, "one action per step")):
        lines += [
            f"## {title}",
            "",
            "| head | success | left | right | crash | missed | train s |",
            "|---|---|---|---|---|---|---|",
            f"| expert | {fmt(exp['success'], n)} | {exp['left']:.0%} | {exp['right']:.0%} | "
            f"{exp['crash']:.0%} | {exp['missed']:.0%} | – |",
        ]
        for head in args.heads:
            r = results[f"chunk{chunk}/{head}"]
            lines.append(
                f"| {head} | {fmt(r['success'], n)} | {r['left']:.0%} | {r['right']:.0%} | "
                f"{r['crash']:.0%} | {r['missed']:.0%} | {r['train_seconds']:.0f} |"
            )
        lines.append("")
    if sweep:
        lines += ["## Success against denoising / integration steps (chunk-8 policies)", ""]
        for head, by_steps in sweep.items():
            lines += [
                f"| {head} steps | " + " | ".join(str(k) for k in by_steps) + " |",
                "|---|" + "---|" * len(by_steps),
                "| success | " + " | ".join(f"{v:.0%}" for v in by_steps.values()) + " |",
                "",
            ]
    table = "\n".join(lines)
    (args.out / "results.md").write_text(table)
    (args.out / "results.json").write_text(json.dumps(results, indent=2))
    print(table)


if __name__ == "__main__":
    main()
