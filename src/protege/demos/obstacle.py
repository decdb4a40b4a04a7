"""``protege demo obstacle``: which output heads survive demonstrators who disagree.

Collects scripted-expert demonstrations on the ``obstacle`` task (60% pass left, 40% right),
trains BC with every continuous head (mse, gaussian, mog, binned, diffusion, flow) on the same
encoder (MLP 256×256), the same budget (steps, batch, lr, seed) and min-max action scaling,
then rolls each out on the same seeded episodes, *sampling* its actions (mse's sample is its
mean). Two execution settings:

* ``chunk 8``: predict 8 actions, execute all 8 open loop, re-plan (ACT / Diffusion Policy);
* ``chunk 1``: predict and execute one action per step (closed loop).

Then success against the number of DDIM / Euler steps for the chunk-8 diffusion and flow
policies. The report folder gets ``index.html`` / ``report.md`` (one table, three figures),
``results.md`` (the tables with 95% Wilson intervals) and ``results.json``. Figures:
``obstacle_chunks.png`` (200 sampled chunks from a state just before the obstacle, drawn as
the paths they would drive: the seeds' "100 denoising runs" picture), ``obstacle_actions.png``
(200 sampled first actions at that state per chunk-1 policy) and ``obstacle_steps.png``.

    protege demo obstacle [--seed 0] [--out reports/demo-obstacle]
    .venv/bin/python benchmarks/obstacle.py        # the same run, the benchmark's name
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from protege.algos import bc
from protege.configs.demos import ObstacleDemoConfig
from protege.data.store import Store, Transitions
from protege.demos.common import write_json
from protege.demos.obstacle_plots import plot_actions, plot_chunks, plot_steps
from protege.policies import Policy, PolicyConfig
from protege.report import page as pg
from protege.rollout.collect import collect
from protege.rollout.evaluate import evaluate, evaluate_expert
from protege.tasks.base import EpisodeOutcome, Task
from protege.tasks.obstacle import LEFT, OBSTACLE, RIGHT

STEP_SWEEP = {
    "diffusion": ("num_inference_steps", (1, 2, 5, 10, 100)),
    "flow": ("num_steps", (1, 2, 5, 10, 20)),
}


@dataclass
class ObstacleDemo:
    """What the comparison measured: a row per (chunk, head), the expert's row, the sweep."""

    config: ObstacleDemoConfig
    out: Path
    expert: dict[str, float] = field(default_factory=dict)
    rows: dict[str, dict[str, float]] = field(default_factory=dict)
    """``"chunk8/mog"`` → success, left, right, crash, missed, train_seconds."""
    sweep: dict[str, dict[int, float]] = field(default_factory=dict)
    wall_seconds: float = 0.0
    page_paths: tuple[Path, Path] | None = None


