"""What batched policy inference adds to raw env stepping during evaluation.

On ``lunarlander`` with the 2×256 MLP (categorical head), ``protege.evaluate`` times env
stepping and policy inference separately inside the one rollout loop; this script reports
policy time / env time for several numbers of sub-envs, and the same ratio measured outside
the loop (a raw ``SyncVectorEnv.step`` loop against ``policy.act`` on the same batch size).
Target (issue 2): inference adds at most 25% to env stepping time. Expert queries for the
disagreement metric are timed separately and excluded (pass --no-disagreement to skip them).

    .venv/bin/python benchmarks/eval_overhead.py [--episodes 64] [--threads 1]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import protege
from protege.policies import Policy, PolicyConfig
from store_load import machine


def raw_ratio(task: protege.tasks.Task, policy: Policy, n_envs: int, steps: int = 2000) -> float:
    env = task.make_vec_env(n_envs)
    obs, _ = env.reset(seed=0)
    actions = np.zeros(n_envs, np.int64)
    t0 = time.perf_counter()
    for _ in range(steps):
        obs, *_ = env.step(actions)
    env_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(steps):
        policy.act(obs)
    pol_s = time.perf_counter() - t0
    env.close()
    return pol_s / env_s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--episodes", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-disagreement", action="store_true")
    ap.add_argument("--repeats", type=int, default=5, help="runs per row; medians reported")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    task = protege.tasks.make("lunarlander")
    policy = Policy(PolicyConfig.for_spaces(*task.spaces, hidden_sizes=(256, 256)))
    policy.eval()
    print(f"machine: {machine()}; torch threads {args.threads}; seed {args.seed}")
    print(f"medians of {args.repeats} runs per row (the machine's speed drifts)")
    print("| n_envs | env steps | env s | policy s | policy/env (in evaluate) | policy/env (raw) |")
    print("|---|---|---|---|---|---|")
    for n_envs in (1, 8, 16):
        runs = []
        for _ in range(args.repeats):
            ev = protege.evaluate(
                policy,
                task,
                episodes=args.episodes,
                n_envs=n_envs,
                seed=args.seed,
                measure_disagreement=not args.no_disagreement,
            )
            raw = raw_ratio(task, policy, n_envs)
            runs.append((ev.env_seconds, ev.policy_seconds, raw, int(ev.lengths.sum())))
        env_s, pol_s, raw, steps = (float(np.median([r[k] for r in runs])) for k in range(4))
        ratio = float(np.median([r[1] / r[0] for r in runs]))
        print(
            f"| {n_envs} | {int(steps):,} | {env_s:.2f} | {pol_s:.2f} | {ratio:.1%} | {raw:.1%} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
