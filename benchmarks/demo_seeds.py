"""Tabulate ``protege demo`` runs over seeds (issue 13, part 1): time, labels to 95% of the
expert, final returns and the summary's one-sentence lesson, from each run's ``results.json``
and, when the run was timed with ``/usr/bin/time -v`` into ``DIR_sS.log`` (``--log``), its CPU
seconds.

    for s in 0 1 2 3 4; do /usr/bin/time -v protege demo --seed $s \
        --out benchmarks/results/demo_lunarlander/seed_$s --no-progress \
        > benchmarks/results/demo_lunarlander_s$s.log 2>&1; done
    .venv/bin/python benchmarks/demo_seeds.py benchmarks/results/demo_lunarlander
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
from pathlib import Path
from typing import Any


def labels_to(labels: list[int], returns: list[float], target: float) -> int | None:
    """Labels at the first point whose mean return reaches ``target`` (the demo's rule)."""
    return next((n for n, r in zip(labels, returns, strict=True) if r >= target), None)


def cpu_seconds(log: Path) -> tuple[float | None, str | None]:
    """User + system seconds and the wall clock that ``/usr/bin/time -v`` wrote into ``log``."""
    if not log.exists():
        return None, None
    text = log.read_text()
    user = re.search(r"User time \(seconds\): ([\d.]+)", text)
    system = re.search(r"System time \(seconds\): ([\d.]+)", text)
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", text)
    cpu = float(user[1]) + float(system[1]) if user and system else None
    return cpu, wall[1] if wall else None


def lesson(root: Path) -> str:
    """The summary's lesson sentence, as the report printed it."""
    md = (root / "report.md").read_text()
    m = re.search(
        r"(\S+ reached 95%[^\n]*?demonstrations\.|No interactive method[^\n]*?\.|"
        r"BC on demonstrations reached 95%[^\n]*?back\.)",
        md,
    )
    return m[1] if m else "(no lesson sentence found)"


def seed_row(root: Path, log: Path) -> dict[str, Any]:
    d = json.loads((root / "results.json").read_text())
    expert = d["methods"]["expert"]["mean_return"]
    target = expert - 0.05 * abs(expert)
    reached: dict[str, int | None] = {}
    for name, c in d["curves"].items():
        labels, returns = list(c["labels"]), list(c["mean_return"])
        if name == "BC":  # the curve, then BC on every demonstration
            labels.append(d["methods"]["BC"]["labels"])
            returns.append(d["methods"]["BC"]["mean_return"])
        reached[name] = labels_to(labels, returns, target)
    cpu, wall = cpu_seconds(log)
    return {
        "seed": d["seed"],
        "cpu": cpu,
        "wall": wall,
        "demo_wall": d["wall_seconds"],
        "thrifty_wall": d["timings"].get("ThriftyDAgger"),
        "target": target,
        "reached": reached,
        "final": {
            k: (m["mean_return"], m["success_rate"], m["labels"]) for k, m in d["methods"].items()
        },
        "lesson": lesson(root),
        "bc_labels": [*d["curves"]["BC"]["labels"], d["methods"]["BC"]["labels"]]
        if "BC" in d["curves"]
        else [],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir", type=Path, help="holds the seed_S/ report folders")
    ap.add_argument(
        "--log",
        default="{dir}_s{seed}.log",
        help="where each run's /usr/bin/time -v output is ({dir}, {seed} filled in)",
    )
    args = ap.parse_args()
    rows = [
        seed_row(p, Path(args.log.format(dir=args.dir, seed=p.name.removeprefix("seed_"))))
        for p in sorted(args.dir.glob("seed_*"))
        if p.is_dir() and (p / "results.json").exists()
    ]
    methods = [m for m in rows[0]["reached"] if m != "BC"]
    print(
        f"| seed | CPU s | wall (time -v) | demo's clock s (ThriftyDAgger) | per-round target | "
        f"{' | '.join(methods)} | BC | best interactive / BC |"
    )
    print("|---:|---:|---:|---:|---:|" + "---:|" * (len(methods) + 2))
    for r in rows:
        hits = {m: n for m, n in r["reached"].items() if m != "BC" and n is not None}
        best = min(hits.values()) if hits else None
        bc = r["reached"]["BC"]
        bc_last = r["final"]["BC"][2]
        if best and bc:  # BC's curve is coarse: it crossed between its previous point and bc
            prev = max([n for n in r["bc_labels"] if n < bc], default=0)
            ratio = f"{best / bc:.2f}–{best / prev:.2f}" if prev > best else f"≥ {best / bc:.2f}"
        elif best:
            ratio = f"BC never (≥ {bc_last / best:.1f}×)"
        else:
            ratio = "–"
        cells = [f"{r['reached'][m]:,}" if r["reached"][m] else "not reached" for m in methods]
        print(
            f"| {r['seed']} | {r['cpu']:.0f} | {r['wall']} | {r['demo_wall']:.0f} "
            f"({r['thrifty_wall']:.0f}) | {r['target']:.1f} | {' | '.join(cells)} | "
            f"{f'{bc:,}' if bc else 'not reached'} | {ratio} |"
            if r["cpu"] is not None
            else f"| {r['seed']} | – | – | {r['demo_wall']:.0f} | {r['target']:.1f} | "
            f"{' | '.join(cells)} | {bc or 'not reached'} | {ratio} |"
        )
    cpus = [r["cpu"] for r in rows if r["cpu"] is not None]
    if cpus:
        print(f"\nCPU seconds: median {statistics.median(cpus):.0f}, max {max(cpus):.0f}")
    print("\nFinal learners on the demo's 50 evaluation episodes (return, success, labels):\n")
    names = list(rows[0]["final"])
    print("| seed | " + " | ".join(names) + " |")
    print("|---:|" + "---:|" * len(names))
    for r in rows:
        cells = [
            f"{ret:.1f}, {100 * s:.0f}%" + (f", {n:,}" if n else "")
            for ret, s, n in (r["final"][k] for k in names)
        ]
        print(f"| {r['seed']} | " + " | ".join(cells) + " |")
    print("\nThe summary's lesson, per seed:\n")
    for r in rows:
        print(f"- seed {r['seed']}: {r['lesson']}")


if __name__ == "__main__":
    main()
