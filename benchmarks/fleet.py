"""Fleet mode: what a few supervisors' time buys across a fleet, by allocation.

Part A, **allocation** (a fixed learner): a ThriftyDAgger learner (5-member ensemble of 2×64
MLPs and its success critic) is trained once on one CartPole demonstration with little BC, so
that alone it drops the pole in most episodes, and its gate is calibrated on its own
states (α_h = 0.01, :func:`protege.algos.fleet.calibrated_gate`). Fleets of N = 4, 8, 16, 32
robots then run it for ``--steps`` fleet steps with K = 1, 2, 4 supervisors (the scripted
expert, with a 3-step context switch, takeovers of 10 to 200 steps and 10-step hard resets
of fallen poles; 10 steps per supervisor-second), allocated by priority (Fleet-DAgger,
C-U-R order), at random, or round-robin. The baselines get the *same budget*: they may keep
the supervisors busy only as large a share of the time as the priority allocation did in the
same (N, K, seed) cell (``FleetConfig.supervisor_share``). Reported per cell (mean over
seeds): successes, hard resets, supervisor-seconds, return on human effort (ROHE: successes per
supervisor-minute), robot idle share, labels. Priority runs both with robots that drive on
while waiting for help (``wait=continue``, the default) and with robots that pause.

Part B, **learning** (Fleet-DAgger rounds): N = 8 robots, K = 2 supervisors, one 50-step
CartPole demonstration as round 0, then ``--rounds`` rounds of 16 episodes each, the learner
retrained on every label after each round and scored alone on 20 seeded episodes, once per
allocation (baselines without a budget cap: compare return against supervisor-seconds).

Why CartPole: it is the cheapest built-in task with both a success test and a failure that
needs a reset (the pole falls); the whole grid runs on 2 shared cores in minutes, where
LunarLander's 1,000-step episodes and Box2D steps would take about ten times as long.

    .venv/bin/python benchmarks/fleet.py --out benchmarks/results/fleet [--seeds 0 1]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from protege import tasks
from protege.algos import engine, fleet
from protege.configs.bc import BCConfig
from protege.configs.fleet import FleetConfig
from protege.configs.interactive import DAggerConfig
from protege.data.store import Store
from protege.policies.thrifty import ThriftyLearner
from protege.rollout.evaluate import evaluate
from protege.rollout.gates import ExpertGate
from protege.rollout.loop import rollout
from protege.rollout.observers import KeepEpisodes
from store_load import machine

ROBOTS = (4, 8, 16, 32)
SUPERVISORS = (1, 2, 4)
BASE = FleetConfig(members=5, q_steps=500, q_hidden=(64, 64))


def train_learner(
    task: Any, out: Path, demo_steps: int, bc_steps: int, seed: int
) -> ThriftyLearner:
    """Round 0 of a fleet run: one demonstration cut after ``demo_steps`` steps, a weakly
    trained learner."""
    shutil.rmtree(out, ignore_errors=True)
    short_demo(task, out / "store", demo_steps, seed)
    cfg = DAggerConfig(
        rounds=0,
        eval_episodes=20,
        seed=seed,
        bc=BCConfig(steps=bc_steps, batch_size=64, lr=3e-3, val_fraction=0.0, progress=False),
    )
    make = engine.policy_factory(task, hidden_sizes=(64, 64))
    fleet.run(task, out / "store", cfg, BASE, make_policy=make, run_dir=out)
    return ThriftyLearner.load(out / "learners" / "round_000")


def cell(task: Any, gate: Any, n: int, k: int, steps: int, seed: int) -> list[dict[str, Any]]:
    """One (N, K, seed) cell: priority (continue, pause), then the budget-matched baselines."""
    rows = []
    share = None
    for alloc, wait in (
        ("priority", "continue"),
        ("priority", "pause"),
        ("random", "continue"),
        ("round-robin", "continue"),
    ):
        cfg = dataclasses.replace(
            BASE,
            robots=n,
            supervisors=k,
            allocation=alloc,
            wait=wait,
            supervisor_share=None if alloc == "priority" else share,
        )
        t0 = time.perf_counter()
        r = fleet.simulate(task, gate, cfg, steps, seed)
        wall = time.perf_counter() - t0
        if alloc == "priority" and wait == "continue":
            share = max(r.supervisor_steps / (k * r.steps), 1e-6)
        name = alloc if alloc != "priority" else f"priority-{wait}"
        where = {"allocation": name, "robots": n, "supervisors": k, "seed": seed}
        rows.append({**where, "wall_seconds": wall, **r.to_dict()})
        print(
            f"N={n:2d} K={k} seed={seed} {name:17s} successes {r.successes:4d} resets "
            f"{r.resets:3d} supervisor-s {r.supervisor_seconds:6.1f} ROHE {r.rohe:6.2f} "
            f"idle {r.idle_fraction:6.1%} labels {r.labels:5d} ({wall:.1f} s)",
            flush=True,
        )
    return rows


def short_demo(task: Any, path: Path, steps: int, seed: int) -> None:
    """A store holding one expert episode of ``task`` cut after ``steps`` steps."""
    env = task.make_vec_env(1)
    kept = KeepEpisodes()
    try:
        rollout(env, 1, gate=ExpertGate(), seed=seed, expert=task.make_expert(), observers=[kept])
    finally:
        env.close()
    ep = kept.episodes[0]
    with Store.create(path, *task.spaces, task=task.name) as store:
        store.append(ep.head(steps))


def learning(task: Any, out: Path, rounds: int, seed: int) -> dict[str, Any]:
    """Fleet-DAgger rounds with each allocation from the same 50-step demonstration."""
    runs = {}
    for alloc in ("priority", "random", "round-robin"):
        where = out / f"learn_{alloc}"
        shutil.rmtree(where, ignore_errors=True)
        short_demo(task, where / "store", 50, seed)
        cfg = DAggerConfig(
            rounds=rounds,
            episodes_per_round=16,
            eval_episodes=20,
            seed=seed,
            bc=BCConfig(steps=500, batch_size=64, lr=3e-3, val_fraction=0.0, progress=False),
        )
        fc = dataclasses.replace(BASE, robots=8, supervisors=2, allocation=alloc)
        make = engine.policy_factory(task, hidden_sizes=(64, 64))
        result = fleet.run(task, where / "store", cfg, fc, make_policy=make, run_dir=where)
        rows = [
            {
                "round": r.round,
                "labels": r.labels,
                "supervisor_seconds": r.attention_seconds,
                "return": r.mean_return,
                "success": r.success_rate,
                **{k: v for k, v in r.extras.items() if k.startswith(("fleet", "resets"))},
            }
            for r in result.rows
        ]
        for row in rows:
            print(
                f"learning {alloc:12s} round {row['round']} labels {row['labels']:5d} "
                f"supervisor-s {row['supervisor_seconds']:6.1f} return {row['return']:6.1f} "
                f"success {row['success']:.0%}",
                flush=True,
            )
        runs[alloc] = rows
    return runs


def summarize(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean over seeds per (allocation, N, K)."""
    keys = sorted({(r["allocation"], r["robots"], r["supervisors"]) for r in rows})
    out = []
    for a, n, k in keys:
        group = [r for r in rows if (r["allocation"], r["robots"], r["supervisors"]) == (a, n, k)]
        mean = {
            m: statistics.fmean(r[m] for r in group)
            for m in (
                "successes",
                "resets",
                "supervisor_seconds",
                "rohe",
                "idle_fraction",
                "labels",
                "visits",
            )
        }
        out.append({"allocation": a, "robots": n, "supervisors": k, **mean})
    return out


