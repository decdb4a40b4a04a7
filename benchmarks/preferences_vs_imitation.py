"""Reward learning from preferences on CartPole: return against the number of preferences, protege
against imitation 1.0.1's ``PreferenceComparisons`` on the same budget (issue 16, part 4).

Per seed, with the same env-step budget (``--steps``) and the same synthetic oracle (the true
reward's segment sums; protege: the exact one, "equal" on a tie; imitation:
``SyntheticGatherer(sample=False)``, the probability ``sigmoid(R_A − R_B)``), segments of 25
steps, PPO with the same settings (2×64 policy, 1,024 steps per update, 10 epochs, minibatch
256, lr 1e-3):

- ``protege-B``: ``protege.algos.preferences.learn_from_preferences`` with a budget of B
  preferences (``--budgets``);
- ``protege-untrained``: the same learner on the reward model's output before any training
  (no preference at all): the control that says how much of the return the preferences bought
  (on CartPole any positive reward per step already teaches survival);
- with ``--center``: the protege arms with the learned reward centered as well
  (``PreferenceConfig.center_reward``), so its offset cannot teach survival: only the shape
  learned from the answers can (the untrained control then shows what a random shape does);
- ``imitation-B``: ``benchmarks/imitation_side/preference_run.py`` in the peer venv
  (``benchmarks/imitation_peer.py``), 10 iterations, hyperbolic query schedule.

Every policy is evaluated on the true reward (deterministic actions, 10 seeded episodes)
along the way and at the end. Seeds run as separate processes; ``--merge`` pools them into a
table, ``benchmarks/results/preferences/summary.json`` and a plot (final return against
preferences; return against env steps).

    python benchmarks/preferences_vs_imitation.py --seeds S --out benchmarks/results/preferences/sS
    python benchmarks/preferences_vs_imitation.py --out benchmarks/results/preferences \
        --merge benchmarks/results/preferences/s*/result.json
"""

from __future__ import annotations

import argparse
import json
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


class Untrained(preference_source.PreferenceReward):
    """The control: the reward model as initialized, never asked or trained."""

    def update(self, batch: RolloutBatch, update: int) -> dict[str, float]:
        return {"preferences": 0.0}


