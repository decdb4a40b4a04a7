"""Chunk size and temporal ensembling on jittery demonstrations: success and smoothness (issue 4).

Demonstrations come from the obstacle course's expert with Gaussian noise (``--noise`` = 0.3,
per component, every step) added to the actions it executes and records: a jittery
demonstrator. BC trains one policy per chunk size H ∈ {1, 4, 8, 16} and head; each is then
evaluated with two executions of its chunks:

* **queue**: execute all H actions of a chunk open loop, then re-plan (``n_action_steps = H``);
* **temporal ensemble** (ACT, Zhao et al. 2023): re-plan every step and execute the
  ``exp(−m·i)``-weighted average of every prediction made for the current step (i = 0 the
  oldest), for m ∈ {0, 0.01, 0.1}.

Smoothness = mean over episodes of the mean squared change of the executed command between
consecutive steps, ``mean_t ‖a_{t+1} − a_t‖²`` (after the env's command clipping; lower is
smoother). Success as on the obstacle course. Three settings:

* ``left only, gaussian``: every demonstrator passes left (``left_prob`` = 1), so only the
  jitter is in the way; the Gaussian head learns the jitter as variance and samples it;
* ``left only, mse``: the same demonstrations, an L2 head (its own output is smooth);
* ``60/40, mog``: the real course, where ensembling averages chunks that may come from
  different modes (Alexander Soare's caveat in LeRobot PR #186).

Evaluation samples actions (``deterministic=False``), 100 seeded episodes per cell.

    .venv/bin/python benchmarks/chunking.py --out reports/chunking --seed 0
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from protege.configs.demos import ObstacleDemoConfig
from protege.data.episode import Episode
from protege.data.store import Store
from protege.demos.obstacle import train_head
from protege.policies.chunking import ChunkExecutor
from protege.report.page import machine
from protege.rollout.collect import collect
from protege.rollout.gates import ExpertGate, LearnerGate
from protege.rollout.loop import rollout
from protege.rollout.observers import KeepEpisodes, Success
from protege.tasks.base import EpisodeOutcome, Task
from protege.tasks.obstacle import COURSE, OBSTACLE, ObstacleExpert, clip_command

CHUNKS = (1, 4, 8, 16)
COEFFS = (0.0, 0.01, 0.1)


class JitteryExpert:
    """The obstacle expert with i.i.d. Gaussian noise on every action it executes."""

    def __init__(self, noise: float, seed: int) -> None:
        self.base = ObstacleExpert()
        self.noise = noise
        self.rng = np.random.default_rng(seed)

    def begin_run(self, seed: int | None = None) -> None:
        self.rng = np.random.default_rng(seed)

    def act(self, obs: np.ndarray, infos: dict[str, Any] | None = None) -> np.ndarray:
        a = self.base.act(obs, infos)
        return np.clip(a + self.noise * self.rng.standard_normal(a.shape), -1, 1).astype(np.float32)


def executed(episode: Episode) -> np.ndarray:
    return episode.executed if episode.executed is not None else episode.actions


def smoothness(executed: np.ndarray) -> float:
    a = clip_command(executed, COURSE.min_forward)
    return float(np.mean(np.sum(np.diff(a, axis=0) ** 2, axis=-1))) if len(a) > 1 else 0.0


def run(
    actor: Any, task: Task, episodes: int, seed: int, n_envs: int, expert: Any = None
) -> dict[str, float]:
    """Success, crash rate and smoothness of ``actor`` (a policy) or, if None, ``expert``."""
    env = task.make_vec_env(min(n_envs, episodes))
    finals: list[dict[str, Any]] = []

    def success(outcome: EpisodeOutcome) -> bool:
        finals.append(outcome.final_info)
        return task.success(outcome)

    try:
        result = rollout(
            env,
            episodes,
            gate=LearnerGate(label=False) if actor is not None else ExpertGate(),
            seed=seed,
            learner=actor,
            expert=expert,
            observers=[Success(success), KeepEpisodes()],
            deterministic=False,
            generator=torch.Generator().manual_seed(seed),
        )
    finally:
        env.close()
    return {
        "success": float(np.mean(result.successes)),
        "crash": float(np.mean([bool(f.get("crashed")) for f in finals])),
        "smoothness": float(np.mean([smoothness(executed(ep)) for ep in result.episodes])),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("reports/chunking"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--noise", type=float, default=0.3)
    ap.add_argument("--demos", type=int, default=200)
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--episodes", type=int, default=100)
    ap.add_argument("--n-envs", type=int, default=25)
    args = ap.parse_args()
    torch.set_num_threads(1)
    print(f"machine: {machine()}", flush=True)
    eval_seed = args.seed + 1000

    left_only = dataclasses.replace(OBSTACLE, name="obstacle-left", env_kwargs={"left_prob": 1.0})
    settings = [
        ("left only, gaussian", left_only, "gaussian"),
        ("left only, mse", left_only, "mse"),
        ("60/40, mog", OBSTACLE, "mog"),
    ]
    results: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()}}
    demos: dict[str, Any] = {}
    for task in (left_only, OBSTACLE):
        with tempfile.TemporaryDirectory() as tmp:
            expert = JitteryExpert(args.noise, args.seed)
            collect(
                task, Path(tmp) / "d", episodes=args.demos, n_envs=10, seed=args.seed, expert=expert
            )
            demos[task.name] = Store.open(Path(tmp) / "d").transitions()
        clean = run(None, task, args.episodes, eval_seed, args.n_envs, ObstacleExpert())
        jittery = run(
            None, task, args.episodes, eval_seed, args.n_envs, JitteryExpert(args.noise, eval_seed)
        )
        results[f"{task.name}/expert"] = clean
        results[f"{task.name}/jittery expert"] = jittery
        print(task.name, "expert", clean, "jittery", jittery, flush=True)

    for label, task, head in settings:
        for chunk in CHUNKS:
            t0 = time.perf_counter()
            budget = ObstacleDemoConfig(seed=args.seed, steps=args.steps, lr=args.lr)
            policy = train_head(head, chunk, demos[task.name], budget, task)
            train_s = time.perf_counter() - t0
            executions: list[tuple[str, float | None]] = [("queue", None)]
            if chunk > 1:
                executions += [(f"ensemble m={m}", m) for m in COEFFS]
            for name, coeff in executions:
                if chunk > 1:
                    n_steps = chunk if coeff is None else 1
                    policy.executor = ChunkExecutor(chunk, n_steps, coeff)
                row = run(policy, task, args.episodes, eval_seed, args.n_envs)
                row["train_seconds"] = train_s
                results[f"{label}/H={chunk}/{name}"] = row
                print(f"{label} H={chunk} {name}: {row}", flush=True)

    n = args.episodes
    lines = [
        "# Chunk size and temporal ensembling on jittery demonstrations",
        "",
        f"Machine: {machine()}. Seed {args.seed}: {args.demos} demonstrations with noise "
        f"σ = {args.noise} on every executed and recorded action; BC {args.steps} steps × batch "
        f"256, lr {args.lr}, MLP 256×256, min-max action scaling; {n} evaluation episodes "
        f"(seed {eval_seed}), actions sampled. Cells: success / crash / smoothness "
        "(mean ‖a_{t+1} − a_t‖², lower is smoother). Queue = execute the whole chunk; "
        "ensemble = re-plan every step, ACT's exp(−m·i) average.",
        "",
    ]
    for task in (left_only, OBSTACLE):
        c, j = results[f"{task.name}/expert"], results[f"{task.name}/jittery expert"]
        lines.append(
            f"Expert on {task.name}: clean {c['success']:.0%} success, smoothness "
            f"{c['smoothness']:.4f}; jittery {j['success']:.0%}, {j['smoothness']:.4f}."
        )
    lines.append("")
    columns = ["queue", *(f"ensemble m={m}" for m in COEFFS)]
    for label, _, _ in settings:
        lines += [
            f"## {label}",
            "",
            "| H | " + " | ".join(columns) + " |",
            "|---|" + "---|" * len(columns),
        ]
        for chunk in CHUNKS:
            cells = []
            for col in columns:
                r = results.get(f"{label}/H={chunk}/{col}")
                cells.append(
                    "–"
                    if r is None
                    else f"{r['success']:.0%} / {r['crash']:.0%} / {r['smoothness']:.4f}"
                )
            lines.append(f"| {chunk} | " + " | ".join(cells) + " |")
        lines.append("")
    table = "\n".join(lines)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "chunking.md").write_text(table)
    (args.out / "chunking.json").write_text(json.dumps(results, indent=2))
    print(table)


if __name__ == "__main__":
    main()
