"""The offline dial on data of known, mixed quality, and d3rlpy 2.8.1 side by side.

For each task and seed: ``collect_mix`` writes a store of ``--mix`` (default: 10% of the
episodes from the expert, 90% from a uniformly random policy; every episode records its
source's ε). On that store, protege trains BC on all of it, filtered BC (the top 10% of the
episodes by return), AWR, IQL, and BC on the expert's episodes alone; d3rlpy (in its own venv,
``d3rlpy_peer.py``) trains its BC, IQL and AWAC (continuous tasks; DiscreteBC on discrete
ones, where d3rlpy has no IQL or AWAC) on the same store exported as MDPDataset arrays. Every
policy, the expert's and a random policy's returns are measured on the same evaluation
episodes (``offline_side/episodes.py``: one env, seeds ``--eval-seed`` + k). Sides alternate
which goes first from seed to seed (the machine is shared); samples/s is training samples
per second of training time (the critics' included: for IQL, ``--steps`` critic updates and
``--steps`` policy updates against d3rlpy's ``--steps`` joint updates, all at batch 256).

Score: the normalized return ``100 · (R − R_random) / (R_expert − R_random)``.

    python benchmarks/offline_dial.py --out benchmarks/results/offline_dial
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent / "offline_side"))
from episodes import run_episodes

import protege
from protege import BCConfig, Policy, PolicyConfig, Store
from protege.algos import offline
from protege.configs.offline import OfflineConfig, parse_mix
from protege.rollout.collect import collect_mix

PROTEGE = ("bc-all", "filtered-bc", "awr", "iql", "bc-expert")


def export_npz(store: Store, path: Path) -> None:
    """The store as d3rlpy's MDPDataset arrays: executed actions, terminals at the last step
    of terminated episodes, timeouts at the last step of the others."""
    data = store.transitions()
    last = data.episode_starts + data.episode_lengths - 1
    terminals = np.zeros(len(data), np.float32)
    timeouts = np.zeros(len(data), np.float32)
    assert data.terminated is not None
    terminals[last[data.terminated]] = 1.0
    timeouts[last[~data.terminated]] = 1.0
    actions = np.asarray(data.executed)
    np.savez(
        path,
        observations=np.asarray(data.obs, np.float32),
        actions=actions if actions.dtype.kind in "iu" else actions.astype(np.float32),
        rewards=np.asarray(data.rewards, np.float32),
        terminals=terminals,
        timeouts=timeouts,
    )


def protege_run(
    name: str,
    task: Any,
    store: Store,
    steps: int,
    seed: int,
    evals: dict[str, Any],
    target_update: float | None = None,
) -> dict[str, Any]:
    """One protege method on the store, scored on the evaluation episodes."""
    data = store.transitions()
    algo, kw = {
        "bc-all": ("bc", {}),
        "filtered-bc": ("filtered-bc", {"top_fraction": 0.1}),
        "awr": ("awr", {}),
        "iql": ("iql", {} if target_update is None else {"target_update": target_update}),
        "bc-expert": ("bc", {}),
    }[name]
    if name == "bc-expert":
        data = data.select_episodes(np.array([e.extras["epsilon"] == 0.0 for e in store.index]))
    policy = Policy(PolicyConfig.for_spaces(*task.spaces), seed=seed)
    t0 = time.perf_counter()
    result = offline.fit(
        policy,
        data,
        BCConfig(steps=steps, seed=seed, progress=False, val_fraction=0.0),
        OfflineConfig(algo, critic_steps=steps, **kw),
        where=str(store.path),
    )
    wall = time.perf_counter() - t0
    returns = run_episodes(lambda o: policy.act(np.asarray(o)[None])[0], **evals)
    return {
        "side": "protege",
        "method": name,
        "seed": seed,
        "returns": returns,
        "mean_return": float(np.mean(returns)),
        "train_seconds": result.train_seconds,
        "wall_seconds": wall,
        "samples_per_s": result.samples_per_s,
        "episodes_kept": result.episodes_kept,
        "weights": result.weights,
    }


def d3rlpy_runs(
    discrete: bool, npz: Path, steps: int, seed: int, env: str, eval_seeds: tuple[int, int]
) -> list[dict[str, Any]]:
    from d3rlpy_peer import run_in_venv

    out = []
    for algo in ["discrete-bc"] if discrete else ["bc", "iql", "awac"]:
        args = ["--data", npz, "--algo", algo, "--steps", steps, "--seed", seed, "--env", env]
        res = run_in_venv(
            "d3rlpy_run.py",
            [*map(str, args), "--eval-seeds", *map(str, eval_seeds)],
            env={"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"},
        )
        res.update(side="d3rlpy", method=res["algo"], mean_return=float(np.mean(res["returns"])))
        out.append(res)
    return out


def summarize(rows: list[dict[str, Any]], refs: dict[str, dict[str, float]]) -> list[dict]:
    table = []
    for task in refs:
        ref = refs[task]
        methods = dict.fromkeys(r["method"] for r in rows if r["task"] == task)
        for method in methods:
            rs = [r for r in rows if r["task"] == task and r["method"] == method]
            means = [r["mean_return"] for r in rs]
            score = [100 * (m - ref["random"]) / (ref["expert"] - ref["random"]) for m in means]
            table.append(
                {
                    "task": task,
                    "method": method,
                    "seeds": len(rs),
                    "median_return": statistics.median(means),
                    "min_return": min(means),
                    "max_return": max(means),
                    "median_score": statistics.median(score),
                    "min_score": min(score),
                    "max_score": max(score),
                    "median_samples_per_s": statistics.median(r["samples_per_s"] for r in rs)
                    if all(r.get("samples_per_s") for r in rs)
                    else None,
                }
            )
    return table


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--tasks", nargs="+", default=["lunarlander", "pendulum"])
    p.add_argument("--mix", default="expert:0.1,random:0.9")
    p.add_argument("--episodes", type=int, default=100, help="episodes per mixed store")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--steps", type=int, default=5000, help="policy (and critic) updates")
    p.add_argument("--eval-episodes", type=int, default=20)
    p.add_argument("--eval-seed", type=int, default=10_000)
    p.add_argument("--no-d3rlpy", dest="d3rlpy", action="store_false")
    p.add_argument("--methods", nargs="+", default=list(PROTEGE))
    p.add_argument(
        "--target-update",
        type=float,
        default=None,
        help="protege IQL's Polyak rate (OfflineConfig.target_update; default: its default)",
    )
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/offline_dial"))
    a = p.parse_args()
    torch.set_num_threads(1)
    a.out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    refs: dict[str, dict[str, float]] = {}
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    for task_name in a.tasks:
        task = protege.tasks.make(task_name)
        env_id = task.env_id
        assert isinstance(env_id, str)
        evals = {
            "env_id": env_id,
            "env_kwargs": dict(task.env_kwargs),
            "horizon": task.horizon,
            "seeds": range(a.eval_seed, a.eval_seed + a.eval_episodes),
        }
        env_text = f"{env_id}|{json.dumps(dict(task.env_kwargs))}|{task.horizon}"
        expert = task.make_expert()
        expert.begin_run(0)
        space = task.spaces[1]
        space.seed(0)
        expert_returns = run_episodes(
            lambda o, e=expert: e.act(np.asarray(o)[None], None)[0], **evals
        )
        random_returns = run_episodes(lambda o, s=space: s.sample(), **evals)
        refs[task_name] = {
            "expert": float(np.mean(expert_returns)),
            "random": float(np.mean(random_returns)),
        }
        ref = refs[task_name]
        print(f"[{task_name}] expert {ref['expert']:.1f}, random {ref['random']:.1f}", flush=True)
        discrete = isinstance(space, gym.spaces.Discrete)
        for k, seed in enumerate(a.seeds):
            path = a.out / task_name / f"seed_{seed}"
            store_path = path / "store"
            if not (store_path / "meta.json").exists():
                collect_mix(task, store_path, parse_mix(a.mix), a.episodes, seed=seed)
            store = Store.open(store_path)
            npz = path / "mdp.npz"
            export_npz(store, npz)
            sides = ["protege", "d3rlpy"] if k % 2 == 0 else ["d3rlpy", "protege"]
            for side in sides:
                if side == "protege":
                    for method in a.methods:
                        r = protege_run(method, task, store, a.steps, seed, evals, a.target_update)
                        rows.append({"task": task_name, **r})
                        print(f"[{task_name} seed {seed}] protege {method}: {r['mean_return']:.1f} "
                              f"({r['samples_per_s']:,.0f} samples/s)", flush=True)  # fmt: skip
                elif a.d3rlpy:
                    eval_seeds = (a.eval_seed, a.eval_episodes)
                    for r in d3rlpy_runs(discrete, npz, a.steps, seed, env_text, eval_seeds):
                        rows.append({"task": task_name, **r})
                        print(f"[{task_name} seed {seed}] {r['method']}: {r['mean_return']:.1f} "
                              f"({r['samples_per_s']:,.0f} samples/s)", flush=True)  # fmt: skip
            (a.out / "runs.json").write_text(json.dumps({"refs": refs, "rows": rows}, indent=1))
    table = summarize(rows, refs)
    record = {
        "command": " ".join(sys.argv),
        "started": started,
        "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
        "settings": vars(a) | {"out": str(a.out)},
        "refs": refs,
        "table": table,
        "rows": rows,
    }
    (a.out / "offline_dial.json").write_text(json.dumps(record, indent=1, default=str))
    print("\n| task | method | median return (min–max) | score, median (min–max) | samples/s |")
    print("|---|---|---|---|---|")
    for t in table:
        sps = f"{t['median_samples_per_s']:,.0f}" if t["median_samples_per_s"] else "–"
        print(
            f"| {t['task']} | {t['method']} | {t['median_return']:.1f} ({t['min_return']:.1f} – "
            f"{t['max_return']:.1f}) | {t['median_score']:.0f} ({t['min_score']:.0f} – "
            f"{t['max_score']:.0f}) | {sps} |"
        )


if __name__ == "__main__":
    main()