def protege_arm(out: Path, budget: int, seed: int, a: argparse.Namespace) -> dict[str, Any]:
    shutil.rmtree(out, ignore_errors=True)
    ppo = PPOConfig(rollout_steps=1024, n_envs=4, epochs=10, lr=1e-3, seed=seed)
    run = PreferenceRunConfig(steps=a.steps, eval_every=a.eval_every, eval_episodes=a.eval_episodes)
    cfg = PreferenceConfig(
        preferences=max(budget, 1),
        initial_pairs=max(1, budget // 4),
        segment_length=25,
        center_reward=a.center,
    )
    source = Untrained if budget == 0 else preference_source.PreferenceReward
    t0 = time.perf_counter()
    res = learn_from_preferences(tasks.make("cartpole"), out, cfg, run, ppo, source=source)
    wall = time.perf_counter() - t0
    return {
        "library": "protege, centered reward" if a.center else "protege",
        "budget": budget,
        "seed": seed,
        "preferences_used": 0 if budget == 0 else res.preferences["total"],
        "answers": res.preferences,
        "env_steps": res.run.env_steps,
        "final_return": res.run.evals[-1]["mean_return"],
        "train_seconds": res.run.wall_seconds,
        "wall_seconds_with_evals": wall,
        "curve": [
            {**c, "wall_seconds": e["wall_seconds"]}
            for c, e in zip(res.curve, res.run.evals, strict=True)
        ],
    }


def imitation_arm(budget: int, seed: int, fragment: int, a: argparse.Namespace) -> dict[str, Any]:
    out = run_in_venv(
        "preference_run.py",
        [
            "--comparisons", str(budget), "--steps", str(a.steps), "--iterations", "10",
            "--eval-episodes", str(a.eval_episodes), "--seed", str(seed),
            "--fragment-length", str(fragment),
        ],
        env={"OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    name = "imitation" if fragment == 25 else f"imitation (fragments {fragment})"
    return {**out, "library": name, "budget": budget, "train_seconds": None}


def run(a: argparse.Namespace) -> None:
    torch.set_num_threads(1)
    a.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for seed in a.seeds:
        for budget in [0, *a.budgets]:
            t = time.perf_counter()
            row = protege_arm(a.out / f"protege-{budget}-s{seed}", budget, seed, a)
            print(f"protege budget {budget} seed {seed}: {row['final_return']:.1f} "
                  f"({time.perf_counter() - t:.0f} s)", flush=True)  # fmt: skip
            rows.append(row)
            shutil.rmtree(a.out / f"protege-{budget}-s{seed}")  # the run itself: 2-5 MB
            for fragment in [] if a.no_imitation or not budget else a.imitation_fragments:
                t = time.perf_counter()
                row = imitation_arm(budget, seed, fragment, a)
                row["wall_seconds_with_evals"] = time.perf_counter() - t
                err = row.get("error") or ""
                print(f"{row['library']} budget {budget} seed {seed}: "
                      f"{row['final_return']:.1f} {err}", flush=True)  # fmt: skip
                rows.append(row)
    record = {"argv": sys.argv, "machine": machine(), "steps": a.steps, "rows": rows}
    (a.out / "result.json").write_text(json.dumps(record, indent=1))


def med(values: list[float], fmt: str = "{:.1f}") -> str:
    if not values:
        return "–"
    m, lo, hi = (fmt.format(v) for v in (statistics.median(values), min(values), max(values)))
    return f"{m} [{lo}, {hi}]"


def merge(files: list[Path], out: Path) -> None:
    rows = [r for f in files for r in json.loads(f.read_text())["rows"]]
    arms: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for r in rows:
        arms.setdefault((r["library"], r["budget"]), []).append(r)
    print("| arm | preferences asked | seeds | final return | best evaluation | "
          "reached 475 | env steps to 475 | train s | stopped early |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    summary = []
    for (lib, budget), rs in sorted(arms.items()):
        finals = [r["final_return"] for r in rs]
        best = [max(c["mean_return"] for c in r["curve"][1:]) for r in rs]  # after training
        hits = [
            next((c["env_steps"] for c in r["curve"] if c["mean_return"] >= 475), None) for r in rs
        ]
        reached = [h for h in hits if h is not None]
        errors = sum(bool(r.get("error")) for r in rs)
        used = [r["preferences_used"] for r in rs]
        secs = [r["curve"][-1]["wall_seconds"] for r in rs]  # training only, evaluations out
        name = f"{lib}, untrained reward (control)" if budget == 0 else f"{lib}, budget {budget}"
        print(
            f"| {name} | {med(used, '{:.0f}')} | {len(rs)} | {med(finals)} | {med(best)} | "
            f"{len(reached)}/{len(rs)} | {med(reached, '{:,.0f}')} | {med(secs, '{:.0f}')} | "
            f"{errors}/{len(rs)} |"
        )
        summary.append(
            {"library": lib, "budget": budget, "final": finals, "best": best, "to_475": hits,
             "errors": [r.get("error") for r in rs], "preferences_used": used,
             "train_seconds": secs}
        )  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    plot(arms, out / "preferences_vs_imitation.png")


def plot(arms: dict[tuple[str, int], list[dict[str, Any]]], file: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
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
        ax1.errorbar(
            budgets,
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
    ax1.set_xlabel("preferences (budget; 0 = untrained reward model)")
    ax1.set_ylabel("final true return (median, min–max)")
    ax1.set_title("CartPole: return against preferences")
    ax1.legend()
    ax2.set_xlabel("env steps")
    ax2.set_ylabel("true return (deterministic)")
    ax2.set_title("return along training, every seed")
    ax2.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(file, dpi=110)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--budgets", type=int, nargs="+", default=[25, 100])
    p.add_argument("--steps", type=int, default=20_000)
    p.add_argument("--eval-every", type=int, default=4000)
    p.add_argument("--eval-episodes", type=int, default=10)
    p.add_argument("--no-imitation", action="store_true")
    p.add_argument(
        "--imitation-fragments",
        type=int,
        nargs="+",
        default=[25],
        help="imitation's fragment lengths (25: the same as protege's segments)",
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
    if a.merge:
        merge(a.merge, a.out)
    else:
        run(a)


if __name__ == "__main__":
    main()
