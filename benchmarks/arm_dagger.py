"""The weekend arm project over several seeds: success of BC and of each DAgger round, labels
and wall time, per setting of ``protege demo arm``.

Runs :func:`protege.demos.arm.run_arm_demo` (the demo's own code, default budgets: 50 or 3
demonstrations, 3000 BC steps per round, 3 DAgger rounds of 20 learner rollouts, 20
evaluation rollouts) for each seed, without GIFs, and prints per setting the mean and the
per-seed success of each round, the labels and the wall and CPU time. Writes
``benchmarks/results/arm_dagger.json``.

    .venv/bin/python benchmarks/arm_dagger.py [--seeds 0 1 2] [--settings few hidden main]

``--rounds-of DIR [DIR ...]`` instead reads the report folders of ``protege demo arm`` runs,
finished or still running (each setting's ``run/rounds.jsonl``, written as each round ends, and
its store), and prints per setting and folder the success, labels and wall seconds of every
round done, and the disagreement of each learner whose successor's rollouts are stored.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from protege.configs.demos import ARM_ALL_SETTINGS, ARM_SETTINGS, ArmDemoConfig
from protege.data.store import Store
from protege.demos.arm import _disagreement, run_arm_demo
from protege.demos.arm_settings import SETTINGS
from store_load import machine

RESULTS = Path(__file__).parent / "results" / "arm_dagger.json"


def save(path: Path, seeds: list[int], runs: dict[str, dict[int, dict]]) -> None:
    """Everything measured so far (written after every run)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"seeds": seeds, "machine": machine(), "runs": runs}, indent=2))


def rounds_of(folders: list[Path]) -> None:
    """The rounds done so far in each report folder (see the module)."""
    print("| folder | setting | round | success | labels | disagreement | wall s, cumulative |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for folder in folders:
        for name in ARM_ALL_SETTINGS:
            log = folder / name / "run" / "rounds.jsonl"
            if not log.exists():
                continue
            rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
            rows = [r for r in rows if "round" in r]
            done = max((r["round"] for r in rows), default=0)
            store = Store.open(folder / name / "store")
            gaps, _ = _disagreement(store, done + 1)
            run_cfg = json.loads((folder / name / "run" / "config.json").read_text())
            for r in rows:
                k = r["round"]
                gap = f"{gaps[k]:.2f}" if np.isfinite(gaps[k]) else "–"
                stored = sum(e.round == k + 1 for e in store.index)
                if k + 1 > done and np.isfinite(gaps[k]):  # the next round is still running
                    gap += f" ({stored} of {run_cfg['episodes_per_round']} rollouts)"
                print(
                    f"| {folder} | {name} | {k} | {100 * r['success_rate']:.0f}% | "
                    f"{r['labels']:,} | {gap} | {r['wall_seconds']:.0f} |"
                )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument(
        "--settings", nargs="+", default=["few", "hidden", "main"], choices=ARM_SETTINGS
    )
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--rounds-of", type=Path, nargs="+", metavar="DIR")
    args = ap.parse_args()
    if args.rounds_of:
        rounds_of(args.rounds_of)
        return
    torch.set_num_threads(1)
    runs: dict[str, dict[int, dict]] = {name: {} for name in args.settings}
    for name in args.settings:  # one setting over every seed, then the next
        for seed in args.seeds:
            cfg = ArmDemoConfig(seed=seed, settings=(name,), gif=False, progress=False)
            with tempfile.TemporaryDirectory() as tmp:
                run = run_arm_demo(Path(tmp) / "arm", cfg, log=None)
            res = run.results[name]
            runs[name][seed] = {
                "success": run.success(name),
                "labels": [r.labels for r in res.rows],
                "disagreement": run.disagreement[name],
                "expert_success": res.expert_success,
                "wall_seconds": run.timings[name],
                "cpu_seconds": run.cpu_timings[name],
            }
            print(f"{name} seed {seed}: {runs[name][seed]}", flush=True)
            save(args.out, args.seeds, runs)
    print(f"\nmachine: {machine()}; load at the end {os.getloadavg()} (shared, loaded machine)")
    rounds = ArmDemoConfig().rounds
    head = " | ".join(["BC", *(f"DAgger {r}" for r in range(1, rounds + 1))])
    print(f"| setting | {head} | labels (last) | wall s | CPU s |")
    print("|---|" + "---:|" * (rounds + 4))
    for name, by_seed in runs.items():
        success = np.array([v["success"] for v in by_seed.values()])
        cells = [
            f"{100 * m:.0f}% ({'/'.join(f'{100 * x:.0f}' for x in col)})"
            for m, col in zip(success.mean(axis=0), success.T, strict=True)
        ]
        labels = np.mean([v["labels"][-1] for v in by_seed.values()])
        wall = np.mean([v["wall_seconds"] for v in by_seed.values()])
        cpu = np.mean([v["cpu_seconds"] for v in by_seed.values()])
        print(
            f"| {SETTINGS[name].title} | {' | '.join(cells)} | {labels:,.0f} | {wall:.0f} | "
            f"{cpu:.0f} |"
        )


if __name__ == "__main__":
    main()
