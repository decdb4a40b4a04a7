"""DAgger: protege against the `imitation` package (v1.0.1), alternating runs, same task.

Both sides: LunarLander-v3 (discrete), gymnasium's heuristic pilot as the expert, a 2×256 ReLU
MLP learner, one torch thread, and the same evaluation: episode i of the evaluation is reset
with seed ``eval_seed + i`` and run deterministically to the end (``bc_train.evaluate`` on
imitation's side, the same seeding here), after every round and outside the timed span.
Each side's defaults are its own:

* imitation: ``SimpleDAggerTrainer`` with ``LinearBetaSchedule(15)``, rounds of at least
  ``--steps-per-round`` env steps, BC warm-started for 4 epochs per round at batch 32
  (``imitation_side/dagger_run.py``, in its own venv via ``imitation_peer.py``). It asks
  the expert at every step and labels every step.
* protege: ``protege.algos.dagger.run`` with the indicator β (round 0 = expert demos, then
  the learner drives), the expert labelling every visited state, BC from scratch each round,
  everything else ``DAggerConfig``'s defaults (4 demonstrations, 4 episodes per round over
  4 envs, 1,500 BC steps × batch 64; ``--initial-demos``, ``--episodes-per-round``,
  ``--n-envs``, ``--bc-steps``, ``--bc-batch``, ``--bc-lr`` override them).
* protege-lean (unless ``--no-lean``): the same with ``dagger_lunar.py``'s label-lean round
  shape, 1 demonstration and 2 episodes per round over 2 envs.

The expert is gymnasium's heuristic unmodified (``LunarLanderExpert(robust=False)``), as on
imitation's side.

Reported per seed and round: expert labels, wall seconds (rollouts + training, evaluation
excluded; the median of ``--repeats`` alternating runs of the sides) and mean return; for
each side and seed the labels and wall time at which the learner first reaches 95% of the
expert's mean return on the same episodes; and the medians of those over ``--seeds`` (a side
that never reaches it counts as infinitely costly on that seed). One seed is one threshold
crossing of a 50-episode evaluation whose standard error (~14) is about the 5% margin itself,
so a single seed decides little. Targets (issue 3): protege needs fewer labels and at most
half the wall time.

    .venv/bin/python benchmarks/dagger_vs_imitation.py [--seeds 0 1 2 3 4] [--eval-episodes 50]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from imitation_peer import read_marker, run_in_venv
from protege.algos import dagger, engine
from protege.algos.rounds import SeedFirstReset
from protege.configs.interactive import DAggerConfig
from protege.experts.classic import LunarLanderExpert
from protege.rollout.gates import ExpertGate, LearnerGate
from protege.rollout.loop import rollout
from protege.tasks import make
from store_load import machine


def evaluate_seeded(task: Any, learner: Any | None, seed: int, episodes: int) -> dict:
    """Mean return over episodes seeded ``seed + i`` (the learner, or the expert if None)."""
    returns: list[float] = []
    batch = 10
    for start in range(0, episodes, batch):
        n = min(batch, episodes - start)
        env = gym.vector.SyncVectorEnv(
            [lambda s=seed + start + i: SeedFirstReset(task.make_env(), s) for i in range(n)],
            autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,
        )
        try:
            r = rollout(
                env,
                n,
                gate=ExpertGate() if learner is None else LearnerGate(),
                seed=seed,
                learner=learner,
                expert=task.make_expert() if learner is None else None,
            )
        finally:
            env.close()
        returns += r.returns
    return {"mean_return": float(np.mean(returns)), "std_return": float(np.std(returns))}


def heuristic_task() -> Any:
    """``lunarlander`` with gymnasium's heuristic exactly (``robust=False``): imitation's side
    uses the unmodified heuristic, so ours must too."""
    return dataclasses.replace(
        make("lunarlander"),
        expert_factory=partial(LunarLanderExpert, continuous=False, robust=False),
    )


LEAN = {"initial_demos": 1, "episodes_per_round": 2, "n_envs": 2}
"""``dagger_lunar.py``'s round shape: the fewest labels per round."""