class _FinalInfos:
    """A success test that keeps each episode's final info (side passed, crash)."""

    def __init__(self) -> None:
        self.infos: list[dict[str, Any]] = []

    def __call__(self, outcome: EpisodeOutcome) -> bool:
        self.infos.append(outcome.final_info)
        return OBSTACLE.success(outcome)

    def summary(self) -> dict[str, float]:
        passed = np.array([i.get("passed", 0) for i in self.infos])
        crashed = np.array([bool(i.get("crashed")) for i in self.infos])
        reached = np.array([bool(i.get("reached")) for i in self.infos])
        return {
            "episodes": len(self.infos),
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


def _rollouts(run_eval: Callable[[Task], Any]) -> dict[str, float]:
    record = _FinalInfos()
    run_eval(dataclasses.replace(OBSTACLE, success=record))
    return record.summary()


def evaluate_head(policy: Policy, cfg: ObstacleDemoConfig) -> dict[str, float]:
    """Success, sides, crashes of ``policy`` on the config's seeded evaluation episodes."""
    return _rollouts(
        lambda task: evaluate(
            policy,
            task,
            episodes=cfg.episodes,
            n_envs=cfg.n_envs,
            seed=cfg.eval_seed,
            deterministic=False,
            measure_disagreement=False,
        )
    )


def train_head(
    head: str, chunk: int, data: Transitions, cfg: ObstacleDemoConfig, task: Task = OBSTACLE
) -> Policy:
    """BC with ``head`` predicting ``chunk`` actions, all executed before re-planning."""
    torch.manual_seed(cfg.seed)
    config = PolicyConfig.for_spaces(
        *task.spaces,
        head=head,
        hidden_sizes=(256, 256),
        action_norm="minmax",
        chunk_size=chunk,
        n_action_steps=chunk,
    )
    policy = Policy(config)
    bc_config = bc.BCConfig(
        steps=cfg.steps,
        batch_size=256,
        lr=cfg.lr,
        val_fraction=0.0,
        progress=False,
        seed=cfg.seed,
        device=cfg.device,
    )
    bc.fit(policy, data, bc_config)
    return policy


def run_obstacle_demo(out: str | Path, config: ObstacleDemoConfig | None = None) -> ObstacleDemo:
    """Run the comparison and write its report into ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    from tqdm.auto import tqdm

    cfg = config or ObstacleDemoConfig()
    run = ObstacleDemo(cfg, Path(out))
    run.out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        collect(OBSTACLE, Path(tmp) / "demos", episodes=cfg.demos, n_envs=10, seed=cfg.seed)
        data = Store.open(Path(tmp) / "demos").transitions()
    run.expert = _rollouts(
        lambda task: evaluate_expert(
            task, episodes=cfg.episodes, n_envs=cfg.n_envs, seed=cfg.eval_seed
        )
    )
    policies: dict[int, dict[str, Policy]] = {c: {} for c in cfg.chunks}
    jobs = [(c, h) for c in cfg.chunks for h in cfg.heads]
    for chunk, head in tqdm(jobs, desc="heads", disable=not cfg.progress, leave=False):
        t0 = time.perf_counter()
        policy = train_head(head, chunk, data, cfg)
        seconds = time.perf_counter() - t0
        run.rows[f"chunk{chunk}/{head}"] = {**evaluate_head(policy, cfg), "train_seconds": seconds}
        policies[chunk][head] = policy

    planned = policies.get(max(cfg.chunks), {})
    for head, (attr, counts) in STEP_SWEEP.items():
        if not cfg.sweep_steps or head not in planned:
            continue
        policy = planned[head]
        default = getattr(policy.head, attr)
        run.sweep[head] = {}
        for k in counts:
            setattr(policy.head, attr, k)
            run.sweep[head][k] = evaluate_head(policy, cfg)["success"]
        setattr(policy.head, attr, default)

    run.wall_seconds = time.perf_counter() - t_start
    _write_report(run, policies, data)
    return run


# --------------------------------------------------------------------------------- report
def _fmt(p: float, n: int) -> str:
    lo, hi = wilson(p, n)
    return f"{p:.0%} [{lo:.0%}, {hi:.0%}]"


def results_markdown(run: ObstacleDemo) -> str:
    cfg, n = run.config, run.config.episodes
    lines = [
        "# Obstacle course: heads against demonstrators who disagree",
        "",
        f"Machine: {pg.machine()}. Seed {cfg.seed}: {cfg.demos} expert demonstrations, "
        f"BC {cfg.steps} steps × batch 256, lr {cfg.lr}, encoder MLP 256×256, min-max "
        f"action scaling; {n} evaluation episodes (seed {cfg.eval_seed}), actions sampled. "
        "Success with its 95% Wilson interval; left/right = successful episodes passing on "
        "that side; crash = touched the obstacle; missed = reached x = 1 outside the gate.",
        "",
    ]
    exp = run.expert
    for chunk in cfg.chunks:
        title = "one action per step" if chunk == 1 else f"chunks of {chunk}, executed open loop"
        lines += [
            f"## {title}",
            "",
            "| head | success | left | right | crash | missed | train s |",
            "|---|---|---|---|---|---|---|",
            f"| expert | {_fmt(exp['success'], n)} | {exp['left']:.0%} | {exp['right']:.0%} | "
            f"{exp['crash']:.0%} | {exp['missed']:.0%} | – |",
        ]
        for head in cfg.heads:
            r = run.rows[f"chunk{chunk}/{head}"]
            lines.append(
                f"| {head} | {_fmt(r['success'], n)} | {r['left']:.0%} | {r['right']:.0%} | "
                f"{r['crash']:.0%} | {r['missed']:.0%} | {r['train_seconds']:.0f} |"
            )
        lines.append("")
    if run.sweep:
        lines += [f"## Success against denoising / integration steps (chunk-{max(cfg.chunks)})", ""]
        for head, by_steps in run.sweep.items():
            lines += [
                f"| {head} steps | " + " | ".join(str(k) for k in by_steps) + " |",
                "|---|" + "---|" * len(by_steps),
                "| success | " + " | ".join(f"{v:.0%}" for v in by_steps.values()) + " |",
                "",
            ]
    return "\n".join(lines)


def _write_report(
    run: ObstacleDemo, policies: dict[int, dict[str, Policy]], demos: Transitions
) -> None:
    cfg, n = run.config, run.config.episodes
    page = pg.Page(
        "Obstacle course: which heads survive demonstrators who disagree",
        intro=(
            "The expert passes the obstacle on the left in 60% of episodes and on the right in "
            "40%. Every head gets the same demonstrations, encoder, budget and seed; success is "
            "reaching the goal gate without touching the obstacle, on the same seeded episodes "
            "for every head, with actions sampled."
        ),
    )
    columns = ["chunk", "head", "success", "left", "right", "crash", "train s"]
    rows: list[list[str]] = []
    e = run.expert
    rows.append(
        [
            "–",
            "expert",
            _fmt(e["success"], n),
            *(f"{e[k]:.0%}" for k in ("left", "right", "crash")),
            "–",
        ]
    )
    for chunk in cfg.chunks:
        for head in cfg.heads:
            r = run.rows[f"chunk{chunk}/{head}"]
            cells = [f"{r[k]:.0%}" for k in ("left", "right", "crash")]
            rows.append(
                [str(chunk), head, _fmt(r["success"], n), *cells, f"{r['train_seconds']:.0f}"]
            )
    page.table = pg.Table(
        columns,
        rows,
        notes=[
            "success with its 95% Wilson interval; left/right: successful episodes passing on "
            "that side; crash: touched the obstacle.",
            "chunk k: the policy predicts k actions and executes all of them before re-planning.",
        ],
    )
    big = max(cfg.chunks)
    if big in policies and len(policies[big]) > 0:
        plot_chunks(policies[big], demos, run.out / "obstacle_chunks.png", cfg.seed)
        page.figures.append(
            pg.Figure(
                "obstacle_chunks.png",
                "Sampled chunks at the obstacle",
                "Each panel: 200 chunks sampled from one head at the same state, drawn as the "
                "paths they would drive. An L2 head has one answer, the average of left and "
                "right, which runs into the obstacle; the expressive heads sample both sides.",
            )
        )
    if 1 in policies and len(policies[1]) > 0:
        plot_actions(policies[1], run.out / "obstacle_actions.png", cfg.seed)
        page.figures.append(
            pg.Figure("obstacle_actions.png", "Sampled first actions (chunk-1 policies)")
        )
    if run.sweep:
        plot_steps(run.sweep, run.out / "obstacle_steps.png")
        page.figures.append(
            pg.Figure(
                "obstacle_steps.png",
                "Success against sampling steps",
                "Benchmarks/head_latency.py gives the milliseconds per call of each setting.",
            )
        )
    page.run = {
        "seed": str(cfg.seed),
        "wall time": pg.seconds(run.wall_seconds),
        "command": pg.command_line(),
        "machine": pg.machine(),
    }
    best = [h for h in cfg.heads if run.rows[f"chunk{big}/{h}"]["success"] >= 0.95]
    mse = run.rows.get(f"chunk{big}/mse")
    if mse is not None:
        page.headline = (
            f"Chunks of {big}: the L2 (mse) head succeeds in {mse['success']:.0%} of episodes "
            f"and crashes in {mse['crash']:.0%}; ≥95% success: {', '.join(best) or 'none'}."
        )
    (run.out / "results.md").write_text(results_markdown(run))
    payload = {
        "config": dataclasses.asdict(cfg),
        "expert": run.expert,
        "rows": run.rows,
        "steps_sweep": run.sweep,
        "wall_seconds": run.wall_seconds,
    }
    write_json(run.out / "results.json", payload)
    run.page_paths = pg.write_page(page, run.out)
