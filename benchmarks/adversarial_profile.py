"""Where protege's GAIL spends its time: cProfile of a short run, the PPO settings of the
comparison with imitation (``adversarial_vs_imitation.py``).

``--task cartpole`` runs GAIL's own PPO defaults (``configs.adversarial.ppo_config``);
``--task pendulum`` the settings that comparison gives both sides on Pendulum (rl-baselines3-
zoo's: 4,000 steps over 4 envs per update, 10 epochs of minibatches of 64, lr 1e-3, γ 0.9,
λ 0.95, clip 0.2). Demonstrations: 8 episodes of protege's expert, seed 0, as there.
Prints the wall and training seconds, then the profile by cumulative and by own time.

    .venv/bin/python benchmarks/adversarial_profile.py --task pendulum --steps 8000 \\
        > benchmarks/results/adversarial_vs_imitation/profile/pendulum.txt
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import shutil
import tempfile
import time
from pathlib import Path

import torch

import protege
from protege.algos.adversarial import train
from protege.configs.adversarial import AdversarialConfig, ppo_config
from protege.data.store import Store

LEARNER = {
    "cartpole": {},
    "pendulum": {
        "rollout_steps": 4000,
        "n_envs": 4,
        "epochs": 10,
        "minibatch_size": 64,
        "lr": 1e-3,
        "gamma": 0.9,
        "gae_lambda": 0.95,
        "clip": 0.2,
    },
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", choices=sorted(LEARNER), default="pendulum")
    ap.add_argument("--steps", type=int, default=8000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lines", type=int, default=45)
    args = ap.parse_args()
    torch.set_num_threads(1)
    task = protege.tasks.make(args.task)
    with tempfile.TemporaryDirectory() as tmp:
        demos = Path(tmp) / "demos"
        protege.collect(task, demos, episodes=8, n_envs=8, seed=0)
        data = Store.open(demos).transitions()
        ppo = ppo_config(seed=args.seed, **LEARNER[args.task])
        cfg = AdversarialConfig(steps=args.steps, eval_every=10**7, eval_episodes=1)
        prof = cProfile.Profile()
        t0 = time.perf_counter()
        prof.enable()
        r = train(
            "gail", task, data, Path(tmp) / "run", cfg, ppo, tensorboard=False, reward_episodes=0
        )
        prof.disable()
        wall = time.perf_counter() - t0
        shutil.rmtree(Path(tmp) / "run", ignore_errors=True)
    print(f"task {args.task}, PPO {ppo}")
    print(f"wall {wall:.1f} s, training {r.wall_seconds:.1f} s, env steps {r.env_steps}")
    stats = pstats.Stats(prof).sort_stats("cumulative")
    stats.print_stats(args.lines)
    stats.sort_stats("tottime").print_stats(30)


if __name__ == "__main__":
    main()
