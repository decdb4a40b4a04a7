"""GAIL recovers from compounding error where BC does not: same few demonstrations, no more labels.

The task is CartPole with ``--demos`` expert demonstrations each cut after ``--cut`` steps
(seeds 0, 1, ...): so few, and so short, that BC's policy leaves the states they cover and
never comes back. GAIL trains on exactly the same steps (no further expert label and no
reward: only the policy's own rollouts), ``--steps`` env steps with
:class:`AdversarialConfig`'s and :class:`PPOConfig`'s defaults (not GAIL's own PPO defaults,
``configs.adversarial.PPO_DEFAULTS``, which came later: the recorded figures are with
PPOConfig's). Both are evaluated the same
way on ``--episodes`` seeded episodes (deterministic actions), with the expert asked at every
step only to measure the disagreement (:func:`protege.rollout.evaluate`), whose curve against
the time step is the figure (:func:`protege.report.plots.plot_disagreement`, curves pooled
over the seeds).

    .venv/bin/python benchmarks/gail_vs_bc.py --seeds 0 1 2 --steps 30000 \\
        --out benchmarks/results/gail_vs_bc
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

import protege
from protege.algos import bc
from protege.algos.adversarial import train
from protege.configs.adversarial import AdversarialConfig
from protege.configs.bc import BCConfig
from protege.configs.demos import EVAL_SEED_OFFSET
from protege.configs.policy import PolicyConfig
from protege.configs.rl import PPOConfig
from protege.data.store import Store
from protege.data.transitions import Transitions
from protege.policies.policy import Policy
from protege.report.plots import plot_disagreement
from protege.rollout.evaluate import Evaluation, evaluate, evaluate_expert
from store_load import machine


def cut_demos(data: Transitions, cut: int) -> Transitions:
    """Each episode's first ``cut`` steps; the next observation after the cut is its final
    observation, and no episode terminated (it was cut off, not ended)."""
    keep = np.concatenate(
        [
            np.arange(s, s + min(cut, n))
            for s, n in zip(data.episode_starts, data.episode_lengths, strict=True)
        ]
    )
    lengths = np.minimum(data.episode_lengths, cut)
    obs = np.asarray(data.obs)
    nxt = data.next_obs()
    out = Transitions.labeled_steps(obs[keep], data.actions[keep], lengths)
    ends = np.cumsum(lengths) - 1
    return dataclasses.replace(
        out, final_obs=nxt[keep][ends], terminated=np.zeros(len(lengths), bool)
    )


def pooled(evs: list[Evaluation]) -> tuple[np.ndarray, np.ndarray]:
    """Per-step disagreement pooled over evaluations (weighted by episodes per step)."""
    t = max(len(e.disagreement_by_step) for e in evs)
    total, counts = np.zeros(t), np.zeros(t)
    for e in evs:
        n = len(e.disagreement_by_step)
        total[:n] += np.nan_to_num(e.disagreement_by_step) * e.episodes_by_step
        counts[:n] += e.episodes_by_step
    with np.errstate(invalid="ignore"):
        return np.where(counts > 0, total / np.maximum(counts, 1), np.nan), counts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--demos", type=int, default=1)
    ap.add_argument("--cut", type=int, default=40)
    ap.add_argument("--steps", type=int, default=40_000)
    ap.add_argument("--bc-steps", type=int, default=2000)
    ap.add_argument("--episodes", type=int, default=20)
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--out", default="benchmarks/results/gail_vs_bc")
    args = ap.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    task = protege.tasks.make("cartpole")
    store = out / "demos" / "cartpole"
    shutil.rmtree(store, ignore_errors=True)
    protege.collect(task, store, episodes=args.demos, n_envs=args.demos, seed=0)
    data = cut_demos(Store.open(store).transitions(), args.cut)
    eval_seed = EVAL_SEED_OFFSET
    expert = evaluate_expert(task, args.episodes, 8, eval_seed)
    rows, bc_evs, gail_evs = [], [], []
    for seed in args.seeds:
        t0 = time.perf_counter()
        policy = Policy(PolicyConfig.for_spaces(*task.spaces), seed=seed)
        bc.fit(policy, data, BCConfig(steps=args.bc_steps, seed=seed, progress=False))
        bc_s = time.perf_counter() - t0
        ev_bc = evaluate(policy, task, args.episodes, 8, eval_seed)
        run = out / "runs" / f"gail_{seed}"
        shutil.rmtree(run, ignore_errors=True)
        res = train(
            "gail",
            task,
            data,
            run,
            AdversarialConfig(steps=args.steps, eval_every=args.steps),
            PPOConfig(seed=seed),
            tensorboard=False,
            reward_episodes=0,
        )
        ev_gail = evaluate(Policy.load(run), task, args.episodes, 8, eval_seed)
        bc_evs.append(ev_bc)
        gail_evs.append(ev_gail)
        rows.append(
            {
                "seed": seed,
                "bc": {**ev_bc.summary(), "train_seconds": bc_s},
                "gail": {
                    **ev_gail.summary(),
                    "train_seconds": res.wall_seconds,
                    "env_steps": res.env_steps,
                },
            }
        )
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    plot_disagreement(
        {"BC": pooled(bc_evs), "GAIL": pooled(gail_evs)},
        out / "disagreement.png",
        title=f"CartPole, {args.demos} demos × {args.cut} steps: disagreement with the expert",
    )
    record = {
        "command": " ".join(sys.argv),
        "machine": machine() + " (shared with other jobs, loaded)",
        "demo_steps": len(data),
        "expert": expert.summary(),
        "settings": vars(args),
        "runs": rows,
        "bc_mean_return": float(np.mean([r["bc"]["mean_return"] for r in rows])),
        "gail_mean_return": float(np.mean([r["gail"]["mean_return"] for r in rows])),
    }
    (out / "results.json").write_text(json.dumps(record, indent=1))
    print(json.dumps({k: record[k] for k in ("demo_steps", "bc_mean_return", "gail_mean_return")}))


if __name__ == "__main__":
    main()
