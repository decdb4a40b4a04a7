"""ThriftyDAgger's and EnsembleDAgger's wall time before and after (stacking, critic's batch).

Issue 11 part 6 trains and queries an ensemble's members (and ThriftyDAgger's twin Q networks)
as one stacked network; ``--after-settings q_batch=50`` measures the success critic at the
paper's batch instead of protege's 256 (issue 13 part 2). This script runs each method on the
same seeds with the code before (a git worktree of ``--baseline``, default ``426d647``, the
commit before the stacking, made under ``.bench/`` on first use, or ``--baseline-src``) and
after (this checkout, its method settings changed by ``--after-settings``), each run in its own
subprocess with ``PYTHONPATH`` pointing at its side's ``src``; the sides alternate which goes
first from seed to seed, so a drift of the machine's speed falls on both. Reported per method
and seed: wall and CPU seconds of the whole run (CPU time is the steadier figure on a shared
machine), the rounds' training seconds, the before/after ratios, the labels, the labels at which
a round's learner first reached 95% of the expert's return, and every round's mean return of
both sides (or "identical"); then the median ratios, labels and labels to 95% over seeds. Target
(issue 11): ThriftyDAgger at least 2× faster, labels and returns within noise.

The settings are ``protege demo``'s for its interactive methods on LunarLander (4 rounds of 2
episodes after 1 demonstration, BC of 1,500 steps at batch 64 per round, every round's
learner scored on 20 seeded episodes over 8 envs, one torch thread); EnsembleDAgger, which
the demo does not run, gets the same. Why a worktree and not a switch in the code: the
baseline is the code as it was, not a path kept alive only to be measured.

``--merge`` prints one table from several runs' JSON files (seeds run side by side);
``--td-fit ROWS`` times only one round's success-critic fit under protege's and the paper's Q
settings (with ``--threads-ab``: under protege's, its twins in one thread, in parallel
threads, :mod:`protege.policies.member_threads`, and in two processes,
:mod:`protege.policies.member_procs`). CPU seconds count the forked halves of the fits.

    .venv/bin/python benchmarks/ensemble_speed.py [--seeds 0 1 2] [--methods thrifty ensemble]
    .venv/bin/python benchmarks/ensemble_speed.py --merge a.json b.json --json out.json
    .venv/bin/python benchmarks/ensemble_speed.py --td-fit 4000 [--threads-ab]
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


def cpu_seconds() -> float:
    """This process's CPU seconds and those of its finished children (the forked halves of
    stacked fits, :mod:`protege.policies.member_procs`)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def child(
    method: str, seed: int, out: Path, threads: int, settings: dict[str, Any] | None = None
) -> dict[str, Any]:
    """One run of ``method`` with the demo's settings, on whichever protege is importable;
    ``settings`` replace fields of the method's config (its defaults otherwise)."""
    import dataclasses

    import torch

    from protege import tasks
    from protege.algos import ensemble_dagger, thrifty

    try:
        from protege.configs.methods import EnsembleConfig, ThriftyConfig
    except ImportError:  # the code before issue 11's configs move (e.g. 426d647)
        EnsembleConfig = ensemble_dagger.EnsembleConfig
        ThriftyConfig = thrifty.ThriftyConfig

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
    mc = {"thrifty": ThriftyConfig, "ensemble": EnsembleConfig}[method](**(settings or {}))
    t0, c0 = time.perf_counter(), cpu_seconds()
    result = run(task, out / "store", cfg, mc, run_dir=out / "run", progress=False)
    wall, cpu = time.perf_counter() - t0, cpu_seconds() - c0
    rows = result.rows
    try:  # the parallel member threads of the stacked fits, where this side has them
        from protege.policies import member_threads

        fit_threads = member_threads.threads(5)
    except ImportError:
        fit_threads = 1
    return {
        "wall_seconds": wall,
        "cpu_seconds": cpu,
        "collect_seconds": sum(r.collect_seconds for r in rows),
        "train_seconds": sum(r.train_seconds for r in rows),
        "eval_seconds": sum(r.eval_seconds for r in rows),
        "labels": int(result.totals["labels"]),
        "round_labels": [int(r.labels) for r in rows],
        "returns": [float(r.mean_return) for r in rows],
        "expert_return": float(result.expert_return),
        "labels_to_95": result.labels_to_reach(),
        "settings": dataclasses.asdict(mc),
        "fit_threads": fit_threads,
    }