def run_protege(args: argparse.Namespace, out: Path, seed: int, shape: dict | None = None) -> dict:
    """protege's DAgger with ``DAggerConfig``'s defaults, or with the round ``shape`` given
    (``LEAN``); flags override the defaults' shape."""
    task = heuristic_task()
    defaults = DAggerConfig()  # protege's defaults, unless flags say otherwise
    bc = defaults.bc
    shape = shape or {
        "initial_demos": _given(args.initial_demos, defaults.initial_demos),
        "episodes_per_round": _given(args.episodes_per_round, defaults.episodes_per_round),
        "n_envs": _given(args.n_envs, defaults.n_envs),
    }
    cfg = DAggerConfig(
        rounds=args.rounds,
        **shape,
        beta="indicator",
        retrain="scratch",
        bc=dataclasses.replace(
            bc,
            steps=args.bc_steps or bc.steps,
            batch_size=args.bc_batch or bc.batch_size,
            lr=args.bc_lr or bc.lr,
        ),
        seed=seed,
        eval_episodes=1,  # the comparison's own evaluation runs below, untimed
        eval_envs=1,
    )
    store = out / "store"
    shutil.rmtree(out, ignore_errors=True)
    res = dagger.run(task, store, cfg, make_policy=engine.policy_factory(task))
    expert = evaluate_seeded(task, None, args.eval_seed, args.eval_episodes)
    rounds, wall = [], 0.0
    for row in res.rows:
        learner = engine.PolicyTrainer(engine.policy_factory(task), cfg.bc).load(
            Path(f"{store}.run") / "learners" / f"round_{row.round:03d}"
        )
        ev = evaluate_seeded(task, learner, args.eval_seed, args.eval_episodes)
        wall += row.collect_seconds + row.train_seconds
        rounds.append(
            {
                "round": row.round,
                "expert_labels": row.labels,
                "expert_queries": row.expert_queries,
                "wall_s": round(wall, 3),
                "mean_return": ev["mean_return"],
                "std_return": ev["std_return"],
            }
        )
        print(json.dumps(rounds[-1]), file=sys.stderr, flush=True)
    return {"expert": expert, "rounds": rounds, "config": cfg.to_dict()}


def _given(value: int | None, default: int) -> int:
    return default if value is None else value


def run_imitation(args: argparse.Namespace, seed: int) -> dict:
    return run_in_venv(
        "dagger_run.py",
        [
            "--rounds",
            args.imitation_rounds,
            "--steps-per-round",
            args.steps_per_round,
            "--eval-episodes",
            args.eval_episodes,
            "--eval-seed",
            args.eval_seed,
            "--torch-threads",
            1,
            "--seed",
            seed,
        ],
        env={"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"},
    )


def median_walls(repeats: list[dict]) -> dict:
    """The first repeat, with each round's ``wall_s`` the median over repeats (and all of
    them in ``wall_s_runs``). Labels and returns should agree across repeats (same seed)."""
    first = repeats[0]
    for other in repeats[1:]:
        a = [(r["expert_labels"], r["mean_return"]) for r in first["rounds"]]
        b = [(r["expert_labels"], r["mean_return"]) for r in other["rounds"]]
        if a != b:
            print(f"warning: repeats differ; labels and returns are the first's: {a} vs {b}")
    for i, row in enumerate(first["rounds"]):
        walls = [rep["rounds"][i]["wall_s"] for rep in repeats]
        row["wall_s_runs"] = walls
        row["wall_s"] = float(np.median(walls))
    return first


