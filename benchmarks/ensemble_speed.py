"""Stacked ensembles: ThriftyDAgger's and EnsembleDAgger's wall time before and after.

Issue 11 part 6 trains and queries an ensemble's members (and ThriftyDAgger's twin Q networks)
as one stacked network. This script runs each method on the same seeds with the code before
(a git worktree of ``--baseline``, default ``426d647``, the commit before the stacking, made
under ``.bench/``
on first use) and after (this checkout), each run in its own subprocess with ``PYTHONPATH``
pointing at its side's ``src``; the sides alternate which goes first from seed to seed, so
a drift of the machine's speed falls on both. Reported per method and seed: wall and CPU
seconds of the whole run (CPU time is the steadier figure on a shared machine), the rounds'
training seconds, the before/after ratios, the labels and every round's mean return of both
sides and whether they are identical; then the median ratios over seeds. Target (issue 11):
ThriftyDAgger at least 2× faster, with identical label counts and returns within noise.

The settings are ``protege demo``'s for its interactive methods on LunarLander (4 rounds of 2
episodes after 1 demonstration, BC of 1,500 steps at batch 64 per round, every round's
learner scored on 20 seeded episodes over 8 envs, one torch thread); EnsembleDAgger, which
the demo does not run, gets the same. Why a worktree and not a switch in the code: the
baseline is the code as it was, not a path kept alive only to be measured.

    .venv/bin/python benchmarks/ensemble_speed.py [--seeds 0 1 2] [--methods thrifty ensemble]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from store_load import machine

ROOT = Path(__file__).resolve().parent.parent
EVAL_SEED_OFFSET = 10_000  # protege.demo's: evaluation episodes are seeded seed + 10,000


def child(method: str, seed: int, out: Path, threads: int) -> dict[str, Any]:
    """One run of ``method`` with the demo's settings, on whichever protege is importable."""
    import dataclasses

    import torch

    from protege import tasks
    from protege.algos import ensemble_dagger, thrifty

    torch.set_num_threads(threads)
    task = tasks.make("lunarlander")
    DAggerConfig = thrifty.DAggerConfig  # wherever the engine keeps it
    cfg = DAggerConfig(
        rounds=4,
        episodes_per_round=2,
        initial_demos=1,
        bc=dataclasses.replace(DAggerConfig().bc, steps=1500),
        n_envs=2,
        seed=seed,
        eval_episodes=20,
        eval_envs=8,
        eval_seed=seed + EVAL_SEED_OFFSET,
    )
    run = {"thrifty": thrifty.run, "ensemble": ensemble_dagger.run}[method]
    t0, c0 = time.perf_counter(), time.process_time()
    result = run(task, out / "store", cfg, None, run_dir=out / "run", progress=False)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    rows = result.rows
    return {
        "wall_seconds": wall,
        "cpu_seconds": cpu,
        "collect_seconds": sum(r.collect_seconds for r in rows),
        "train_seconds": sum(r.train_seconds for r in rows),
        "eval_seconds": sum(r.eval_seconds for r in rows),
        "labels": int(result.totals["labels"]),
        "round_labels": [int(r.labels) for r in rows],
        "returns": [float(r.mean_return) for r in rows],
    }


def run_side(src: Path, method: str, seed: int, threads: int) -> dict[str, Any]:
    """``child`` in a subprocess importing protege from ``src``."""
    env = {**os.environ, "PYTHONPATH": str(src), "SDL_VIDEODRIVER": "dummy"}
    with tempfile.TemporaryDirectory(prefix="ensemble_speed_") as tmp:
        cmd = [sys.executable, __file__, "--child", method, "--seed", str(seed)]
        cmd += ["--threads", str(threads), "--child-out", tmp]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{method} seed {seed} from {src} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def baseline_src(ref: str, given: str | None) -> Path:
    """The baseline's ``src``: ``given``, or a detached worktree of ``ref`` under .bench/."""
    if given:
        return Path(given).resolve()
    tree = ROOT / ".bench" / ref
    if not tree.exists():
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), ref],
            check=True,
            capture_output=True,
        )
    return tree / "src"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--methods", nargs="+", default=["thrifty", "ensemble"])
    ap.add_argument("--baseline", default="426d647", help="git ref of the code before")
    ap.add_argument("--baseline-src", help="an existing checkout's src/ to use instead")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (the demo's: 1)")
    ap.add_argument("--json", default=str(ROOT / "benchmarks/results/ensemble_speed.json"))
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--child-out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.seed, Path(args.child_out), args.threads)))
        return

    sides = {"before": baseline_src(args.baseline, args.baseline_src), "after": ROOT / "src"}
    print(f"# command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(f"# machine: {machine()}; load average {os.getloadavg()[0]:.2f} at start")
    print(f"# before: {args.baseline} ({sides['before']}); after: {sides['after']}")
    print(f"# torch threads {args.threads}; seeds {args.seeds}; sides alternate per seed\n")
    print(
        "| method | seed | wall s before / after | ratio | CPU s before / after | ratio "
        "| training s before / after | labels before / after | returns |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    records = []
    for method in args.methods:
        for i, seed in enumerate(args.seeds):
            order = ["before", "after"] if i % 2 == 0 else ["after", "before"]
            res = {side: run_side(sides[side], method, seed, args.threads) for side in order}
            b, a = res["before"], res["after"]
            ratio = b["wall_seconds"] / a["wall_seconds"]
            cpu_ratio = b["cpu_seconds"] / a["cpu_seconds"]
            same_labels = b["round_labels"] == a["round_labels"]
            same_returns = b["returns"] == a["returns"]
            labels = f"{b['labels']} / {a['labels']}" + (" (same)" if same_labels else "")
            pairs = zip(b["returns"], a["returns"], strict=True)
            returns = (
                "identical" if same_returns else ", ".join(f"{x:.0f}/{y:.0f}" for x, y in pairs)
            )
            print(
                f"| {method} | {seed} | {b['wall_seconds']:.1f} / {a['wall_seconds']:.1f} | "
                f"{ratio:.2f}× | {b['cpu_seconds']:.1f} / {a['cpu_seconds']:.1f} | "
                f"{cpu_ratio:.2f}× | {b['train_seconds']:.1f} / {a['train_seconds']:.1f} | "
                f"{labels} | {returns} |",
                flush=True,
            )
            records.append(
                {"method": method, "seed": seed, "ratio": ratio, "cpu_ratio": cpu_ratio, **res}
            )
    print()
    for method in args.methods:
        ratios = [r["ratio"] for r in records if r["method"] == method]
        cpu_ratios = [r["cpu_ratio"] for r in records if r["method"] == method]
        same = all(
            r["before"]["round_labels"] == r["after"]["round_labels"]
            for r in records
            if r["method"] == method
        )
        print(
            f"{method}: median before/after ratio {statistics.median(ratios):.2f}× wall, "
            f"{statistics.median(cpu_ratios):.2f}× CPU, over {len(ratios)} seed(s); label counts "
            f"{'identical' if same else 'DIFFER'}"
        )
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"machine": machine(), "argv": sys.argv, "baseline": args.baseline}
    out.write_text(json.dumps({"meta": meta, "runs": records}, indent=1))


if __name__ == "__main__":
    main()