TD_SETTINGS = {
    "protege's default (batch 256, 2,000 steps)": {"q_batch": 256, "q_steps": 2000},
    "the paper's batch, protege's steps (batch 50, 2,000 steps)": {"q_batch": 50, "q_steps": 2000},
    "the paper's code (batch 50, 12,500 steps)": {"q_batch": 50, "q_steps": 12_500},
}


def td_batch(rows: int) -> tuple[dict[str, Any], Any]:
    """``rows`` LunarLander-shaped transitions for the success critic's fit (8-d observations,
    4 actions, 1% successes, seeded), and the rows of the successes."""
    import torch

    g = torch.Generator().manual_seed(0)
    batch = {
        "obs": torch.randn(rows, 8, generator=g),
        "act": torch.randint(4, (rows,), generator=g),
        "reward": (torch.rand(rows, generator=g) < 0.01).float(),
        "next_obs": torch.randn(rows, 8, generator=g),
        "next_act": torch.randint(4, (rows,), generator=g),
        "done": (torch.rand(rows, generator=g) < 0.01).float(),
    }
    return batch, torch.nonzero(batch["reward"] > 0)[:, 0]


def td_fit_seconds(rows: int, repeats: int, threads_ab: bool = False) -> None:
    """CPU seconds of one round's success-critic fit (:func:`protege.algos.success_td.td_fit`)
    under each of :data:`TD_SETTINGS`, on ``rows`` LunarLander-shaped transitions (8-d
    observations, 4 actions, 1% successes; the arithmetic does not depend on the values),
    one torch thread; the best of ``repeats``, settings interleaved. ``threads_ab``: instead,
    protege's default settings with the twins in one thread, in parallel threads
    (:mod:`protege.policies.member_threads`) and in two processes
    (:mod:`protege.policies.member_procs`), wall and CPU seconds, and whether the weights
    are bit-identical."""
    import torch

    from protege.algos import success_td
    from protege.configs.methods import ThriftyConfig
    from protege.policies import member_procs, member_threads
    from protege.policies.success_q import SuccessQ

    torch.set_num_threads(1)
    batch, positives = td_batch(rows)
    settings = TD_SETTINGS
    split = ["twins in one thread", "twins in parallel threads", "twins in two processes"]
    if threads_ab:
        settings = {name: {} for name in split}
    best: dict[str, tuple[float, float]] = {}
    weights: dict[str, torch.Tensor] = {}
    for _ in range(repeats):
        for name, fields in settings.items():
            if threads_ab:
                member_threads.set_threads(1 if name == split[0] else None)
                member_procs.set_forks(name == split[2])
            cfg = ThriftyConfig(**fields)
            torch.manual_seed(0)
            critic = SuccessQ(8, 1, 4, cfg.q_hidden)
            n_pos = round(cfg.pos_fraction * cfg.q_batch)
            t0, c0 = time.perf_counter(), cpu_seconds()
            success_td.td_fit(critic, batch, positives, n_pos, cfg, torch.Generator())
            wall, cpu = time.perf_counter() - t0, cpu_seconds() - c0
            old = best.get(name, (float("inf"), float("inf")))
            best[name] = (min(old[0], wall), min(old[1], cpu))
            weights[name] = torch.cat([p.detach().flatten() for p in critic.parameters()])
    member_threads.set_threads(None)
    member_procs.set_forks(True)
    base = next(iter(best.values()))
    print(
        f"| settings | wall s ({rows:,} rows, best of {repeats}) | CPU s | wall against the "
        "first |\n|---|---:|---:|---:|"
    )
    for name, (wall, cpu) in best.items():
        print(f"| {name} | {wall:.1f} | {cpu:.1f} | {wall / base[0]:.2f}× |")
    if threads_ab:
        first = next(iter(weights.values()))
        same = all(torch.equal(first, w) for w in weights.values())
        print(f"\nweights bit-identical: {same}; member threads: {member_threads.threads(2)}")