def first_reach(rounds: list[dict], target: float) -> dict | None:
    return next((r for r in rounds if r["mean_return"] >= target), None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=[0, 1, 2, 3, 4],
        help="one run of each side per seed",
    )
    ap.add_argument("--eval-episodes", type=int, default=50)
    ap.add_argument("--eval-seed", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--episodes-per-round", type=int, help="default: DAggerConfig's")
    ap.add_argument("--initial-demos", type=int, help="default: DAggerConfig's")
    ap.add_argument("--n-envs", type=int, help="default: DAggerConfig's")
    ap.add_argument(
        "--no-lean", dest="lean", action="store_false", help="skip the protege-lean side"
    )
    ap.add_argument("--bc-steps", type=int, help="default: DAggerConfig's")
    ap.add_argument("--bc-batch", type=int, help="default: DAggerConfig's")
    ap.add_argument("--bc-lr", type=float, help="default: DAggerConfig's")
    ap.add_argument("--imitation-rounds", type=int, default=15)
    ap.add_argument("--steps-per-round", type=int, default=1000)
    ap.add_argument(
        "--repeats", type=int, default=1, help="alternating runs per seed; median wall times"
    )
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
    torch.set_num_threads(1)
    print(
        f"machine: {machine()}; load average {os.getloadavg()}; seeds {args.seeds}; "
        f"evaluation: {args.eval_episodes} episodes, seeds {args.eval_seed}..",
        flush=True,
    )
    per_seed = {}
    for seed in args.seeds:
        per_seed[seed] = compare(args, seed)
    print(f"\n## Over seeds {args.seeds}\n")
    print("| seed | side | labels to 95% | wall s to 95% | round |")
    print("|---:|---|---:|---:|---:|")
    for seed, summary in per_seed.items():
        for name, x in summary.items():
            print(
                f"| {seed} | {name} | {x['labels_to_95'] or 'not reached'} | "
                f"{x['wall_s_to_95'] if x['wall_s_to_95'] is not None else '–'} | "
                f"{x['round'] if x['round'] is not None else '–'} |"
            )
    medians = {}
    for name in next(iter(per_seed.values())):
        reached = [s[name] for s in per_seed.values() if s[name]["labels_to_95"] is not None]
        medians[name] = {
            "reached": f"{len(reached)} of {len(per_seed)}",
            # a side that never reaches the target counts as infinitely costly on that seed
            "labels_to_95": _median_or_inf([s[name]["labels_to_95"] for s in per_seed.values()]),
            "wall_s_to_95": _median_or_inf([s[name]["wall_s_to_95"] for s in per_seed.values()]),
        }
    i = medians["imitation"]
    print("\n| side | reached 95% | median labels to 95% | median wall s to 95% |")
    print("|---|---|---:|---:|")
    for name, m in medians.items():
        print(f"| {name} | {m['reached']} | {m['labels_to_95']:.0f} | {m['wall_s_to_95']:.2f} |")
    for name, p in medians.items():
        if name != "imitation":
            p["labels_ratio"] = p["labels_to_95"] / i["labels_to_95"]
            p["wall_ratio"] = p["wall_s_to_95"] / i["wall_s_to_95"]
            print(
                f"\n{name}/imitation (medians over seeds): "
                f"labels {p['labels_ratio']:.2f}×, wall {p['wall_ratio']:.2f}×"
            )
    marker = read_marker() or {}
    out = {"per_seed": per_seed, "medians": medians, "peer_versions": marker.get("versions")}
    if args.json:
        args.json.write_text(json.dumps(out, indent=1, default=str))


def _median_or_inf(values: list[float | None]) -> float:
    return float(np.median([np.inf if v is None else v for v in values]))


def compare(args: argparse.Namespace, seed: int) -> dict:
    """Both sides on one seed (``--repeats`` alternating runs each); per-round tables."""
    shapes: dict[str, dict | None] = {"protege": None}
    if args.lean:
        shapes["protege-lean"] = LEAN
    runs: dict[str, list[dict]] = {"imitation": [], **{name: [] for name in shapes}}
    process_s = dict.fromkeys(runs, 0.0)
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        runs["imitation"].append(run_imitation(args, seed))
        process_s["imitation"] += time.perf_counter() - t0
        for name, shape in shapes.items():
            with tempfile.TemporaryDirectory(prefix="dagger_vs_imitation_") as tmp:
                t0 = time.perf_counter()
                runs[name].append(run_protege(args, Path(tmp), seed, shape))
                process_s[name] += time.perf_counter() - t0
    sides = {name: median_walls(reps) for name, reps in runs.items()}
    print(f"\n## Seed {seed}")
    summary = {}
    for name, side in sides.items():
        expert = side["expert"]["mean_return"]
        target = expert - 0.05 * abs(expert)
        print(
            f"\n{name}: expert {expert:.2f} on the evaluation episodes; target 95% = {target:.1f}"
        )
        print("| round | expert labels | expert queries | wall s | return |")
        print("|---:|---:|---:|---:|---:|")
        for r in side["rounds"]:
            print(
                f"| {r['round']} | {r['expert_labels']} | {r['expert_queries']} | "
                f"{r['wall_s']:.1f} | {r['mean_return']:.1f} |"
            )
        hit = first_reach(side["rounds"], target)
        summary[name] = {
            "target": target,
            "labels_to_95": hit["expert_labels"] if hit else None,
            "wall_s_to_95": hit["wall_s"] if hit else None,
            "round": hit["round"] if hit else None,
            "rounds": side["rounds"],
            "config": side.get("config"),
        }
    per_run = ", ".join(f"{k} {v / args.repeats:.0f} s" for k, v in process_s.items())
    print(f"(process wall per run, evaluation included: {per_run})", flush=True)
    return summary


if __name__ == "__main__":
    main()
