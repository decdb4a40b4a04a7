"""Interactive imitation on LunarLander: return against expert labels for BC, DAgger,
HG-DAgger (simulated supervisor), EnsembleDAgger, ThriftyDAgger, SMILe and AggreVaTe.

Every method uses the same network (a 2×256 ReLU MLP with a categorical head), the same
round-0 demonstrations (same seeds), the same BC settings per round and the same evaluation
episodes; every round's learner is scored on them. BC is trained on expert demonstrations cut
to the label budgets the methods used (the demo budget, each method's labels at the 95%
target and at the end, and a grid). Printed: per-round tables, the labels each method needs
to reach 95% of the expert's mean return, seeds and machine; written: results.json,
results.md and return_vs_labels.png in ``--out``.

    .venv/bin/python benchmarks/dagger_lunar.py                      # everything, seed 0
    .venv/bin/python benchmarks/dagger_lunar.py --methods thrifty    # one method (parallel runs)
    .venv/bin/python benchmarks/dagger_lunar.py --report             # tables/plot from saved runs
    .venv/bin/python benchmarks/dagger_lunar.py --task lunarlander-tight --out OUT  # another task
    .venv/bin/python benchmarks/dagger_lunar.py --report --bc-grid 500 750 --out OUT  # finer BC

Runs are resumable (``--resume``): each method's store and checkpoints live in
``--out/seed_<s>/<method>``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from protege.algos import (
    aggrevate,
    bc,
    dagger,
    engine,
    ensemble_dagger,
    hg_dagger,
    rounds,
    smile,
    thrifty,
)
from protege.algos.bc import BCConfig
from protege.algos.results import DAggerResult
from protege.configs.interactive import DAggerConfig
from protege.data.store import Store
from protege.rollout.evaluate import evaluate
from protege.tasks import make
from store_load import machine

METHODS = ("dagger", "hg-dagger", "ensemble", "thrifty", "smile", "aggrevate")
TASK = "lunarlander"
"""The default ``--task``."""


def log(msg: str) -> None:
    print(msg, flush=True)


def base_config(args: argparse.Namespace, seed: int) -> DAggerConfig:
    return DAggerConfig(
        rounds=args.rounds,
        episodes_per_round=args.episodes_per_round,
        initial_demos=args.initial_demos,
        beta="indicator",
        retrain="scratch",
        bc=BCConfig(
            steps=args.bc_steps,
            batch_size=args.bc_batch,
            lr=args.bc_lr,
            val_fraction=0.0,
            progress=False,
        ),
        n_envs=args.n_envs,
        seed=seed,
        eval_episodes=args.eval_episodes,
        eval_envs=8,
        eval_seed=args.eval_seed,
    )


def run_method(name: str, args: argparse.Namespace, seed: int, path: Path) -> DAggerResult:
    task = make(args.task)
    cfg = base_config(args, seed)
    store = path / "store"
    kw: dict[str, Any] = dict(resume=args.resume and store.exists(), log=log)
    if not kw["resume"]:
        shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True, exist_ok=True)
    if name == "dagger":
        return dagger.run(task, store, cfg, make_policy=engine.policy_factory(task), **kw)
    if name == "hg-dagger":
        sc = hg_dagger.SupervisorConfig(
            disagreement_threshold=args.hg_disagreement,
            window=args.hg_window,
            hand_back=args.hg_hand_back,
            min_takeover=args.hg_min_takeover,
        )
        return hg_dagger.run(task, store, cfg, sc, **kw)
    if name == "ensemble":
        ec = ensemble_dagger.EnsembleConfig(
            members=args.members,
            variance_threshold=args.ens_chi,
            discrepancy_threshold=args.ens_tau,
        )
        return ensemble_dagger.run(task, store, cfg, ec, **kw)
    if name == "thrifty":
        tc = thrifty.ThriftyConfig(alpha_h=args.alpha_h, members=args.members, q_steps=args.q_steps)
        return thrifty.run(task, store, cfg, tc, **kw)  # re-calibrates before every episode
    if name == "smile":
        return smile.run(task, store, cfg, smile.SmileConfig(alpha=args.smile_alpha), **kw)
    if name == "aggrevate":
        ac = aggrevate.AggreVaTeConfig(completion_horizon=args.agg_horizon)
        # Roll-ins per round: AggreVaTe samples one state per roll-in.
        cfg = dataclasses.replace(cfg, episodes_per_round=args.agg_rollins, n_envs=args.agg_envs)
        return aggrevate.run(task, store, cfg, ac, **kw)
    raise ValueError(name)


# ---------------------------------------------------------------------------- BC curve
def bc_at_budgets(
    args: argparse.Namespace, seed: int, budgets: list[int], out: Path
) -> dict[int, dict[str, float]]:
    """BC on expert demonstrations cut to exactly each label budget (cached in ``out``)."""
    cache_file = out / "bc.json"
    cache: dict[str, dict[str, float]] = (
        json.loads(cache_file.read_text()) if cache_file.exists() else {}
    )
    todo = sorted({b for b in budgets if str(b) not in cache})
    if todo:
        task = make(args.task)
        cfg = base_config(args, seed)
        demos = out / "demos"
        # Round-0 episodes with dagger.run's seeds: BC's first demos are every method's demos.
        n = 0
        while True:
            n = max(2 * n, args.initial_demos, 4)
            shutil.rmtree(demos, ignore_errors=True)
            shutil.rmtree(Path(f"{demos}.run"), ignore_errors=True)
            # rounds=0 collects n expert episodes and trains once; we only need the episodes.
            collect_cfg = dataclasses.replace(
                cfg,
                rounds=0,
                initial_demos=n,
                bc=BCConfig(steps=1, progress=False),
                eval_episodes=1,
                eval_envs=1,
            )
            dagger.run(task, demos, collect_cfg, make_policy=engine.policy_factory(task))
            with Store.open(demos) as st:
                if st.n_labels >= max(todo):
                    break
        with Store.open(demos) as st:
            stored = list(st.episodes())
            order = sorted(range(len(stored)), key=lambda i: st.index[i].extras["episode"])
            episodes = [stored[i] for i in order]
        for budget in todo:
            t0 = time.perf_counter()
            data = _cut(episodes, budget, out / f"bc_{budget}", task)
            torch.manual_seed(rounds.train_seed(seed, 0))
            policy = engine.policy_factory(task)()
            bc.fit(policy, data, dataclasses.replace(cfg.bc, seed=rounds.train_seed(seed, 0)))
            ev = evaluate(
                policy,
                task,
                episodes=cfg.eval_episodes,
                n_envs=cfg.eval_envs,
                seed=cfg.eval_seed,
                measure_disagreement=False,
            )
            cache[str(budget)] = {
                "labels": budget,
                "mean_return": ev.mean_return,
                "std_return": ev.std_return,
                "success_rate": ev.success_rate,
                "seconds": time.perf_counter() - t0,
            }
            cache_file.write_text(json.dumps(cache, indent=1))
            log(f"[bc] seed {seed}: {budget} labels → return {ev.mean_return:.1f}")
    return {int(k): v for k, v in cache.items() if int(k) in set(budgets)}


def _cut(episodes: list, budget: int, path: Path, task: Any):
    """The first ``budget`` expert steps of ``episodes`` as a store (last one truncated)."""
    shutil.rmtree(path, ignore_errors=True)
    kept, left = [], budget
    for ep in episodes:
        if left <= 0:
            break
        if len(ep) > left:
            ep = dataclasses.replace(
                ep,
                obs=ep.obs[: left + 1],
                actions=ep.actions[:left],
                rewards=ep.rewards[:left],
                executed=ep.executed[:left],
                actor=ep.actor[:left],
                labeled=ep.labeled[:left],
                terminated=False,
                truncated=True,
            )
        kept.append(ep)
        left -= len(ep)
    with Store.create(path, *task.spaces, task=task.name) as st:
        st.extend(kept)
        data = st.transitions()
    shutil.rmtree(path, ignore_errors=True)
    return data


# ------------------------------------------------------------------------------ report
def load_results(out: Path, seeds: list[int]) -> dict[int, dict[str, dict[str, Any]]]:
    found: dict[int, dict[str, dict[str, Any]]] = {}
    for seed in seeds:
        for m in METHODS:
            f = out / f"seed_{seed}" / m / "result.json"
            if f.exists():
                found.setdefault(seed, {})[m] = json.loads(f.read_text())
    return found


def report(args: argparse.Namespace, out: Path) -> None:
    results = load_results(out, args.seeds)
    if not results:
        log("no saved runs to report")
        return
    lines = [
        f"# Interactive IL on `{args.task}` (2×256 MLP, categorical head)\n",
        f"Machine: {machine()}; {platform.platform()}; torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads; Python {platform.python_version()}.",
        f"Seeds: {sorted(results)}; evaluation: {args.eval_episodes} episodes from seed "
        f"{args.eval_seed} for every learner and the expert. Settings: "
        f"{args.initial_demos} demo(s), {args.episodes_per_round} episodes/round, "
        f"{args.rounds} rounds, BC {args.bc_steps} steps/round at batch {args.bc_batch}, "
        f"lr {args.bc_lr}, from scratch.\n",
    ]
    summary = []
    curves: dict[str, list[tuple[int, list[int], list[float]]]] = {}
    bc_points: dict[int, dict[int, dict[str, float]]] = {}
    for seed, by_method in sorted(results.items()):
        any_res = next(iter(by_method.values()))
        expert, target = any_res["expert_return"], any_res["target_return"]
        lines.append(
            f"## Seed {seed}: expert mean return {expert:.1f} "
            f"(success {any_res['expert_success']:.0%}), 95% target {target:.1f}\n"
        )
        budgets = {any_res["rows"][0]["labels"]}
        for res in by_method.values():
            t = res["totals"]
            budgets.add(t["labels"])
            if t["labels_to_target"] is not None:
                budgets.add(t["labels_to_target"])
        top = max(budgets)
        budgets |= {b for b in (1000, 2000, 4000, 8000, 16000) if b < top}
        budgets |= set(args.bc_grid)
        bc_res = bc_at_budgets(args, seed, sorted(budgets), out / f"seed_{seed}" / "bc")
        bc_points[seed] = bc_res
        bc_reach = next((b for b in sorted(bc_res) if bc_res[b]["mean_return"] >= target), None)
        lines.append(
            "| method | round | labels | expert steps | learner steps | interventions | "
            "expert queries | return | success | wall s |\n|---|---:|---:|---:|---:|---:|---:|"
            "---:|---:|---:|"
        )
        for m, res in by_method.items():
            xs, ys = [], []
            for r in res["rows"]:
                lines.append(
                    f"| {m} | {r['round']} | {r['labels']} | {r['expert_steps']} | "
                    f"{r['learner_steps']} | {r['interventions']} | {r['expert_queries']} | "
                    f"{r['mean_return']:.1f} ± {r['std_return']:.1f} | "
                    f"{r['success_rate']:.0%} | {r['wall_seconds']:.0f} |"
                )
                xs.append(r["labels"])
                ys.append(r["mean_return"])
            curves.setdefault(m, []).append((seed, xs, ys))
        for b, v in sorted(bc_res.items()):
            lines.append(
                f"| BC | – | {b} | {b} | 0 | 0 | {b} | {v['mean_return']:.1f} ± "
                f"{v['std_return']:.1f} | {v['success_rate']:.0%} | {v['seconds']:.0f} |"
            )
        lines.append("")
        for m, res in by_method.items():
            t = res["totals"]
            reach = t["labels_to_target"]
            same = bc_res.get(reach) if reach is not None else None
            summary.append(
                {
                    "seed": seed,
                    "method": m,
                    "labels_to_95": reach,
                    "final_labels": t["labels"],
                    "final_return": t["final_return"],
                    "best_return": t["best_return"],
                    "expert_steps": t["expert_steps"],
                    "interventions": t["interventions"],
                    "expert_queries": t["expert_queries"],
                    "wall_seconds": t["wall_seconds"],
                    "bc_same_labels_return": same["mean_return"] if same else None,
                    "bc_same_final_labels_return": bc_res[t["labels"]]["mean_return"],
                }
            )
        summary.append(
            {
                "seed": seed,
                "method": "bc",
                "labels_to_95": bc_reach,
                "final_labels": max(bc_res),
                "final_return": bc_res[max(bc_res)]["mean_return"],
                "best_return": max(v["mean_return"] for v in bc_res.values()),
                "demo_budget_labels": any_res["rows"][0]["labels"],
                "demo_budget_return": bc_res[any_res["rows"][0]["labels"]]["mean_return"],
            }
        )
    lines.append("## Labels to reach 95% of the expert's mean return\n")
    lines.append(
        "| seed | method | labels to 95% | BC with those labels | final labels | final return "
        "| interventions | expert queries | wall s |\n|---:|---|---:|---:|---:|---:|---:|---:|---:|"
    )
    for s in summary:
        if s["method"] == "bc":
            lines.append(
                f"| {s['seed']} | BC (grid) | {s['labels_to_95'] or 'not reached'} | – | "
                f"{s['final_labels']} | {s['final_return']:.1f} | – | – | – |"
            )
            continue
        same = s["bc_same_labels_return"]
        lines.append(
            f"| {s['seed']} | {s['method']} | {s['labels_to_95'] or 'not reached'} | "
            f"{'–' if same is None else f'{same:.1f}'} | {s['final_labels']} | "
            f"{s['final_return']:.1f} | {s['interventions']} | {s['expert_queries']} | "
            f"{s['wall_seconds']:.0f} |"
        )
    lines += _ratios(summary)
    text = "\n".join(lines) + "\n"
    print(text)
    (out / "results.md").write_text(text)
    (out / "results.json").write_text(
        json.dumps({"summary": summary, "runs": results, "bc": bc_points}, indent=1, default=str)
    )
    plot(out / "return_vs_labels.png", curves, bc_points, results, args.task)
    log(f"wrote {out / 'results.md'}, results.json and return_vs_labels.png")


def brief(out: Path, seeds: list[int], methods: list[str]) -> None:
    """Per seed and method, from the saved runs alone (no BC curve): labels and expert
    queries to 95% and at the end, env steps (AggreVaTe's replayed ones included), returns."""
    results = load_results(out, seeds)
    lines = [
        "| seed | method | labels to 95% | final labels | expert queries | env steps "
        "| final return | best return | wall s |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for seed in sorted(results):
        for m in methods:
            res = results[seed].get(m)
            if res is None:
                continue
            t = res["totals"]
            replayed = sum(r["extras"].get("aggrevate_replayed_steps", 0.0) for r in res["rows"])
            steps = t["expert_steps"] + t["learner_steps"] + int(replayed)
            lines.append(
                f"| {seed} | {m} | {t['labels_to_target'] or 'not reached'} | {t['labels']:,} "
                f"| {t['expert_queries']:,} | {steps:,} | {t['final_return']:.1f} "
                f"| {t['best_return']:.1f} | {t['wall_seconds']:.0f} |"
            )
    text = "\n".join(lines) + "\n"
    print(text)
    (out / "brief.md").write_text(text)


def _ratios(summary: list[dict[str, Any]]) -> list[str]:
    """Labels to 95% relative to DAgger's, per seed and for the medians over seeds."""
    by: dict[str, dict[int, int | None]] = {}
    for s in summary:
        by.setdefault(s["method"], {})[s["seed"]] = s["labels_to_95"]
    dag = by.get("dagger", {})
    out = [
        "\n## Labels to 95% relative to DAgger's (≤ 0.5: at most half)\n",
        "| method | per seed | median labels | median / DAgger's median |\n|---|---|---:|---:|",
    ]
    dag_reached = [v for v in dag.values() if v is not None]
    dag_med = float(np.median(dag_reached)) if dag_reached else None
    for m, per_seed in by.items():
        ratios = [
            f"{per_seed[k] / dag[k]:.2f}" if per_seed[k] and dag.get(k) else "–"
            for k in sorted(per_seed)
        ]
        reached = [v for v in per_seed.values() if v is not None]
        med = float(np.median(reached)) if len(reached) == len(per_seed) else None
        rel = f"{med / dag_med:.2f}" if med is not None and dag_med else "–"
        out.append(
            f"| {m} | {', '.join(ratios)} | {'–' if med is None else f'{med:.0f}'} | {rel} |"
        )
    return out


def plot(path: Path, curves: dict, bc_points: dict, results: dict, task: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    colors = {"dagger": "C0", "hg-dagger": "C1", "ensemble": "C2", "thrifty": "C3", "bc": "k"}
    colors.update({"smile": "C4", "aggrevate": "C5"})
    for m, runs in curves.items():
        for k, (_seed, xs, ys) in enumerate(runs):
            ax.plot(xs, ys, "o-", color=colors[m], alpha=0.85, ms=3, label=m if k == 0 else None)
    for k, (_seed, pts) in enumerate(sorted(bc_points.items())):
        xs = sorted(pts)
        ax.plot(
            xs,
            [pts[x]["mean_return"] for x in xs],
            "s--",
            color="k",
            ms=3,
            alpha=0.7,
            label="BC (expert demos)" if k == 0 else None,
        )
    first = next(iter(next(iter(results.values())).values()))
    ax.axhline(first["expert_return"], color="grey", lw=1, label="expert")
    ax.axhline(first["target_return"], color="grey", lw=1, ls=":", label="95% of expert")
    ax.set_xscale("log")
    ax.set_xlabel("expert labels")
    ax.set_ylabel(f"mean return ({first['config']['eval_episodes']} episodes)")
    ax.set_title(f"{task}: return vs expert labels")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/dagger_lunar"))
    ap.add_argument("--report", action="store_true", help="only tabulate saved runs")
    ap.add_argument(
        "--brief", action="store_true", help="only a per-seed table of the saved runs (no BC)"
    )
    ap.add_argument("--task", default=TASK, help="a registered task with a discrete action")
    ap.add_argument("--eval-seed", type=int, default=100_000, help="first evaluation episode's")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--episodes-per-round", type=int, default=2)
    ap.add_argument("--initial-demos", type=int, default=1)
    ap.add_argument("--n-envs", type=int, default=2)
    ap.add_argument("--bc-steps", type=int, default=1500)
    ap.add_argument("--bc-batch", type=int, default=64)
    ap.add_argument("--bc-lr", type=float, default=3e-3)
    ap.add_argument("--eval-episodes", type=int, default=100)
    ap.add_argument("--members", type=int, default=5)
    ap.add_argument("--hg-disagreement", type=float, default=0.5)
    ap.add_argument("--hg-window", type=int, default=10)
    ap.add_argument("--hg-hand-back", type=float, default=0.7)
    ap.add_argument("--hg-min-takeover", type=int, default=10)
    ap.add_argument("--ens-chi", type=float, default=0.03)
    ap.add_argument("--ens-tau", type=float, default=0.5)
    ap.add_argument("--alpha-h", type=float, default=0.01)
    ap.add_argument("--q-steps", type=int, default=2000)
    ap.add_argument("--smile-alpha", type=float, default=0.1)
    ap.add_argument("--agg-rollins", type=int, default=8, help="AggreVaTe's roll-ins per round")
    ap.add_argument("--agg-envs", type=int, default=4)
    ap.add_argument("--agg-horizon", type=int, default=None, help="AggreVaTe's completion horizon")
    ap.add_argument(
        "--bc-grid",
        type=int,
        nargs="+",
        default=[],
        help="more label budgets for BC on demonstrations (--report)",
    )
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    log(
        f"machine: {machine()}; torch threads {args.threads}; seeds {args.seeds}; "
        f"load average {os.getloadavg()}"
    )
    if args.brief:
        brief(args.out, args.seeds, args.methods)
        return
    if not args.report:
        for seed in args.seeds:
            for m in args.methods:
                path = args.out / f"seed_{seed}" / m
                t0 = time.perf_counter()
                res = run_method(m, args, seed, path)
                d = res.to_dict()
                d["process_seconds"] = time.perf_counter() - t0
                (path / "result.json").write_text(json.dumps(d, indent=1, default=str))
                print(res.to_markdown(), flush=True)
        if args.methods != list(METHODS):
            return
    report(args, args.out)


if __name__ == "__main__":
    main()
