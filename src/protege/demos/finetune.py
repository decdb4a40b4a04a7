"""``protege demo finetune``: BC from two demonstrations, then RL fine-tuning with and without
the KL anchor, and a plot of return against env steps with BC's and the expert's lines.

By default the demonstrations come from CartPole's drifting demonstrator (a weakened expert,
:class:`~protege.demos.finetune_arms.DriftingCartPoleExpert`): BC matches it, and only the
task's reward can take the policy past it. The report folder gets ``index.html`` /
``report.md`` (a table, one figure), ``results.json`` and each run's folder (the fine-tuned
policies, their RL episodes and checkpoints).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from protege import tasks
from protege.algos.finetune import FinetuneResult
from protege.configs.demos import FinetuneDemoConfig
from protege.configs.rl import PPOConfig
from protege.demos.common import timed, write_json
from protege.demos.finetune_arms import Arm, bc_from_demos, demonstrator, dip, run_arm
from protege.experts.adapters import ExpertActor
from protege.report import page as pg
from protege.rollout.evaluate import evaluate, evaluate_expert

PPO_SETTINGS: dict[str, Any] = {"rollout_steps": 1024, "n_envs": 4, "epochs": 10, "lr": 1e-3}
"""The demo's PPO settings (those of ``benchmarks/finetune.py``; the rest are PPOConfig's)."""


@dataclass
class FinetuneDemo:
    """What the demo measured."""

    config: FinetuneDemoConfig
    out: Path
    expert: float = 0.0
    demonstrator: float = 0.0
    bc: float = 0.0
    runs: dict[str, FinetuneResult] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    wall_seconds: float = 0.0
    page_paths: tuple[Path, Path] | None = None

    def headline(self) -> str:
        best = {k: max(e["mean_return"] for e in r.evals) for k, r in self.runs.items()}
        runs = "; ".join(f"fine-tuned {k}: best evaluation {v:.1f}" for k, v in best.items())
        return (
            f"BC on {self.config.demos} demonstrations: {self.bc:.1f} (demonstrator "
            f"{self.demonstrator:.1f}, expert {self.expert:.1f}); {runs} "
            f"(within {self.config.steps:,} env steps each)"
        )


def run_finetune_demo(out: str | Path | None, cfg: FinetuneDemoConfig) -> FinetuneDemo:
    """Run the demo into ``out`` (default ``reports/demo-finetune``) and write its report."""
    out = Path(out or "reports/demo-finetune")
    out.mkdir(parents=True, exist_ok=True)
    run = FinetuneDemo(cfg, out)
    t0 = time.perf_counter()
    task = tasks.make(cfg.task)
    with timed(run.timings, "demonstrations + BC"):
        start, demos = bc_from_demos(
            task, out, cfg.demos, cfg.demonstrator, cfg.seed, cfg.bc_steps, (64, 64)
        )
    with timed(run.timings, "evaluate expert, demonstrator, BC"):
        n, seed, envs = cfg.eval_episodes, cfg.eval_seed, int(PPO_SETTINGS["n_envs"])
        run.expert = evaluate_expert(task, n, envs, seed).mean_return
        actor = ExpertActor(demonstrator(task, cfg.demonstrator))
        run.demonstrator = evaluate(
            actor, task, n, seed=seed, measure_disagreement=False
        ).mean_return
        run.bc = evaluate(start, task, n, envs, seed, measure_disagreement=False).mean_return
    ppo = PPOConfig(**PPO_SETTINGS, seed=cfg.seed)
    arms = {
        "with KL": Arm("with KL", cfg.kl, cfg.kl_decay, cfg.value_warmup),
        "without KL": Arm("without KL", 0.0, 1.0, cfg.value_warmup),
    }
    for name, arm in arms.items():
        with timed(run.timings, f"fine-tune {name}"):
            run.runs[name] = run_arm(
                arm,
                task,
                start,
                demos,
                out / name.replace(" ", "-").lower(),
                cfg.steps,
                ppo,
                cfg.eval_every,
                cfg.eval_episodes,
                progress=f"fine-tune {name}" if cfg.progress else False,
            )
    run.wall_seconds = time.perf_counter() - t0
    _write_report(run)
    return run


def plot_curves(run: FinetuneDemo, path: Path) -> Path:
    """Return against env steps for every run, with the expert's, the demonstrator's and
    BC's levels as horizontal lines."""
    fig, ax = plt.subplots(figsize=(7.2, 4.4))
    ax.axhline(run.expert, color="#444444", ls="--", lw=1, label="expert")
    if run.config.demonstrator != "expert":
        ax.axhline(run.demonstrator, color="#8c564b", ls="-.", lw=1, label="demonstrator")
    ax.axhline(run.bc, color="#7f7f7f", ls=":", lw=1.2, label="BC (start)")
    for (name, r), color in zip(run.runs.items(), ("#1f77b4", "#d62728"), strict=False):
        x = [e["env_steps"] for e in r.evals]
        y = [e["mean_return"] for e in r.evals]
        ax.plot(x, y, "-o", ms=3.5, color=color, label=f"fine-tuned {name}")
    warm = run.config.value_warmup
    if warm and run.runs:
        first = next(iter(run.runs.values()))
        if len(first.history) >= warm:
            ax.axvspan(0, first.history[warm - 1]["env_steps"], color="#dddddd", alpha=0.5, lw=0)
    ax.set_xlabel("env steps of fine-tuning (shaded: value warm-up, the policy is frozen)")
    ax.set_ylabel(f"mean return ({run.config.eval_episodes} seeded episodes)")
    ax.set_title(f"{run.config.task}: RL fine-tuning from BC")
    ax.grid(alpha=0.3)
    ax.legend(frameon=True, framealpha=0.85, fontsize=8.5, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _write_report(run: FinetuneDemo) -> None:
    cfg = run.config
    page = pg.Page(
        f"RL fine-tuning from BC on {cfg.task}",
        headline=run.headline(),
        intro=(
            f"{cfg.demos} demonstrations by the {cfg.demonstrator} demonstrator; BC on them; "
            f"then PPO on the task's reward from the BC policy, {cfg.value_warmup} critic-only "
            f"updates first, with a KL penalty to the frozen BC policy (coefficient {cfg.kl}, "
            f"×{cfg.kl_decay} per update) or without. Every evaluation uses the same "
            f"{cfg.eval_episodes} seeded episodes, deterministic actions."
        ),
    )
    rows = [
        ["expert", f"{run.expert:.1f}", "–", "–", "–"],
        ["demonstrator", f"{run.demonstrator:.1f}", "–", "–", "–"],
        ["BC", f"{run.bc:.1f}", "–", "–", "–"],
    ]
    for name, r in run.runs.items():
        d = dip(r, r.evals[0]["mean_return"])
        rows.append(
            [
                f"fine-tuned {name}",
                f"{r.evals[-1]['mean_return']:.1f}",
                f"{max(e['mean_return'] for e in r.evals):.1f}",
                f"{100 * d['depth']:.0f}%",
                f"{r.wall_seconds:.0f}",
            ]
        )
    page.table = pg.Table(
        ["policy", "return (final)", "best evaluation", "worst dip below BC", "train s"],
        rows,
        notes=[
            "worst dip: how far the worst evaluation fell below BC's return, as a share of it.",
        ],
    )
    plot_curves(run, run.out / "finetune_curves.png")
    page.figures.append(
        pg.Figure(
            "finetune_curves.png",
            "Return against env steps",
            "Each point is one evaluation of the policy being fine-tuned.",
        )
    )
    page.run = {
        "seed": str(cfg.seed),
        **{k: pg.seconds(v) for k, v in run.timings.items()},
        "wall time": pg.seconds(run.wall_seconds),
        "command": pg.command_line(),
        "machine": pg.machine(),
    }
    payload = {
        "config": dataclasses.asdict(cfg),
        "expert": run.expert,
        "demonstrator": run.demonstrator,
        "bc": run.bc,
        "runs": {k: r.to_dict() for k, r in run.runs.items()},
        "wall_seconds": run.wall_seconds,
    }
    write_json(run.out / "results.json", payload)
    run.page_paths = pg.write_page(page, run.out)
