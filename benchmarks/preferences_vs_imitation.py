"""Reward learning from preferences: return against the number of preferences, protege against
imitation 1.0.1's ``PreferenceComparisons`` on the same budget (issue 16, part 4).

``--task cartpole`` (the default, the first measurement) or ``--task pendulum``. Per seed,
with the same env-step budget (``--steps``) and the same synthetic oracle (the true reward's
segment sums; protege: the exact one, "equal" on a tie; imitation:
``SyntheticGatherer(sample=False)``, the probability ``sigmoid(R_A − R_B)``), segments of
``--segment-length`` steps, PPO with the same settings on both sides (2×64 policy; the PPO
flags: ``--n-envs`` × ``--rollout-steps`` per update, ``--epochs``, ``--minibatch``, ``--lr``,
``--gamma``, ``--gae-lambda``; no entropy bonus):

- ``protege-B``: ``protege.algos.preferences.learn_from_preferences`` with a budget of B
  preferences (``--budgets``);
- ``protege-untrained``: the same learner on the reward model's output before any training
  (no preference at all): the control that says how much of the return the preferences bought
  (on CartPole any positive reward per step already teaches survival);
- with ``--true-reward-seeds``: the same learner on the task's own reward (the upper
  reference) for those seeds;
- with ``--center``: the protege arms with the learned reward centered as well
  (``PreferenceConfig.center_reward``), so its offset cannot teach survival: only the shape
  learned from the answers can (the untrained control then shows what a random shape does);
- ``imitation-B``: ``benchmarks/imitation_side/preference_run.py`` in the peer venv
  (``benchmarks/imitation_peer.py``), ``--imitation-iterations`` iterations, hyperbolic query
  schedule. With ``--match-schedule`` both sides ask ``--initial-fraction`` of the budget
  first and the rest spread over the run (imitation: one iteration per PPO update and its
  agent given exactly ``--steps`` env steps; protege: a decaying number per PPO update that
  spends the budget by the last one).

Every policy is evaluated on the true reward (deterministic actions, ``--eval-episodes``
seeded episodes) along the way and at the end. Within a seed the protege and imitation arms of
one budget run back to back, the side that goes first alternating, and each arm records the
load average before and after (the machine is shared). Seeds run as separate processes;
``--merge`` pools them into a table, ``summary.json`` and a plot (final return against
preferences; return against env steps).

    python benchmarks/preferences_vs_imitation.py --seeds S --out benchmarks/results/preferences/sS
    python benchmarks/preferences_vs_imitation.py --out benchmarks/results/preferences \
        --merge benchmarks/results/preferences/s*/result.json
    python benchmarks/preferences_vs_imitation.py --task pendulum --seeds S --steps 60000 \
        --budgets 25 100 400 --rollout-steps 4000 --gamma 0.9 --match-schedule \
        --initial-fraction 0.25 --eval-every 4000 --true-reward-seeds 0 \
        --out benchmarks/results/preferences_pendulum/sS
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from imitation_peer import run_in_venv
from protege import tasks
from protege.algos.preferences import learn_from_preferences
from protege.algos.rl_rollout import RolloutBatch
from protege.configs.preferences import PreferenceConfig, PreferenceRunConfig
from protege.configs.rl import PPOConfig
from protege.rewards import preference_source
from store_load import machine

GYM_IDS = {"cartpole": "CartPole-v1", "pendulum": "Pendulum-v1"}
TARGETS = {"cartpole": 475.0, "pendulum": -200.0}
"""The return an arm must reach to count as solving the task (Pendulum: protege's success)."""


class Untrained(preference_source.PreferenceReward):
    """The control: the reward model as initialized, never asked or trained."""

    def update(self, batch: RolloutBatch, update: int) -> dict[str, float]:
        return {"preferences": 0.0}


class TrueReward(Untrained):
    """The upper reference: the task's own reward, through the same learner and run."""

    def rewards(self, batch: RolloutBatch) -> np.ndarray:
        return batch.env_rewards


def preference_config(budget: int, a: argparse.Namespace) -> PreferenceConfig:
    """Protege's query schedule for a budget: the first benchmark's (a quarter first, then 20
    a PPO update × 0.9 per update) or, with ``--match-schedule``, ``--initial-fraction`` first
    and the rest over the remaining updates, halving from the second update to the last
    (imitation's hyperbolic schedule goes from 1 to 1/2 over its iterations)."""
    budget = max(budget, 1)
    common = {"preferences": budget, "segment_length": a.segment_length, "center_reward": a.center}
    if not a.match_schedule:
        return PreferenceConfig(initial_pairs=max(1, budget // 4), **common)
    updates = math.ceil(a.steps / a.rollout_steps)
    first = max(1, int(budget * a.initial_fraction))
    later = max(updates - 1, 1)
    decay = 0.5 ** (1 / max(later - 1, 1))
    per = math.ceil((budget - first) * (1 - decay) / (1 - decay**later)) if budget > first else 1
    return PreferenceConfig(
        initial_pairs=first, pairs_per_update=max(per, 1), pairs_decay=decay, **common
    )


def load() -> float:
    """The 1-minute load average."""
    return round(os.getloadavg()[0], 2)


def protege_arm(out: Path, budget: int | None, seed: int, a: argparse.Namespace) -> dict[str, Any]:
    """One protege run; ``budget`` None: the true-reward reference."""
    shutil.rmtree(out, ignore_errors=True)
    ppo = PPOConfig(
        rollout_steps=a.rollout_steps,
        n_envs=a.n_envs,
        epochs=a.epochs,
        minibatch_size=a.minibatch,
        lr=a.lr,
        gamma=a.gamma,
        gae_lambda=a.gae_lambda,
        seed=seed,
    )
    run = PreferenceRunConfig(steps=a.steps, eval_every=a.eval_every, eval_episodes=a.eval_episodes)
    cfg = preference_config(budget or 0, a)
    source = {None: TrueReward, 0: Untrained}.get(budget, preference_source.PreferenceReward)
    load_before, t0 = load(), time.perf_counter()
    res = learn_from_preferences(tasks.make(a.task), out, cfg, run, ppo, source=source)
    wall = time.perf_counter() - t0
    library = "protege, centered reward" if a.center else "protege"
    return {
        "library": f"{library}, true reward" if budget is None else library,
        "budget": budget or 0,
        "seed": seed,
        "preferences_used": 0 if not budget else res.preferences["total"],
        "answers": res.preferences,
        "schedule": {
            k: getattr(cfg, k) for k in ("initial_pairs", "pairs_per_update", "pairs_decay")
        },
        "env_steps": res.run.env_steps,
        "final_return": res.run.evals[-1]["mean_return"],
        "train_seconds": res.run.wall_seconds,
        "wall_seconds_with_evals": wall,
        "load_before": load_before,
        "load_after": load(),
        "curve": [
            {**c, "wall_seconds": e["wall_seconds"]}
            for c, e in zip(res.curve, res.run.evals, strict=True)
        ],
    }


def imitation_arm(budget: int, seed: int, fragment: int, a: argparse.Namespace) -> dict[str, Any]:
    args = [
        "--env", GYM_IDS[a.task], "--comparisons", str(budget), "--steps", str(a.steps),
        "--eval-episodes", str(a.eval_episodes), "--seed", str(seed),
        "--fragment-length", str(fragment), "--n-steps", str(a.rollout_steps // a.n_envs),
        "--batch-size", str(a.minibatch), "--epochs", str(a.epochs), "--lr", str(a.lr),
        "--gamma", str(a.gamma), "--gae-lambda", str(a.gae_lambda),
    ]  # fmt: skip
    if a.match_schedule:  # one iteration per PPO update, the agent given exactly --steps
        updates = math.ceil(a.steps / a.rollout_steps)
        every = max(1, a.eval_every // a.rollout_steps)
        args += ["--iterations", str(updates - 1), "--agent-steps", str(updates * a.rollout_steps),
                 "--eval-every-iterations", str(every),
                 "--initial-fraction", str(a.initial_fraction), "--oversampling", "1"]  # fmt: skip
    else:
        args += ["--iterations", str(a.imitation_iterations)]
    load_before, t = load(), time.perf_counter()
    out = run_in_venv("preference_run.py", args, env={"OMP_NUM_THREADS": "1"})
    name = "imitation" if fragment == a.segment_length else f"imitation (fragments {fragment})"
    return {
        **out,
        "library": name,
        "budget": budget,
        "train_seconds": None,
        "wall_seconds_with_evals": time.perf_counter() - t,
        "load_before": load_before,
        "load_after": load(),
    }


def run(a: argparse.Namespace) -> None:
    torch.set_num_threads(1)
    a.out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    record = {"argv": sys.argv, "machine": machine(), "task": a.task, "steps": a.steps,
              "target": TARGETS[a.task], "rows": rows}  # fmt: skip

    def keep(row: dict[str, Any], t: float) -> None:
        err = row.get("error") or ""
        print(f"{row['library']} budget {row['budget']} seed {row['seed']}: "
              f"{row['final_return']:.1f} {err}({time.perf_counter() - t:.0f} s, "
              f"load {row['load_before']}–{row['load_after']})", flush=True)  # fmt: skip
        rows.append(row)
        (a.out / "result.json").write_text(json.dumps(record, indent=1))  # after every arm

    def protege(budget: int | None, seed: int) -> None:
        t, where = time.perf_counter(), a.out / f"protege-{budget}-s{seed}"
        keep(protege_arm(where, budget, seed, a), t)
        shutil.rmtree(where)  # the run itself: 2-5 MB

    def imitation(budget: int, seed: int) -> None:
        for fragment in [] if a.no_imitation or not budget else a.imitation_fragments:
            t = time.perf_counter()
            keep(imitation_arm(budget, seed, fragment, a), t)

    turn = a.seeds[0]  # which side goes first alternates with the budget and the seed
    for seed in a.seeds:
        if seed in a.true_reward_seeds:
            protege(None, seed)
        for budget in [*([] if a.no_control else [0]), *a.budgets]:
            if budget and turn % 2:  # alternate which side runs first
                imitation(budget, seed)
                protege(budget, seed)
            else:
                protege(budget, seed)
                imitation(budget, seed)
            turn += bool(budget)


def med(values: list[float], fmt: str = "{:.1f}") -> str:
    if not values:
        return "–"
    m, lo, hi = (fmt.format(v) for v in (statistics.median(values), min(values), max(values)))
    return f"{m} [{lo}, {hi}]"


def merge(files: list[Path], out: Path) -> None:
    records = [json.loads(f.read_text()) for f in files]
    rows = [r for rec in records for r in rec["rows"]]
    task = records[0].get("task", "cartpole")
    target = records[0].get("target", TARGETS[task])
    arms: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for r in rows:
        arms.setdefault((r["library"], r["budget"]), []).append(r)
    hit = f"{target:g}"
    print(f"| arm | preferences asked | seeds | final return | best evaluation | reached {hit} "
          f"| env steps to {hit} | env steps | train s | load | stopped early |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    summary = []
    for (lib, budget), rs in sorted(arms.items()):
        finals = [r["final_return"] for r in rs]
        best = [max(c["mean_return"] for c in r["curve"][1:]) for r in rs]  # after training
        hits = [
            next((c["env_steps"] for c in r["curve"] if c["mean_return"] >= target), None)
            for r in rs
        ]
        reached = [h for h in hits if h is not None]
        errors = sum(bool(r.get("error")) for r in rs)
        used = [r["preferences_used"] for r in rs]
        secs = [r["curve"][-1]["wall_seconds"] for r in rs]  # training only, evaluations out
        steps = [r.get("env_steps_all", r["env_steps"]) for r in rs]  # imitation's extra too
        loads = [v for r in rs for v in (r.get("load_before"), r.get("load_after")) if v]
        if lib.endswith("true reward"):
            name = lib
        else:
            name = (
                f"{lib}, untrained reward (control)" if budget == 0 else f"{lib}, budget {budget}"
            )
        print(
            f"| {name} | {med(used, '{:.0f}')} | {len(rs)} | {med(finals)} | {med(best)} | "
            f"{len(reached)}/{len(rs)} | {med(reached, '{:,.0f}')} | {med(steps, '{:,.0f}')} | "
            f"{med(secs, '{:.0f}')} | {med(loads, '{:.0f}')} | {errors}/{len(rs)} |"
        )
        summary.append(
            {"library": lib, "budget": budget, "final": finals, "best": best, "to_target": hits,
             "errors": [r.get("error") for r in rs], "preferences_used": used,
             "env_steps": steps, "train_seconds": secs, "seeds": [r["seed"] for r in rs]}
        )  # fmt: skip
    paired = ratios(rows)
    if paired:
        print("\ntrain seconds, protege / imitation, same seed and budget (run back to back):")
        for budget, rs in sorted(paired.items()):
            print(f"  budget {budget}: {med(rs, '{:.2f}')} over {len(rs)} seeds")
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(
        json.dumps(
            {"task": task, "target": target, "arms": summary, "time_ratios": paired}, indent=1
        )
    )
    plot(
        arms, task, out / f"preferences_vs_imitation{'' if task == 'cartpole' else '_' + task}.png"
    )


def ratios(rows: list[dict[str, Any]]) -> dict[int, list[float]]:
    """protege's train seconds over imitation's, per budget, for each seed both ran."""
    secs = {
        (r["library"], r["budget"], r["seed"]): r["curve"][-1]["wall_seconds"]
        for r in rows
        if not r.get("error")
    }
    out: dict[int, list[float]] = {}
    for (lib, budget, seed), s in sorted(secs.items()):
        other = secs.get(("imitation", budget, seed))
        if lib == "protege" and budget and other:
            out.setdefault(budget, []).append(round(s / other, 3))
    return out


def plot(arms: dict[tuple[str, int], list[dict[str, Any]]], task: str, file: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    colours = (
        ("protege", "tab:blue"),
        ("protege, centered reward", "tab:green"),
        ("imitation", "tab:orange"),
        ("imitation (fragments 10)", "tab:red"),
    )
    for lib, colour in colours:
        budgets = sorted(b for (name, b) in arms if name == lib)
        if not budgets:
            continue
        finals = [[r["final_return"] for r in arms[(lib, b)]] for b in budgets]
        xs = [max(b, 1) if task != "cartpole" else b for b in budgets]  # log axis: 0 at 1
        ax1.errorbar(
            xs,
            [statistics.median(f) for f in finals],
            yerr=np.array(
                [
                    [statistics.median(f) - min(f) for f in finals],
                    [max(f) - statistics.median(f) for f in finals],
                ]
            ),
            marker="o",
            capsize=3,
            color=colour,
            label=lib,
        )
        for b in budgets:
            for i, r in enumerate(arms[(lib, b)]):
                xs = [c["env_steps"] for c in r["curve"]]
                ys = [c["mean_return"] for c in r["curve"]]
                style = ":" if b == 0 else ("-" if b == max(budgets) else "--")
                ax2.plot(xs, ys, style, color=colour, alpha=0.6,
                         label=f"{lib} {b if b else 'untrained'}" if i == 0 else None)  # fmt: skip
    for (lib, _), rs in arms.items():
        if lib.endswith("true reward"):
            final = statistics.median(r["final_return"] for r in rs)
            ax1.axhline(final, color="black", ls=":", label=f"{lib} (median final)")
            for i, r in enumerate(rs):
                ax2.plot([c["env_steps"] for c in r["curve"]],
                         [c["mean_return"] for c in r["curve"]], color="black", alpha=0.7,
                         label=lib if i == 0 else None)  # fmt: skip
    if task != "cartpole":
        ax1.set_xscale("log")
    ax1.set_xlabel("preferences (budget; 0 = untrained reward model" +
                   (", drawn at 1)" if task != "cartpole" else ")"))  # fmt: skip
    ax1.set_ylabel("final true return (median, min–max)")
    ax1.set_title(f"{task}: return against preferences")
    ax1.legend(fontsize=7)
    ax2.set_xlabel("env steps")
    ax2.set_ylabel("true return (deterministic)")
    ax2.set_title("return along training, every seed")
    ax2.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(file, dpi=110)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", choices=sorted(GYM_IDS), default="cartpole")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--budgets", type=int, nargs="+", default=[25, 100])
    p.add_argument("--steps", type=int, default=20_000)
    p.add_argument("--eval-every", type=int, default=4000)
    p.add_argument("--eval-episodes", type=int, default=10)
    p.add_argument("--segment-length", type=int, default=25)
    ppo = p.add_argument_group("PPO, both sides")
    ppo.add_argument("--n-envs", type=int, default=4)
    ppo.add_argument("--rollout-steps", type=int, default=1024, help="env steps per update")
    ppo.add_argument("--epochs", type=int, default=10)
    ppo.add_argument("--minibatch", type=int, default=256)
    ppo.add_argument("--lr", type=float, default=1e-3)
    ppo.add_argument("--gamma", type=float, default=0.99)
    ppo.add_argument("--gae-lambda", type=float, default=0.95)
    p.add_argument("--true-reward-seeds", type=int, nargs="*", default=[],
                   help="seeds that also run protege's learner on the task's reward")  # fmt: skip
    p.add_argument("--match-schedule", action="store_true",
                   help="both sides: --initial-fraction of the budget first, the rest spread "
                   "over the run's PPO updates (imitation: one iteration per update)")  # fmt: skip
    p.add_argument("--initial-fraction", type=float, default=0.25)
    p.add_argument("--imitation-iterations", type=int, default=10)
    p.add_argument("--no-imitation", action="store_true")
    p.add_argument("--no-control", action="store_true", help="no untrained-reward arm")
    p.add_argument(
        "--imitation-fragments",
        type=int,
        nargs="+",
        help="imitation's fragment lengths (default: --segment-length, the same as protege's)",
    )
    p.add_argument(
        "--center",
        action="store_true",
        help="protege arms only, with PreferenceConfig.center_reward (the reward's offset "
        "removed: survival must come from its shape)",
    )
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/preferences"))
    p.add_argument("--merge", type=Path, nargs="+", help="pool earlier runs' result.json")
    a = p.parse_args()
    a.imitation_fragments = a.imitation_fragments or [a.segment_length]
    if a.merge:
        merge(a.merge, a.out)
    else:
        run(a)


if __name__ == "__main__":
    main()