def plot(summary: list[dict[str, Any]], runs: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(SUPERVISORS) + 1, figsize=(16, 3.8))
    for ax, k in zip(axes, SUPERVISORS, strict=False):
        for a in ("priority-continue", "priority-pause", "random", "round-robin"):
            pts = [
                (s["robots"], s["rohe"])
                for s in summary
                if (s["allocation"], s["supervisors"]) == (a, k)
            ]
            if pts:
                ax.plot(*zip(*pts, strict=True), marker="o", label=a)
        ax.set_xscale("log", base=2)
        ax.set_xticks(ROBOTS, [str(n) for n in ROBOTS])
        ax.set_xlabel("robots N")
        ax.set_title(f"K = {k} supervisor{'s' if k > 1 else ''}")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("successes per supervisor-minute")
    axes[0].legend(fontsize=8)
    ax = axes[-1]
    for alloc, rows in runs.items():
        xs, ys = [r["supervisor_seconds"] for r in rows], [r["return"] for r in rows]
        ax.plot(xs, ys, "o-", label=alloc)
    ax.set_xlabel("supervisor-seconds so far")
    ax.set_ylabel("learner's return alone")
    ax.set_title("Fleet-DAgger rounds, N=8, K=2")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.suptitle("CartPole fleet (2-core AMD EPYC VM, shared, loaded)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/fleet"))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--steps", type=int, default=1500, help="fleet steps per allocation run")
    ap.add_argument("--bc-steps", type=int, default=100, help="BC steps of the fixed learner")
    ap.add_argument("--demo-steps", type=int, default=500, help="its demonstration's steps")
    ap.add_argument("--only-grid", action="store_true", help="skip part B (learning)")
    ap.add_argument("--robots", type=int, nargs="+", default=list(ROBOTS))
    ap.add_argument("--supervisors", type=int, nargs="+", default=list(SUPERVISORS))
    ap.add_argument("--rounds", type=int, default=3, help="Fleet-DAgger rounds (part B)")
    ap.add_argument("--plot", type=Path, default=Path("docs/fleet.png"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    task = tasks.make("cartpole")
    t0 = time.perf_counter()
    print(f"machine: {machine()}, torch {torch.__version__}, 1 thread; shared, loaded machine")

    learner = train_learner(task, args.out / "learner", args.demo_steps, args.bc_steps, seed=0)
    alone = evaluate(learner, task, episodes=40, n_envs=8, seed=100_000)
    gate = fleet.calibrated_gate(task, learner, BASE, episodes=16, seed=50_000)
    print(
        f"fixed learner alone: return {alone.mean_return:.1f}, success {alone.success_rate:.0%};"
        f" gate {json.dumps({k: round(v, 4) for k, v in gate.thresholds().items()})}"
    )
    rows = []
    for seed in args.seeds:
        for k in args.supervisors:
            for n in args.robots:
                rows.extend(cell(task, gate, n, k, args.steps, seed))
    summary = summarize(rows)
    print("\n| N | K | allocation | successes | resets | supervisor-s | ROHE | idle | labels |")
    print("|---:|---:|---|---:|---:|---:|---:|---:|---:|")
    for s in summary:
        print(
            f"| {s['robots']} | {s['supervisors']} | {s['allocation']} | {s['successes']:.1f} | "
            f"{s['resets']:.1f} | {s['supervisor_seconds']:.0f} | {s['rohe']:.2f} | "
            f"{s['idle_fraction']:.1%} | {s['labels']:.0f} |"
        )
    wins = {
        base: sum(
            1
            for s in summary
            if s["allocation"] == "priority-continue"
            and s["rohe"]
            > next(
                b["rohe"]
                for b in summary
                if (b["allocation"], b["robots"], b["supervisors"])
                == (base, s["robots"], s["supervisors"])
            )
        )
        for base in ("random", "round-robin", "priority-pause")
    }
    cells = len(args.robots) * len(args.supervisors)
    for base, w in wins.items():
        print(f"priority-continue ROHE above {base} in {w} of {cells} (N, K) cells")

    runs = {} if args.only_grid else learning(task, args.out, args.rounds, seed=0)
    plot(summary, runs, args.plot)
    raw = {
        "machine": machine(),
        "torch": torch.__version__,
        "learner_alone": {"return": alone.mean_return, "success": alone.success_rate},
        "gate": gate.thresholds(),
        "settings": dataclasses.asdict(BASE) | {"steps": args.steps, "seeds": args.seeds},
        "rows": rows,
        "summary": summary,
        "wins": wins,
        "learning": runs,
        "wall_seconds": time.perf_counter() - t0,
    }
    (args.out / "fleet.json").write_text(json.dumps(raw, indent=1, default=float))
    print(f"plot: {args.plot}; raw: {args.out / 'fleet.json'}; wall {raw['wall_seconds']:.0f} s")


if __name__ == "__main__":
    main()