def run_side(
    src: Path, method: str, seed: int, threads: int, settings: dict[str, Any]
) -> dict[str, Any]:
    """``child`` in a subprocess importing protege from ``src``, the method's config with
    ``settings``."""
    env = {**os.environ, "PYTHONPATH": str(src), "SDL_VIDEODRIVER": "dummy"}
    with tempfile.TemporaryDirectory(prefix="ensemble_speed_") as tmp:
        cmd = [sys.executable, __file__, "--child", method, "--seed", str(seed)]
        cmd += ["--threads", str(threads), "--child-out", tmp]
        cmd += ["--child-settings", json.dumps(settings)]
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


def reached(side: dict[str, Any]) -> str:
    """Labels when a round's learner first reached 95% of the expert's return ("–": a record
    from before the benchmark kept it)."""
    if "labels_to_95" not in side:
        return "–"
    return f"{side['labels_to_95']:,}" if side["labels_to_95"] is not None else "not reached"


def row(method: str, seed: int, res: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One seed's before/after record, its line of the table printed."""
    b, a = res["before"], res["after"]
    ratio = b["wall_seconds"] / a["wall_seconds"]
    cpu_ratio = b["cpu_seconds"] / a["cpu_seconds"]
    same_labels = b["round_labels"] == a["round_labels"]
    labels = f"{b['labels']:,} / {a['labels']:,}" + (" (same)" if same_labels else "")
    reach = " / ".join(reached(s) for s in (b, a))
    pairs = zip(b["returns"], a["returns"], strict=True)
    returns = (
        "identical"
        if b["returns"] == a["returns"]
        else ", ".join(f"{x:.0f}/{y:.0f}" for x, y in pairs)
    )
    print(
        f"| {method} | {seed} | {b['wall_seconds']:.1f} / {a['wall_seconds']:.1f} | "
        f"{ratio:.2f}× | {b['cpu_seconds']:.1f} / {a['cpu_seconds']:.1f} | "
        f"{cpu_ratio:.2f}× | {b['train_seconds']:.1f} / {a['train_seconds']:.1f} | "
        f"{labels} | {reach} | {returns} |",
        flush=True,
    )
    return {"method": method, "seed": seed, "ratio": ratio, "cpu_ratio": cpu_ratio, **res}


HEADER = (
    "| method | seed | wall s before / after | ratio | CPU s before / after | ratio "
    "| training s before / after | labels before / after | labels to 95% before / after "
    "| rounds' returns before/after |\n|---|---|---|---|---|---|---|---|---|---|"
)


def summary(records: list[dict[str, Any]]) -> None:
    """Median ratios per method over seeds, and whether the label counts agree."""
    print()
    for method in dict.fromkeys(r["method"] for r in records):
        mine = [r for r in records if r["method"] == method]
        ratios = [r["ratio"] for r in mine]
        cpu_ratios = [r["cpu_ratio"] for r in mine]
        same = all(r["before"]["round_labels"] == r["after"]["round_labels"] for r in mine)
        print(
            f"{method}: median before/after ratio {statistics.median(ratios):.2f}× wall, "
            f"{statistics.median(cpu_ratios):.2f}× CPU, over {len(ratios)} seed(s); label counts "
            f"{'identical' if same else 'differ'}"
        )
        for side in ("before", "after"):
            finals = [r[side]["returns"][-1] for r in mine]
            labels = [r[side]["labels"] for r in mine]
            reach = [r[side].get("labels_to_95") or float("inf") for r in mine]
            known = all("labels_to_95" in r[side] for r in mine)
            print(
                f"  {side}: median labels {statistics.median(labels):,.0f}, median labels to "
                f"95% of the expert {statistics.median(reach) if known else '–'} (inf: not "
                f"reached), mean final-round return {statistics.mean(finals):.1f}"
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--methods", nargs="+", default=["thrifty", "ensemble"])
    ap.add_argument("--baseline", default="426d647", help="git ref of the code before")
    ap.add_argument("--baseline-src", help="an existing checkout's src/ to use instead")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (the demo's: 1)")
    ap.add_argument("--json", default=str(ROOT / "benchmarks/results/ensemble_speed.json"))
    ap.add_argument(
        "--merge",
        nargs="+",
        metavar="JSON",
        help="print one table from earlier runs' JSON files (run side by side on other seeds) "
        "and write it to --json",
    )
    ap.add_argument(
        "--td-fit",
        type=int,
        metavar="ROWS",
        help="only time one round's success-critic fit on ROWS transitions under protege's "
        "and the paper's Q settings",
    )
    ap.add_argument("--repeats", type=int, default=1, help="--td-fit: the best of this many")
    ap.add_argument(
        "--threads-ab",
        action="store_true",
        help="--td-fit: the default settings with the twins in one thread, in parallel threads "
        "and in two processes",
    )
    ap.add_argument(
        "--after-settings",
        nargs="+",
        default=[],
        metavar="FIELD=INT",
        help="method settings of the after side only (e.g. q_batch=50: the paper's batch)",
    )
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--child-settings", default="{}", help=argparse.SUPPRESS)
    ap.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--child-out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        settings = json.loads(args.child_settings)
        print(
            json.dumps(child(args.child, args.seed, Path(args.child_out), args.threads, settings))
        )
        return
    print(f"# command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    if args.td_fit:
        print(f"# machine: {machine()}; load average {os.getloadavg()[0]:.2f} at start")
        td_fit_seconds(args.td_fit, args.repeats, args.threads_ab)
        return
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.merge:
        parts = [json.loads(Path(f).read_text()) for f in args.merge]
        for part in parts:
            print(f"# from {' '.join(part['meta']['argv'])} on {part['meta']['machine']}")
        print(HEADER)
        records = [
            row(r["method"], r["seed"], {"before": r["before"], "after": r["after"]})
            for part in parts
            for r in part["runs"]
        ]
        summary(records)
        meta = {"merged": [p["meta"] for p in parts]}
        out.write_text(json.dumps({"meta": meta, "runs": records}, indent=1))
        return

    sides = {"before": baseline_src(args.baseline, args.baseline_src), "after": ROOT / "src"}
    after = {k: int(v) for k, v in (a.split("=", 1) for a in args.after_settings)}
    settings: dict[str, dict[str, Any]] = {"before": {}, "after": after}
    print(f"# machine: {machine()}; load average {os.getloadavg()[0]:.2f} at start")
    print(f"# before: {args.baseline} ({sides['before']}); after: {sides['after']} {after}")
    print(f"# torch threads {args.threads}; seeds {args.seeds}; sides alternate per seed\n")
    print(HEADER)
    records = []
    for method in args.methods:
        for i, seed in enumerate(args.seeds):
            order = ["before", "after"] if i % 2 == 0 else ["after", "before"]
            res = {
                side: run_side(sides[side], method, seed, args.threads, settings[side])
                for side in order
            }
            records.append(row(method, seed, res))
    summary(records)
    meta = {"machine": machine(), "argv": sys.argv, "baseline": args.baseline}
    out.write_text(json.dumps({"meta": meta, "runs": records}, indent=1))


if __name__ == "__main__":
    main()
